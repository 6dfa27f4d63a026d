"""Health of a training run, as r2d recorded it: run.json's `health` ({flag: bool}) or the MLflow tags.

r2d (r2d/scoring/health.py) flags each training `collapsed`, `still_improving`, `diverged`, `early_stopped`
or `failed`; every flag but `early_stopped` makes a run unhealthy (r2d.health.UNHEALTHY, which
tests/test_analysis_e2e.py checks against `INFORMATIONAL` here: analysis/ imports nothing from r2d
but r2d.schema). The report lists each run's unhealthy flags in its notes, marks the rows whose
runs include unhealthy ones, and `--exclude-unhealthy` leaves those runs out of the statistics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

INFORMATIONAL = ("early_stopped",)  # a flag that does not make a run unhealthy
FLAG_ORDER = ("collapsed", "still_improving", "diverged", "early_stopped", "failed")
HEALTHY = "healthy"  # the MLflow tag r2d.health of a run with no unhealthy flag
TAG = "r2d.health"
MARKER = "†"


def health_from_tags(tags: Mapping[str, str]) -> dict[str, bool] | None:
    """`{flag: bool}` from a run's MLflow tags (`r2d.health.<flag>` = "true"/"false", or `r2d.health`)."""
    flags = {
        key[len(TAG) + 1 :]: str(value).strip().lower() == "true"
        for key, value in tags.items()
        if key.startswith(TAG + ".")
    }
    if flags:
        return flags
    summary = tags.get(TAG)
    if summary is None:
        return None
    return {name.strip(): True for name in str(summary).split(",") if name.strip() and name.strip() != HEALTHY}


def unhealthy_flags(record: Mapping[str, object]) -> list[str] | None:
    """The unhealthy flags of a run record, in r2d's order; None when the record has no health (older run.json)."""
    health = record.get("health")
    if isinstance(health, str):  # a record rebuilt from MLflow tags: "healthy" or "collapsed,diverged"
        health = {name.strip(): True for name in health.split(",") if name.strip() and name.strip() != HEALTHY}
    if not isinstance(health, Mapping):
        return None
    raised = [str(name) for name, value in health.items() if value and name not in INFORMATIONAL]
    return sorted(raised, key=lambda name: (FLAG_ORDER.index(name) if name in FLAG_ORDER else len(FLAG_ORDER), name))


def describe(flags: Sequence[str]) -> str:
    """`collapsed, still_improving`."""
    return ", ".join(flags)
