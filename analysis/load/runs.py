"""Loading runs from local run directories: `run.json` plus `predictions/{split}.csv`, as `r2d.schema` defines them.

A run that cannot be used (failed, no predictions for the split, an unreadable file) is still
returned, with its `problem`, so that the report can say what is missing. Runs logged to MLflow
are read by `analysis.load.mlflow_runs`; `analysis.load.systems` groups runs into systems.
Only `r2d.schema` is imported from `r2d` (it imports no torch).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.errors import InputError
from analysis.load.health import unhealthy_flags
from analysis.load.predictions import decode_utf8, read_predictions
from r2d.schema import METRICS_FILE, RUN_FILE, predictions_path

__all__ = ["Run", "attach_predictions", "find_run_dirs", "load_run_dir", "load_run_dirs", "read_predictions"]

# Settings a system can be told apart by, when run.json has neither `settings` nor a `system` dict (older runs).
FALLBACK_SETTINGS = ("variant", "shape", "transition", "cap", "warmup", "steepness", "alpha")


@dataclass
class Run:
    """One training run: its run.json record and its predictions for the split being analysed."""

    name: str
    record: dict
    source: str  # a directory, or "mlflow:<run id>"
    predictions: pd.DataFrame | None = None
    problem: str | None = None  # why the run cannot be used (failed, no predictions...)
    unreadable: str | None = None  # its predictions file exists but cannot be read: the parser's words (file, line)
    timestamp: float | None = None  # when it ran (MLflow start time, else run.json's mtime): picks among duplicates

    @property
    def seed(self) -> int | None:
        """The training seed from run.json (None if it has none)."""
        seed = self.record.get("seed")
        return None if seed is None else int(seed)

    @property
    def usable(self) -> bool:
        """Whether the run can be analysed: no problem, and predictions loaded."""
        return self.problem is None and self.predictions is not None

    @property
    def system_id(self) -> str | None:
        """run.json's fingerprint of every setting that can change a result (None in older run.json files)."""
        value = self.record.get("system_id")
        return None if value in (None, "") else str(value)

    @property
    def identity(self) -> dict[str, object]:
        """The flat settings `system_id` fingerprints (`{"stage2.schedule.cap": 0.9, ...}`; empty in older runs)."""
        settings = self.record.get("settings")
        return {key: _hashable(value) for key, value in settings.items()} if isinstance(settings, dict) else {}

    @property
    def unhealthy(self) -> list[str] | None:
        """The run's unhealthy flags (`collapsed`, `still_improving`, ...); None when it has no health record."""
        return unhealthy_flags(self.record)

    def settings(self) -> dict[str, object]:
        """The short settings of this run's system (its `system` dict, plus the rationale source): plots, baselines."""
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


def load_run_dir(path: str | Path, split: str = "test") -> Run:
    """Load one run directory (run.json + predictions/{split}.csv); problems are recorded, not raised.

    A run whose run.json cannot be read is named by its directory's path: it has no run_name to go by.
    """
    path = Path(path)
    try:
        record = read_run_record(path / RUN_FILE)
    except (OSError, ValueError) as error:
        return Run(str(path), {}, str(path), problem=f"unreadable {RUN_FILE}: {error}")
    run = Run(str(record.get("run_name") or path.name), record, str(path), timestamp=(path / RUN_FILE).stat().st_mtime)
    return attach_predictions(run, path / predictions_path(split), split, expected_rows=_recorded_rows(path, split))


def _recorded_rows(path: Path, split: str) -> int | None:
    """The split's example count from metrics.json (`splits.<split>.n`), None when unrecorded or unreadable.

    Why: an unbalanced quote can merge rows into one well-formed record; only the count r2d wrote tells.
    """
    try:
        count = json.loads((path / METRICS_FILE).read_text(encoding="utf-8"))["splits"][split]["n"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return int(count) if isinstance(count, int | float) and not isinstance(count, bool) else None


def read_run_record(path: Path) -> dict:
    """A run.json as a dict; `ValueError` saying what is wrong with it (not UTF-8, invalid JSON, not an object)."""
    try:
        record = json.loads(decode_utf8(path.read_bytes()))
    except json.JSONDecodeError as error:
        raise ValueError(
            f"invalid JSON at line {error.lineno} column {error.colno} ({error.msg}); "
            "expected the JSON object r2d writes"
        ) from None
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object (run_name, status, seed, ...), got a JSON {type(record).__name__}")
    return record


def attach_predictions(
    run: Run, predictions_file: Path, split: str, where: str | None = None, expected_rows: int | None = None
) -> Run:
    """Read a finished run's predictions into `run.predictions`, or say in `run.problem` why they are missing.

    `where` names the file in messages when `predictions_file` is only a local copy (an MLflow artifact);
    `expected_rows` is the example count the run recorded. A file that exists but cannot be read also sets
    `run.unreadable`: a report stops on it unless told to skip it (`unreadable_runs`).
    """
    status = str(run.record.get("status", "FINISHED")).upper()
    if status != "FINISHED":
        error = run.record.get("error")
        run.problem = f"status {status}" + (f" ({str(error).splitlines()[0][:120]})" if error else "")
        return run
    if not predictions_file.is_file():
        run.problem = f"no predictions for split {split!r}: {where or predictions_file} not found"
        return run
    try:
        run.predictions = read_predictions(predictions_file, expected_rows)
    except (OSError, ValueError) as error:
        run.problem = run.unreadable = " ".join((str(error) if where is None else f"{where}: {error}").split())
    return run


def unreadable_runs(runs: Iterable[Run], option: str, skip: bool) -> list[Run]:
    """The runs whose predictions file cannot be read; an `InputError` naming the first one unless `skip`.

    Why an error: a report that quietly used fewer seeds would look complete (issue 25). FAILED runs and
    runs without the split are not unreadable: they are reported in the notes, as before.
    """
    found = [run for run in runs if run.unreadable]
    if found and not skip:
        more = f" (and {len(found) - 1} more unreadable run(s))" if len(found) > 1 else ""
        raise InputError(
            option,
            f"{found[0].unreadable}{more}; fix or remove the file, or pass --skip-unreadable to analyse without it",
        )
    return found


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories under `paths`: each path is a run directory or a folder holding some (recursively)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise InputError("--runs", f"{path} does not exist; expected run directories (with {RUN_FILE})")
        if (path / RUN_FILE).is_file():
            found.append(path)
        elif path.is_file():
            raise InputError(
                "--runs", f"{path} is a file; expected a run directory (with {RUN_FILE}) or a folder of them"
            )
        else:
            found.extend(sorted(p.parent for p in path.rglob(RUN_FILE) if p.is_file()))
    return list(dict.fromkeys(found))


def load_run_dirs(paths: Iterable[str | Path], split: str = "test") -> list[Run]:
    """Load every run directory found under `paths` (see `find_run_dirs`)."""
    directories = find_run_dirs(paths)
    if not directories:
        raise InputError("--runs", f"no run directory (with {RUN_FILE}) under {', '.join(map(str, paths))}")
    return [load_run_dir(directory, split) for directory in directories]
