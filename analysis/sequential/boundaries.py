"""Group-sequential boundaries: Lan-DeMets alpha spending, the known-variance (normal) boundaries by
numerical integration, and boundaries for the t statistic over seeds calibrated by Monte Carlo.

All boundaries are two-sided and symmetric: at look k a comparison crosses when |statistic| >= c_k.
Looks are given as seed counts `n_1 < ... < n_K`; the information fraction of look k is
`n_k / max_seeds` (default `n_K`), capped at 1.

Normal case (Armitage, McPherson & Rowe 1969; Jennison & Turnbull 2000, ch. 19): the score
`S_k = Z_k sqrt(t_k)` has independent Gaussian increments, so the density of S_k on the continuation
region is propagated look by look on a grid (Simpson's rule) and c_k solves P(first crossing at k) =
alpha(t_k) - alpha(t_{k-1}).

t case: with paired per-seed differences d_s and the variance re-estimated at each look,
`t_k = mean_k / sd_k * sqrt(n_k)` has, under H0 (d_s iid N(0, sigma^2)), a joint law free of sigma.
So the null process is simulated once with sigma = 1 from its sufficient statistics (each block of new
seeds adds a N(0, m) sum and a chi^2_{m-1} sum of squares), and c_k is the empirical quantile that
spends the same alpha increment among paths not yet stopped. Look 1 uses the exact t quantile; an
increment too small for the simulation to resolve (fewer than MIN_CROSSINGS crossing paths) uses the
marginal t quantile, which spends at most the increment (conservative). Results are cached in a JSON
file keyed by (looks, max_seeds, alpha, spending, n_sim, seed).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from scipy import optimize
from scipy import stats as scipy_stats

Spending = Literal["obf", "pocock"]
SPENDING_NAMES = {"obf": "Lan-DeMets O'Brien-Fleming-type", "pocock": "Lan-DeMets Pocock-type"}
MIN_CROSSINGS = 50
"""Fewer simulated crossings than this at a look: the marginal t quantile is used instead (conservative)."""
DEFAULT_N_SIM = 1_000_000
GRID_POINTS = 2001  # odd, for Simpson's rule; 1e-6 agreement with published constants


def spent_alpha(fraction: np.ndarray | float, alpha: float, spending: Spending = "obf") -> np.ndarray:
    """Cumulative two-sided alpha spent at information fractions `fraction` (any shape, in [0, 1]).

    Each side spends alpha / 2 (the convention of ldbounds and of gsDesign's symmetric designs):
    O'Brien-Fleming-type 2 * (2 - 2 Phi(z_{1-alpha/4} / sqrt(t))), Pocock-type alpha ln(1 + (e - 1) t)
    (Lan & DeMets 1983; gsDesign's sfLDOF and sfLDPocock at alpha / 2, doubled).
    """
    t = np.clip(np.asarray(fraction, dtype=np.float64), 0.0, 1.0)
    if spending == "obf":
        with np.errstate(divide="ignore"):
            return np.where(t > 0, 4.0 * scipy_stats.norm.sf(scipy_stats.norm.isf(alpha / 4.0) / np.sqrt(t)), 0.0)
    if spending == "pocock":
        return alpha * np.log1p((math.e - 1.0) * t)
    raise ValueError(f"spending must be 'obf' or 'pocock', got {spending!r}")


def check_looks(looks: Sequence[int], max_seeds: int | None = None, *, minimum: int = 1) -> tuple[int, ...]:
    """The looks as a tuple of ints, or a one-line ValueError (not increasing, below `minimum`, beyond max)."""
    try:
        values = tuple(int(look) for look in looks)
        whole = all(look == float(given) for look, given in zip(values, looks, strict=True))
    except (TypeError, ValueError):
        whole = False
    if not whole:
        raise ValueError(f"looks must be whole seed counts, got {list(looks)}")
    if not values:
        raise ValueError("looks: expected at least one seed count, got none")
    if values[0] < minimum:
        raise ValueError(f"looks: the first look needs at least {minimum} seeds, got {values[0]}")
    if any(later <= earlier for earlier, later in zip(values, values[1:], strict=False)):
        raise ValueError(f"looks must be strictly increasing seed counts, got {list(values)}")
    if max_seeds is not None and max_seeds < values[-1]:
        raise ValueError(f"max_seeds {max_seeds} is below the last look {values[-1]}")
    return values


def _increments(looks: tuple[int, ...], max_seeds: int | None, alpha: float, spending: Spending) -> np.ndarray:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    fractions = np.asarray(looks, dtype=np.float64) / float(max_seeds or looks[-1])
    return np.diff(spent_alpha(np.concatenate([[0.0], fractions]), alpha, spending))


def _simpson_weights(points: int, step: float) -> np.ndarray:
    weights = np.ones(points)
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    return weights * step / 3.0


def normal_boundaries(
    fractions: Sequence[float], alpha: float = 0.05, spending: Spending = "obf", *, grid_points: int = GRID_POINTS
) -> np.ndarray:
    """Two-sided Z boundaries `[K]` for known variance at information fractions `[K]` (increasing, last <= 1).

    A look that spends nothing gets +inf. For K = 5 equal fractions, alpha 0.05, OBF-type spending:
    4.877, 3.357, 2.680, 2.290, 2.031 (tests/test_sequential.py).
    """
    t = np.asarray(fractions, dtype=np.float64)
    if t.ndim != 1 or t.size == 0 or np.any(t <= 0) or np.any(t > 1) or np.any(np.diff(t) <= 0):
        raise ValueError(f"fractions must increase within (0, 1], got {list(t)}")
    spend = np.diff(spent_alpha(np.concatenate([[0.0], t]), alpha, spending))
    bounds = np.empty(t.size)
    bounds[0] = scipy_stats.norm.isf(spend[0] / 2.0) if spend[0] > 0 else np.inf
    grid = weights = density = None
    for k in range(1, t.size):
        half = bounds[k - 1] * math.sqrt(t[k - 1])  # continuation region of S_{k-1}: (-half, half)
        if grid is None:  # density of S_1 on its continuation region
            grid = np.linspace(-min(half, 12.0), min(half, 12.0), grid_points)
            weights = _simpson_weights(grid_points, grid[1] - grid[0])
            density = scipy_stats.norm.pdf(grid, scale=math.sqrt(t[0]))
        else:
            new_grid = np.linspace(-min(half, 12.0), min(half, 12.0), grid_points)
            step_sd = math.sqrt(t[k - 1] - t[k - 2])
            kernel = scipy_stats.norm.pdf((new_grid[:, None] - grid[None, :]) / step_sd) / step_sd
            density = kernel @ (weights * density)
            grid, weights = new_grid, _simpson_weights(grid_points, new_grid[1] - new_grid[0])
        sd = math.sqrt(t[k] - t[k - 1])
        mass = weights * density

        def excess(c: float, k: int = k, sd: float = sd, mass: np.ndarray = mass, grid: np.ndarray = grid) -> float:
            edge = c * math.sqrt(t[k])
            cross = scipy_stats.norm.sf((edge - grid) / sd) + scipy_stats.norm.cdf((-edge - grid) / sd)
            return float(mass @ cross) - spend[k]

        bounds[k] = optimize.brentq(excess, 0.5, 40.0, xtol=1e-10) if spend[k] > 0 and excess(40.0) < 0 else np.inf
    return bounds


def simulate_null_t(looks: Sequence[int], n_sim: int, seed: int) -> np.ndarray:
    """|t| `[n_sim, K]` of the paired t statistic over seeds at each look, under H0 with sigma = 1."""
    looks = check_looks(looks, minimum=2)
    rng = np.random.default_rng(seed)
    total = np.zeros(n_sim)
    squares = np.zeros(n_sim)  # sum of squared deviations from the running mean
    previous = 0
    out = np.empty((n_sim, len(looks)))
    for k, n in enumerate(looks):
        block = n - previous
        block_sum = rng.standard_normal(n_sim) * math.sqrt(block)
        block_squares = rng.chisquare(block - 1, n_sim) if block > 1 else np.zeros(n_sim)
        if previous:
            squares += block_squares + previous * block / n * (total / previous - block_sum / block) ** 2
        else:
            squares = block_squares
        total += block_sum
        previous = n
        out[:, k] = np.abs(total / n) / np.sqrt(squares / (n - 1)) * math.sqrt(n)
    return out


def calibrate_t_boundaries(
    looks: Sequence[int],
    alpha: float = 0.05,
    spending: Spending = "obf",
    *,
    max_seeds: int | None = None,
    n_sim: int = DEFAULT_N_SIM,
    seed: int = 0,
) -> np.ndarray:
    """Two-sided boundaries `[K]` for |t| over seeds (variance re-estimated at each look), by simulation."""
    looks = check_looks(looks, max_seeds, minimum=2)
    spend = _increments(looks, max_seeds, alpha, spending)
    abs_t = simulate_null_t(looks, n_sim, seed)
    alive = np.ones(n_sim, dtype=bool)
    bounds = np.empty(len(looks))
    for k, n in enumerate(looks):
        marginal = scipy_stats.t.isf(spend[k] / 2.0, n - 1) if spend[k] > 0 else np.inf
        crossings = int(math.floor(spend[k] * n_sim))
        if k == 0 or crossings < MIN_CROSSINGS:
            bounds[k] = marginal
        else:
            candidates = np.sort(abs_t[alive, k])[::-1]
            bounds[k] = candidates[crossings - 1] if crossings <= candidates.size else 0.0
        alive &= abs_t[:, k] < bounds[k]
    return bounds


def default_cache_path() -> Path:
    """~/.cache/r2d-analysis/sequential-boundaries.json (XDG_CACHE_HOME respected)."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "r2d-analysis" / "sequential-boundaries.json"


def cache_key(looks: Sequence[int], max_seeds: int | None, alpha: float, spending: str, n_sim: int, seed: int) -> str:
    """The cache entry's key: every input the calibration depends on."""
    looks_text = ",".join(str(int(look)) for look in looks)
    return (
        f"looks={looks_text};max={max_seeds or looks[-1]};alpha={alpha!r};spending={spending};n_sim={n_sim};seed={seed}"
    )


def t_boundaries(
    looks: Sequence[int],
    alpha: float = 0.05,
    spending: Spending = "obf",
    *,
    max_seeds: int | None = None,
    n_sim: int = DEFAULT_N_SIM,
    seed: int = 0,
    cache_path: str | Path | None = None,
) -> np.ndarray:
    """`calibrate_t_boundaries`, read from / written to the JSON cache (`default_cache_path()` when None).

    A cache file that cannot be read is recomputed over, not trusted; writes are atomic (temp + rename).
    """
    looks = check_looks(looks, max_seeds, minimum=2)
    path = Path(cache_path) if cache_path is not None else default_cache_path()
    key = cache_key(looks, max_seeds, alpha, spending, n_sim, seed)
    entries = _read_cache(path)
    if key in entries:
        return np.array([np.inf if value is None else value for value in entries[key]], dtype=np.float64)
    bounds = calibrate_t_boundaries(looks, alpha, spending, max_seeds=max_seeds, n_sim=n_sim, seed=seed)
    entries = _read_cache(path)  # another process may have added entries meanwhile
    entries[key] = [None if math.isinf(value) else float(value) for value in bounds]
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(handle, "w") as stream:
        json.dump(entries, stream, indent=1, sort_keys=True)
    os.replace(temporary, path)
    return bounds


def _read_cache(path: Path) -> dict[str, list]:
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}
