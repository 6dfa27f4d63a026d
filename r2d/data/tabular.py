"""Any JSONL or CSV file with `question`, `label`, `rationale` (optional `id`, `source`, `split`).

This is the authors' processed format. A `split` column (train/dev/test) is honoured when present;
otherwise test and dev are carved stratified and seeded. The label set is `data.labels` if declared
(a row with another label is an error at its line), else the labels seen: then labels seen in very
few rows are reported (`Dataset.warnings`), as a one-off typo would otherwise add a class silently.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from r2d.config import DataConfig
from r2d.data.base import (
    DataError,
    Dataset,
    Example,
    check_examples,
    label_error,
    label_set,
    normalise_label,
    rare_labels_warning,
    split_three_ways,
)
from r2d.textfile import read_text_file

REQUIRED = ("question", "label", "rationale")


def _rows_jsonl(path: Path, text: str) -> list[tuple[int, dict]]:
    rows = []
    for lineno, line in enumerate(text.split("\n"), 1):  # not splitlines: JSON strings may hold U+2028
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: line {lineno}: invalid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}: line {lineno}: expected a JSON object")
        rows.append((lineno, row))
    return rows


def _rows_csv(path: Path, text: str) -> list[tuple[int, dict]]:
    """Rows as dicts with their line (a quoted field may span lines: the line the row ends on). A
    header naming a column twice, or a row with more fields than the header, is an error."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = []
    try:
        header = reader.fieldnames or []
        twice = sorted({name for name in header if header.count(name) > 1})
        if twice:
            raise DataError(f"{path}: line 1: header names column {twice[0]!r} twice")
        missing = [key for key in REQUIRED if key not in header]
        if header and missing:
            raise DataError(f"{path}: line 1: the header has no {missing[0]!r} column "
                            f"(expected {', '.join(REQUIRED)}; optional id, source, split)")
        for row in reader:
            if None in row:  # DictReader's restkey: the fields past the header's
                raise DataError(f"{path}: line {reader.line_num}: {len(header) + len(row[None])} fields, "
                                f"the header has {len(header)}")
            rows.append((reader.line_num, row))
    except csv.Error as err:
        raise DataError(f"{path}: line {reader.line_num}: invalid CSV ({err})") from None
    return rows


def _check_fields(path: Path, lineno: int, row: dict) -> None:
    for key in REQUIRED:
        value = row.get(key)
        if value is None or str(value).strip() == "":
            raise DataError(f"{path}: line {lineno}: {'missing' if value is None else 'empty'} field {key!r}")
        if isinstance(value, (dict, list)):
            raise DataError(f"{path}: line {lineno}: field {key!r}: expected text, got a JSON "
                            f"{'object' if isinstance(value, dict) else 'array'}")


def read_examples(path: Path, kind: str, labels: list[str] | None = None,
                  ) -> tuple[list[Example], dict[str, str], dict[str, int]]:
    """Returns examples, {id: split} for rows that name their split, and {id: line}. With `labels`
    (data.labels), a row whose label is not one of them is an error at its line."""
    text = read_text_file(path, DataError)
    rows = _rows_jsonl(path, text) if kind == "jsonl" else _rows_csv(path, text)
    examples, splits, lines = [], {}, {}
    for lineno, row in rows:
        _check_fields(path, lineno, row)
        ex_id = str(row.get("id") or f"line{lineno}")
        label = normalise_label(row["label"])
        if labels is not None and label not in labels:
            raise label_error(f"{path}:{lineno}", label, labels, "data.labels")
        examples.append(
            Example(
                id=ex_id,
                input=str(row["question"]),
                label=label,
                rationale=str(row["rationale"]).strip(),
                rationale_source=str(row.get("source") or "default"),
            )
        )
        lines.setdefault(ex_id, lineno)
        if row.get("split"):
            split = str(row["split"]).strip().lower()
            if split not in ("train", "dev", "test"):
                raise DataError(f"{path}: line {lineno}: split {split!r}: expected train, dev or test")
            splits[ex_id] = split
    check_examples(examples, str(path))
    return examples, splits, lines


def load(cfg: DataConfig) -> Dataset:
    if not cfg.path:
        raise DataError(f"data.path: the {cfg.dataset} dataset needs a file")
    examples, splits, lines = read_examples(Path(cfg.path), cfg.dataset, cfg.labels)
    sources = sorted({e.rationale_source for e in examples})
    if cfg.rationale_source != "default" or len(sources) > 1:
        if cfg.rationale_source not in sources:
            raise DataError(f"data.rationale_source: {cfg.rationale_source!r} not in the file's sources {sources}")
        examples = [e for e in examples if e.rationale_source == cfg.rationale_source]
    # sorted either way: declaring the labels a file has changes nothing downstream (tokenizer, scorer)
    labels = sorted(cfg.labels) if cfg.labels is not None else label_set(examples)
    rare = rare_labels_warning(examples, cfg.path, lines) if cfg.labels is None else None
    warnings = [rare] if rare else []
    if splits:
        by_split = {s: [e for e in examples if splits.get(e.id) == s] for s in ("train", "dev", "test")}
        missing = [e.id for e in examples if e.id not in splits]
        if missing:
            raise DataError(f"{cfg.path}: id {missing[0]}: no split, while other rows name theirs")
        return Dataset(cfg.dataset, labels, by_split["train"], by_split["dev"], by_split["test"], sources, warnings)
    train, dev, test = split_three_ways(examples, cfg)
    return Dataset(cfg.dataset, labels, train, dev, test, sources, warnings)
