"""`r2d regenerate`: re-train one recorded trial here and say whether its predictions are identical.

Reads the MLflow run's config.yaml and predictions/test.csv artifacts and its r2d.env.* tags,
trains the recorded config (seed included) in this process with tracking off, compares the new
predictions/test.csv byte for byte, and when they differ names the recorded settings (versions,
CPU model, ISA switches) that differ from this environment. Exit 0 identical, 1 differs.
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


def cmd_regenerate(run_id: str, tracking_uri: str, out_dir: str | None,
                   before_training: BeforeTraining | None = None) -> int:
    try:
        identical, differences = regenerate(run_id, tracking_uri, Path(out_dir) if out_dir else None,
                                            before_training)
    except MlflowException as err:  # an unknown run id, or a run without the recorded artifacts
        print(f"r2d: error: --run-id {run_id}: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    print("identical" if identical else "differs")
    for line in differences:
        print(f"  {line}")
    if not identical and not differences:
        print("  no recorded setting differs from this environment")
    return 0 if identical else 1
