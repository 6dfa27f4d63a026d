"""Reading runs (local run directories or MLflow), grouping them into systems, matching seeds and examples.

A *system* is what a study compares (a variant, a schedule shape and rate, a rationale source...);
its *runs* differ only by training seed. Runs are grouped by the settings that identify them
(`run.json`'s `system` dict, plus the rationale source), named by the settings that differ across
the study, and matched by seed and example id. Anything that does not match (a failed or missing
seed, an example missing from a run, disagreeing gold labels) is written to `Study.notes`: the
report prints it, nothing is dropped silently.

Only `r2d.schema` is imported from `r2d` (it imports no torch); MLflow is imported on first use.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from r2d.schema import PREDICTION_COLUMNS, RUN_FILE, predictions_path

TEXT_COLUMNS = ("id", "gold_label", "pred_label", "gold_rationale", "pred_rationale")
NUMERIC_COLUMNS = tuple(column for column in PREDICTION_COLUMNS if column not in TEXT_COLUMNS)
REQUIRED_COLUMNS = ("id", "gold_label", "pred_label", "correct")
_NA_STRINGS = ["", "nan", "NaN", "NA", "N/A", "null", "None"]

# Settings a system can be told apart by, when run.json has no `system` dict (older runs).
FALLBACK_SETTINGS = ("variant", "shape", "transition", "cap", "warmup", "steepness", "alpha")
# Settings that define *strata*: systems are compared with the baseline of their own stratum.
STRATUM_SETTINGS = ("rationale_source",)
SETTING_ALIASES = {"rationale_source": "source"}
SWEEP_TAG = "r2d.sweep_id"
PARENT_TAG = "mlflow.parentRunId"


class InputError(ValueError):
    """Bad input from the user; names the option at fault and what was expected (the CLI exits 2)."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option


@dataclass
class Run:
    """One training run: its run.json record and its predictions for the split being analysed."""

    name: str
    record: dict
    source: str  # a directory, or "mlflow:<run id>"
    predictions: pd.DataFrame | None = None
    problem: str | None = None  # why the run cannot be used (failed, no predictions...)

    @property
    def seed(self) -> int | None:
        seed = self.record.get("seed")
        return None if seed is None else int(seed)

    @property
    def usable(self) -> bool:
        return self.problem is None and self.predictions is not None

    def settings(self) -> dict[str, object]:
        """The settings that identify this run's system (its `system` dict, plus the rationale source)."""
        system = self.record.get("system")
        if isinstance(system, dict) and system:
            settings = {key: _hashable(value) for key, value in system.items()}
        else:
            schedule = self.record.get("schedule") or {}
            settings = {"variant": self.record.get("variant")}
            settings.update({key: _hashable(schedule.get(key)) for key in FALLBACK_SETTINGS[1:]})
        settings.setdefault("rationale_source", self.record.get("rationale_source"))
        return settings


def _hashable(value: object) -> object:
    """Settings group runs, so nested values (a dict of shape parameters) become their JSON text."""
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value


# --------------------------------------------------------------------------------------------------
# Local run directories
# --------------------------------------------------------------------------------------------------


def read_predictions(path: str | Path) -> pd.DataFrame:
    """Read a predictions CSV: ids and labels as text (never NaN), metric columns as floats (empty = NaN)."""
    frame = pd.read_csv(
        path,
        dtype={column: str for column in TEXT_COLUMNS},
        keep_default_na=False,
        na_values={column: _NA_STRINGS for column in NUMERIC_COLUMNS},
    )
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (see r2d.schema.PREDICTION_COLUMNS)")
    for column in TEXT_COLUMNS:
        frame[column] = frame[column].fillna("").astype(str) if column in frame.columns else ""
    for column in NUMERIC_COLUMNS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce") if column in frame.columns else np.nan
    for column in ("gold_label", "pred_label"):
        frame[column] = frame[column].str.strip().str.lower()
    duplicated = frame["id"][frame["id"].duplicated()]
    if len(duplicated):
        raise ValueError(f"{path}: duplicate example ids, e.g. {', '.join(map(repr, duplicated[:3]))}")
    return frame.set_index("id", drop=False)


def load_run_dir(path: str | Path, split: str = "test") -> Run:
    """Load one run directory (run.json + predictions/{split}.csv); problems are recorded, not raised."""
    path = Path(path)
    try:
        record = json.loads((path / RUN_FILE).read_text())
    except (OSError, json.JSONDecodeError) as error:
        return Run(path.name, {}, str(path), problem=f"unreadable {RUN_FILE}: {error}")
    run = Run(str(record.get("run_name") or path.name), record, str(path))
    return _attach_predictions(run, path / predictions_path(split), split)


def _attach_predictions(run: Run, predictions_file: Path, split: str) -> Run:
    status = str(run.record.get("status", "FINISHED")).upper()
    if status != "FINISHED":
        error = run.record.get("error")
        run.problem = f"status {status}" + (f" ({str(error).splitlines()[0][:120]})" if error else "")
        return run
    if not predictions_file.is_file():
        run.problem = f"no predictions for split {split!r} ({predictions_path(split)})"
        return run
    try:
        run.predictions = read_predictions(predictions_file)
    except ValueError as error:
        run.problem = str(error)
    return run


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories under `paths`: each path is a run directory or a folder holding some (recursively)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise InputError("--runs", f"{path} does not exist; expected run directories (with {RUN_FILE})")
        if (path / RUN_FILE).is_file():
            found.append(path)
        else:
            found.extend(sorted(p.parent for p in path.rglob(RUN_FILE)))
    return list(dict.fromkeys(found))


def load_run_dirs(paths: Iterable[str | Path], split: str = "test") -> list[Run]:
    """Load every run directory found under `paths` (see `find_run_dirs`)."""
    directories = find_run_dirs(paths)
    if not directories:
        raise InputError("--runs", f"no run directory (with {RUN_FILE}) under {', '.join(map(str, paths))}")
    return [load_run_dir(directory, split) for directory in directories]


# --------------------------------------------------------------------------------------------------
# MLflow
# --------------------------------------------------------------------------------------------------


@dataclass
class MlflowRuns:
    """Training runs read from MLflow, and the sweep parent run(s) they belong to (to attach reports to)."""

    runs: list[Run]
    parent_run_ids: list[str]
    tracking_uri: str | None
    skipped: list[str] = field(default_factory=list)


def default_cache_dir() -> Path:
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


def _search_all(client, experiment_ids: list[str], filter_string: str) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs(experiment_ids, filter_string=filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


@contextmanager
def _quiet_downloads():
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


def _fetch(client, run_id: str, artifact: str, cache: Path, refresh: bool) -> Path | None:
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


def _download_run(client, mlflow_run, split: str, cache: Path) -> Run | None:
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
        return Run(record["run_name"], record, f"mlflow:{run_id}", problem=f"MLflow status {status}, no run.json")
    record = json.loads(record_path.read_text())
    record.setdefault("mlflow_run_id", run_id)
    run = Run(str(record.get("run_name") or mlflow_run.info.run_name or run_id), record, f"mlflow:{run_id}")
    if not finished:
        error = record.get("error")
        run.problem = f"MLflow status {status}" + (f" ({str(error).splitlines()[0][:120]})" if error else "")
        return run
    _fetch(client, run_id, predictions_path(split), cache, refresh=False)
    return _attach_predictions(run, cache / predictions_path(split), split)


def _record_from_tags(mlflow_run) -> dict:
    tags = mlflow_run.data.tags
    record = {key[len("r2d.") :]: value for key, value in tags.items() if key.startswith("r2d.")}
    record["run_name"] = mlflow_run.info.run_name or mlflow_run.info.run_id
    record["status"] = mlflow_run.info.status
    if "seed" in record:
        record["seed"] = int(record["seed"])
    return record


# --------------------------------------------------------------------------------------------------
# Systems, seeds and examples
# --------------------------------------------------------------------------------------------------


@dataclass
class System:
    """Runs of one configuration, by seed. `name` shows only the settings that differ across the study."""

    name: str
    settings: dict[str, object]
    runs: dict[int, Run]

    @property
    def seeds(self) -> list[int]:
        return sorted(self.runs)

    @property
    def stratum(self) -> tuple:
        return tuple((key, self.settings.get(key)) for key in STRATUM_SETTINGS)

    @property
    def schedule(self) -> dict:
        """The schedule of the system's runs (for plots: shape and transition rate)."""
        for run in self.runs.values():
            return run.record.get("schedule") or {}
        return {}

    def setting(self, key: str) -> object:
        """A setting from the system dict, else from the runs' schedule or record."""
        if self.settings.get(key) is not None:
            return self.settings[key]
        if key in self.schedule:
            return self.schedule[key]
        for run in self.runs.values():
            return run.record.get(key)
        return None


@dataclass
class Study:
    """Systems matched by seed and example id, ready for `analysis.report`."""

    systems: list[System]
    example_ids: list[str]
    labels: list[str]
    split: str
    dataset: str | None
    differing: list[str]
    notes: list[str]
    missing_runs: list[Run]

    def system(self, name: str) -> System:
        return next(system for system in self.systems if system.name == name)

    def frame(self, system: System, seed: int) -> pd.DataFrame:
        """The run's predictions restricted to the matched examples, in one order for every run."""
        return system.runs[seed].predictions.loc[self.example_ids]


def build_study(
    runs: Sequence[Run], *, split: str = "test", dataset: str | None = None, source_option: str = "--runs"
) -> Study:
    """Group runs into systems, match them by seed and example id, and record every mismatch in `notes`."""
    notes: list[str] = []
    if dataset is not None:
        present = sorted({str(run.record.get("dataset")) for run in runs})
        runs = [run for run in runs if run.record.get("dataset") == dataset]
        if not runs:
            raise InputError("--dataset", f"no run on dataset {dataset!r}; expected one of {', '.join(present)}")
    datasets = sorted({str(run.record.get("dataset")) for run in runs if run.record.get("dataset") is not None})
    if len(datasets) > 1:
        raise InputError("--dataset", f"runs span datasets {', '.join(datasets)}; choose one with --dataset")

    usable = [run for run in runs if run.usable]
    missing = [run for run in runs if not run.usable]
    if not usable:
        details = "; ".join(f"{run.name}: {run.problem}" for run in missing[:5])
        raise InputError(
            source_option, f"no usable run (finished, with {split} predictions) among {len(runs)}: {details}"
        )
    unseeded = [run for run in usable if run.seed is None]
    for run in unseeded:
        run.problem = "run.json has no seed"
    usable = [run for run in usable if run.seed is not None]
    missing += unseeded

    # settings that differ across the study name the systems; identical ones are left out
    all_settings = [run.settings() for run in usable]  # a run that crashed early may lack its settings
    keys = list(dict.fromkeys(key for settings in all_settings for key in settings))
    differing = [key for key in keys if len({repr(settings.get(key)) for settings in all_settings}) > 1]
    grouped: dict[tuple, list[Run]] = {}
    for run in usable:
        grouped.setdefault(_system_key(run.settings(), keys), []).append(run)

    systems = []
    for key, members in grouped.items():
        settings = dict(key)
        by_seed: dict[int, Run] = {}
        for run in sorted(members, key=lambda r: r.name):
            if run.seed in by_seed:
                notes.append(
                    f"duplicate: {run.name} repeats seed {run.seed} of {by_seed[run.seed].name}; "
                    f"using {by_seed[run.seed].name}"
                )
                continue
            by_seed[run.seed] = run
        systems.append(System(system_name(settings, differing), settings, by_seed))
    systems.sort(key=lambda system: _sort_key(system.settings, keys))
    _report_missing_runs(systems, missing, keys, differing, notes)
    example_ids = _match_examples(systems, notes, source_option)
    labels = _label_set(usable, notes)
    return Study(systems, example_ids, labels, split, datasets[0] if datasets else None, differing, notes, missing)


def _system_key(settings: dict, keys: list[str]) -> tuple:
    return tuple((key, settings.get(key)) for key in keys)


def system_name(settings: dict[str, object], differing: Sequence[str]) -> str:
    """A short readable name from the differing settings: variant first, then key=value."""
    parts = []
    if "variant" in differing or not differing:
        parts.append(str(settings.get("variant")))
    for key in differing:
        if key != "variant" and settings.get(key) is not None:
            parts.append(f"{SETTING_ALIASES.get(key, key)}={_format_setting(settings[key])}")
    return " ".join(parts) or str(settings.get("variant"))


def _format_setting(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _sort_key(settings: dict, keys: list[str]) -> tuple:
    key = []
    for name in keys:
        value = settings.get(name)
        if value is None:
            key.append((2, 0.0, ""))
        elif isinstance(value, int | float):
            key.append((0, float(value), ""))
        else:
            key.append((1, 0.0, str(value)))
    return tuple(key)


def _report_missing_runs(
    systems: list[System], missing: list[Run], keys: list[str], differing: list[str], notes: list[str]
) -> None:
    for run in missing:
        settings = run.settings() if run.record else {}
        label = system_name(settings, differing) if settings else "?"
        notes.append(f"missing: {run.name} ({label}, seed {run.seed}): {run.problem}")
    all_seeds = sorted({seed for system in systems for seed in system.runs})
    for system in systems:
        absent = [seed for seed in all_seeds if seed not in system.runs]
        if absent:
            notes.append(
                f"seeds: {system.name} has no usable run for seed(s) {', '.join(map(str, absent))}; "
                "its comparisons use the seeds it shares with the baseline"
            )


def _match_examples(systems: list[System], notes: list[str], source_option: str) -> list[str]:
    runs = [run for system in systems for run in system.runs.values()]
    order = list(runs[0].predictions.index)
    common = set(order)
    for run in runs[1:]:
        common &= set(run.predictions.index)
    if not common:
        raise InputError(source_option, "the runs share no example id: are they on the same dataset and split?")
    left_out = set().union(*(set(run.predictions.index) for run in runs)) - common
    if left_out:
        notes.append(
            f"examples: {len(left_out)} example id(s) are not in every run and were left out "
            f"(e.g. {', '.join(map(repr, sorted(left_out)[:3]))}); analysed on the {len(common)} common ids"
        )
        for run in runs:
            lacking = len(left_out) - len(set(run.predictions.index) & left_out)
            if lacking:
                notes.append(f"examples: {run.name} lacks {lacking} of them")
    example_ids = [example for example in order if example in common]
    reference = runs[0].predictions.loc[example_ids, "gold_label"].to_numpy()
    for run in runs[1:]:
        if run.settings().get("rationale_source") != runs[0].settings().get("rationale_source"):
            continue
        disagree = int((run.predictions.loc[example_ids, "gold_label"].to_numpy() != reference).sum())
        if disagree:
            notes.append(f"gold labels: {run.name} disagrees with {runs[0].name} on {disagree} example(s)")
    return example_ids


def _label_set(runs: list[Run], notes: list[str]) -> list[str]:
    label_sets = {tuple(str(label).strip().lower() for label in run.record.get("labels") or []) for run in runs}
    label_sets.discard(())
    if len(label_sets) > 1:
        notes.append(f"labels: runs declare different label sets {sorted(label_sets)}; using their union")
    labels = list(dict.fromkeys(label for label_set in sorted(label_sets) for label in label_set))
    if not labels:  # no label set recorded: the gold labels seen
        labels = sorted(set().union(*(set(run.predictions["gold_label"]) for run in runs)))
    return labels
