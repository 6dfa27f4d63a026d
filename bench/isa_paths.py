"""Do CPU code paths change a short training's numbers? (issue 25 item 2, the measurement).

Runs the same short tiny training (configs/triage-tiny-sweep.yaml with few steps) once per
environment setting, each in a fresh process so the setting is in place before torch is imported,
and prints per setting: the first evaluation step whose numbers differ from the reference (the
first setting), whether the predictions files are byte-identical to the reference's, and seconds
per training step. The settings are the switches that pin a code path: ATen's
ATEN_CPU_CAPABILITY, oneDNN's ONEDNN_MAX_CPU_ISA and MKL's MKL_CBWR, alone and together.

    PYTHONPATH=$PWD nice -n 15 python bench/isa_paths.py --steps 30

Only the capabilities this CPU lists in /proc/cpuinfo are tried.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "triage-tiny-sweep.yaml"
# Pins for the "all together" setting: the field report in issue 25 found only the three
# together bit-identical across Intel and AMD; AVX2 is the widest path both vendors share.
ALL_PINS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def settings(flags: set[str]) -> list[tuple[str, dict[str, str]]]:
    """Named env settings to compare; the first is the reference (no pins)."""
    out: list[tuple[str, dict[str, str]]] = [("unpinned", {})]
    out.append(("aten=default", {"ATEN_CPU_CAPABILITY": "default"}))
    if "avx2" in flags:
        out.append(("aten=avx2", {"ATEN_CPU_CAPABILITY": "avx2"}))
        out.append(("onednn=AVX2", {"ONEDNN_MAX_CPU_ISA": "AVX2"}))
        out.append(("mkl=AVX2", {"MKL_CBWR": "AVX2"}))
        out.append(("all avx2 pins", dict(ALL_PINS)))
    if "avx512f" in flags:
        out.append(("aten=avx512", {"ATEN_CPU_CAPABILITY": "avx512"}))
    out.append(("mkl=COMPATIBLE", {"MKL_CBWR": "COMPATIBLE"}))
    return out


def run_once(env_pins: dict[str, str], steps: int, out_dir: Path, threads: int) -> float:
    """Train once in a fresh process with `env_pins`; returns wall seconds."""
    env = {**os.environ, **env_pins, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "r2d.cli", "train", "--config", str(CONFIG), "--out", str(out_dir),
           "--set", f"stage1.max_steps={steps}", "--set", f"stage1.eval_every={steps}",
           "--set", f"stage2.max_steps={steps}", "--set", f"stage2.eval_every={steps}"]
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def first_difference(ref: object, other: object, path: str = "") -> str | None:
    """Path of the first differing leaf of two metrics.json trees (None if identical)."""
    if isinstance(ref, dict) and isinstance(other, dict):
        for key in ref:
            found = first_difference(ref[key], other.get(key), f"{path}/{key}")
            if found:
                return found
        return None
    if isinstance(ref, list) and isinstance(other, list) and len(ref) == len(other):
        for i, (a, b) in enumerate(zip(ref, other)):
            found = first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if ref == other else path or "/"


def predictions_equal(ref_dir: Path, other_dir: Path) -> bool:
    """True when every predictions file of the reference is byte-identical in the other run."""
    files = sorted((ref_dir / "predictions").glob("*.csv"))
    return bool(files) and all((other_dir / "predictions" / f.name).read_bytes() == f.read_bytes()
                               for f in files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="steps of Stage 1 and of Stage 2 each")
    parser.add_argument("--threads", type=int, default=1, help="OMP/MKL threads (fixed for all)")
    args = parser.parse_args()
    if args.steps < 1:
        sys.exit(f"--steps: expected a positive integer, got {args.steps}")
    with tempfile.TemporaryDirectory() as tmp:
        rows, ref_dir, ref_metrics = [], None, None
        for name, pins in settings(cpu_flags()):
            out_dir = Path(tmp) / name.replace(" ", "_").replace("=", "-")
            seconds = run_once(pins, args.steps, out_dir, args.threads)
            metrics = json.loads((out_dir / "metrics.json").read_text())
            if ref_dir is None:
                ref_dir, ref_metrics = out_dir, metrics
            diff = first_difference(ref_metrics, metrics)
            rows.append((name, diff or "none", "yes" if predictions_equal(ref_dir, out_dir) else "no",
                         seconds / (2 * args.steps)))
        print(f"{'setting':<16} {'first difference in metrics.json':<44} {'preds same':<10} s/step")
        for name, diff, same, per_step in rows:
            print(f"{name:<16} {diff:<44} {same:<10} {per_step:.3f}")


if __name__ == "__main__":
    main()
