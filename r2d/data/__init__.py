"""Datasets: one registry that turns `config.data` into examples and train / dev / test splits.

Every source yields `Example(id, input, label, rationale, rationale_source)`; labels are normalised
(strip, lower case). Bad data raises `DataError` with one line naming the file, line or id.
The shared types and checks live in r2d/data/base.py; one module per source.
"""

from __future__ import annotations

from collections.abc import Callable

from r2d.config import DataConfig
from r2d.data import bioasq, pubmedqa, tabular, triage
from r2d.data.base import DataError, Dataset, Example, normalise_label

__all__ = ["DataError", "Dataset", "Example", "load_dataset", "normalise_label"]

LOADERS: dict[str, Callable[[DataConfig], Dataset]] = {
    "pubmedqa": pubmedqa.load,
    "bioasq": bioasq.load,
    "jsonl": tabular.load,
    "csv": tabular.load,
    "triage": triage.load,
}


def _cap(rows: list[Example], n: int | None) -> list[Example]:
    return rows if n is None else rows[:n]


def load_dataset(cfg: DataConfig) -> Dataset:
    """The one entry point: a data config -> a Dataset with its splits (capped as configured)."""
    ds = LOADERS[cfg.dataset](cfg)
    ds.train = _cap(ds.train, cfg.max_train_examples)
    ds.dev = _cap(ds.dev, cfg.max_eval_examples)
    ds.test = _cap(ds.test, cfg.max_eval_examples)
    return ds
