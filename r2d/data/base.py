"""What every data source shares: `Example`, `Dataset`, `DataError`, label normalisation, checks and splits."""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
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
    warnings: list[str] = field(default_factory=list)  # one line each, shown before a training starts

    def split(self, name: str) -> list[Example]:
        if name not in ("train", "dev", "test"):
            raise ValueError(f"unknown split {name!r}: expected train, dev or test")
        return getattr(self, name)

    def summary(self) -> dict:
        every = self.train + self.dev + self.test
        return {
            "dataset": self.name,
            "labels": self.labels,
            # most frequent first: a label seen once (a typo?) stands at the end
            "label_counts": dict(Counter(e.label for e in every).most_common()),
            "warnings": self.warnings,
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


def check_examples(examples: Sequence[Example], source: str) -> None:
    """The checks every loader shares: non-empty, unique ids, non-empty fields (labels: `check_labels`)."""
    if not examples:
        raise DataError(f"{source}: no examples (empty file?)")
    seen: set[str] = set()
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


def label_error(where: str, label: str, declared: Sequence[str], origin: str) -> DataError:
    """`FILE:LINE: label 'yse' is not one of yes, no, maybe (data.labels)`: where, what, and who declared the set."""
    return DataError(f"{where}: label {label!r} is not one of {', '.join(declared)} ({origin})")


def check_labels(examples: Sequence[Example], declared: Sequence[str], origin: str,
                 where: Callable[[Example], str]) -> None:
    """Every example's label is in the declared set; else `label_error` at the first that is not.
    `where` locates an example (FILE:LINE where the source has lines); it is called only on a bad one."""
    allowed = set(declared)
    for ex in examples:
        if ex.label not in allowed:
            raise label_error(where(ex), ex.label, declared, origin)


def line_of(text: str, *patterns: str) -> int | None:
    """The line (1-based) of the last of `patterns` (regular expressions), each searched after the one
    before; None if one is not found. For JSON files, which give no line per record when parsed."""
    pos, start = 0, 0
    for pattern in patterns:
        match = re.compile(pattern).search(text, pos)
        if match is None:
            return None
        start, pos = match.start(), match.end()
    return text.count("\n", 0, start) + 1


def rare_labels_warning(examples: Sequence[Example], source: str, lines: dict[str, int]) -> str | None:
    """With no declared label set: the labels seen in fewer than max(2, 1% of) the rows, as one line
    (a one-off typo trains a model with an extra class, silently), or None. `lines`: id -> line."""
    counts = Counter(ex.label for ex in examples)
    floor = max(2.0, 0.01 * len(examples))
    rare = sorted((label for label, n in counts.items() if n < floor), key=lambda label: (counts[label], label))
    if not rare:
        return None
    first = {}
    for ex in examples:
        first.setdefault(ex.label, lines.get(ex.id))
    seen = ", ".join(f"{label!r} ({counts[label]} of {len(examples)} rows"
                     + (f", first on line {first[label]})" if first[label] else ")") for label in rare)
    return (f"{source}: rare label{'s' if len(rare) > 1 else ''} {seen}: a typo? Declare the label set "
            "(data.labels) to make any other label an error")


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
