"""Loading runs from local run directories: `run.json` plus `predictions/{split}.csv`, as `r2d.schema` defines them.

A run that cannot be used (failed, no predictions for the split, an unreadable file) is still
returned, with its `problem`, so that the report can say what is missing. Runs logged to MLflow
are read by `analysis.load.mlflow_runs`; `analysis.load.systems` groups runs into systems.
Only `r2d.schema` is imported from `r2d` (it imports no torch).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.errors import InputError
from analysis.load.health import unhealthy_flags
from r2d.schema import PREDICTION_COLUMNS, RUN_FILE, predictions_path

TEXT_COLUMNS = ("id", "gold_label", "pred_label", "gold_rationale", "pred_rationale")
NUMERIC_COLUMNS = tuple(column for column in PREDICTION_COLUMNS if column not in TEXT_COLUMNS)
REQUIRED_COLUMNS = ("id", "gold_label", "pred_label", "correct")
_NA_STRINGS = ["", "nan", "NaN", "NA", "N/A", "null", "None"]

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


def read_predictions(path: str | Path) -> pd.DataFrame:
    """Read a predictions CSV: ids and labels as text (never NaN), metric columns as floats (empty = NaN).

    The file must be UTF-8 and whole: every row as many fields as the header, the last row ended by its
    line end (r2d's writer ends every row, so a file that stops without one was cut). Problems raise
    `ValueError` naming the file (and the line).
    """
    text = _read_text(Path(path))
    _check_rows(path, text)
    frame = pd.read_csv(
        io.StringIO(text),
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


def _read_text(path: Path) -> str:
    """The file as UTF-8 text; `ValueError` naming the file and where its first bad byte is."""
    try:
        return _decode(path.read_bytes())
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ValueError(f"not UTF-8 text ({error.reason} at byte {error.start}, line {line})") from None


def _check_rows(path: str | Path, text: str) -> None:
    """Refuse a CSV that pandas would read without a word: short rows (filled with NaN) and a cut last row."""
    if not text.strip():
        raise ValueError(f"{path}: empty file; expected a header row ({', '.join(REQUIRED_COLUMNS)}, ...)")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
        for record in reader:
            if record and len(record) != len(header):
                raise ValueError(
                    f"{path}: line {reader.line_num}: {len(record)} fields, the header has {len(header)}"
                    + ("; the file ends mid-row (truncated?)" if not text.endswith("\n") else "")
                )
    except csv.Error as error:  # e.g. the file ends inside a quoted field
        raise ValueError(f"{path}: line {reader.line_num}: invalid CSV ({error}); truncated?") from None
    if not text.endswith("\n"):
        raise ValueError(
            f"{path}: line {reader.line_num}: the last row has no line end: the file was cut mid-row "
            "(truncated?); expected every row ended, as r2d writes them"
        )


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
    return attach_predictions(run, path / predictions_path(split), split)


def read_run_record(path: Path) -> dict:
    """A run.json as a dict; `ValueError` saying what is wrong with it (not UTF-8, invalid JSON, not an object)."""
    try:
        record = json.loads(_decode(path.read_bytes()))
    except json.JSONDecodeError as error:
        raise ValueError(
            f"invalid JSON at line {error.lineno} column {error.colno} ({error.msg}); "
            "expected the JSON object r2d writes"
        ) from None
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object (run_name, status, seed, ...), got a JSON {type(record).__name__}")
    return record


def attach_predictions(run: Run, predictions_file: Path, split: str, where: str | None = None) -> Run:
    """Read a finished run's predictions into `run.predictions`, or say in `run.problem` why they are missing.

    `where` names the file in messages when `predictions_file` is only a local copy (an MLflow artifact).
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
        run.predictions = read_predictions(predictions_file)
    except (OSError, ValueError) as error:
        run.problem = str(error) if where is None else f"{where}: {error}"
    return run


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
