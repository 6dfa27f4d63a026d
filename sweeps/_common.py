"""What the study scripts share: the repository root, so presets resolve from any working directory."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def preset(name: str) -> str:
    return str(ROOT / "configs" / name)


# (Stage 1, one Stage 2 trial) wall seconds of configs/triage-tiny-sweep.yaml on 2 CPU cores, two
# trainings at once, Ray's start-up included: the medians of one default schedule sweep (300-step
# linear-decay trials with the weight average, early stops included; 2026-11-24). --dry-run's
# estimate when the tracking store has no earlier runs of the study.
CPU_ESTIMATE_S = (158.0, 381.0)
