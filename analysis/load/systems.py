"""Grouping runs into systems and matching them by seed and example id: `match_systems(runs) -> MatchedSystems`.

A *system* is exactly one configuration: every resolved setting that can change a result, minus the
seed, fingerprinted as run.json's `system_id` (r2d/train/record.py; `NOT_IDENTITY` there lists what is left
out and why). Its *runs* differ only by training seed. Systems are named by the settings that differ
across the study's systems (`analysis.load.naming`) and matched by seed and example id. Run records older
than `system_id` are grouped by their `system` dict, as before, with a note saying so. Two runs of one
system on one seed: the most recent is kept (see `pick_one_per_seed`). Anything that does not match (a
failed or missing seed, a duplicate, an example missing from a run, disagreeing gold labels, an
unhealthy run) is written to `MatchedSystems.notes`: the report prints it, nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from analysis.errors import InputError
from analysis.load import naming
from analysis.load.duplicates import DUPLICATE_RULE, pick_one_per_seed
from analysis.load.health import describe
from analysis.load.runs import Run, unreadable_runs
from analysis.stats.sufficient import macro_f1_classes

# Settings that define *strata*: systems are compared with the baseline of their own stratum.
__all__ = ["DUPLICATE_RULE", "MatchedSystems", "System", "match_systems", "pick_one_per_seed"]

STRATUM_SETTINGS = ("rationale_source",)
SETTING_ALIASES = {"rationale_source": "source"}


@dataclass
class System:
    """Runs of one configuration, by seed. `name` shows only the settings that differ across the study's systems.

    `settings` are the short settings (variant, schedule shape..., rationale_source, and each naming
    setting by its short key); `identity` the flat settings `system_id` fingerprints (empty for old runs).
    """

    name: str
    settings: dict[str, object]
    runs: dict[int, Run]
    system_id: str | None = None
    identity: dict[str, object] = field(default_factory=dict)
    unreadable_seeds: list[int] = field(default_factory=list)  # seeds lost to an unreadable predictions file

    @property
    def seeds(self) -> list[int]:
        """The seeds this system has a usable run for, in order."""
        return sorted(self.runs)

    @property
    def stratum(self) -> tuple:
        """The settings that pick its baseline: `(("rationale_source", value),)`."""
        return tuple((key, self.settings.get(key)) for key in STRATUM_SETTINGS)

    @property
    def schedule(self) -> dict:
        """The schedule of the system's runs (for plots: shape and transition rate)."""
        for run in self.runs.values():
            return run.record.get("schedule") or {}
        return {}

    def setting(self, key: str) -> object:
        """A setting by short or dotted key: the short settings, the identity, the runs' schedule or record."""
        if self.settings.get(key) is not None:
            return self.settings[key]
        matches = [name for name in self.identity if name == key or name.endswith("." + key)]
        if len(matches) == 1:
            return self.identity[matches[0]]
        if key in self.schedule:
            return self.schedule[key]
        for run in self.runs.values():
            return run.record.get(key)
        return None

    def unhealthy(self, seeds: Sequence[int] | None = None) -> dict[int, list[str]]:
        """Seed -> unhealthy flags, for the runs (on `seeds`, default all) that have some."""
        chosen = self.seeds if seeds is None else seeds
        return {seed: flags for seed in chosen if (flags := self.runs[seed].unhealthy)}


@dataclass
class MatchedSystems:
    """Systems matched by seed and example id, ready for `analysis.report`.

    Every run's predictions are read on the same `example_ids` (the ids common to all runs, in one
    order), so per-example arrays line up across systems and seeds. `differing` lists the settings
    that name the systems; `classes` the classes macro-F1 is taken over (the label set, then any other
    gold or predicted value); `notes` every mismatch; `missing_runs` the runs that could not be used.
    """

    systems: list[System]
    example_ids: list[str]
    labels: list[str]
    split: str
    dataset: str | None
    differing: list[str]
    notes: list[str]
    missing_runs: list[Run]
    classes: list[str] = field(default_factory=list)
    by_system_id: bool = False  # grouped by run.json's system_id (False: older runs, by their `system` dict)
    unreadable: list[Run] = field(default_factory=list)  # skipped (skip_unreadable): predictions file unreadable
    _frames: dict[int, pd.DataFrame] = field(default_factory=dict, repr=False)

    def system(self, name: str) -> System:
        """The system called `name`."""
        return next(system for system in self.systems if system.name == name)

    def frame(self, system: System, seed: int) -> pd.DataFrame:
        """The run's predictions restricted to the matched examples, in one order for every run (computed once)."""
        run = system.runs[seed]
        if id(run) not in self._frames:
            self._frames[id(run)] = run.predictions.loc[self.example_ids]
        return self._frames[id(run)]


def match_systems(
    runs: Sequence[Run],
    *,
    split: str = "test",
    dataset: str | None = None,
    source_option: str = "--runs",
    exclude_unhealthy: bool = False,
    skip_unreadable: bool = False,
) -> MatchedSystems:
    """Group runs into systems, match them by seed and example id, and record every mismatch in `notes`.

    With `exclude_unhealthy`, runs with an unhealthy flag are left out before grouping (and noted). A run
    whose predictions file cannot be read is an `InputError`, or with `skip_unreadable` left out (and noted).
    """
    notes: list[str] = []
    runs, dataset_name = _one_dataset(runs, dataset)
    unreadable = unreadable_runs(runs, source_option, skip_unreadable)
    usable, missing = _usable_runs(runs, split, source_option)
    excluded: list[Run] = []
    if exclude_unhealthy:
        usable, excluded = _exclude_unhealthy(usable, source_option)
    by_id = all(run.system_id for run in usable)
    if not by_id:
        lacking = sum(1 for run in usable if not run.system_id)
        notes.append(
            f"systems: {lacking} of {len(usable)} runs have no system_id (run.json from an older r2d); "
            "runs are grouped by their `system` settings as before, which leave out settings a variant does "
            "not fix (e.g. constant_mix's cap, alpha): runs differing only there would share a row"
        )
    namer = _Namer(usable, by_id)
    systems = _group_into_systems(usable, namer, notes)
    _report_missing_runs(systems, missing, namer, notes)
    notes += _health_notes(systems, excluded, namer, len(usable))
    example_ids = _match_examples(systems, notes, source_option)
    labels = _label_set(usable, notes)
    frames = [run.predictions.loc[example_ids] for system in systems for run in system.runs.values()]
    classes = macro_f1_classes(
        [value for frame in frames for value in frame["gold_label"]],
        [value for frame in frames for value in frame["pred_label"]],
        labels,
    )
    matched = MatchedSystems(
        systems, example_ids, labels, split, dataset_name, namer.keys, notes, missing + excluded, classes, by_id
    )
    matched.unreadable = unreadable
    return matched


def _one_dataset(runs: Sequence[Run], dataset: str | None) -> tuple[Sequence[Run], str | None]:
    """The runs of `dataset` (all runs if None), refusing runs that span several datasets."""
    if dataset is not None:
        present = sorted({str(run.record.get("dataset")) for run in runs})
        runs = [run for run in runs if run.record.get("dataset") == dataset]
        if not runs:
            raise InputError("--dataset", f"no run on dataset {dataset!r}; expected one of {', '.join(present)}")
    datasets = sorted({str(run.record.get("dataset")) for run in runs if run.record.get("dataset") is not None})
    if len(datasets) > 1:
        raise InputError("--dataset", f"runs span datasets {', '.join(datasets)}; choose one with --dataset")
    return runs, datasets[0] if datasets else None


def _usable_runs(runs: Sequence[Run], split: str, source_option: str) -> tuple[list[Run], list[Run]]:
    """(usable runs, missing runs): a run is usable when finished, with predictions and a seed."""
    usable = [run for run in runs if run.usable]
    missing = [run for run in runs if not run.usable]
    if not usable:
        if missing and all((run.problem or "").startswith("no predictions for split") for run in missing):
            # Every run finished but lacks this split: the split is what is wrong, not the runs.
            have = sorted({s for run in missing for s in run.record.get("splits") or []})
            if split not in have:  # a recorded split whose file is gone is the run's fault (below), not --split's
                raise InputError("--split", f"no run has split {split!r}; the runs have: {', '.join(have) or 'none'}")
        details = "; ".join(f"{run.name}: {run.problem}" for run in missing[:5])
        raise InputError(
            source_option, f"no usable run (finished, with {split} predictions) among {len(runs)}: {details}"
        )
    unseeded = [run for run in usable if run.seed is None]
    for run in unseeded:
        run.problem = "run.json has no seed"
    return [run for run in usable if run.seed is not None], missing + unseeded


def _exclude_unhealthy(runs: list[Run], source_option: str) -> tuple[list[Run], list[Run]]:
    """(healthy runs, unhealthy runs): `--exclude-unhealthy` leaves the latter out of the statistics."""
    excluded = [run for run in runs if run.unhealthy]
    kept = [run for run in runs if not run.unhealthy]
    if not kept:
        raise InputError(
            "--exclude-unhealthy",
            f"all {len(runs)} usable runs are unhealthy ({describe(sorted({f for r in runs for f in r.unhealthy}))}); "
            "expected at least one healthy run (drop --exclude-unhealthy to see them)",
        )
    return kept, excluded


class _Namer:
    """Identity key and display name of a run's system: by `system_id` and its flat settings, or the old `system`."""

    def __init__(self, runs: list[Run], by_id: bool) -> None:
        self.by_id = by_id
        per_system = list({self.key(run): self._settings(run) for run in runs}.values())
        self.keys = naming.display_keys(per_system)
        all_keys = list(dict.fromkeys(key for settings in per_system for key in settings))
        self.short = naming.short_keys(self.keys, all_keys) if by_id else dict(SETTING_ALIASES)

    def _settings(self, run: Run) -> dict[str, object]:
        return run.identity if self.by_id and run.identity else run.settings()

    def key(self, run: Run) -> tuple:
        """What makes two runs one system: the system_id, or (older runs) every `system` setting."""
        if self.by_id:
            return (run.system_id,)
        return tuple(sorted((str(key), repr(value)) for key, value in run.settings().items()))

    def name(self, run: Run) -> str:
        """The display name of the run's system."""
        if not run.record:
            return "?"
        settings = self._settings(run)
        keys = self.keys if self.by_id and run.identity else [key for key in self.keys if key in settings]
        return naming.name_from(settings, keys, self.short)

    def short_settings(self, run: Run) -> dict[str, object]:
        """The run's short settings, plus each naming setting under its short key (cap, alpha...)."""
        settings = dict(run.settings())
        if self.by_id:
            settings.update({self.short[key]: run.identity.get(key) for key in self.keys if key != "variant"})
        return settings


def _group_into_systems(runs: list[Run], namer: _Namer, notes: list[str]) -> list[System]:
    """One system per identity, its runs by seed (two runs on one seed: `pick_one_per_seed`)."""
    grouped: dict[tuple, list[Run]] = {}
    for run in runs:
        grouped.setdefault(namer.key(run), []).append(run)
    systems = []
    for members in grouped.values():
        first = members[0]
        name = namer.name(first)
        by_seed = pick_one_per_seed(members, name, notes)
        systems.append(System(name, namer.short_settings(first), by_seed, first.system_id, first.identity))
    _distinct_names(systems)
    systems.sort(key=lambda system: _sort_key(system.identity or system.settings, namer.keys))
    return systems


def _distinct_names(systems: list[System]) -> None:
    """Two systems whose names coincide (settings equal once formatted) get their system_id appended."""
    counts: dict[str, int] = {}
    for system in systems:
        counts[system.name] = counts.get(system.name, 0) + 1
    for system in systems:
        if counts[system.name] > 1:
            system.name = f"{system.name} [{system.system_id or id(system)}]"


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


def _report_missing_runs(systems: list[System], missing: list[Run], namer: _Namer, notes: list[str]) -> None:
    """Note each run that could not be used, and each system lacking a seed that others have."""
    by_key = {namer.key(next(iter(system.runs.values()))): system for system in systems}
    for run in missing:
        system = by_key.get(namer.key(run)) if run.record else None
        label = system.name if system else namer.name(run)
        if system is not None and run.seed in system.runs:
            notes.append(
                f"replaced: {run.name} ({label}, seed {run.seed}): {run.problem}; "
                f"seed {run.seed} uses {system.runs[run.seed].name}"
            )
        else:
            notes.append(f"missing: {run.name} ({label}, seed {run.seed}): {run.problem}")
            if system is not None and run.unreadable and run.seed is not None:
                system.unreadable_seeds.append(run.seed)  # the row says how many seeds it lost
    all_seeds = sorted({seed for system in systems for seed in system.runs})
    for system in systems:
        absent = [seed for seed in all_seeds if seed not in system.runs]
        if absent:
            notes.append(f"seeds: {system.name} has no usable run for seed(s) {', '.join(map(str, absent))}")


def _health_notes(systems: list[System], excluded: list[Run], namer: _Namer, n_usable: int) -> list[str]:
    """Each kept run's unhealthy flags, each excluded run, and how many runs have no health record."""
    notes = []
    unknown = 0
    for system in systems:
        for seed, run in sorted(system.runs.items()):
            flags = run.unhealthy
            if flags is None:
                unknown += 1
            elif flags:
                notes.append(f"health: {run.name} ({system.name}, seed {seed}): {describe(flags)}")
    for run in excluded:
        notes.append(
            f"excluded (--exclude-unhealthy): {run.name} ({namer.name(run)}, seed {run.seed}): "
            f"{describe(run.unhealthy or [])}; left out of every statistic"
        )
    if unknown:
        notes.append(
            f"health: {unknown} of {n_usable} runs have no health flags (run.json from an older r2d); not checked"
        )
    return notes


def _match_examples(systems: list[System], notes: list[str], source_option: str) -> list[str]:
    runs = [run for system in systems for run in system.runs.values()]
    order = list(runs[0].predictions.index)
    common = set(order)
    for run in runs[1:]:
        common &= set(run.predictions.index)
    if not common:
        examples = ", ".join(f"{run.name} has {run.predictions.index[0]!r}" for run in runs[:2] if len(run.predictions))
        raise InputError(
            source_option,
            f"the runs share no example id (e.g. {examples}); expected runs on the same dataset and split",
        )
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
