"""The variants of DESIGN section 4 as data: each is a bundle of settings over the one trainer.

Nothing here runs: `r2d.config` applies a variant's settings when a config is loaded, so the
config every module sees (and MLflow, config.yaml and run.json record) is the one that runs, and a
variant never needs a code path of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Objective = Literal["label_only", "multitask", "joint"]


@dataclass(frozen=True)
class Variant:
    name: str
    stage1: bool
    # label_only: L_pred alone (no rationale); multitask: L_pred + L_expl on "explain: x" (DSS);
    # joint: L_pred + L_expl on "given label: l, explain: x", l scheduled between gold and predicted.
    objective: Objective
    overrides: dict[str, Any] = field(default_factory=dict)  # dotted config keys the variant fixes
    answers: str = ""


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in [
        Variant("sft", False, "label_only", {"stage2.alpha": 1.0, "stage2.alpha_warmup": 0.0},
                "standard fine-tuning baseline"),
        Variant("dss", False, "multitask", {"stage2.alpha": 0.5, "stage2.alpha_warmup": 0.0},
                "distilling step-by-step baseline"),
        Variant("r2d", True, "joint", {}, "the method (any schedule shape)"),
        Variant("r2d_no_stage1", False, "joint", {}, "is Stage 1 needed?"),
        Variant("teacher_forcing", True, "joint", {"stage2.schedule.shape": "constant", "stage2.schedule.cap": 0.0},
                "referee (i): fixed teacher forcing"),
        Variant("constant_mix", True, "joint", {"stage2.schedule.shape": "constant"},
                "referee (ii): joint training without a schedule"),
        Variant("combined_ft", False, "joint", {"stage2.schedule.shape": "constant", "stage2.schedule.cap": 0.0},
                "referee (iii): standard FT with the combined objective"),
        Variant("student_forcing", True, "joint",
                {"stage2.schedule.shape": "constant", "stage2.schedule.cap": 1.0, "stage2.schedule.warmup": 0.0},
                "the other extreme: predicted label always"),
    ]
}
VARIANT_NAMES = tuple(VARIANTS)


def variant_settings(name: str) -> dict[str, Any]:
    """The dotted settings a variant fixes, `stage1.enabled` included (they win over the user's)."""
    variant = VARIANTS[name]
    return {"stage1.enabled": variant.stage1, **variant.overrides}
