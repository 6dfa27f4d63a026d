"""Evaluation (DESIGN section 5): predict the label, then the rationale conditioned on the *predicted* label.

Decoding is sharded over workers (`Runtime.map_shards`) and gathered; metrics are computed once on
the whole split. Also the dev-set numbers the trainer selects on (`dev_loss`, `dev_macro_f1`).
Writes a run directory's predictions files, config.yaml, metrics.json and run.json
(format: r2d/schema.py); run.json is written last, so a run directory is complete once it says FINISHED.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from r2d import schema
from r2d.config import Config, dump_config
from r2d.model import prompts
from r2d.model.decode import LabelScorer, encode, generate_text, predict_labels, unwrap
from r2d.scoring.judge import JudgeClient
from r2d.scoring.metrics import LabelMetrics, RationaleBERTScore, RationaleBLEU, RationalePaperBLEU
from r2d.train.batches import Batch, TokenizedSplit, pad
from r2d.train.objectives import per_example_ce
from r2d.train.prepare import Prepared
from r2d.train.record import write_run_record
from r2d.train.runtime import Runtime
from r2d.variants import VARIANTS


# --------------------------------------------------------------------------- labels and dev selection
@torch.no_grad()
def predict_split_labels(model, tokenizer, split: TokenizedSplit, labels: list[str], cfg: Config,
                         runtime: Runtime) -> list[tuple[str, str, bool, float]]:
    """(id, predicted label, valid, confidence) for the whole split, in split order."""
    model.eval()
    scorer = LabelScorer(tokenizer, labels, runtime.device)

    def predict(rows: list[int]) -> list[tuple[str, str, bool, float]]:
        ids, mask = pad([split.predict[i] for i in rows], tokenizer.pad_token_id, runtime.device)
        with runtime.autocast(cfg.resources.precision):
            preds = predict_labels(model, tokenizer, scorer, ids, mask, cfg.evaluation.label_decoding)
        return [(split.ids[i], p, v, c) for i, p, v, c in zip(rows, preds.labels, preds.valid, preds.confidence)]

    return runtime.map_shards(len(split), cfg.evaluation.batch_size, predict)


def macro_f1(gold: list[str], pred: list[str], labels: list[str]) -> float:
    return LabelMetrics(labels).score(gold, pred)["macro_f1"]


def dev_macro_f1(model, tokenizer, split: TokenizedSplit, labels: list[str], cfg: Config, runtime: Runtime) -> float:
    """Stage 2 model selection: macro-F1 of the predicted labels on dev."""
    preds = predict_split_labels(model, tokenizer, split, labels, cfg, runtime)
    return macro_f1([labels[i] for i in split.label_index], [p[1] for p in preds], labels)


@torch.no_grad()
def dev_loss(model, split: TokenizedSplit, pad_id: int, cfg: Config, runtime: Runtime) -> float:
    """Stage 1 model selection: mean per-example explain loss on dev, over all workers."""
    model.eval()

    def losses(rows: list[int]) -> list[float]:
        batch = Batch(split, rows, pad_id, runtime.device)
        ids, mask, targets = batch.explain()
        with runtime.autocast(cfg.resources.precision):
            out = unwrap(model)(input_ids=ids, attention_mask=mask, labels=targets)
        return per_example_ce(out.logits, targets).tolist()

    return float(np.mean(runtime.map_shards(len(split), cfg.evaluation.batch_size, losses)))


# --------------------------------------------------------------------------- one split
@torch.no_grad()
def _generate(model, tokenizer, texts: list[str], cfg: Config, runtime: Runtime, max_new: int) -> list[str]:
    def generate(rows: list[int]) -> list[str]:
        enc = encode(tokenizer, [texts[i] for i in rows], cfg.data.max_input_tokens, runtime.device)
        return generate_text(model, enc["input_ids"], enc["attention_mask"], tokenizer, max_new)

    return runtime.map_shards(len(texts), cfg.evaluation.batch_size, generate)


@torch.no_grad()
def _labels_of_texts(model, tokenizer, texts: list[str], labels: list[str], cfg: Config, runtime: Runtime) -> list[str]:
    """Label predicted from arbitrary text through the predict prompt (for consistency)."""
    scorer = LabelScorer(tokenizer, labels, runtime.device)

    def predict(rows: list[int]) -> list[str]:
        enc = encode(tokenizer, [prompts.predict(texts[i]) for i in rows], cfg.data.max_input_tokens, runtime.device)
        return predict_labels(model, tokenizer, scorer, enc["input_ids"], enc["attention_mask"],
                              cfg.evaluation.label_decoding).labels

    return runtime.map_shards(len(texts), cfg.evaluation.batch_size, predict)


def _rationales(prep: Prepared, model, split_name: str, pred_labels: list[str], runtime: Runtime) -> list[str]:
    """The generated rationale per example: none (label_only), on "explain: x" (multitask), or given
    the predicted label (joint)."""
    cfg, examples = prep.cfg, prep.ds.split(split_name)
    objective = VARIANTS[cfg.variant].objective
    if objective == "label_only":
        return [""] * len(examples)
    if objective == "multitask":
        texts = [prompts.explain(e.input) for e in examples]
    else:
        texts = [prompts.explain_given(lab, e.input) for lab, e in zip(pred_labels, examples)]
    return _generate(model, prep.tokenizer, texts, cfg, runtime, cfg.evaluation.max_rationale_tokens)


def _rationale_metrics(prep: Prepared, model, rationales: list[str], refs: list[str], pred_labels: list[str],
                       runtime: Runtime, metrics: dict, signatures: dict, notes: list) -> dict[str, list]:
    """Per-example rationale columns; fills the split's metrics, signatures and notes."""
    cfg, n = prep.cfg, len(refs)
    nan = [math.nan] * n
    columns: dict[str, list] = {"bleu": nan, "bleu_paper": nan, "bertscore_p": nan, "bertscore_r": nan,
                                "bertscore_f1": nan, "consistent": nan, "judge": nan}
    if VARIANTS[cfg.variant].objective == "label_only":
        return columns
    if cfg.evaluation.consistency:
        back = _labels_of_texts(model, prep.tokenizer, rationales, prep.ds.labels, cfg, runtime)
        columns["consistent"] = [float(b == p) for b, p in zip(back, pred_labels)]
        metrics["consistency"] = float(np.mean(columns["consistent"]))
    if not runtime.is_main:
        return columns
    bleu = RationaleBLEU()
    columns["bleu"], metrics["corpus_bleu"] = bleu.score(rationales, refs)
    metrics["bleu"] = float(np.mean(columns["bleu"]))
    signatures["bleu"] = bleu.signature()
    paper_bleu = RationalePaperBLEU()  # the authors' BLEU, comparable with the paper's numbers
    columns["bleu_paper"], metrics["bleu_paper"] = paper_bleu.score(rationales, refs)
    signatures["bleu_paper"] = paper_bleu.signature()
    if cfg.evaluation.bertscore.enabled:
        bert = RationaleBERTScore(cfg.evaluation.bertscore)
        columns.update(bert.score(rationales, refs))
        for k in ("bertscore_p", "bertscore_r", "bertscore_f1"):
            metrics[k] = float(np.mean(columns[k]))
        signatures["bertscore"] = bert.signature()
    judge = JudgeClient(cfg.evaluation.judge)
    if judge.enabled:
        columns["judge"] = judge.score(rationales, refs, pred_labels)
        metrics["judge"] = float(np.nanmean(columns["judge"]))
        signatures["judge"] = judge.signature()
    else:
        notes.append(f"LLM judge skipped: {judge.skip_reason}")
    return columns


def evaluate_split(prep: Prepared, model, split_name: str, runtime: Runtime) -> tuple[list[dict], dict[str, Any]]:
    """Per-example rows and split metrics. Every worker decodes its shard; metrics on the whole."""
    labels, examples = prep.ds.labels, prep.ds.split(split_name)
    model.eval()
    preds = predict_split_labels(model, prep.tokenizer, prep.splits[split_name], labels, prep.cfg, runtime)
    pred_labels = [p[1] for p in preds]
    rationales = _rationales(prep, model, split_name, pred_labels, runtime)
    gold = [e.label for e in examples]
    refs = [e.rationale for e in examples]
    label_metrics = LabelMetrics(labels)
    metrics: dict[str, Any] = dict(label_metrics.score(gold, pred_labels))
    signatures, notes = {"labels": label_metrics.signature()}, []
    columns = _rationale_metrics(prep, model, rationales, refs, pred_labels, runtime, metrics, signatures, notes)
    rows = [{"id": e.id, "gold_label": e.label, "pred_label": pred_labels[i],
             "label_valid": int(preds[i][2]), "correct": int(pred_labels[i] == e.label),
             "gold_rationale": e.rationale, "pred_rationale": rationales[i],
             **{k: columns[k][i] for k in columns}}
            for i, e in enumerate(examples)]
    metrics["n"] = len(examples)
    return rows, {"metrics": metrics, "signatures": signatures, "notes": notes}


# --------------------------------------------------------------------------- the run directory
def evaluate(prep: Prepared, model, runtime: Runtime) -> tuple[dict[str, list[dict]], dict[str, Any]]:
    """Every configured split: (rows per split, the summary's splits / signatures / notes)."""
    rows_by_split, results = {}, {}
    for split in prep.cfg.evaluation.splits:
        rows_by_split[split], results[split] = evaluate_split(prep, model, split, runtime)
    summary = {
        "splits": {s: r["metrics"] for s, r in results.items()},
        "signatures": next(iter(results.values()))["signatures"] if results else {},
        "notes": sorted({n for r in results.values() for n in r["notes"]}),
    }
    return rows_by_split, summary


def write_predictions(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(schema.PREDICTION_COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
    tmp.rename(path)


def write_run_dir(out_dir: Path, cfg: Config, labels: list[str], rows_by_split: dict[str, list[dict]],
                  summary: dict[str, Any], **record: Any) -> None:
    """Predictions, config.yaml, metrics.json, then run.json (FINISHED) last."""
    for split, rows in rows_by_split.items():
        write_predictions(rows, out_dir / schema.predictions_path(split))
    dump_config(cfg, out_dir / schema.CONFIG_FILE)
    (out_dir / schema.METRICS_FILE).write_text(json.dumps(summary, indent=1))
    write_run_record(cfg, out_dir, status="FINISHED", splits=list(rows_by_split), labels=labels, **record)
