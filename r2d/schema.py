"""The run-directory and predictions-file format: the one contract between `r2d` and `analysis/`.

Pure Python (no torch, no pandas): `analysis/` imports this module and nothing else from `r2d`.

A run directory (written by `r2d train --out DIR`, and uploaded as the artifacts of its MLflow run):

    DIR/run.json                  RunRecord below: what ran (variant, seed, schedule...) and its status
    DIR/config.yaml               the resolved config
    DIR/metrics.json              final metrics per split and the evaluation history
    DIR/predictions/{split}.csv   one row per example, PREDICTION_COLUMNS

In MLflow, the same files sit at the artifact root of the training's run (`run.json`,
`predictions/test.csv`, ...); a sweep's parent run carries the tag `r2d.sweep_id`, and so do its children.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

RUN_FILE = "run.json"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
PREDICTIONS_DIR = "predictions"


def predictions_path(split: str) -> str:
    """Relative path of a split's predictions file inside a run directory (or MLflow artifacts)."""
    return f"{PREDICTIONS_DIR}/{split}.csv"


# Column -> meaning. Label columns are normalised (strip, lower case). `pred_label` keeps an output
# outside the label set verbatim; `label_valid` is 0 for it (its own error class, never mapped).
PREDICTION_COLUMNS: dict[str, str] = {
    "id": "example id (string), the key for pairing systems",
    "gold_label": "gold label",
    "pred_label": "predicted label (verbatim if outside the label set)",
    "label_valid": "1 if pred_label is in the label set, else 0",
    "correct": "1 if pred_label == gold_label, else 0",
    "gold_rationale": "reference rationale",
    "pred_rationale": "rationale generated conditioned on the predicted label",
    "bleu": "sentence-level sacreBLEU of pred_rationale vs gold_rationale (0-100)",
    "bleu_paper": "the paper's BLEU: NLTK sentence_bleu, method4, lower-cased word_tokenize tokens (0-1)",
    "bertscore_p": "BERTScore precision (raw, model in run.json metrics signature)",
    "bertscore_r": "BERTScore recall",
    "bertscore_f1": "BERTScore F1",
    "consistent": "1 if the rationale alone, through the predict prompt, gives back pred_label",
    "judge": "LLM-as-a-judge score in [0, 1]; empty when the judge was not configured",
}

# Per-example metrics that analysis can average, bootstrap and compare. Corpus-level metrics
# (macro_f1, corpus_bleu) are recomputed from the label / rationale columns on each resample.
PER_EXAMPLE_METRICS = ("correct", "bleu", "bleu_paper", "bertscore_f1", "consistent", "judge")
CORPUS_METRICS = ("macro_f1", "corpus_bleu")

# run.json keys. `system` lists the settings that define a system (what a sweep varies); analysis
# groups runs by them, and matches runs of a system by `seed`.
RUN_KEYS = (
    "schema_version",
    "run_name",
    "status",  # "FINISHED", "FAILED" or "KILLED" (with "error")
    "variant",
    "dataset",
    "rationale_source",
    "seed",
    "schedule",  # {"shape", "warmup", "transition", "cap", "steepness", "alpha"}
    "system",  # {setting: value} that describe the system, e.g. {"variant": "r2d", "shape": "linear", ...}
    "system_id",  # fingerprint of every resolved setting that can change a result (all but seed and bookkeeping)
    "settings",  # those settings, flat ({"stage2.schedule.cap": 0.9, ...}): what system_id fingerprints
    "labels",  # the closed label set, in order
    "splits",  # splits with a predictions file
    "git_commit",
    "torch_threads",  # the torch intra-op thread count the training ran with (resources.torch_threads)
    "environment",  # {python, torch, transformers, ..., git_commit, cpu_model, ISA env vars set} (r2d.train.record)
    "sweep_id",
    "mlflow_run_id",
    "error",  # only when status is not FINISHED
    "health",  # {flag: bool}: collapsed, still_improving, diverged, early_stopped, failed (r2d/scoring/health.py)
)
