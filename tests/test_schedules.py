import numpy as np
import pytest

from r2d.config import SHAPES, ScheduleConfig
from r2d.train.schedules import ConfidenceGate, Schedule, alpha_at

MAX = 1000


@pytest.mark.parametrize("shape", [s for s in SHAPES if s != "constant"])
def test_ramp_shapes_start_at_zero_end_at_cap_monotone(shape):
    sch = Schedule.from_config(ScheduleConfig(shape=shape, warmup=0.1, transition=0.5, cap=0.8), MAX)
    values = np.array([sch(t) for t in range(MAX)])
    assert values[:100].max() == 0.0  # warm-up: always gold
    assert sch(100) == 0.0 and sch(600) == pytest.approx(0.8) and sch(999) == pytest.approx(0.8)
    assert np.all(np.diff(values) >= -1e-12)
    assert values.max() <= 0.8 + 1e-12


def test_constant_is_cap_right_after_warmup():
    sch = Schedule.from_config(ScheduleConfig(shape="constant", warmup=0.1, cap=0.9), MAX)
    assert sch(99) == 0.0 and sch(100) == 0.9 and sch(999) == 0.9


def test_shapes_differ_where_they_should():
    def at(shape, s):
        sch = Schedule.from_config(ScheduleConfig(shape=shape, warmup=0.0, transition=1.0, cap=1.0), MAX)
        return sch(int(s * MAX))

    # exponential is fast early, inverse sigmoid slow-fast-slow, step jumps at half
    assert at("exponential", 0.2) > at("linear", 0.2) > at("inverse_sigmoid", 0.2)
    assert at("inverse_sigmoid", 0.5) == pytest.approx(0.5)
    assert at("step", 0.49) == 0.0 and at("step", 0.5) == 1.0
    assert at("linear", 0.3) == pytest.approx(0.3)


def test_p_means_probability_of_the_predicted_label():
    """Direction: p rises over training, so late steps condition on predictions (not gold)."""
    sch = Schedule.from_config(ScheduleConfig(), MAX)  # the authors' defaults
    assert sch(0) == 0.0  # start: gold labels (teacher forcing)
    assert sch(MAX - 1) == pytest.approx(0.9)  # end: predicted with probability cap
    assert sch(50 + 300) == pytest.approx(0.9 * 0.5)


def test_alpha_warmup():
    assert alpha_at(0, 0.7, 50) == 0.0
    assert alpha_at(25, 0.7, 50) == pytest.approx(0.35)
    assert alpha_at(500, 0.7, 50) == 0.7
    assert alpha_at(0, 0.5, 0) == 0.5


def test_confidence_gate_prefers_confident_and_resets():
    gate = ConfidenceGate(reset_steps=10, temperature=10.0)
    p = gate.accept_probability([0.9, 0.1], step=0)
    assert p[0] > 0.5 > p[1]
    gate.accept_probability([0.5] * 10, step=5)
    assert gate.count == 12
    gate.accept_probability([0.7], step=10)
    assert gate.count == 1 and gate.tau() == pytest.approx(0.7)
    restored = ConfidenceGate(10, 10.0)
    restored.load_state_dict(gate.state_dict())
    assert restored.tau() == gate.tau()
