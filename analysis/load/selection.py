"""Choosing what a report compares: the metrics every run has, and the baseline of each stratum.

A stratum is the set of systems that share a rationale source (`System.stratum`); each system is
compared with its own stratum's baseline. Bad choices raise `InputError` naming the option.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from analysis.errors import InputError
from analysis.load.systems import MatchedSystems, System
from analysis.metrics import DEFAULT_METRICS, METRICS, MetricSpec, resolve_metric

# The paper's recipe (linear schedule over 60% of training) is the default baseline when present.
DEFAULT_BASELINES = (
    {"variant": "r2d", "shape": "linear", "transition": 0.6},
    {"variant": "r2d"},
    {"variant": "sft"},
)


@dataclass
class MetricChoice:
    """The metrics a report shows, and per metric the systems that cannot have it (shown as n/a)."""

    specs: list[MetricSpec]
    not_applicable: dict[str, list[str]] = field(default_factory=dict)  # metric -> system names

    def applies(self, spec: MetricSpec, system: System) -> bool:
        """Whether `system` has `spec` (every one of its runs has values for it)."""
        return system.name not in self.not_applicable.get(spec.name, [])


def choose_metrics(matched: MatchedSystems, requested: Sequence[str] | None, notes: list[str]) -> MetricChoice:
    """The requested metrics, else the defaults that some run has; each applies to the systems whose runs have it.

    A metric a system cannot have (sft writes no rationale: no BLEU, BERTScore, consistency) is n/a for
    that system and kept for the others, with a note; a metric no run has is an error when requested
    and left out of the defaults.
    """
    specs = _requested_metrics(matched, requested) if requested else _default_metrics(matched)
    if not specs:
        raise InputError("--metrics", "none of the default metrics is available in any run; name some")
    choice = MetricChoice(specs)
    for spec in specs:
        lacking = [system for system in matched.systems if not _system_has(system, spec)]
        if not lacking:
            continue
        choice.not_applicable[spec.name] = [system.name for system in lacking]
        for system in lacking:
            have = [seed for seed, run in system.runs.items() if spec.available(run.predictions)]
            why = "no run of it has values" if not have else f"only seed(s) {', '.join(map(str, have))} have values"
            notes.append(f"metrics: {spec.name} is n/a for {system.name} ({why}); kept for the other systems")
    return choice


def _system_has(system: System, spec: MetricSpec) -> bool:
    return all(spec.available(run.predictions) for run in system.runs.values())


def _requested_metrics(matched: MatchedSystems, requested: Sequence[str]) -> list[MetricSpec]:
    specs = []
    for name in requested:
        spec = resolve_metric(name)
        if spec is None:
            raise InputError("--metrics", f"unknown metric {name!r}; expected some of: {', '.join(METRICS)}")
        if not any(_system_has(system, spec) for system in matched.systems):
            raise InputError(
                "--metrics",
                f"{spec.name} has no values in any system's runs; expected a metric some system has"
                + (" (was the judge configured?)" if spec.name == "judge" else ""),
            )
        specs.append(spec)
    return list(dict.fromkeys(specs))


def _default_metrics(matched: MatchedSystems) -> list[MetricSpec]:
    return [
        METRICS[name]
        for name in DEFAULT_METRICS
        if any(_system_has(system, METRICS[name]) for system in matched.systems)
    ]


def choose_baselines(matched: MatchedSystems, baseline: str | None) -> dict[tuple, System | None]:
    """The baseline of each stratum: a system name, a variant, `key=value,...` settings, or the default.

    The default is the paper's recipe (r2d, linear, transition 0.6) when present, else r2d, else sft,
    else the first system. A stratum where `baseline` matches nothing maps to None (see `baseline_notes`).
    """
    strata: dict[tuple, list[System]] = {}
    for system in matched.systems:
        strata.setdefault(system.stratum, []).append(system)
    chosen = {
        stratum: _default_baseline(members) if baseline is None else _named_baseline(members, baseline)
        for stratum, members in strata.items()
    }
    if baseline is not None and not any(chosen.values()):
        names = ", ".join(system.name for system in matched.systems)
        raise InputError(
            "--baseline",
            f"no system matches {baseline!r}; expected a system name ({names}), a variant, or key=value settings",
        )
    return chosen


def _default_baseline(members: list[System]) -> System:
    for wanted in DEFAULT_BASELINES:
        candidates = [system for system in members if _matches(system, wanted)]
        if len(candidates) == 1 or (candidates and wanted is DEFAULT_BASELINES[0]):
            return candidates[0]
    return members[0]


def _named_baseline(members: list[System], baseline: str) -> System | None:
    candidates = [system for system in members if system.name == baseline]
    if not candidates:
        wanted = _parse_baseline(baseline) or {"variant": baseline}
        candidates = [system for system in members if _matches(system, wanted)]
    if len(candidates) > 1:
        raise InputError(
            "--baseline",
            f"{baseline!r} matches several systems ({', '.join(s.name for s in candidates)}); "
            "name one of them, or give key=value settings",
        )
    return candidates[0] if candidates else None


def _matches(system: System, wanted: dict[str, object]) -> bool:
    """Whether every wanted setting equals the system's (numbers compared as floats)."""
    for key, value in wanted.items():
        have = system.setting(key)
        if have is None:
            return False
        try:
            if not math.isclose(float(have), float(value)):  # type: ignore[arg-type]
                return False
        except (TypeError, ValueError):
            if str(have) != str(value):
                return False
    return True


def _parse_baseline(spec: str) -> dict[str, str] | None:
    """`key=value,...` -> settings; None when `spec` has no `=` (a name or a variant)."""
    if "=" not in spec:
        return None
    pairs = [part.split("=", 1) for part in spec.split(",") if part.strip()]
    return {key.strip(): value.strip() for key, value in pairs}


def baseline_notes(chosen: dict[tuple, System | None], baseline: str | None) -> list[str]:
    """A note for each stratum where the requested baseline matched no system (its systems go uncompared)."""
    return [
        f"baseline: no system matches {baseline!r} in stratum {stratum_label(stratum)}; its systems are not compared"
        for stratum, system in chosen.items()
        if system is None
    ]


def stratum_label(stratum: tuple) -> str:
    """`(("rationale_source", "llm"),)` -> `"rationale_source=llm"`; `"all"` when no setting is set."""
    parts = [f"{key}={value}" for key, value in stratum if value is not None]
    return ", ".join(parts) or "all"
