"""What does reproducible mode (resources.reproducible) cost per training step? (issue 25 item 2)

Alternates, `--repeats` times, the same short training (configs/triage-tiny-sweep.yaml, `--steps`
Stage 1 + `--steps` Stage 2 steps, one torch thread) as `python -m r2d.cli train` subprocesses:
"off" (this CPU's own code paths), "on" (resources.reproducible: true, the AVX2 pins of
r2d.config.REPRODUCIBLE_PINS) and, for comparison, "lowest" (mode off, every library held to its
lowest path: what a CPU-independent choice below AVX2 would cost). Each run has its own Stage 1
cache, so every run trains both stages. Seconds per step come from the run's own timings
(metrics.json: Stage 1 + Stage 2 time over their steps, process start-up excluded; each stage's
one dev evaluation of `--eval-examples` examples included); the test-split evaluation is shown apart.

`--micro`: the training step alone, less at the mercy of other jobs on a shared machine. Each run
is a fresh process (the setting in its environment before torch starts: the mode's pins for "on")
that builds the sweep's tiny T5 (d_model 64, 2+2 layers, vocabulary 4000) and times `--steps`
AdamW steps on one random batch of 32 x 96 input and 64 target tokens, after 3 warm-up steps, as
wall time and as the main thread's CPU time (one torch thread: the step's compute runs in it).

    PYTHONPATH=$PWD nice -n 10 python bench/bench_reproducible.py --steps 40 --repeats 3
    PYTHONPATH=$PWD nice -n 10 python bench/bench_reproducible.py --micro --steps 30 --repeats 6
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


def micro_child(steps: int) -> None:
    """In a fresh process: time `steps` training steps of the tiny T5; print them as JSON."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(T5Config(vocab_size=4000, d_model=64, d_ff=256, d_kv=16, num_layers=2,
                                                num_decoder_layers=2, num_heads=4, dropout_rate=0.0,
                                                decoder_start_token_id=0, pad_token_id=0))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    inputs, labels = torch.randint(1, 4000, (32, 96)), torch.randint(1, 4000, (32, 64))

    def step() -> None:
        opt.zero_grad()
        model(input_ids=inputs, labels=labels).loss.backward()
        opt.step()

    for _ in range(3):
        step()
    wall, cpu = time.perf_counter(), time.thread_time()
    for _ in range(steps):
        step()
    print(json.dumps({"s_per_step": (time.perf_counter() - wall) / steps, "cpu_s_per_step": (time.thread_time() - cpu)
                      / steps, "aten": torch.backends.cpu.get_cpu_capability()}))


def micro_once(name: str, steps: int) -> dict[str, float]:
    """One --micro child of setting `name` ("on": the mode's pins, set as the r2d CLI sets them)."""
    from r2d.config import REPRODUCIBLE_PINS

    reproducible, outer = SETTINGS[name]
    env = {k: v for k, v in os.environ.items() if k not in SWITCHES}
    env.update(REPRODUCIBLE_PINS if reproducible else outer, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, __file__, "--child", str(steps)], env=env, check=True,
                         capture_output=True, text=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def micro_table(results: dict[str, list[dict]]) -> str:
    """Median (min) wall and CPU seconds per step, relative to "off"."""
    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    lines = [f"{'setting':<8} {'ATen':<8} {'runs':>4} {'wall s/step median (min)':>25} {'vs off':>7} "
             f"{'CPU s/step median (min)':>24} {'vs off':>7}"]
    for name, rows in results.items():
        lines.append(f"{name:<8} {rows[0]['aten']:<8} {len(rows):>4} "
                     f"{med(name, 's_per_step'):>16.4f} ({min(r['s_per_step'] for r in rows):.4f}) "
                     f"{med(name, 's_per_step') / med('off', 's_per_step'):>7.3f} "
                     f"{med(name, 'cpu_s_per_step'):>15.4f} ({min(r['cpu_s_per_step'] for r in rows):.4f}) "
                     f"{med(name, 'cpu_s_per_step') / med('off', 'cpu_s_per_step'):>7.3f}")
    return "\n".join(lines)


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
    parser.add_argument("--micro", action="store_true", help="time the training step alone (see above)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        micro_child(args.child)
        return
    names = args.settings.split(",")
    if args.steps < 1 or args.repeats < 1 or "off" not in names or not set(names) <= set(SETTINGS):
        sys.exit("expected positive --steps and --repeats, and --settings from off,on,lowest including off")
    results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="r2d-bench-repro-") as tmp:
        for i in range(args.repeats):
            # alternate, and rotate who goes first, so a drift in the machine's load hits every setting
            for name in names[i % len(names):] + names[:i % len(names)]:
                results[name].append(micro_once(name, args.steps) if args.micro else
                                     run_once(name, args.steps, args.eval_examples, Path(tmp) / f"{name}-{i}"))
                print(f"round {i + 1} {name}: {results[name][-1]['s_per_step']:.4f} s/step", file=sys.stderr)
    print(micro_table(results) if args.micro else table(results))


if __name__ == "__main__":
    main()
