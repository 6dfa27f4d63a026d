"""Datasets: one registry that turns `config.data` into examples and train / dev / test splits.

Every source yields `Example(id, input, label, rationale, rationale_source)`; labels are normalised
(strip, lower case). Bad data raises `DataError` with one line naming the file, line or id. Each
built-in dataset declares its label set (BUILT_IN_LABELS); a JSONL/CSV file's is `data.labels` if
set, and a label outside a declared set is an error at its row.
The shared types and checks live in r2d/data/base.py; one module per source.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from r2d.config import DataConfig
from r2d.data import bioasq, pubmedqa, tabular, triage
from r2d.data.base import DataError, Dataset, Example, normalise_label

__all__ = ["DataError", "Dataset", "Example", "check_dataset", "load_dataset", "normalise_label"]

LOADERS: dict[str, Callable[[DataConfig], Dataset]] = {
    "pubmedqa": pubmedqa.load,
    "bioasq": bioasq.load,
    "jsonl": tabular.load,
    "csv": tabular.load,
    "triage": triage.load,
}
# The built-in datasets' declared label sets (their loaders check every row against them).
BUILT_IN_LABELS: dict[str, list[str]] = {
    "pubmedqa": pubmedqa.LABELS,
    "bioasq": bioasq.LABELS,
    "triage": triage.DISPOSITIONS,
}


def _cap(rows: list[Example], n: int | None) -> list[Example]:
    return rows if n is None else rows[:n]


def load_dataset(cfg: DataConfig) -> Dataset:
    """The one entry point: a data config -> a Dataset with its splits (capped as configured)."""
    if cfg.dataset == "triage" and cfg.path:
        raise DataError(f"data.path: {cfg.path}: the triage data is generated (synthetic) and reads no file; "
                        "set data.dataset to jsonl or csv to read it")
    built_in = BUILT_IN_LABELS.get(cfg.dataset)
    if cfg.labels is not None and built_in is not None and set(cfg.labels) != set(built_in):
        # the built-in loaders check against their own set: a different one here would be ignored
        raise DataError(f"data.labels: {', '.join(cfg.labels)}: the {cfg.dataset} data's labels are "
                        f"{', '.join(built_in)}; leave data.labels unset")
    ds = LOADERS[cfg.dataset](cfg)
    if cfg.rationale_source not in ("default", *ds.rationale_sources):
        raise DataError(f"data.rationale_source: {cfg.rationale_source!r}: the {cfg.dataset} data has "
                        f"{ds.rationale_sources} only")
    ds.train = _cap(ds.train, cfg.max_train_examples)
    ds.dev = _cap(ds.dev, cfg.max_eval_examples)
    ds.test = _cap(ds.test, cfg.max_eval_examples)
    return ds


def check_dataset(cfg: DataConfig, needed: Sequence[str] = ("train", "dev")) -> list[str]:
    """Load the data once as a check, before a training creates anything: DataError if it is bad or a
    `needed` split is empty (training needs train and dev; evaluation its splits). Returns the data's
    warnings (labels seen in very few rows), to show before the training starts. The hub copy of
    PubMedQA (no local directory) is not fetched here: that needs a network, and the loader reports it."""
    if cfg.dataset == "pubmedqa" and pubmedqa.local_dir(cfg) is None:
        return []
    ds = load_dataset(cfg)
    for split in needed:
        if not ds.split(split):
            raise DataError(f"{cfg.path or cfg.dataset}: the {split} split is empty "
                            f"({len(ds.train)} train, {len(ds.dev)} dev, {len(ds.test)} test examples)")
    return ds.warnings
