"""Two runs of one system on one seed: which is kept (`pick_one_per_seed`), and the note that says so."""

from __future__ import annotations

import datetime

from analysis.load.runs import Run

DUPLICATE_RULE = "the most recent run is kept (MLflow start time, else run.json's modification time)"


def pick_one_per_seed(runs: list[Run], system: str, notes: list[str]) -> dict[int, Run]:
    """Seed -> run; of two runs of one system on one seed the most recent is kept, and the notes say so.

    Most recent by MLflow start time (run directories: run.json's modification time; run.json is
    written last, when the run ends); ties and unknown times go to the first run name. Why the most
    recent: a configuration rerun on the same seed was rerun on purpose (a fixed bug, a resumed sweep,
    a newer commit), and with one `system_id` nothing else tells the runs apart.
    """
    by_seed: dict[int, list[Run]] = {}
    for run in runs:
        by_seed.setdefault(run.seed, []).append(run)
    chosen: dict[int, Run] = {}
    for seed, candidates in by_seed.items():
        ordered = sorted(candidates, key=lambda run: (-(run.timestamp or float("-inf")), run.name))
        chosen[seed] = ordered[0]
        if len(ordered) > 1:
            notes.append(
                f"duplicate: {system} has {len(ordered)} runs on seed {seed}; kept {_when(ordered[0])}, dropped "
                + ", ".join(_when(run) for run in ordered[1:])
                + f" ({DUPLICATE_RULE})"
            )
    return chosen


def _when(run: Run) -> str:
    if run.timestamp is None:
        return f"{run.name} (time unknown)"
    stamp = datetime.datetime.fromtimestamp(run.timestamp, tz=datetime.timezone.utc)
    commit = run.record.get("git_commit")
    return f"{run.name} ({stamp:%Y-%m-%d %H:%M:%S} UTC" + (f", commit {str(commit)[:8]})" if commit else ")")
