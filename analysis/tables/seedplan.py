"""One set of seeds per row: the seeds a system's mean, CI and delta are all computed over.

A system compared with a baseline uses the seeds it shares with that baseline, for its mean, its CI
and its delta alike, so that the row's numbers agree with each other (before, the mean used all of
a system's seeds and the delta only the shared ones: a system at 70.7 against a baseline at 74.0
could print delta -3.9). A baseline, and a system with no baseline or no seed in common with it,
uses all its own seeds. Every seed left out is named in the notes, with the reason.
"""

from __future__ import annotations

from analysis.load.systems import MatchedSystems, System

SeedsByRow = dict[str, tuple[int, ...]]
"""System name -> the seeds its row uses (mean, CI and delta)."""


def seed_list(seeds: tuple[int, ...] | list[int]) -> str:
    """`0, 1, 2`."""
    return ", ".join(map(str, seeds))


def plan_seeds(matched: MatchedSystems, baselines: dict[tuple, System | None], notes: list[str]) -> SeedsByRow:
    """The seeds of each system's row (shared with its baseline when compared); what is dropped goes to `notes`."""
    plan: SeedsByRow = {}
    for system in matched.systems:
        baseline = baselines.get(system.stratum)
        own = tuple(system.seeds)
        if baseline is None or baseline is system:
            plan[system.name] = own
            continue
        shared = tuple(seed for seed in own if seed in baseline.runs)
        if not shared:
            notes.append(
                f"seeds: {system.name} shares no seed with its baseline {baseline.name} "
                f"(seeds {seed_list(own)} vs {seed_list(baseline.seeds)}); not compared, its row uses its own seeds"
            )
            plan[system.name] = own
            continue
        plan[system.name] = shared
        dropped = [seed for seed in own if seed not in shared]
        if dropped:
            notes.append(
                f"seeds: {system.name} drops seed(s) {seed_list(dropped)} (its baseline {baseline.name} has no "
                f"usable run for them): its mean, CI and Δ all use seeds {seed_list(shared)}"
            )
        lacking = [seed for seed in baseline.seeds if seed not in shared]
        if lacking:
            notes.append(
                f"seeds: {system.name} lacks seed(s) {seed_list(lacking)} of its baseline {baseline.name}: its mean, "
                f"CI and Δ use seeds {seed_list(shared)}, and its Δ is against {baseline.name} on those seeds "
                f"(CSV: baseline_estimate), not against {baseline.name}'s row (seeds {seed_list(baseline.seeds)})"
            )
    return plan


def lost_to_unreadable(system: System, baseline: System | None, row_seeds: tuple[int, ...]) -> list[int]:
    """The seeds a row lacks because a predictions file could not be read (skipped with --skip-unreadable).

    Its own unreadable seeds, and its baseline's on seeds it has: the row shares its baseline's seeds, so
    those are lost to it too.
    """
    lost = set(system.unreadable_seeds)
    if baseline is not None and baseline is not system:
        lost |= {seed for seed in baseline.unreadable_seeds if seed in system.runs or seed in system.unreadable_seeds}
    return sorted(lost - set(row_seeds))
