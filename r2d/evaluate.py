"""Evaluation (DESIGN section 5): predict the label, then the rationale conditioned on the *predicted* label.

Writes a run directory's predictions files, metrics.json and run.json (format: r2d/schema.py).
Decoding is sharded over workers and gathered; metrics are computed once on the whole split.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import torch

from r2d import prompts, schema
from r2d.config import Config, dump_config
from r2d.decode import LabelScorer, encode, generate_text, predict_labels
from r2d.judge import JudgeClient
from r2d.metrics import LabelMetrics, RationaleBERTScore, RationaleBLEU
from r2d.variants import get_variant


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def system_of(cfg: Config) -> dict[str, Any]:
    """The settings that identify a system for analysis: variant, schedule (when it has one), source."""
    system: dict[str, Any] = {"variant": cfg.variant}
    variant = get_variant(cfg.variant)
    if variant.objective == "joint" and not variant.overrides:  # r2d / r2d_no_stage1: schedule varies
        sch = cfg.stage2.schedule
        system.update(shape=sch.shape, transition=sch.transition, cap=sch.cap, warmup=sch.warmup)
        if sch.steepness is not None:
            system["steepness"] = sch.steepness
    system["rationale_source"] = cfg.data.rationale_source
    return system


@torch.no_grad()
def _generate_sharded(model, tokenizer, texts: list[str], cfg: Config, runtime, max_new: int) -> list[str]:
    mine = list(range(runtime.rank, len(texts), runtime.world_size))
    out = []
    bs = cfg.evaluation.batch_size
    for start in range(0, len(mine), bs):
        rows = mine[start : start + bs]
        enc = encode(tokenizer, [texts[i] for i in rows], cfg.data.max_input_tokens, runtime.device)
        out += list(zip(rows, generate_text(model, enc["input_ids"], enc["attention_mask"], tokenizer, max_new)))
    return [text for _, text in sorted(runtime.gather(out))]


@torch.no_grad()
def _labels_of_texts(model, tokenizer, texts: list[str], labels: list[str], cfg: Config, runtime) -> list[str]:
    """Label predicted from arbitrary text through the predict prompt (for consistency)."""
    scorer = LabelScorer(tokenizer, labels, runtime.device)
    mine = list(range(runtime.rank, len(texts), runtime.world_size))
    out = []
    bs = cfg.evaluation.batch_size
    for start in range(0, len(mine), bs):
        rows = mine[start : start + bs]
        enc = encode(tokenizer, [prompts.predict(texts[i]) for i in rows], cfg.data.max_input_tokens, runtime.device)
        preds = predict_labels(model, tokenizer, scorer, enc["input_ids"], enc["attention_mask"],
                               cfg.evaluation.label_decoding)
        out += list(zip(rows, preds.labels))
    return [label for _, label in sorted(runtime.gather(out))]


def evaluate_split(prep, model, split_name: str, runtime) -> tuple[list[dict], dict[str, Any]]:
    """Per-example rows and split metrics. Every worker decodes its shard; metrics on the whole."""
    from r2d.train import predict_split_labels

    cfg, tokenizer, labels = prep.cfg, prep.tokenizer, prep.ds.labels
    examples = prep.ds.split(split_name)
    model.eval()
    preds = predict_split_labels(model, tokenizer, prep.splits[split_name], labels, cfg, runtime)
    pred_labels = [p[1] for p in preds]
    objective = get_variant(cfg.variant).objective
    if objective == "label_only":
        rationales = [""] * len(examples)
    else:
        if objective == "multitask":
            texts = [prompts.explain(e.input) for e in examples]
        else:
            texts = [prompts.explain_given(lab, e.input) for lab, e in zip(pred_labels, examples)]
        rationales = _generate_sharded(model, tokenizer, texts, cfg, runtime, cfg.evaluation.max_rationale_tokens)

    gold = [e.label for e in examples]
    refs = [e.rationale for e in examples]
    label_metrics = LabelMetrics(labels)
    metrics: dict[str, Any] = dict(label_metrics.score(gold, pred_labels))
    nan = [math.nan] * len(examples)
    columns: dict[str, list] = {"bleu": nan, "bertscore_p": nan, "bertscore_r": nan, "bertscore_f1": nan,
                                "consistent": nan, "judge": nan}
    signatures = {"labels": label_metrics.signature()}
    notes = []
    if objective != "label_only":
        if cfg.evaluation.consistency:
            back = _labels_of_texts(model, tokenizer, rationales, labels, cfg, runtime)
            columns["consistent"] = [float(b == p) for b, p in zip(back, pred_labels)]
            metrics["consistency"] = float(np.mean(columns["consistent"]))
        if runtime.is_main:
            bleu = RationaleBLEU()
            columns["bleu"], metrics["corpus_bleu"] = bleu.score(rationales, refs)
            metrics["bleu"] = float(np.mean(columns["bleu"]))
            signatures["bleu"] = bleu.signature()
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
    rows = []
    for i, e in enumerate(examples):
        rows.append({
            "id": e.id, "gold_label": e.label, "pred_label": pred_labels[i],
            "label_valid": int(preds[i][2]), "correct": int(pred_labels[i] == e.label),
            "gold_rationale": e.rationale, "pred_rationale": rationales[i],
            **{k: columns[k][i] for k in columns},
        })
    metrics["n"] = len(examples)
    return rows, {"metrics": metrics, "signatures": signatures, "notes": notes}


def write_predictions(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(schema.PREDICTION_COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
    tmp.rename(path)


def evaluate_and_write(prep, model, out_dir: Path, runtime, extra: dict | None = None) -> dict[str, Any]:
    """Evaluate every configured split; rank 0 writes config, predictions, metrics.json, run.json."""
    cfg = prep.cfg
    results = {}
    for split in cfg.evaluation.splits:
        rows, res = evaluate_split(prep, model, split, runtime)
        results[split] = res
        if runtime.is_main:
            write_predictions(rows, out_dir / schema.predictions_path(split))
    summary = {
        "splits": {s: r["metrics"] for s, r in results.items()},
        "signatures": next(iter(results.values()))["signatures"] if results else {},
        "notes": sorted({n for r in results.values() for n in r["notes"]}),
        **(extra or {}),
    }
    if runtime.is_main:
        dump_config(cfg, out_dir / schema.CONFIG_FILE)
        (out_dir / schema.METRICS_FILE).write_text(json.dumps(summary, indent=1))
        write_run_record(cfg, out_dir, status="FINISHED", splits=list(results), labels=prep.ds.labels)
    return summary


def write_run_record(cfg: Config, out_dir: Path, status: str, splits: list[str], labels: list[str],
                     error: str | None = None, **more: Any) -> dict[str, Any]:
    sch = cfg.stage2.schedule
    record = {
        "schema_version": schema.SCHEMA_VERSION,
        "run_name": cfg.run_name or out_dir.name,
        "status": status,
        "variant": cfg.variant,
        "dataset": cfg.data.dataset,
        "rationale_source": cfg.data.rationale_source,
        "seed": cfg.seed,
        "schedule": {"shape": sch.shape, "warmup": sch.warmup, "transition": sch.transition, "cap": sch.cap,
                     "steepness": sch.steepness, "alpha": cfg.stage2.alpha},
        "system": system_of(cfg),
        "labels": labels,
        "splits": splits,
        "git_commit": git_commit(),
        "sweep_id": None,
        "mlflow_run_id": None,
        **more,
    }
    if error:
        record["error"] = error
    (Path(out_dir) / schema.RUN_FILE).write_text(json.dumps(record, indent=1))
    return record

