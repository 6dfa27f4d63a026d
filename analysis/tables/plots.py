"""Plots of a report (PNG, headless): metric vs transition rate per decay shape, and systems side by side.

Figures are drawn on an Agg canvas directly (no pyplot, no global backend switch), so they work
on a server without a display and do not disturb a user's interactive matplotlib session.
Every plot shows the CI (band or error bar) and the per-seed points, in one panel per rationale source.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.metrics import MetricSpec
from analysis.tables.comparison import ComparisonRow


def _panels(rows: Sequence[ComparisonRow]) -> dict[str, list[ComparisonRow]]:
    panels: dict[str, list[ComparisonRow]] = {}
    for row in rows:
        source = row.settings.get("rationale_source")
        panels.setdefault("all" if source is None else f"source: {source}", []).append(row)
    return panels


def _figure(n_panels: int, width: float = 5.0, height: float = 3.6) -> tuple[Figure, list]:
    figure = Figure(figsize=(width * n_panels, height), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, n_panels, squeeze=False, sharey=True)[0]
    return figure, list(axes)


def _as_float(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def plot_transition(rows: Sequence[ComparisonRow], spec: MetricSpec, path: str | Path) -> Path | None:
    """Metric vs transition rate, one line per (variant, decay shape) with its CI band and seed points.

    Returns None (no file) when the study does not vary the transition rate.
    """
    scheduled = [
        row
        for row in rows
        if _as_float(row.settings.get("transition")) is not None and row.settings.get("shape") is not None
    ]
    if len({_as_float(row.settings["transition"]) for row in scheduled}) < 2:
        return None
    panels = _panels(scheduled)
    figure, axes = _figure(len(panels))
    for axis, (title, panel_rows) in zip(axes, panels.items(), strict=True):
        lines: dict[str, list[ComparisonRow]] = {}
        for row in panel_rows:
            lines.setdefault(f"{row.settings.get('variant')} {row.settings['shape']}", []).append(row)
        swept = {label: members for label, members in lines.items() if len(members) > 1}
        for index, (label, line_rows) in enumerate(sorted(swept.items())):
            line_rows = sorted(line_rows, key=lambda r: _as_float(r.settings["transition"]))
            x = np.array([_as_float(r.settings["transition"]) for r in line_rows])
            y = np.array([r.estimate for r in line_rows]) * spec.scale
            low = np.array([r.ci_low for r in line_rows]) * spec.scale
            high = np.array([r.ci_high for r in line_rows]) * spec.scale
            color = f"C{index % 10}"
            axis.plot(x, y, marker="o", color=color, label=label)
            axis.fill_between(x, low, high, color=color, alpha=0.2, linewidth=0)
            for xi, row in zip(x, line_rows, strict=True):
                seeds = np.array(list(row.seed_scores.values())) * spec.scale
                if len(seeds) > 1:
                    axis.scatter(np.full(len(seeds), xi), seeds, s=10, color=color, alpha=0.5, linewidths=0)
        # systems run at a single rate (baselines such as sft): horizontal reference lines
        for index, row in enumerate(row for label in sorted(lines) if label not in swept for row in lines[label]):
            axis.axhline(
                row.estimate * spec.scale,
                color=f"0.{3 + 2 * (index % 3)}",
                linestyle="--",
                linewidth=1,
                label=row.system,
            )
        axis.set_title(title)
        axis.set_xlabel("transition (fraction of training steps)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    axes[0].set_ylabel(spec.label)
    figure.suptitle(f"{spec.label} vs transition rate (mean, CI band, seeds as points)")
    path = Path(path)
    figure.savefig(path, dpi=120)
    return path


def plot_systems(rows: Sequence[ComparisonRow], spec: MetricSpec, path: str | Path) -> Path:
    """A bar per system with its CI as an error bar and seeds as points; significant differences starred."""
    panels = _panels(rows)
    widest = max(len(panel) for panel in panels.values())
    figure, axes = _figure(len(panels), width=max(5.0, 0.8 * widest + 2.0), height=4.8)
    for axis, (title, panel_rows) in zip(axes, panels.items(), strict=True):
        x = np.arange(len(panel_rows))
        y = np.array([row.estimate for row in panel_rows]) * spec.scale
        errors = (
            np.abs(np.array([[row.estimate - row.ci_low, row.ci_high - row.estimate] for row in panel_rows]).T)
            * spec.scale
        )
        colors = ["0.45" if row.is_baseline else "C0" for row in panel_rows]
        axis.bar(x, y, yerr=errors, color=colors, alpha=0.8, capsize=3)
        for xi, row in zip(x, panel_rows, strict=True):
            seeds = np.array(list(row.seed_scores.values())) * spec.scale
            if len(seeds) > 1:
                axis.scatter(xi + np.linspace(-0.15, 0.15, len(seeds)), seeds, s=10, color="k", zorder=3)
            if row.significant:
                axis.annotate("*", (xi, row.ci_high * spec.scale), ha="center", va="bottom", fontsize=14)
        axis.set_xticks(x, [row.system for row in panel_rows], rotation=45, ha="right", fontsize="small")
        axis.set_title(title)
        axis.grid(axis="y", alpha=0.3)
        finite = np.concatenate([y - errors[0], y + errors[1]])
        finite = finite[np.isfinite(finite)]
        if finite.size:
            span = max(finite.max() - finite.min(), 1e-9)
            axis.set_ylim(finite.min() - 0.3 * span, finite.max() + 0.2 * span)
    axes[0].set_ylabel(spec.label)
    figure.suptitle(
        f"{spec.label} by system: mean, CI, seeds as points\n(grey: baseline; * significant vs baseline)",
        fontsize="medium",
    )
    path = Path(path)
    figure.savefig(path, dpi=120)
    return path
