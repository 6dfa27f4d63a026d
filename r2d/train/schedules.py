"""Schedules as pure functions of the step: p(t) for scheduled sampling and a(t) for the loss weight.

p(t) is the probability of conditioning the rationale on the model's *predicted* label (not the
gold one). Bengio et al. (2015) write the same curves as the probability of feeding gold,
e = 1 - p / cap; this module always means "predicted". With s the progress through the ramp,
s = clip((t - warmup) / transition, 0, 1), every shape goes from p = 0 at s = 0 to p = cap at s = 1
(DESIGN section 3). `confidence_adaptive` follows linear; its per-example gate lives in
`ConfidenceGate` because it needs the model's confidences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from r2d.config import ScheduleConfig

DEFAULT_STEEPNESS = {"exponential": 5.0, "inverse_sigmoid": 10.0}


@dataclass(frozen=True)
class Schedule:
    """A p(t) curve in steps: built from a ScheduleConfig (fractions) and Stage 2's max_steps."""

    shape: str
    warmup_steps: float
    transition_steps: float
    cap: float
    steepness: float | None = None

    @classmethod
    def from_config(cls, cfg: ScheduleConfig, max_steps: int) -> Schedule:
        k = cfg.steepness if cfg.steepness is not None else DEFAULT_STEEPNESS.get(cfg.shape)
        return cls(cfg.shape, cfg.warmup * max_steps, max(cfg.transition * max_steps, 1e-9), cfg.cap, k)

    def progress(self, step: int) -> float:
        return min(max((step - self.warmup_steps) / self.transition_steps, 0.0), 1.0)

    def __call__(self, step: int) -> float:
        """p(step): probability of using the predicted label, in [0, cap]."""
        if step < self.warmup_steps:
            return 0.0
        s = self.progress(step)
        if self.shape in ("linear", "confidence_adaptive"):
            return self.cap * s
        if self.shape == "exponential":
            k = self.steepness
            return self.cap * (1 - math.exp(-k * s)) / (1 - math.exp(-k))
        if self.shape == "inverse_sigmoid":
            k = self.steepness

            def g(x: float) -> float:
                return 1 / (1 + math.exp(-k * (x - 0.5)))

            return self.cap * (g(s) - g(0)) / (g(1) - g(0))
        if self.shape == "step":
            return self.cap if s >= 0.5 else 0.0
        if self.shape == "constant":
            return self.cap
        raise ValueError(f"stage2.schedule.shape: unknown shape {self.shape!r}")


def alpha_at(step: int, alpha: float, warmup_steps: float) -> float:
    """a(t): the weight of L_pred, rising linearly from 0 to alpha over the warm-up, then flat."""
    if warmup_steps <= 0:
        return alpha
    return alpha * min(step / warmup_steps, 1.0)


@dataclass
class ConfidenceGate:
    """Reason2Decide-C: use an example's predicted label only if U < sigmoid(T (c_i - tau)).

    c_i is the model's confidence in its predicted label (exp of mean token log-prob); tau the
    running mean of confidences seen since the last reset (every `reset_steps`). Its state is
    saved in checkpoints so a resumed run gates exactly as an uninterrupted one.
    """

    reset_steps: int = 1000
    temperature: float = 10.0
    total: float = 0.0
    count: int = 0
    last_reset_step: int = 0

    def tau(self) -> float:
        return self.total / self.count if self.count else 0.5

    def accept_probability(self, confidence: list[float], step: int) -> list[float]:
        if step - self.last_reset_step >= self.reset_steps:
            self.total, self.count, self.last_reset_step = 0.0, 0, step
        self.total += sum(confidence)
        self.count += len(confidence)
        tau = self.tau()
        return [1 / (1 + math.exp(-self.temperature * (c - tau))) for c in confidence]

    def state_dict(self) -> dict:
        return {"total": self.total, "count": self.count, "last_reset_step": self.last_reset_step}

    def load_state_dict(self, state: dict) -> None:
        self.total, self.count, self.last_reset_step = state["total"], state["count"], state["last_reset_step"]
