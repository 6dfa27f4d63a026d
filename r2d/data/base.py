"""What every data source shares: `Example`, `Dataset`, `DataError`, label normalisation, checks and splits."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from r2d.config import DataConfig


class DataError(ValueError):
    """Bad input data; the message names the file (and line or id) and the problem."""


def normalise_label(label: object) -> str:
    return str(label).strip().lower()


@dataclass(frozen=True)
class Example:
    id: str
    input: str
    label: str
    rationale: str
    rationale_source: str = "default"


@dataclass
class Dataset:
    name: str
    labels: list[str]  # the closed label set, in a fixed order
    train: list[Example]
    dev: list[Example]
    test: list[Example]
    rationale_sources: list[str] = field(default_factory=lambda: ["default"])

    def split(self, name: str) -> list[Example]:
        if name not in ("train", "dev", "test"):
            raise ValueError(f"unknown split {name!r}: expected train, dev or test")
        return getattr(self, name)

    def summary(self) -> dict:
        return {
            "dataset": self.name,
            "labels": self.labels,
            "rationale_sources": self.rationale_sources,
            "splits": {
                name: {
                    "size": len(rows),
                    "labels": dict(sorted(Counter(e.label for e in rows).items())),
                    "rationale_source": sorted({e.rationale_source for e in rows}),
                }
                for name, rows in (("train", self.train), ("dev", self.dev), ("test", self.test))
            },
        }


def check_examples(examples: Sequence[Example], source: str, labels: Sequence[str] | None = None) -> None:
    """The checks every loader shares: non-empty, unique ids, non-empty fields, labels in the set."""
    if not examples:
        raise DataError(f"{source}: no examples (empty file?)")
    seen: set[str] = set()
    allowed = set(labels) if labels is not None else None
    for ex in examples:
        if ex.id in seen:
            raise DataError(f"{source}: id {ex.id}: duplicate id")
        seen.add(ex.id)
        if not ex.input.strip():
            raise DataError(f"{source}: id {ex.id}: empty input")
        if not ex.rationale.strip():
            raise DataError(f"{source}: id {ex.id}: empty rationale")
        if not ex.label:
            raise DataError(f"{source}: id {ex.id}: empty label")
        if allowed is not None and ex.label not in allowed:
            raise DataError(f"{source}: id {ex.id}: label {ex.label!r} not in the label set {sorted(allowed)}")


def stratified_split(
    examples: Sequence[Example], fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """Split off `fraction` of each label's examples (seeded); returns (rest, held_out), order kept."""
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        by_label.setdefault(ex.label, []).append(i)
    held: set[int] = set()
    for label in sorted(by_label):
        idx = by_label[label]
        rng.shuffle(idx)
        held.update(idx[: max(1, round(len(idx) * fraction))] if len(idx) > 1 else [])
    rest = [ex for i, ex in enumerate(examples) if i not in held]
    return rest, [ex for i, ex in enumerate(examples) if i in held]


def label_set(examples: Sequence[Example]) -> list[str]:
    return sorted({ex.label for ex in examples})


def split_three_ways(examples: list[Example], cfg: DataConfig) -> tuple[list, list, list]:
    """For sources without an official split: test, then dev, carved stratified and seeded."""
    rest, test = stratified_split(examples, cfg.test_fraction, cfg.split_seed)
    train, dev = stratified_split(rest, cfg.dev_fraction / (1 - cfg.test_fraction), cfg.split_seed + 1)
    return train, dev, test
