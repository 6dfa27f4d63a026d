"""Any JSONL or CSV file with `question`, `label`, `rationale` (optional `id`, `source`, `split`).

This is the authors' processed format. A `split` column (train/dev/test) is honoured when present;
otherwise test and dev are carved stratified and seeded. The label set is the labels seen.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from r2d.config import DataConfig
from r2d.data.base import DataError, Dataset, Example, check_examples, label_set, normalise_label, split_three_ways

REQUIRED = ("question", "label", "rationale")


def _rows_jsonl(path: Path) -> list[tuple[int, dict]]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
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


def _rows_csv(path: Path) -> list[tuple[int, dict]]:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        return [(n, row) for n, row in enumerate(reader, 2)]  # line 1 is the header


def read_examples(path: Path, kind: str) -> tuple[list[Example], dict[str, str]]:
    """Returns examples and {id: split} for rows that name their split."""
    try:
        rows = _rows_jsonl(path) if kind == "jsonl" else _rows_csv(path)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    examples, splits = [], {}
    for lineno, row in rows:
        for key in REQUIRED:
            if row.get(key) is None or str(row[key]).strip() == "":
                what = "missing field" if row.get(key) is None else "empty field"
                raise DataError(f"{path}: line {lineno}: {what} {key!r}")
        ex_id = str(row.get("id") or f"line{lineno}")
        examples.append(
            Example(
                id=ex_id,
                input=str(row["question"]),
                label=normalise_label(row["label"]),
                rationale=str(row["rationale"]).strip(),
                rationale_source=str(row.get("source") or "default"),
            )
        )
        if row.get("split"):
            split = str(row["split"]).strip().lower()
            if split not in ("train", "dev", "test"):
                raise DataError(f"{path}: line {lineno}: split {split!r}: expected train, dev or test")
            splits[ex_id] = split
    check_examples(examples, str(path))
    return examples, splits


def load(cfg: DataConfig) -> Dataset:
    if not cfg.path:
        raise DataError(f"data.path: the {cfg.dataset} dataset needs a file")
    examples, splits = read_examples(Path(cfg.path), cfg.dataset)
    sources = sorted({e.rationale_source for e in examples})
    if cfg.rationale_source != "default" or len(sources) > 1:
        if cfg.rationale_source not in sources:
            raise DataError(f"data.rationale_source: {cfg.rationale_source!r} not in the file's sources {sources}")
        examples = [e for e in examples if e.rationale_source == cfg.rationale_source]
    labels = label_set(examples)
    if splits:
        by_split = {s: [e for e in examples if splits.get(e.id) == s] for s in ("train", "dev", "test")}
        missing = [e.id for e in examples if e.id not in splits]
        if missing:
            raise DataError(f"{cfg.path}: id {missing[0]}: no split, while other rows name theirs")
        return Dataset(cfg.dataset, labels, by_split["train"], by_split["dev"], by_split["test"], sources)
    train, dev, test = split_three_ways(examples, cfg)
    return Dataset(cfg.dataset, labels, train, dev, test, sources)
