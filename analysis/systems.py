"""Grouping runs into systems and matching them by seed and example id: `match_systems(runs) -> MatchedSystems`.

A *system* is one configuration being compared (a variant, a schedule shape and rate, a rationale
source...); its *runs* differ only by training seed. Runs are grouped by the settings that identify
them (`run.json`'s `system` dict, plus the rationale source), named by the settings that differ
across the runs analysed, and matched by seed and example id. Anything that does not match (a
failed or missing seed, an example missing from a run, disagreeing gold labels) is written to
`MatchedSystems.notes`: the report prints it, nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from analysis.errors import InputError
from analysis.runs import Run

# Settings that define *strata*: systems are compared with the baseline of their own stratum.
STRATUM_SETTINGS = ("rationale_source",)
SETTING_ALIASES = {"rationale_source": "source"}


@dataclass
class System:
    """Runs of one configuration, by seed. `name` shows only the settings that differ across the runs analysed."""

    name: str
    settings: dict[str, object]
    runs: dict[int, Run]

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
        """A setting from the system dict, else from the runs' schedule or record."""
        if self.settings.get(key) is not None:
            return self.settings[key]
        if key in self.schedule:
            return self.schedule[key]
        for run in self.runs.values():
            return run.record.get(key)
        return None


@dataclass
class MatchedSystems:
    """Systems matched by seed and example id, ready for `analysis.report`.

    Every run's predictions are read on the same `example_ids` (the ids common to all runs, in one
    order), so per-example arrays line up across systems and seeds. `differing` lists the settings
    that name the systems; `notes` every mismatch; `missing_runs` the runs that could not be used.
    """

    systems: list[System]
    example_ids: list[str]
    labels: list[str]
    split: str
    dataset: str | None
    differing: list[str]
    notes: list[str]
    missing_runs: list[Run]

    def system(self, name: str) -> System:
        """The system called `name`."""
        return next(system for system in self.systems if system.name == name)

    def frame(self, system: System, seed: int) -> pd.DataFrame:
        """The run's predictions restricted to the matched examples, in one order for every run."""
        return system.runs[seed].predictions.loc[self.example_ids]


def match_systems(
    runs: Sequence[Run], *, split: str = "test", dataset: str | None = None, source_option: str = "--runs"
) -> MatchedSystems:
    """Group runs into systems, match them by seed and example id, and record every mismatch in `notes`."""
    notes: list[str] = []
    runs, dataset_name = _one_dataset(runs, dataset)
    usable, missing = _usable_runs(runs, split, source_option)
    # settings that differ across the runs name the systems; identical ones are left out
    all_settings = [run.settings() for run in usable]  # a run that crashed early may lack its settings
    keys = list(dict.fromkeys(key for settings in all_settings for key in settings))
    differing = [key for key in keys if len({repr(settings.get(key)) for settings in all_settings}) > 1]
    systems = _group_into_systems(usable, keys, differing, notes)
    _report_missing_runs(systems, missing, differing, notes)
    example_ids = _match_examples(systems, notes, source_option)
    labels = _label_set(usable, notes)
    return MatchedSystems(systems, example_ids, labels, split, dataset_name, differing, notes, missing)


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
        details = "; ".join(f"{run.name}: {run.problem}" for run in missing[:5])
        raise InputError(
            source_option, f"no usable run (finished, with {split} predictions) among {len(runs)}: {details}"
        )
    unseeded = [run for run in usable if run.seed is None]
    for run in unseeded:
        run.problem = "run.json has no seed"
    return [run for run in usable if run.seed is not None], missing + unseeded


def _group_into_systems(runs: list[Run], keys: list[str], differing: list[str], notes: list[str]) -> list[System]:
    """One system per distinct setting values, its runs by seed (a repeated seed is noted, the first kept)."""
    grouped: dict[tuple, list[Run]] = {}
    for run in runs:
        grouped.setdefault(_system_key(run.settings(), keys), []).append(run)
    systems = []
    for key, members in grouped.items():
        settings = dict(key)
        by_seed: dict[int, Run] = {}
        for run in sorted(members, key=lambda r: r.name):
            if run.seed in by_seed:
                notes.append(
                    f"duplicate: {run.name} repeats seed {run.seed} of {by_seed[run.seed].name}; "
                    f"using {by_seed[run.seed].name}"
                )
                continue
            by_seed[run.seed] = run
        systems.append(System(system_name(settings, differing), settings, by_seed))
    systems.sort(key=lambda system: _sort_key(system.settings, keys))
    return systems


def _system_key(settings: dict, keys: list[str]) -> tuple:
    return tuple((key, settings.get(key)) for key in keys)


def system_name(settings: dict[str, object], differing: Sequence[str]) -> str:
    """A short readable name from the differing settings: variant first, then key=value."""
    parts = []
    if "variant" in differing or not differing:
        parts.append(str(settings.get("variant")))
    for key in differing:
        if key != "variant" and settings.get(key) is not None:
            parts.append(f"{SETTING_ALIASES.get(key, key)}={_format_setting(settings[key])}")
    return " ".join(parts) or str(settings.get("variant"))


def _format_setting(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


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


def _report_missing_runs(systems: list[System], missing: list[Run], differing: list[str], notes: list[str]) -> None:
    """Note each run that could not be used, and each system lacking a seed that others have."""
    for run in missing:
        settings = run.settings() if run.record else {}
        label = system_name(settings, differing) if settings else "?"
        notes.append(f"missing: {run.name} ({label}, seed {run.seed}): {run.problem}")
    all_seeds = sorted({seed for system in systems for seed in system.runs})
    for system in systems:
        absent = [seed for seed in all_seeds if seed not in system.runs]
        if absent:
            notes.append(
                f"seeds: {system.name} has no usable run for seed(s) {', '.join(map(str, absent))}; "
                "its comparisons use the seeds it shares with the baseline"
            )


def _match_examples(systems: list[System], notes: list[str], source_option: str) -> list[str]:
    runs = [run for system in systems for run in system.runs.values()]
    order = list(runs[0].predictions.index)
    common = set(order)
    for run in runs[1:]:
        common &= set(run.predictions.index)
    if not common:
        raise InputError(source_option, "the runs share no example id: are they on the same dataset and split?")
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
