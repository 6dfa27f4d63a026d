"""What a study is, before anything runs: its data (preset, grid or Optuna space, seeds), the
options of a sweep, each trial's resolved config, the Stage 1 plan, and the checks that every trial
config is valid on this machine before a folder, a Ray cluster or an MLflow run exists.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from r2d.config import Config, ConfigError, blame, override_origins, read_config, validate_config
from r2d.data import DataError
from r2d.overrides import set_dotted
from r2d.run.preflight import check_run

# Optuna's names -> config keys. The space is conditional: steepness exists only for the shapes
# that have one.
OPTUNA_KEYS = {
    "shape": "stage2.schedule.shape",
    "transition": "stage2.schedule.transition",
    "cap": "stage2.schedule.cap",
    "alpha": "stage2.alpha",
    "steepness": "stage2.schedule.steepness",
}


def default_optuna_space(trial) -> None:
    """Define-by-run space for OptunaSearch (TPE): shape, rate, cap, alpha; steepness where it applies."""
    shape = trial.suggest_categorical("shape", ["linear", "exponential", "inverse_sigmoid", "step"])
    trial.suggest_float("transition", 0.1, 1.0)
    trial.suggest_float("cap", 0.5, 1.0)
    trial.suggest_float("alpha", 0.3, 0.9)
    if shape in ("exponential", "inverse_sigmoid"):
        trial.suggest_float("steepness", 1.0, 20.0, log=True)


@dataclass
class Study:
    name: str  # the MLflow experiment, and the prefix of the sweep's directory
    config: str  # preset YAML
    grid: dict[str, list] = field(default_factory=dict)  # dotted key -> values (full factorial)
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    optuna_space: Callable | None = None
    description: str = ""
    # (Stage 1, Stage 2 trial) wall seconds measured with this preset where it was sized, for
    # --dry-run's estimate when the tracking store has no earlier runs; None: no estimate.
    estimate_s: tuple[float, float] | None = None


@dataclass
class SweepOptions:
    search: str = "grid"  # grid | optuna
    samples: int = 8  # Optuna configurations
    search_seed: int = 0
    asha: bool = False
    address: str | None = None
    resume: bool = False
    rerun_errored: bool = False
    sweep_id: str | None = None  # resume this one (default: the latest of the study)
    overrides: list[str] = field(default_factory=list)
    storage_path: str | None = None
    tracking_uri: str | None = None
    analysis: bool = True
    max_concurrent: int | None = None  # cap below what the cluster fits (benchmarks: 1 vs 2)
    verbose: bool = False  # Ray's and Tune's own output on the console, not in the sweep's ray.log
    fresh: bool = False  # train every trial, even one a FINISHED run of the experiment already answers
    parent_tags: dict[str, str] = field(default_factory=dict)  # extra tags of the parent run (an adaptive round)


@dataclass(frozen=True)
class AdaptiveOptions:
    """--until-decided: seeds added in planned looks only where a comparison is still open."""

    max_seeds: int = 11  # seeds per configuration at the last look
    first_look: int = 3  # seeds per configuration at the first look
    step: int = 2  # seeds added per look (a round of new seeds for every open configuration and the baseline)
    budget_s: float | None = None  # wall seconds; None: no budget
    margins: tuple[str, ...] = ()  # METRIC=POINTS; () keeps the analysis' defaults
    # non-binding futility: conditional power below which an interim look stops a comparison as undecided;
    # 0.05 kept the fixed design's power at the MDE in bench/bench_sequential.py (README, adaptive seeds)
    futility: float = 0.05

    @property
    def looks(self) -> tuple[int, ...]:
        """Seeds per configuration at each planned look: fixed before any result is seen."""
        return tuple(range(self.first_look, self.max_seeds, self.step)) + (self.max_seeds,)


def trial_config(base: dict[str, Any], overrides: dict[str, Any], seed: int) -> Config:
    """The resolved config of one trial: the base, the trial's settings, its seed."""
    data = copy.deepcopy(base)
    for key, value in {**overrides, "seed": seed}.items():
        set_dotted(data, key, value)
    return validate_config(data, source="sweep trial")


def trial_key(overrides: dict[str, Any], seed: int) -> str:
    return hashlib.sha256(json.dumps([sorted(overrides.items()), seed], default=str).encode()).hexdigest()[:12]


def grid_points(grid: dict[str, list]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def base_config(study: Study, opts: SweepOptions) -> dict[str, Any]:
    """The study's preset with the user's settings, checked, paths and tracking URI absolute."""
    overrides = list(opts.overrides)
    for key, value in (("resources.storage_path", opts.storage_path), ("tracking.tracking_uri", opts.tracking_uri),
                       ("resources.ray_address", opts.address)):
        if value:
            overrides.append(f"{key}={value}")
    return read_config(study.config, overrides + [f"tracking.experiment={study.name}", "tracking.enabled=true"])


def check_study(study: Study, opts: SweepOptions) -> list[str]:
    """Every trial's config, checked before anything exists (sweep folder, Ray, MLflow run): each grid
    point x seed resolved by `trial_config`, and what it names on this machine (r2d.run.preflight). An error
    names the option that set the bad key: --grid KEY=VALUE, --seeds N, --set KEY=VALUE, --storage-path,
    ... (the options themselves are checked by r2d.sweep.cli). Raises ConfigError or DataError; returns
    the data's warnings (labels seen in very few rows), each once."""
    base = base_config(study, opts)
    flags = [(key, f"{flag} {value}") for key, flag, value in (
        ("resources.storage_path", "--storage-path", opts.storage_path),
        ("tracking.tracking_uri", "--tracking-uri", opts.tracking_uri),
        ("resources.ray_address", "--address", opts.address)) if value]
    origins, checked, warnings = override_origins(opts.overrides) + flags, set(), set()
    for point in grid_points(study.grid) if opts.search == "grid" else [{}]:
        for seed in study.seeds:
            named = origins + [(k, f"--grid {k}={v}") for k, v in point.items()] + [("seed", f"--seeds {seed}")]
            try:
                cfg = trial_config(base, point, seed)
                what = json.dumps([cfg.to_dict()[k] for k in ("data", "model", "resources", "evaluation")])
                if what not in checked:  # the data, paths and Ray's room: once per distinct setting
                    warnings.update(check_run(cfg, on_ray=True, drivers=1))
                    checked.add(what)
            except ConfigError as err:
                raise blame(err, named) from None
            except DataError as err:  # told against the grid's data settings, if it has any
                data_axes = [f"--grid {k}={v}: " for k, v in point.items() if k.startswith("data.")]
                raise DataError("".join(data_axes) + str(err)) from None
    return sorted(warnings)
