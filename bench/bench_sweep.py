"""Sweep throughput: Stage 2 trials per hour at concurrency 1 vs 2 on this machine, and Ray's share.

Runs the schedule-sensitivity study twice on the same small grid (2 shapes x 1 rate x 2 seeds,
Stage 2 shortened with --steps), once with --max-concurrent 1 and once with 2, into one storage so
both reuse the same Stage 1 (trained, or found, before either is timed). Reads each sweep's
timings.json; prints trials per hour of the Stage 2 phase and Ray's overhead share per trial.

    python bench/bench_sweep.py [--steps 40] [--storage outputs/bench-sweep]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sweep(storage: str, tracking: str, steps: int, concurrency: int | None, extra: list[str]) -> dict:
    cmd = [sys.executable, str(ROOT / "sweeps" / "schedule_sensitivity.py"), "--storage-path", storage,
           "--tracking-uri", tracking, "--grid", "stage2.schedule.shape=linear,step", "--grid",
           "stage2.schedule.transition=0.6", "--seeds", "0", "1", "--no-analysis",
           "--set", f"stage2.max_steps={steps}", "--set", f"stage2.eval_every={max(1, steps // 2)}", *extra]
    if concurrency:
        cmd += ["--max-concurrent", str(concurrency)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(out.stdout[-2000:] + out.stderr[-2000:])
    latest = max(Path(storage).glob("schedule_sensitivity-*/timings.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(latest.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--storage", default="outputs/bench-sweep")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()
    storage = str((ROOT / args.storage).resolve())
    tracking = f"sqlite:///{Path(storage).resolve()}/mlflow.db"
    Path(storage).mkdir(parents=True, exist_ok=True)
    extra = [x for o in args.overrides for x in ("--set", o)]
    results = {}
    for concurrency in (1, 2):
        t = sweep(storage, tracking, args.steps, concurrency, extra)
        trials = 4
        results[f"concurrency_{concurrency}"] = {
            "stage2_phase_s": t["stage2_trials_s"],
            "trials_per_hour": trials * 3600 / t["stage2_trials_s"],
            "ray_overhead_per_trial_s": t.get("ray_overhead_per_trial_s"),
            "ray_overhead_share_of_trial_time": t.get("ray_overhead_share_of_trial_time"),
            "stage1_phase_s": t["stage1_s"],
        }
    results["speedup_2_over_1"] = (results["concurrency_2"]["trials_per_hour"]
                                   / results["concurrency_1"]["trials_per_hour"])
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
