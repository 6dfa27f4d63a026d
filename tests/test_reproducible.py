"""resources.reproducible (issue 25 item 2): the CPU code paths pinned, so a configuration and seed give
byte-identical predictions whichever ISA path this machine would otherwise take.

The trainings run as `python -m r2d.cli train` subprocesses: the switches only act if set before torch
starts, so each setting needs its own process (the CLI re-executes itself with the pins)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from r2d.cli import main
from r2d.config import REPRODUCIBLE_PINS, load_config, pins_missing
from r2d.run.distributed import worker_env
from r2d.train.record import system_id
from r2d.train.stage1_store import stage1_key

from .conftest import ROOT, tiny_overrides

# The lowest code paths of each library: what a CPU without AVX2 would take (and a different path
# from this machine's own, whatever it is).
LOWEST = {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_CBWR": "COMPATIBLE"}
# A short training that is still sensitive to the code path: 10 + 10 steps of the sweep's model
# (bench/isa_paths.py found its predictions change with the path), 60 evaluation examples; ~20 s.
SHORT = {"stage1.max_steps": 10, "stage1.eval_every": 10, "stage2.max_steps": 10, "stage2.eval_every": 10,
         "data.max_eval_examples": 60, "evaluation.bertscore.enabled": "false"}


def train(out: Path, reproducible: bool, outer: dict[str, str]) -> tuple[bytes, dict]:
    """One short training in a fresh process whose environment carries `outer` (and no other switch);
    returns its test predictions file and run.json's environment."""
    env = {k: v for k, v in os.environ.items() if k not in REPRODUCIBLE_PINS and k != "R2D_PINNED_REEXEC"}
    env.update(outer, PYTHONPATH=str(ROOT))
    sets = {**SHORT, "resources.reproducible": str(reproducible).lower(), "model.cache_dir": str(out) + "-cache",
            "stage1.cache_dir": str(out) + "-cache/stage1", "resources.storage_path": str(out) + "-ray"}
    cmd = [sys.executable, "-m", "r2d.cli", "train", "--config", str(ROOT / "configs/triage-tiny-sweep.yaml"),
           "--out", str(out), *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")]]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return (out / "predictions/test.csv").read_bytes(), json.loads((out / "run.json").read_text())["environment"]


def test_two_isa_settings_give_identical_predictions_in_reproducible_mode(tmp_path):
    native = torch.backends.cpu.get_cpu_capability() if not os.environ.get("ATEN_CPU_CAPABILITY") else None
    runs = {"on, native": (True, {}), "on, lowest": (True, LOWEST), "off, native": (False, {})}
    with ThreadPoolExecutor(max_workers=2) as pool:  # one torch thread each (the config's)
        futures = {name: pool.submit(train, tmp_path / name.replace(", ", "-"), *how) for name, how in runs.items()}
        results = {name: f.result() for name, f in futures.items()}
    (on_native, env_a), (on_lowest, env_b), (off_native, env_off) = results.values()
    assert on_native == on_lowest, "reproducible mode: predictions differ between two outer ISA settings"
    for env in (env_a, env_b):  # the pins, in effect, recorded
        assert {k: env.get(k) for k in REPRODUCIBLE_PINS} == REPRODUCIBLE_PINS and env["aten_cpu_capability"] == "AVX2"
    assert env_off["aten_cpu_capability"] == native or native is None
    if native in ("AVX512", "AVX512_BF16", "AMX"):
        # Measured on the AVX-512 machines we have: this CPU's own path changes these predictions (the
        # comparison says whether the mode is needed here at all, not whether it works).
        assert off_native != on_native, f"without the mode ({native}) the predictions equal the pinned ones"


def test_pins_are_data_in_one_place_and_reach_ray_workers():
    assert pins_missing(dict(REPRODUCIBLE_PINS)) == {}
    assert pins_missing({"MKL_CBWR": "AVX2"}) == {"ATEN_CPU_CAPABILITY": None, "ONEDNN_MAX_CPU_ISA": None}
    on = load_config(None, ["resources.reproducible=true"])
    assert worker_env(on.resources) == {"env_vars": REPRODUCIBLE_PINS}
    assert worker_env(load_config(None).resources) is None
    assert load_config(None).resources.reproducible is False  # the default (README: why)


def test_the_mode_keeps_system_ids_and_never_mixes_stage1_results(cache_dir):
    off = load_config(None, tiny_overrides(cache_dir))
    on = load_config(None, tiny_overrides(cache_dir, **{"resources.reproducible": "true"}))
    assert system_id(off) == system_id(on)  # how the CPU computes, not what is trained
    assert stage1_key(off) != stage1_key(on)  # a pinned run never reuses an unpinned Stage 1


def test_in_process_without_the_pins_stops_in_one_line(cache_dir, tmp_path, monkeypatch, capsys):
    for var in REPRODUCIBLE_PINS:
        monkeypatch.delenv(var, raising=False)
    args = [a for o in tiny_overrides(cache_dir, **{"resources.reproducible": "true"}) for a in ("--set", o)]
    code = main(["train", "--out", str(tmp_path / "run"), *args])  # called as a function: not re-executed
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "resources.reproducible: CPU code paths not pinned" in err[0]
    assert "ATEN_CPU_CAPABILITY=avx2" in err[0] and not (tmp_path / "run").exists()


@pytest.mark.skipif(not pins_missing(), reason="this process already carries the pins")
def test_ray_workers_get_the_pins_from_the_runtime_env(tmp_path):
    """A driver WITHOUT the pins trains on Ray Train in reproducible mode: the worker passes its pin check
    (r2d.train.prepare.check_pins), so the switches came from the runtime_env, not from the driver; and a
    Tune trial of the same Ray job (a sweep trial's process) has them too."""
    script = (
        "import json, os, sys\nfrom pathlib import Path\nfrom ray import tune\n"
        "from r2d.config import REPRODUCIBLE_PINS, load_config\nfrom r2d.run import runner\n"
        "cfg = load_config(None, json.loads(sys.argv[1]))\n"
        "runner.train(cfg, Path(sys.argv[2]), on_ray=True)\n"
        # a Tune trial process of the same Ray job (what a sweep's trials are): the job's runtime_env
        "def probe(config):\n"
        "    tune.report({'pinned': float(all(os.environ.get(k) == v for k, v in REPRODUCIBLE_PINS.items()))})\n"
        "grid = tune.Tuner(probe, run_config=tune.RunConfig(storage_path=sys.argv[3], name='probe')).fit()\n"
        "print('tune trial pinned:', grid[0].metrics['pinned'])\n"
    )
    sets = tiny_overrides(tmp_path / "cache", **{"resources.reproducible": "true", "stage1.max_steps": 2,
                                                 "stage2.max_steps": 3, "stage2.eval_every": 3})
    env = {k: v for k, v in os.environ.items() if k not in REPRODUCIBLE_PINS}
    ray_tmp = tempfile.mkdtemp(prefix="r2dray")  # short: Ray's socket paths have a length limit
    env.update(PYTHONPATH=str(ROOT), R2D_RAY_NUM_CPUS="2", R2D_RAY_TMPDIR=ray_tmp)
    done = subprocess.run([sys.executable, "-c", script, json.dumps(sets), str(tmp_path / "run"),
                           str(tmp_path / "tune")], env=env, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "run/predictions/test.csv").exists()
    assert "tune trial pinned: 1.0" in done.stdout
