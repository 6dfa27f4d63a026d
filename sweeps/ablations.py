"""Study: the referee's ablations and the baselines (DESIGN section 4) x seeds, same data and budget.

    python sweeps/ablations.py                          # embedded CPU default (synthetic triage)
    python sweeps/ablations.py --preset pubmedqa-t5-base --address auto
"""

import sys

from _adaptive import run_until_decided
from _common import CPU_ESTIMATE_S, analyse_sweep, preset

from r2d.sweep.cli import main_for
from r2d.sweep.study import Study
from r2d.variants import VARIANT_NAMES

DEFAULT = Study(
    name="ablations",
    config=preset("triage-tiny-sweep.yaml"),
    grid={"variant": list(VARIANT_NAMES)},
    seeds=[0, 1],
    description=__doc__,
    estimate_s=CPU_ESTIMATE_S,
)

PRESETS = {
    "triage-tiny": DEFAULT,
    "pubmedqa-t5-base": Study(name="ablations_pubmedqa", config=preset("pubmedqa-t5-base.yaml"),
                              grid={"variant": list(VARIANT_NAMES)}, seeds=[0, 1, 2, 3, 4]),
    "triage-flan-t5-large": Study(name="ablations_triage_large", config=preset("triage-flan-t5-large.yaml"),
                                  grid={"variant": list(VARIANT_NAMES)}, seeds=[0, 1, 2]),
}

if __name__ == "__main__":
    sys.exit(main_for(DEFAULT, presets=PRESETS, analyse=analyse_sweep, until_decided=run_until_decided))
