"""Datasets: one registry that turns `config.data` into examples and train / dev / test splits.

Every source yields `Example(id, input, label, rationale, rationale_source)`; labels are normalised
(strip, lower case). Bad data raises `DataError` with one line naming the file, line or id.
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


def _cap(rows: list[Example], n: int | None) -> list[Example]:
    return rows if n is None else rows[:n]


def load_dataset(cfg: DataConfig) -> Dataset:
    """The one entry point: a data config -> a Dataset with its splits (capped as configured)."""
    if cfg.dataset == "triage" and cfg.path:
        raise DataError(f"data.path: {cfg.path}: the triage data is generated (synthetic) and reads no file; "
                        "set data.dataset to jsonl or csv to read it")
    ds = LOADERS[cfg.dataset](cfg)
    if cfg.rationale_source not in ("default", *ds.rationale_sources):
        raise DataError(f"data.rationale_source: {cfg.rationale_source!r}: the {cfg.dataset} data has "
                        f"{ds.rationale_sources} only")
    ds.train = _cap(ds.train, cfg.max_train_examples)
    ds.dev = _cap(ds.dev, cfg.max_eval_examples)
    ds.test = _cap(ds.test, cfg.max_eval_examples)
    return ds


def check_dataset(cfg: DataConfig, needed: Sequence[str] = ("train", "dev")) -> None:
    """Load the data once as a check, before a training creates anything: DataError if it is bad or a
    `needed` split is empty (training needs train and dev; evaluation its splits). The hub copy of
    PubMedQA (no local directory) is not fetched here: that needs a network, and the loader reports it."""
    if cfg.dataset == "pubmedqa" and pubmedqa.local_dir(cfg) is None:
        return
    ds = load_dataset(cfg)
    for split in needed:
        if not ds.split(split):
            raise DataError(f"{cfg.path or cfg.dataset}: the {split} split is empty "
                            f"({len(ds.train)} train, {len(ds.dev)} dev, {len(ds.test)} test examples)")
