"""`r2d regenerate`: re-train one recorded trial here and say whether its predictions are identical.

The trial is named by its training run id, or by its sweep's parent run id (an adaptive parent's
sweeps included) and optionally its Tune trial id or seed. Reads the training's config.yaml and
predictions/test.csv artifacts and its r2d.env.* tags, trains the recorded config (seed and thread
count included) in this process with tracking off, compares the new predictions/test.csv byte for
byte, and when they differ names the recorded settings (versions, CPU model, ISA switches) that
differ from this environment. Exit 0 identical, 1 differs, 2 bad input.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts
from mlflow.exceptions import MlflowException

from r2d.config import Config, load_config
from r2d.run import runner
from r2d.train.record import environment, environment_tags

PREDICTIONS = "predictions/test.csv"


def setting_differences(recorded_tags: dict[str, str], current: dict[str, str]) -> list[str]:
    """'name: recorded X, here Y' for each r2d.env.* setting that differs (or is only on one side)."""
    keys = sorted(k for k in set(recorded_tags) | set(current) if k.startswith("r2d.env."))
    return [f"{k[len('r2d.env.'):]}: recorded {recorded_tags.get(k, '(unset)')}, here {current.get(k, '(unset)')}"
            for k in keys if recorded_tags.get(k) != current.get(k)]


def _trainings_under(client: MlflowClient, parent_run_id: str) -> list:
    """Every training run under `parent_run_id`, by start time; an adaptive parent's sweep parents are descended."""
    experiment = client.get_run(parent_run_id).info.experiment_id
    parents, trainings = [parent_run_id], []
    while parents:
        children = client.search_runs([experiment], filter_string=f"tags.mlflow.parentRunId = '{parents.pop()}'",
                                      order_by=["attributes.start_time ASC"], max_results=5000)
        parents += [r.info.run_id for r in children if r.data.tags.get("r2d.kind") in ("sweep", "adaptive")]
        trainings += [r for r in children if "r2d.system_id" in r.data.tags]
    return sorted(trainings, key=lambda r: r.info.start_time)


def pick_trial(client: MlflowClient, parent_run_id: str, trial: str | None = None, seed: int | None = None) -> str:
    """The training run id of one trial under sweep parent `parent_run_id`: the FINISHED one with Tune
    trial id `trial` and/or `seed`, else the first FINISHED by start time. ValueError names the option."""
    finished = [r for r in _trainings_under(client, parent_run_id) if r.info.status == "FINISHED"]
    chosen = [r for r in finished if (trial is None or r.data.tags.get("r2d.trial_id") == trial)
              and (seed is None or r.data.tags.get("r2d.seed") == str(seed))]
    if chosen:
        return chosen[0].info.run_id
    option = " ".join(x for x in (trial and f"--trial {trial}", seed is not None and f"--seed {seed}") if x)
    have = sorted({f"{r.data.tags.get('r2d.trial_id', '?')} (seed {r.data.tags.get('r2d.seed')})" for r in finished})
    raise ValueError(f"{option or '--parent-run-id ' + parent_run_id}: no FINISHED training matches under parent "
                     f"{parent_run_id}; it has: {', '.join(have[:6]) or 'none'}{' ...' if len(have) > 6 else ''}")


BeforeTraining = Callable[[Config], None]


def regenerate(run_id: str, tracking_uri: str, out_dir: Path | None = None,
               before_training: BeforeTraining | None = None) -> tuple[bool, list[str]]:
    """(identical?, differing recorded settings) after re-training run `run_id` into `out_dir`.
    `before_training(cfg)` sees the recorded config first (the CLI pins CPU code paths there)."""
    tags = MlflowClient(tracking_uri).get_run(run_id).data.tags
    work = Path(out_dir or tempfile.mkdtemp(prefix="r2d-regenerate-"))
    fetched = work / "recorded"
    config = download_artifacts(run_id=run_id, artifact_path="config.yaml", dst_path=str(fetched),
                                tracking_uri=tracking_uri)
    recorded = download_artifacts(run_id=run_id, artifact_path=PREDICTIONS, dst_path=str(fetched),
                                  tracking_uri=tracking_uri)
    cfg = load_config(config, ["tracking.enabled=false"])
    if before_training is not None:
        before_training(cfg)
    runner.train(cfg, work / "run")
    identical = (work / "run" / PREDICTIONS).read_bytes() == Path(recorded).read_bytes()
    return identical, [] if identical else setting_differences(tags, environment_tags(environment()))


def cmd_regenerate(run_id: str | None, tracking_uri: str, out_dir: str | None, parent_run_id: str | None = None,
                   trial: str | None = None, seed: int | None = None,
                   before_training: BeforeTraining | None = None) -> int:
    """`r2d regenerate`: exit 0 identical, 1 differs, 2 bad input (one line on stderr)."""
    option = f"--run-id {run_id}" if run_id else f"--parent-run-id {parent_run_id}"
    try:
        if run_id is None:
            run_id = pick_trial(MlflowClient(tracking_uri), str(parent_run_id), trial, seed)
            print(f"trial: run {run_id}")
        identical, differences = regenerate(run_id, tracking_uri, Path(out_dir) if out_dir else None,
                                            before_training)
    except MlflowException as err:  # an unknown run id, or a run without the recorded artifacts
        print(f"r2d: error: {option}: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"r2d: error: {err}", file=sys.stderr)
        return 2
    print("identical" if identical else "differs")
    for line in differences:
        print(f"  {line}")
    if not identical and not differences:
        print("  no recorded setting differs from this environment")
    return 0 if identical else 1
