"""Where one sweep trial's time goes (README, "Where a trial's time goes").

    python bench/profile_trial.py [--config configs/triage-tiny-sweep.yaml] [--set KEY=VALUE ...]

Runs what a sweep trial runs, in this process, with the preset's thread count: phase 1 (Stage 1 into
a fresh store), then the Stage 2 trial through `r2d.run.runner.train` with MLflow on a sqlite store, as
the Tune trial process does. Each part is timed by wrapping the function that does it; the table
prints seconds and the share of the trial (Stage 1 is phase 1's cost, shown apart). Ray's own share
(trial start, reporting, teardown) is not here: the sweep measures it (timings.json).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

T_START = time.time()
import r2d.run.runner  # noqa: E402
import r2d.scoring.metrics  # noqa: E402
import r2d.train.evaluate  # noqa: E402  (after T_START: the imports are one of the timed parts)
import r2d.train.loop  # noqa: E402
from r2d.config import load_config  # noqa: E402
from r2d.run import tracking  # noqa: E402
from r2d.train.runtime import Runtime  # noqa: E402

T_IMPORTED = time.time()
TOP = [  # the trial's parts, one after another
    (tracking, "start_run", "MLflow: start run"),
    (r2d.train.loop, "prepare", "data + model set-up (tokenise, build)"),
    (r2d.train.loop, "_stage1", "Stage 1 load (from the store)"),
    (r2d.train.loop, "train_step", "Stage 2 steps"),
    (r2d.train.loop, "evaluate_and_select", "dev evaluations"),
    (r2d.train.loop, "checkpoint_and_report", "checkpoints + per-step metric logging"),
    (r2d.train.loop, "evaluate", "test evaluation"),
    (r2d.run.runner, "_log_run_dir", "MLflow: run directory + final metrics"),
    (tracking, "end_run", "MLflow: end run"),
]
INSIDE = [  # parts of the above (label scoring runs in dev and test evaluations)
    (r2d.train.evaluate, "predict_split_labels", "label scoring (dev and test)"),
    (r2d.train.evaluate, "_rationales", "test: rationale generation"),
    (r2d.train.evaluate, "_labels_of_texts", "test: consistency (labels of the rationales)"),
    (r2d.scoring.metrics.RationaleBERTScore, "score", "test: BERTScore"),
]
SPENT: dict[str, float] = defaultdict(float)
CALLS: dict[str, int] = defaultdict(int)


def timed(module, name: str, part: str) -> None:
    fn = getattr(module, name)

    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SPENT[part] += time.perf_counter() - t
            CALLS[part] += 1

    setattr(module, name, wrapper)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs/triage-tiny-sweep.yaml"))
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="r2d-profile-"))
    common = [f"stage1.cache_dir={tmp / 'store'}", f"tracking.tracking_uri=sqlite:///{tmp / 'mlflow.db'}",
              "tracking.experiment=profile", f"resources.storage_path={tmp / 'storage'}"] + args.overrides
    cfg = load_config(args.config, common + ["tracking.enabled=false"])
    t = time.time()
    r2d.train.loop.run(cfg, tmp / "stage1", Runtime(), stage1_only=True)  # phase 1: into the store
    stage1_s = time.time() - t

    for module, name, part in TOP + INSIDE:
        timed(module, name, part)
    cfg = load_config(args.config, common + ["tracking.enabled=true"])
    t = time.time()
    summary = r2d.run.runner.train(cfg, tmp / "trial", runtime=Runtime())
    trial_s = time.time() - t
    print(f"# profile: {args.config} {' '.join(args.overrides)}")
    print(f"Stage 2 steps run: {summary['stage2']['steps']}, best at {summary['stage2']['best_step']}; "
          f"test macro-F1 {summary['splits']['test']['macro_f1']:.3f}" if "splits" in summary else "")
    print("| part | seconds | share of the trial |\n|---|---|---|")
    print(f"| imports (torch, transformers, ray, mlflow, r2d) | {T_IMPORTED - T_START:.1f} | (once per process) |")
    print(f"| phase 1: Stage 1 trained into the store | {stage1_s:.1f} | (once per Stage 1, shared) |")
    for _, _, part in TOP:
        print(f"| {part} ({CALLS[part]} calls) | {SPENT[part]:.1f} | {SPENT[part] / trial_s:.1%} |")
    rest = trial_s - sum(SPENT[part] for _, _, part in TOP)
    print(f"| other (the loop, saving the model, the run directory) | {rest:.1f} | {rest / trial_s:.1%} |")
    print(f"| **trial, in process** | **{trial_s:.1f}** | 100% |")
    for _, _, part in INSIDE:
        print(f"| of which {part} ({CALLS[part]} calls) | {SPENT[part]:.1f} | {SPENT[part] / trial_s:.1%} |")

if __name__ == "__main__":
    main()
