"""Ray Train's fixed overhead per training, and its share of the CPU default training's wall time.

Runs configs/triage-tiny.yaml once under Ray Train (1 worker) and reads the worker's own wall-clock
marks (metrics.json timings.started_at / finished_at) against the driver's: start overhead = fit()
called -> the worker begins the job (worker group up, imports); end overhead = the worker finished ->
fit() returned (final checkpoint upload, teardown, copy out of storage). With --in-process it also
runs the same config without Ray, for the end-to-end comparison.

    python bench/bench_ray.py [--in-process] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/triage-tiny.yaml")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--in-process", action="store_true", help="also time the same training without Ray")
    args = ap.parse_args()

    import ray

    from r2d.config import load_config
    from r2d.run.distributed import ensure_ray
    from r2d.run.runner import train
    from r2d.train.loop import run

    out = Path(tempfile.mkdtemp(prefix="r2d-bench-ray-"))
    overrides = [f"model.cache_dir={out / 'cache'}", f"resources.storage_path={out / 'storage'}",
                 "resources.cpus_per_worker=2", *args.overrides]
    cfg = load_config(args.config, overrides)
    result = {}
    if args.in_process:
        t = time.time()
        run(cfg, out / "in-process")
        result["in_process_wall_s"] = time.time() - t
        # the Ray run below then reuses this Stage 1 (same hash): train it again for a like-for-like run
        cfg = load_config(args.config, overrides + [f"stage1.cache_dir={out / 'stage1-ray'}"])
    t = time.time()
    os.environ.setdefault("R2D_RAY_NUM_CPUS", "2")
    ensure_ray(cfg)  # the local Ray a user's `r2d train --ray` gets (LOCAL_TRAIN_ENV included)
    result["ray_init_s"] = time.time() - t
    t0 = time.time()
    summary = train(cfg, out / "ray", on_ray=True)
    t1 = time.time()
    timings = summary["timings"]
    start = timings["started_at"] - t0
    end = t1 - timings["finished_at"]
    result.update({
        "fit_wall_s": t1 - t0,
        "worker_job_s": timings["total_s"],
        "start_overhead_s": start,
        "end_overhead_s": end,
        "overhead_s": start + end,
        "overhead_share_of_fit": (start + end) / (t1 - t0),
        "stage1_s": timings.get("stage1_s"),
        "stage2_s": timings.get("stage2_s"),
        "evaluate_s": timings.get("evaluate_s"),
        "test_macro_f1": summary["splits"]["test"]["macro_f1"],
    })
    ray.shutdown()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
