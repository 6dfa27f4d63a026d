"""One in-process training of the CPU sweep preset with overrides, and the numbers that say whether
it learned: test accuracy / macro-F1 / corpus BLEU, best step, health, the most common rationale.

    python bench/recipe_probe.py NAME [KEY=VALUE ...]      # e.g. stage2.schedule.transition=0.3 stage2.lr=1e-3

The runs behind bench/HISTORY.md's "Why trials collapsed" (each one process, torch_threads 1, two at a time on
2 cores; the Stage 1 store under outputs/recipe-probe/cache is shared, so a Stage 2 variation after
the first run costs only Stage 2). BERTScore is off: it is not what these runs compare.
Appends one JSON line per run to outputs/recipe-probe/results.jsonl.
"""

from __future__ import annotations

import collections
import csv
import json
import sys
import time
from pathlib import Path

from r2d.config import load_config
from r2d.train.loop import run

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "outputs" / "recipe-probe"
KEEP = ("accuracy", "macro_f1", "corpus_bleu", "bleu", "consistency")


def main(name: str, overrides: list[str]) -> dict:
    base = ["tracking.enabled=false", f"stage1.cache_dir={OUT / 'cache'}", "resources.num_workers=1",
            "evaluation.bertscore.enabled=false"]
    cfg = load_config(str(ROOT / "configs" / "triage-tiny-sweep.yaml"), base + overrides)
    t = time.time()
    summary = run(cfg, OUT / "runs" / name)
    with open(OUT / "runs" / name / "predictions" / "test.csv") as f:
        rationales = [row["pred_rationale"] for row in csv.DictReader(f)]
    top, count = collections.Counter(rationales).most_common(1)[0]
    result = {"name": name, "overrides": overrides, "seconds": round(time.time() - t),
              "test": {k: round(v, 4) for k, v in summary["splits"]["test"].items() if k in KEEP},
              "best_step": summary["stage2"]["best_step"], "steps": summary["stage2"]["steps"],
              "health": [k for k, v in summary["health"].items() if v], "most_common_rationale": [top[:40], count]}
    with open(OUT / "results.jsonl", "a") as f:
        f.write(json.dumps(result) + "\n")
    return result


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python bench/recipe_probe.py NAME [KEY=VALUE ...]")
    print(json.dumps(main(sys.argv[1], sys.argv[2:])))
