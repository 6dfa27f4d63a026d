"""Loading training runs from MLflow: `run.json` and predictions artifacts, cached, and the sweep parents.

MLflow is imported inside `load_mlflow_runs`, on first use: reading run directories, and the
statistics, must not need it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.errors import InputError
from analysis.load.health import health_from_tags
from analysis.load.runs import Run, attach_predictions, read_run_record
from analysis.load.versions import environment_from_tags
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
    uri = existing_store(tracking_uri)
    try:
        client = MlflowClient(tracking_uri=uri)
        if experiment:
            experiment_ids = [_experiment_id(client, experiment)]
        else:
            experiment_ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)]
    except MlflowException as error:  # e.g. a file that is not an MLflow database
        raise InputError(
            "--tracking-uri", f"{uri}: not a readable MLflow store ({str(error).splitlines()[0]})"
        ) from None
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


def existing_store(tracking_uri: str | None) -> str:
    """The tracking URI (`tracking_uri`, else MLflow's default), refused when it names no existing store.

    Reading must never create a store: MLflow creates a sqlite database, or a file store's folder, on
    first use, so a mistyped path would otherwise become an empty store and "no experiment named...".
    A server URI must answer (MLflow would retry for minutes before failing).
    """
    import mlflow  # here, not at the top: see load_mlflow_runs

    uri = tracking_uri or mlflow.get_tracking_uri()
    option = "--tracking-uri" if tracking_uri else "--tracking-uri (default: MLFLOW_TRACKING_URI or MLflow's own)"
    scheme = urllib.parse.urlparse(uri).scheme
    if scheme in ("http", "https"):
        _check_server(uri, option)
        return uri
    if scheme == "sqlite":
        rest = uri[len("sqlite://") :]  # "/relative.db", "//absolute.db", or "" (in memory)
        path, kind = (rest[1:].split("?", 1)[0] if rest.startswith("/") else ""), "file"
    elif scheme in ("", "file"):  # a file store: a folder
        path, kind = (urllib.parse.urlparse(uri).path if scheme else uri), "folder"
    else:
        return uri  # databricks, postgresql...: MLflow's own errors
    if path in ("", ":memory:"):
        raise InputError(option, f"{uri}: an in-memory store holds no runs; expected the sqlite file of a store")
    exists = Path(path).is_file() if kind == "file" else Path(path).is_dir()
    if not exists:
        raise InputError(
            option, f"{uri}: the MLflow store does not exist (no {kind} {path}); expected an existing store"
        )
    if kind == "file":
        _check_sqlite_store(Path(path), uri, option)
    return uri


def _check_sqlite_store(path: Path, uri: str, option: str) -> None:
    """The file must already be an MLflow database: MLflow would create its tables in any other (empty) one."""
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as error:
        reason = f"{path} is not an SQLite database ({error})"
        raise InputError(option, f"{uri}: {reason}; expected an MLflow store") from None
    if not {"experiments", "runs"} <= tables:
        raise InputError(option, f"{uri}: {path} holds no MLflow tables (experiments, runs); expected an MLflow store")


def _check_server(uri: str, option: str) -> None:
    """Any HTTP reply from `uri/health` will do; no reply within 5 s is an input error."""
    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5).close()
    except urllib.error.HTTPError:
        pass  # it answered
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise InputError(option, f"{uri}: no MLflow server answers ({reason}); expected a running server") from None


def _experiment_id(client: MlflowClient, name: str) -> str:
    """The id of the experiment called `name`; an input error listing the store's experiments if none is."""
    found = client.get_experiment_by_name(name)
    if found is None:
        names = sorted(e.name for e in client.search_experiments(max_results=50))
        raise InputError(
            "--experiment",
            f"no MLflow experiment named {name!r} at {client.tracking_uri}; expected one of: {', '.join(names)}",
        )
    return found.experiment_id


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
    try:
        record = read_run_record(record_path)
    except (OSError, ValueError) as error:
        name = f"mlflow:{run_id} ({mlflow_run.info.run_name})"  # its run.json is where its name would be
        return Run(name, {}, f"mlflow:{run_id}", problem=f"unreadable {RUN_FILE} artifact: {error}")
    record.setdefault("mlflow_run_id", run_id)
    _fill_from_tags(record, mlflow_run.data.tags)
    name = str(record.get("run_name") or mlflow_run.info.run_name or run_id)
    run = Run(name, record, f"mlflow:{run_id}", timestamp=_started(mlflow_run))
    if not finished:
        error = record.get("error")
        run.problem = f"MLflow status {status}" + (f" ({str(error).splitlines()[0][:120]})" if error else "")
        return run
    _fetch(client, run_id, predictions_path(split), cache, refresh=False)
    where = f"artifact {predictions_path(split)} of MLflow run {run_id}"
    recorded = mlflow_run.data.metrics.get(f"{split}/n")  # r2d logs metrics.json's splits flat: test/n
    expected = int(recorded) if recorded is not None and float(recorded).is_integer() else None
    return attach_predictions(run, cache / predictions_path(split), split, where, expected)


def _started(mlflow_run: MlflowRun) -> float | None:
    """The run's MLflow start time in seconds (None if unknown): the newer of two duplicate runs is kept."""
    start = mlflow_run.info.start_time
    return None if start is None else start / 1000.0


def _fill_from_tags(record: dict, tags: dict[str, str]) -> None:
    """Health (`r2d.health.<flag>`) and the environment (`r2d.env.<name>`) from the run's tags, when its run.json
    has none."""
    if "health" not in record:
        health = health_from_tags(tags)
        if health is not None:
            record["health"] = health
    if not isinstance(record.get("environment"), dict):
        environment = environment_from_tags(tags)
        if environment:
            record["environment"] = environment


def _record_from_tags(mlflow_run: MlflowRun) -> dict:
    tags = mlflow_run.data.tags
    record = {
        key[len("r2d.") :]: value for key, value in tags.items() if key.startswith("r2d.") and key.count(".") == 1
    }
    health = health_from_tags(tags)
    if health is not None:
        record["health"] = health
    environment = environment_from_tags(tags)
    if environment:
        record["environment"] = environment
    record["run_name"] = mlflow_run.info.run_name or mlflow_run.info.run_id
    record["status"] = mlflow_run.info.status
    if "seed" in record:
        record["seed"] = int(record["seed"])
    return record
