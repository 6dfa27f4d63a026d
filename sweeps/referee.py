"""One command answers the referee: the three points as one plan of shared trials, one report.

    python sweeps/referee.py                      # embedded CPU default (synthetic triage), 3 seeds
    python sweeps/referee.py --dry-run            # the plan and its estimated wall time; nothing runs
    python sweeps/referee.py --preset pubmedqa-t5-base --address auto   # the paper's scale, on a GPU cluster

The questions compose the study scripts' own definitions (ablations.py, schedule_sensitivity.py,
rationale_source.py); every distinct (configuration, seed) is trained once and used by every
question that needs it, and a trial a FINISHED run of the `referee` experiment already answers is
reused (--fresh retrains). The run ends with referee.md and referee.html in the sweep's folder,
attached to the sweep's MLflow parent run.
"""

import dataclasses
import sys

import ablations
import rationale_source
import schedule_sensitivity
from _adaptive import run_until_decided
from _common import analyse_sweep

from r2d.sweep.cli import main_for
from r2d.sweep.plan import Question
from r2d.sweep.study import Study

# The referee's controls (DESIGN section 4): fixed teacher forcing, joint training without a
# schedule, standard fine-tuning with the combined objective, each against r2d.
CONTROLS = ["r2d", "teacher_forcing", "constant_mix", "combined_ft"]
# The schedule's interaction with the rationale source: r2d against its fixed-teacher-forcing control
# on each source.
SOURCE_VARIANTS = ["r2d", "teacher_forcing"]


def _restricted(study: Study, seeds: list[int], **axes: list) -> Study:
    """`study` with some grid axes narrowed (or added) and the plan's seeds: its definition stays the source."""
    return dataclasses.replace(study, grid={**study.grid, **axes}, seeds=seeds)


def questions(ablation: Study, schedule: Study, source: Study | None, seeds: list[int]) -> list[Question]:
    """The referee's points as questions over the studies' own definitions (point 2, intervals and
    tests for every claim, is every question's statistics). No source study: a single-source dataset."""
    plan = [
        Question("controls", 1, "Does the schedule, not multi-task training, make the difference?",
                 "Ablations that isolate scheduled sampling from multi-task regularisation: fixed teacher "
                 "forcing, joint training without a schedule, standard fine-tuning with the combined objective.",
                 _restricted(ablation, seeds, variant=CONTROLS), baseline="variant=r2d"),
        Question("schedule", 3, "How sensitive is r2d to the schedule's shape and transition rate?",
                 "The schedule's stability across seeds, its sensitivity to the transition rate and decay shape.",
                 _restricted(schedule, seeds),
                 baseline="stage2.schedule.shape=linear,stage2.schedule.transition=0.6"),
    ]
    if source is not None:
        plan.append(Question("rationale_source", 3, "Does the schedule's effect depend on the rationale source?",
                             "The schedule's interaction with the rationale source.",
                             _restricted(source, seeds, variant=SOURCE_VARIANTS), baseline="variant=r2d"))
    return plan


def _plan_study(name: str, like: Study, seeds: list[int]) -> Study:
    return Study(name=name, config=like.config, seeds=seeds, description=__doc__, estimate_s=like.estimate_s)


SEEDS = [0, 1, 2]
DEFAULT = _plan_study("referee", schedule_sensitivity.DEFAULT, SEEDS)
PRESETS = {"triage-tiny": DEFAULT}
PLANS = {None: questions(ablations.DEFAULT, schedule_sensitivity.DEFAULT, rationale_source.DEFAULT, SEEDS)}
PLANS["triage-tiny"] = PLANS[None]
for _name, _source, _seeds in (("pubmedqa-t5-base", None, [0, 1, 2, 3, 4]),
                               ("triage-flan-t5-large", rationale_source.PRESETS["triage-flan-t5-large"], [0, 1, 2])):
    PRESETS[_name] = _plan_study(f"referee_{_name.replace('-', '_')}", schedule_sensitivity.PRESETS[_name], _seeds)
    PLANS[_name] = questions(ablations.PRESETS[_name], schedule_sensitivity.PRESETS[_name], _source, _seeds)

if __name__ == "__main__":
    sys.exit(main_for(DEFAULT, presets=PRESETS, plans=PLANS, analyse=analyse_sweep, until_decided=run_until_decided))
