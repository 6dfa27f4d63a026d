"""What does reproducible mode (resources.reproducible) cost per training step? (issue 25 item 2)

Alternates, `--repeats` times, the same short training (configs/triage-tiny-sweep.yaml, `--steps`
Stage 1 + `--steps` Stage 2 steps, one torch thread) as `python -m r2d.cli train` subprocesses:
"off" (this CPU's own code paths), "on" (resources.reproducible: true, the AVX2 pins of
r2d.config.REPRODUCIBLE_PINS) and, for comparison, "lowest" (mode off, every library held to its
lowest path: what a CPU-independent choice below AVX2 would cost). Each run has its own Stage 1
cache, so every run trains both stages. Seconds per step come from the run's own timings
(metrics.json: Stage 1 + Stage 2 time over their steps, process start-up excluded; each stage's
one dev evaluation of `--eval-examples` examples included); the test-split evaluation is shown apart.

    PYTHONPATH=$PWD nice -n 10 python bench/bench_reproducible.py --steps 40 --repeats 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "triage-tiny-sweep.yaml"
SWITCHES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR", "R2D_PINNED_REEXEC")
LOWEST = {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_CBWR": "COMPATIBLE"}
SETTINGS: dict[str, tuple[bool, dict[str, str]]] = {"off": (False, {}), "on": (True, {}), "lowest": (False, LOWEST)}


def run_once(name: str, steps: int, eval_examples: int, out: Path) -> dict[str, float]:
    """One training of setting `name` into `out`; its timings (s/step, test evaluation, wall)."""
    reproducible, outer = SETTINGS[name]
    env = {k: v for k, v in os.environ.items() if k not in SWITCHES}
    env.update(outer, PYTHONPATH=str(ROOT), TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    sets = {"stage1.max_steps": steps, "stage1.eval_every": steps, "stage2.max_steps": steps,
            "stage2.eval_every": steps, "data.max_eval_examples": eval_examples,
            "evaluation.bertscore.enabled": "false", "resources.reproducible": str(reproducible).lower(),
            "model.cache_dir": f"{out}-cache", "stage1.cache_dir": f"{out}-cache/stage1",
            "resources.storage_path": f"{out}-ray"}
    cmd = [sys.executable, "-m", "r2d.cli", "train", "--config", str(CONFIG), "--out", str(out),
           *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")]]
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    wall = time.perf_counter() - start
    metrics = json.loads((out / "metrics.json").read_text())
    t = metrics["timings"]
    trained = metrics["stage1"]["steps"] + metrics["stage2"]["steps"]
    return {"s_per_step": (t["stage1_s"] + t["stage2_s"]) / trained, "evaluate_s": t["evaluate_s"], "wall_s": wall}


def table(results: dict[str, list[dict[str, float]]]) -> str:
    """Median (min) per setting, and the median s/step relative to "off"."""
    off = statistics.median(r["s_per_step"] for r in results["off"])
    lines = [f"{'setting':<8} {'runs':>4} {'s/step median (min)':>20} {'vs off':>7} "
             f"{'test eval s':>12} {'wall s':>7}"]
    for name, rows in results.items():
        per_step = [r["s_per_step"] for r in rows]
        med = statistics.median(per_step)
        lines.append(f"{name:<8} {len(rows):>4} {med:>11.4f} ({min(per_step):.4f}) {med / off:>7.3f} "
                     f"{statistics.median(r['evaluate_s'] for r in rows):>12.2f} "
                     f"{statistics.median(r['wall_s'] for r in rows):>7.1f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="steps of Stage 1 and of Stage 2 each")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; each round runs every setting once")
    parser.add_argument("--eval-examples", type=int, default=20, help="data.max_eval_examples")
    parser.add_argument("--settings", default="off,on,lowest", help="comma-separated, of: off, on, lowest")
    args = parser.parse_args()
    names = args.settings.split(",")
    if args.steps < 1 or args.repeats < 1 or "off" not in names or not set(names) <= set(SETTINGS):
        sys.exit("expected positive --steps and --repeats, and --settings from off,on,lowest including off")
    results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="r2d-bench-repro-") as tmp:
        for i in range(args.repeats):
            # alternate, and rotate who goes first, so a drift in the machine's load hits every setting
            for name in names[i % len(names):] + names[:i % len(names)]:
                results[name].append(run_once(name, args.steps, args.eval_examples, Path(tmp) / f"{name}-{i}"))
                print(f"round {i + 1} {name}: {results[name][-1]['s_per_step']:.4f} s/step", file=sys.stderr)
    print(table(results))


if __name__ == "__main__":
    main()
