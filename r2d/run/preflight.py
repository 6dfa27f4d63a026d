"""What a command checks before it creates anything (a process, an MLflow run, a file).

The config itself is validated when it loads (r2d/config.py). This is what a config names outside
itself, checked on this machine: the data loads and has the splits a training needs, a local model
directory is one, the directories to write are not files, the MLflow server answers, and a local Ray
is big enough for the workers (else Ray Train would wait for them forever). Each failure is a
`ConfigError` (its `keys` say which setting, so a command can tell it against its option) or a
`DataError`, one line. What is doubtful but not wrong (a label seen in very few rows) comes back as
warnings, one line each, for the command to show before it starts.
"""

from __future__ import annotations

import math
import os
import urllib.error
import urllib.request
from pathlib import Path

import ray
import torch
from huggingface_hub import constants as hub_constants
from huggingface_hub import try_to_load_from_cache

from r2d.config import Config, ConfigError
from r2d.data import check_dataset
from r2d.model.modeling import TINY


def check_paths(cfg: Config) -> None:
    """A local model directory exists and holds a saved model; local directories to write are not files."""
    name = cfg.model.name
    if name != TINY and name.startswith((".", "/", "~")):
        model_dir = Path(name).expanduser()
        if not model_dir.is_dir():
            raise ConfigError.about(("model.name",), f"{name}: no such model directory")
        if not (model_dir / "config.json").is_file():
            raise ConfigError.about(("model.name",), f"{name}: not a saved model (no config.json)")
    elif name != TINY:
        check_hub_model_offline(name, cfg.model.cache_dir)
    for key, value in (("model.cache_dir", cfg.model.cache_dir), ("stage1.cache_dir", cfg.stage1.cache_dir),
                       ("resources.storage_path", cfg.resources.storage_path)):
        if value and "://" not in value:
            check_writable(Path(value), key, directory=True)


def check_hub_model_offline(name: str, cache_dir: str | None) -> None:
    """Offline (HF_HUB_OFFLINE), a hub model id must already be in the local cache: else the download
    would fail only after the run directory exists. Online, the download itself is the check."""
    if not hub_constants.HF_HUB_OFFLINE:
        return
    cached = try_to_load_from_cache(name, "config.json", cache_dir=cache_dir)
    if not isinstance(cached, str):
        raise ConfigError.about(("model.name",), f"{name}: not in the local Hugging Face cache and HF_HUB_OFFLINE "
                                                 "is set; expected a cached hub id or a local model directory")


def check_writable(path: Path, key: str, directory: bool) -> None:
    """`path` can be created or is already the right kind: no file where a directory must go, or back."""
    if path.exists() and path.is_dir() != directory:
        expected = "a directory" if directory else "a file"
        raise ConfigError.about((key,), f"{path}: exists and is not {expected}")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError.about((key,), f"{path}: {parent} is a file, not a directory")


def check_tracking(cfg: Config) -> None:
    """With tracking on: a sqlite store can be created there; an MLflow server answers (any HTTP reply)."""
    if not cfg.tracking.enabled:
        return
    uri = cfg.tracking.tracking_uri or ""
    if uri.startswith("sqlite:///"):
        check_writable(Path(uri.removeprefix("sqlite:///")), "tracking.tracking_uri", directory=False)
    elif uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5).close()
        except urllib.error.HTTPError:
            pass  # it answered
        except (urllib.error.URLError, OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            raise ConfigError.about(("tracking.tracking_uri",),
                                    f"{uri}: no MLflow server answers ({reason})") from None


def check_local_ray(cfg: Config, drivers: int = 0) -> None:
    """With no `resources.ray_address`, a local Ray starts with this machine's CPUs (R2D_RAY_NUM_CPUS if
    set) and GPUs: the workers, beside `drivers` trial drivers, must fit it. A running Ray is not judged."""
    r = cfg.resources
    if r.ray_address or ray.is_initialized():
        return
    cpus = float(os.environ.get("R2D_RAY_NUM_CPUS") or os.cpu_count() or 1)
    node = {"CPU": cpus, "GPU": float(torch.cuda.device_count())}
    worker = r.worker_resources()
    slots = min(math.floor((node.get(k, 0.0) - drivers * (r.trial_cpus if k == "CPU" else 0.0)) / need + 1e-9)
                for k, need in worker.items())
    if slots < r.num_workers:
        driver = f" and {drivers} trial driver(s) of {r.trial_cpus} CPU" if drivers else ""
        raise ConfigError.about(("resources.num_workers", "resources.cpus_per_worker", "resources.use_gpu"),
                                f"{r.num_workers} worker(s) of {worker}{driver} do not fit the local Ray "
                                f"({cpus:g} CPU, {node['GPU']:g} GPU); use fewer workers or --address")


def check_run(cfg: Config, *, on_ray: bool, drivers: int = 0) -> list[str]:
    """Everything above, for one training of `cfg`: the data last (it is the slowest, about a second).
    Returns the data's warnings."""
    check_paths(cfg)
    check_tracking(cfg)
    if on_ray:
        check_local_ray(cfg, drivers)
    return check_dataset(cfg.data, ["train", "dev", *cfg.evaluation.splits])
