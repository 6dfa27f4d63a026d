"""The sweep driver's entry point: `evaluate_look(values, state)` at each planned look.

`values` are per-(system, seed) metric values in points: `{metric: {system: {seed: value}}}`
(`per_seed_values(matched)` builds them from `analysis.load.systems.MatchedSystems`). The state carries
the design, the baseline and each comparison's history, and round-trips through JSON
(`SequentialState.to_json` / `state_from_json`), so `--resume` continues the same error budget.
Look times are the design's seed counts only; nothing here chooses them from observed effects.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from analysis.load.systems import MatchedSystems
from analysis.metrics import resolve_metric
from analysis.sequential.decisions import (
    OPEN,
    STATUS_NAMES,
    UNDECIDED,
    boundary_table,
    decide_look,
    equivalence_seeds,
    fixed_design_seeds,
    futile,
)
from analysis.sequential.design import Design, design_from_dict

Values = Mapping[str, Mapping[str, Mapping[int, float]]]


@dataclass
class Comparison:
    """One comparison (system vs the baseline on one metric): its status and what each look saw."""

    metric: str
    system: str
    status: str = "open"
    closed_at_look: int | None = None  # 1-based look at which it closed
    seeds_used: int = 0
    looks: list[dict] = field(default_factory=list)  # per tested look: look, n, mean, sd, t, boundary, low, high
    reason: str | None = None  # why undecided
    seeds_to_detect: float | None = None  # a fixed design's seeds to detect the observed difference
    seeds_to_show_equivalence: float | None = None

    @property
    def is_open(self) -> bool:
        return self.status == "open"


@dataclass
class SequentialState:
    """Everything a resumed sweep needs: the design, the baseline, the looks done and each comparison."""

    design: Design
    baseline: str
    looks_done: int = 0
    comparisons: list[Comparison] = field(default_factory=list)

    def to_json(self) -> str:
        """The state as JSON (`state_from_json` reads it back)."""
        record = {"design": self.design.to_dict(), "baseline": self.baseline, "looks_done": self.looks_done}
        record["comparisons"] = [asdict(comparison) for comparison in self.comparisons]
        return json.dumps(record, sort_keys=True, allow_nan=True)

    def comparison(self, metric: str, system: str) -> Comparison | None:
        return next((c for c in self.comparisons if c.metric == metric and c.system == system), None)


def state_from_json(text: str) -> SequentialState:
    """A SequentialState from `SequentialState.to_json()`; a malformed file is a one-line ValueError."""
    try:
        record = json.loads(text)
        state = SequentialState(design_from_dict(record["design"]), str(record["baseline"]), int(record["looks_done"]))
        state.comparisons = [Comparison(**entry) for entry in record["comparisons"]]
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"sequential state: not a saved state ({error})") from None
    return state


@dataclass
class LookResult:
    """What the driver reads after a look: decisions, the systems that still need seeds, what is next."""

    state: SequentialState
    look: int  # 1-based
    decisions: list[Comparison]
    needs_seeds: list[str]  # systems (baseline included) to run at the next look's seed count
    next_seeds: int | None  # seeds per system at the next look (None: done)
    done: bool

    def table(self) -> str:
        """A Markdown table of this look's decisions, with the design's signature under it."""
        lines = [
            "| metric | system | decision | seeds | mean | interval | t / boundary |",
            "|---|---|---|---|---|---|---|",
        ]
        for comparison in self.decisions:
            last = comparison.looks[-1] if comparison.looks else {}

            def get(key: str, last: dict = last) -> float:
                return last.get(key, math.nan)

            name, status = comparison.system, comparison.status + _why_undecided(comparison)
            lines.append(
                f"| {comparison.metric} | {name} | {status} | {comparison.seeds_used} | {get('mean'):+.2f} "
                f"| [{get('low'):+.2f}, {get('high'):+.2f}] | {get('t'):.2f} / {get('boundary'):.2f} |"
            )
        return "\n".join(lines + ["", self.state.design.signature()])


def _seeds(value: float | None) -> str:
    return "?" if value is None or math.isnan(value) else "never" if math.isinf(value) else f"{value:.0f}"


def _why_undecided(comparison: Comparison) -> str:
    """' (budget spent; seeds a fixed design needs: equivalence 29, detection 137)' for an undecided
    comparison: the reason, and the seeds per configuration at the observed mean and sd ('never': no
    count up to crossed_planning.MAX_SEEDS would, e.g. an observed difference beyond the margin, or of 0)."""
    if not comparison.reason:
        return ""
    if comparison.seeds_to_detect is None and comparison.seeds_to_show_equivalence is None:
        return f" ({comparison.reason})"
    return (f" ({comparison.reason}; seeds a fixed design needs: equivalence "
            f"{_seeds(comparison.seeds_to_show_equivalence)}, detection {_seeds(comparison.seeds_to_detect)})")


def start_state(design: Design, baseline: str) -> SequentialState:
    """A fresh state: no look done yet."""
    return SequentialState(design=design, baseline=baseline)


def per_seed_values(matched: MatchedSystems, metrics: Sequence[str]) -> dict[str, dict[str, dict[int, float]]]:
    """`{metric: {system: {seed: value in points}}}` of every matched run (display units: MetricSpec.scale)."""
    classes = matched.classes or matched.labels
    values: dict[str, dict[str, dict[int, float]]] = {}
    for name in metrics:
        spec = resolve_metric(name)
        if spec is None:
            raise ValueError(f"metrics: unknown metric {name!r}")
        values[name] = {
            system.name: {
                seed: float(
                    spec.finalize(spec.statistics(matched.frame(system, seed), classes).sum(axis=0)) * spec.scale
                )
                for seed in system.seeds
            }
            for system in matched.systems
        }
    return values


def _differences(values: Mapping[str, Mapping[int, float]], system: str, baseline: str) -> np.ndarray:
    """Per-seed differences `[S]` on the seeds both have a finite value for, in seed order."""
    mine, base = values[system], values[baseline]
    seeds = sorted(seed for seed in set(mine) & set(base) if math.isfinite(mine[seed]) and math.isfinite(base[seed]))
    return np.array([mine[seed] - base[seed] for seed in seeds], dtype=np.float64)


def _check_values(values: Values, state: SequentialState) -> None:
    for metric in state.design.margins:
        if metric not in values:
            raise ValueError(f"values: metric {metric!r} (it has a margin) is missing; got {sorted(values)}")
        if state.baseline not in values[metric]:
            raise ValueError(f"values: baseline {state.baseline!r} has no {metric} values")
        known = [c.system for c in state.comparisons if c.metric == metric]
        present = [system for system in values[metric] if system != state.baseline]
        if known and sorted(known) != sorted(present):
            raise ValueError(
                f"values: {metric} systems changed since the first look: {sorted(known)} -> {sorted(present)}"
            )


def evaluate_look(
    values: Values, state: SequentialState, *, stop_reason: str | None = None, cache_path=None
) -> LookResult:
    """Read the next planned look: update every open comparison, say which systems need seeds next.

    Call it once per look, after every system that needed seeds has (up to) the look's seed count;
    the look's number is `state.looks_done + 1`. `stop_reason` (e.g. "budget spent") makes this the
    last look: comparisons still open become `undecided` with that reason. The state is updated in
    place and returned in the result; save `result.state.to_json()` before the next round of trials.
    """
    design, look = state.design, state.looks_done
    if look >= len(design.looks):
        raise ValueError(f"look: all {len(design.looks)} planned looks are done; the study is closed")
    _check_values(values, state)
    if not state.comparisons:
        state.comparisons = [
            Comparison(metric, system)
            for metric in design.margins
            for system in values[metric]
            if system != state.baseline
        ]
    final = look == len(design.looks) - 1 or stop_reason is not None
    decided: list[Comparison] = []
    for metric, margin in design.margins.items():
        family = [comparison for comparison in state.comparisons if comparison.metric == metric]
        decided += _decide_family(values[metric], family, state, margin, cache_path)
        if design.futility and not final:
            _stop_futile(family, state, margin, cache_path)
        if final:
            _close_undecided(family, design, stop_reason or f"maximum seeds reached ({design.max_seeds})")
    state.looks_done = look + 1
    open_systems = sorted({c.system for c in state.comparisons if c.is_open})
    done = final or not open_systems
    return LookResult(
        state=state,
        look=look + 1,
        decisions=[c for c in state.comparisons],
        needs_seeds=[] if done else [state.baseline, *open_systems],
        next_seeds=None if done else design.looks[look + 1],
        done=done,
    )


def _decide_family(
    values: Mapping[str, Mapping[int, float]],
    family: list[Comparison],
    state: SequentialState,
    margin: float,
    cache_path,
) -> list[Comparison]:
    """Decide one metric's comparisons at this look (each at the boundary of its own seed history)."""
    size = len(family)
    mean, sd, n = np.full(size, np.nan), np.full(size, np.nan), np.zeros(size)
    tested = np.zeros(size, dtype=bool)
    efficacy, equivalence = np.full((size, size), np.inf), np.full(size, np.inf)
    for index, comparison in enumerate(family):
        differences = _differences(values, comparison.system, state.baseline)
        n[index] = differences.size
        if differences.size:
            mean[index] = differences.mean()
            sd[index] = differences.std(ddof=1) if differences.size > 1 else np.nan
        previous = comparison.looks[-1]["n"] if comparison.looks else 0
        tested[index] = comparison.is_open and n[index] >= 2 and n[index] > previous
        if tested[index]:
            history = tuple(entry["n"] for entry in comparison.looks) + (int(n[index]),)
            table, repeated = boundary_table(state.design, size, history, cache_path)
            efficacy[index], equivalence[index] = table[-1], repeated[-1]
    status = np.array([STATUS_NAMES.index(c.status) for c in family], dtype=np.int8)
    active = size - int(sum(c.status in ("better", "worse") for c in family))
    new_status = decide_look(mean, sd, n, status, efficacy, equivalence, margin, tested=tested)
    for index, comparison in enumerate(family):
        if not tested[index]:
            continue
        half = equivalence[index] * sd[index] / math.sqrt(n[index])
        comparison.looks.append(
            {
                "look": state.looks_done + 1, "n": int(n[index]), "mean": float(mean[index]), "sd": float(sd[index]),
                "t": float(mean[index] / sd[index] * math.sqrt(n[index])) if sd[index] > 0 else math.nan,
                "boundary": float(efficacy[index, max(active, 1) - 1]),
                "low": float(mean[index] - half), "high": float(mean[index] + half),
            }
        )  # fmt: skip
        comparison.seeds_used = int(n[index])
        if new_status[index] != OPEN:
            comparison.status = STATUS_NAMES[new_status[index]]
            comparison.closed_at_look = state.looks_done + 1
    return family


def _stop_futile(family: list[Comparison], state: SequentialState, margin: float, cache_path) -> None:
    """Open comparisons read at this look whose answer is out of reach by the last look (`decisions.futile`,
    non-binding) become undecided now: their systems get no more seeds."""
    design, look = state.design, state.looks_done + 1
    final_critical = float(boundary_table(design, len(family), None, cache_path)[1][-1])
    read = [c for c in family if c.is_open and c.looks and c.looks[-1]["look"] == look]
    if not read:
        return
    mean, sd, n = (np.array([c.looks[-1][key] for c in read]) for key in ("mean", "sd", "n"))
    stop = futile(mean, sd, n, design.max_seeds, final_critical, margin, design.futility)
    reason = (f"futile at look {look}: neither a difference nor equivalence within reach by "
              f"{design.max_seeds} seeds")
    _close_undecided([c for c, out in zip(read, stop) if out], design, reason, size=len(family))


def _close_undecided(family: list[Comparison], design: Design, reason: str, size: int | None = None) -> None:
    """Open comparisons become undecided, with the reason and the seeds a fixed design would need."""
    level = design.alpha / max(1, size or len(family))
    margin = design.margins[family[0].metric] if family else 1.0
    for comparison in family:
        if not comparison.is_open:
            continue
        comparison.status, comparison.reason = STATUS_NAMES[UNDECIDED], reason
        comparison.closed_at_look = comparison.looks[-1]["look"] if comparison.looks else None
        if comparison.looks:
            last = comparison.looks[-1]
            comparison.seeds_to_detect = float(fixed_design_seeds(last["mean"], last["sd"], level, design.power))
            comparison.seeds_to_show_equivalence = float(equivalence_seeds(last["mean"], last["sd"], margin, level))
