"""Trivial baselines for a run's test split, to read its numbers against.

  majority class   every example gets the most frequent training label
  common rationale every example gets the most frequent training rationale (corpus and mean
                   sentence BLEU, sacreBLEU as in r2d.metrics)

    python bench/baselines.py --run outputs/triage-tiny     # a run directory from `r2d train`
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from r2d.config import load_config
from r2d.data import load_dataset
from r2d.scoring.metrics import LabelMetrics, RationaleBLEU


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="run directory (its config.yaml names the data)")
    ap.add_argument("--split", default="test")
    args = ap.parse_args()
    run = Path(args.run)
    cfg = load_config(run / "config.yaml")
    ds = load_dataset(cfg.data)
    rows = ds.split(args.split)
    majority = Counter(e.label for e in ds.train).most_common(1)[0][0]
    common = Counter(e.rationale for e in ds.train).most_common(1)[0][0]
    labels = LabelMetrics(ds.labels).score([e.label for e in rows], [majority] * len(rows))
    per_example, corpus = RationaleBLEU().score([common] * len(rows), [e.rationale for e in rows])
    run_metrics = json.loads((run / "metrics.json").read_text())["splits"].get(args.split, {})
    out = {
        "split": args.split,
        "n": len(rows),
        "majority_class": {"label": majority, "accuracy": labels["accuracy"], "macro_f1": labels["macro_f1"]},
        "common_rationale": {"corpus_bleu": corpus, "mean_sentence_bleu": sum(per_example) / len(per_example)},
        "run": {k: run_metrics.get(k) for k in ("accuracy", "macro_f1", "corpus_bleu", "bleu", "bertscore_f1",
                                                "consistency")},
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
