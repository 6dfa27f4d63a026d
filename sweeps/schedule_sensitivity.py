"""Study: the schedule's sensitivity to decay shape x transition rate (x cap, warm-up) x seeds.

    python sweeps/schedule_sensitivity.py                     # embedded CPU default (synthetic triage)
    python sweeps/schedule_sensitivity.py --search optuna --samples 16
    python sweeps/schedule_sensitivity.py --preset pubmedqa-t5-base --address auto   # on a GPU cluster
"""

import sys

from _adaptive import run_until_decided
from _common import CPU_ESTIMATE_S, analyse_sweep, preset

from r2d.sweep.cli import main_for
from r2d.sweep.study import Study

SHAPES = ["linear", "exponential", "inverse_sigmoid", "step"]

DEFAULT = Study(
    name="schedule_sensitivity",
    config=preset("triage-tiny-sweep.yaml"),
    grid={"stage2.schedule.shape": ["linear", "exponential"], "stage2.schedule.transition": [0.3, 0.6]},
    # 5 seeds, not 3: the crossed test's df grow with seeds, and at 3 the minimum detectable effect
    # was 10-23 accuracy points on this study's own runs (README, "Significance").
    seeds=[0, 1, 2, 3, 4],
    description=__doc__,
    estimate_s=CPU_ESTIMATE_S,
)

PRESETS = {
    "triage-tiny": DEFAULT,
    "pubmedqa-t5-base": Study(
        name="schedule_sensitivity_pubmedqa",
        config=preset("pubmedqa-t5-base.yaml"),
        grid={"stage2.schedule.shape": SHAPES, "stage2.schedule.transition": [0.2, 0.4, 0.6, 0.8],
              "stage2.schedule.cap": [0.5, 0.9]},
        seeds=[0, 1, 2, 3, 4],
    ),
    "triage-flan-t5-large": Study(
        name="schedule_sensitivity_triage_large",
        config=preset("triage-flan-t5-large.yaml"),
        grid={"stage2.schedule.shape": SHAPES, "stage2.schedule.transition": [0.2, 0.4, 0.6, 0.8],
              "stage2.schedule.warmup": [0.0, 0.05]},
        seeds=[0, 1, 2],
    ),
}

if __name__ == "__main__":
    sys.exit(main_for(DEFAULT, presets=PRESETS, analyse=analyse_sweep, until_decided=run_until_decided))
