"""Study: variants x rationale sources x seeds (triage: LLM-generated, nurse-authored, nurse post-processed).

    python sweeps/rationale_source.py                   # embedded CPU default (synthetic triage)
    python sweeps/rationale_source.py --preset triage-flan-t5-large --address auto
"""

import sys

from _adaptive import run_until_decided
from _common import CPU_ESTIMATE_S, analyse_sweep, preset

from r2d.sweep.cli import main_for
from r2d.sweep.study import Study

SOURCES = ["llm", "nurse", "nurse_post"]

DEFAULT = Study(
    name="rationale_source",
    config=preset("triage-tiny-sweep.yaml"),
    grid={"variant": ["r2d", "combined_ft", "dss"], "data.rationale_source": SOURCES},
    seeds=[0, 1],
    description=__doc__,
    estimate_s=CPU_ESTIMATE_S,
)

PRESETS = {
    "triage-tiny": DEFAULT,
    "triage-flan-t5-large": Study(
        name="rationale_source_triage_large", config=preset("triage-flan-t5-large.yaml"),
        grid={"variant": ["r2d", "teacher_forcing", "combined_ft", "dss", "sft"], "data.rationale_source": SOURCES},
        seeds=[0, 1, 2]),
}

if __name__ == "__main__":
    sys.exit(main_for(DEFAULT, presets=PRESETS, analyse=analyse_sweep, until_decided=run_until_decided))
