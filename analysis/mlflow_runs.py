"""Loading training runs from MLflow: `run.json` and predictions artifacts, cached, and the sweep parents.

MLflow is imported inside `load_mlflow_runs`, on first use: reading run directories, and the
statistics, must not need it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.errors import InputError
from analysis.health import health_from_tags
from analysis.runs import Run, attach_predictions
from r2d.schema import RUN_FILE, predictions_path

if TYPE_CHECKING:  # annotations only
    from mlflow import MlflowClient
    from mlflow.entities import Run as MlflowRun

SWEEP_TAG = "r2d.sweep_id"
PARENT_TAG = "mlflow.parentRunId"


@dataclass
class MlflowRuns:
    """Training runs read from MLflow, and the sweep parent run(s) they belong to (to attach reports to)."""

    runs: list[Run]
    parent_run_ids: list[str]
    tracking_uri: str | None
    skipped: list[str] = field(default_factory=list)


def default_cache_dir() -> Path:
    """Where MLflow artifacts are cached: `$XDG_CACHE_HOME/r2d-analysis/mlflow` (default `~/.cache`)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "r2d-analysis" / "mlflow"


def load_mlflow_runs(
    *,
    experiment: str | None = None,
    sweep_id: str | None = None,
    filter_string: str | None = None,
    tracking_uri: str | None = None,
    split: str = "test",
    cache_dir: str | Path | None = None,
) -> MlflowRuns:
    """Training runs of an MLflow experiment and/or sweep, with `run.json` and predictions downloaded.

    Artifacts of finished runs never change, so they are cached under `cache_dir/<run id>/` and
    read from there next time. A run is a training run if it has a `run.json` artifact; sweep
    parents (the runs other runs name as `mlflow.parentRunId`) are returned separately, so that
    the report can be attached to them.
    """
    # imported here, not at the top: MLflow is heavy and optional (run directories and tests do without it)
    from mlflow import MlflowClient
    from mlflow.entities import ViewType
    from mlflow.exceptions import MlflowException

    if not (experiment or sweep_id or filter_string):
        raise InputError("--experiment", "name an MLflow experiment, a --sweep-id or a --filter")
    client = MlflowClient(tracking_uri=tracking_uri)
    if experiment:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise InputError("--experiment", f"no MLflow experiment named {experiment!r} at {client.tracking_uri}")
        experiment_ids = [found.experiment_id]
    else:
        experiment_ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)]
    clauses = [f"tags.`{SWEEP_TAG}` = '{sweep_id}'"] if sweep_id else []
    if filter_string:
        clauses.append(f"({filter_string})" if " or " in filter_string.lower() else filter_string)
    try:
        found_runs = _search_all(client, experiment_ids, " and ".join(clauses))
    except MlflowException as error:
        raise InputError("--filter", f"MLflow rejected the search: {str(error).splitlines()[0]}") from error

    parents = {run.data.tags[PARENT_TAG] for run in found_runs if PARENT_TAG in run.data.tags}
    cache_root = Path(cache_dir) if cache_dir else default_cache_dir()
    runs: list[Run] = []
    skipped: list[str] = []
    for mlflow_run in found_runs:
        run_id = mlflow_run.info.run_id
        if run_id in parents and "r2d.variant" not in mlflow_run.data.tags:
            continue
        run = _download_run(client, mlflow_run, split, cache_root / run_id)
        if run is None:
            skipped.append(f"{mlflow_run.info.run_name or run_id}: no {RUN_FILE} artifact (not a training run)")
        else:
            runs.append(run)
    if sweep_id and not parents:  # a sweep whose parent was filtered out or has no children yet
        parents = {
            run.info.run_id
            for run in found_runs
            if PARENT_TAG not in run.data.tags and "r2d.variant" not in run.data.tags
        }
    return MlflowRuns(runs, sorted(parents), client.tracking_uri, skipped)


def _search_all(client: MlflowClient, experiment_ids: list[str], filter_string: str) -> list[MlflowRun]:
    runs, token = [], None
    while True:
        page = client.search_runs(experiment_ids, filter_string=filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


@contextmanager
def _quiet_downloads() -> Iterator[None]:
    """MLflow draws a progress bar per artifact; a report downloads hundreds of small files."""
    previous = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = previous


def _fetch(client: MlflowClient, run_id: str, artifact: str, cache: Path, refresh: bool) -> Path | None:
    """Download one artifact to `cache/artifact` (unless cached); None if the run has no such artifact."""
    target = cache / artifact
    if target.is_file() and not refresh:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _quiet_downloads():
            local = Path(client.download_artifacts(run_id, artifact, str(target.parent)))
    except Exception:  # noqa: BLE001 - stores raise several types for a missing artifact
        return None
    if local.resolve() != target.resolve():  # some stores keep only the file name
        shutil.move(str(local), target)
    return target


def _download_run(client: MlflowClient, mlflow_run: MlflowRun, split: str, cache: Path) -> Run | None:
    """Fetch run.json and the split's predictions of one MLflow run (cached); None if it has no run.json.

    Artifacts of a FINISHED run are final, so the cache is trusted; anything else is fetched again.
    """
    run_id, status = mlflow_run.info.run_id, mlflow_run.info.status
    finished = status == "FINISHED"
    record_path = _fetch(client, run_id, RUN_FILE, cache, refresh=not finished)
    if record_path is None:
        if "r2d.variant" not in mlflow_run.data.tags:
            return None
        record = _record_from_tags(mlflow_run)  # a run that failed before writing run.json
        problem = f"MLflow status {status}, no run.json"
        return Run(record["run_name"], record, f"mlflow:{run_id}", problem=problem, timestamp=_started(mlflow_run))
    record = json.loads(record_path.read_text())
    record.setdefault("mlflow_run_id", run_id)
    _fill_from_tags(record, mlflow_run.data.tags)
    name = str(record.get("run_name") or mlflow_run.info.run_name or run_id)
    run = Run(name, record, f"mlflow:{run_id}", timestamp=_started(mlflow_run))
    if not finished:
        error = record.get("error")
        run.problem = f"MLflow status {status}" + (f" ({str(error).splitlines()[0][:120]})" if error else "")
        return run
    _fetch(client, run_id, predictions_path(split), cache, refresh=False)
    return attach_predictions(run, cache / predictions_path(split), split)


def _started(mlflow_run: MlflowRun) -> float | None:
    """The run's MLflow start time in seconds (None if unknown): the newer of two duplicate runs is kept."""
    start = mlflow_run.info.start_time
    return None if start is None else start / 1000.0


def _fill_from_tags(record: dict, tags: dict[str, str]) -> None:
    """Health from the run's tags (`r2d.health.<flag>`) when its run.json has none."""
    if "health" not in record:
        health = health_from_tags(tags)
        if health is not None:
            record["health"] = health


def _record_from_tags(mlflow_run: MlflowRun) -> dict:
    tags = mlflow_run.data.tags
    record = {
        key[len("r2d.") :]: value for key, value in tags.items() if key.startswith("r2d.") and key.count(".") == 1
    }
    health = health_from_tags(tags)
    if health is not None:
        record["health"] = health
    record["run_name"] = mlflow_run.info.run_name or mlflow_run.info.run_id
    record["status"] = mlflow_run.info.status
    if "seed" in record:
        record["seed"] = int(record["seed"])
    return record
