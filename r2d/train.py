"""The training loop: Stage 1 (rationales), Stage 2 (label + rationale with scheduled sampling).

Read top to bottom: `run()` is the whole job. A variant only changes settings (r2d/variants.py);
a schedule is a function of the step (r2d/schedules.py). What differs between running in this
process and running as a Ray Train worker sits behind `Runtime`: the device, the model wrapper
(DDP), gathering evaluation shards, and where checkpoints and metrics are reported.

Stage 2 loss per batch: L = a(t) * L_pred + (1 - a(t)) * L_expl. Each example's rationale is
conditioned on its gold label or, with probability p(t), on the label the model predicts for it
right now (no gradient). Losses are per-example token means averaged over examples, so a global
batch split over N workers gives the same gradient as one worker.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from r2d.batches import BatchOrder, TokenizedSplit, pad, pad_targets, step_uniforms, tokenize_split
from r2d.config import Config, StageConfig
from r2d.data import Dataset, load_dataset
from r2d.decode import LabelScorer, generate_text, unwrap
from r2d.modeling import load_model, tokenizer_corpus
from r2d.schedules import ConfidenceGate, Schedule, alpha_at
from r2d.variants import get_variant, resolve


class NonFiniteLoss(FloatingPointError):
    """Training produced a NaN/inf loss: the run fails (FAILED in MLflow) with this reason."""


# --------------------------------------------------------------------------- runtime seam
@dataclass
class Runtime:
    """Where the loop runs. This in-process default is one worker; r2d.distributed subclasses it."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    rank: int = 0
    world_size: int = 1
    checkpoint_dir: Path | None = None  # where local checkpoints go (None: none)
    resume_from: Path | None = None  # a checkpoint directory to continue from
    on_report: Callable[[int, list[tuple[int, dict]]], None] | None = None  # rank 0: tracking

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, module: nn.Module) -> nn.Module:
        return module

    def gather(self, items: list) -> list:
        """Concatenate a list from every worker, in rank order (identity with one worker)."""
        return items

    def barrier(self) -> None:
        pass

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Average per-worker numbers over workers (identity with one worker)."""
        return values

    def describe(self) -> dict[str, Any]:
        """Where the run ran, recorded in metrics.json."""
        return {"world_size": self.world_size, "device": str(self.device)}

    def report(self, step: int, metrics: list[tuple[int, dict]], checkpoint: Path | None) -> None:
        """Persist a checkpoint (if any), then hand the metrics since the last report to tracking."""
        if checkpoint is not None and self.checkpoint_dir is not None:
            target = self.checkpoint_dir / "latest"
            tmp = self.checkpoint_dir / "latest.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(checkpoint, tmp)
            shutil.rmtree(target, ignore_errors=True)
            tmp.rename(target)
        if self.on_report is not None and self.is_main:
            self.on_report(step, metrics)


# --------------------------------------------------------------------------- model with tasks
def per_example_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Token-mean cross-entropy per example (targets use -100 for padding)."""
    ce = nn.functional.cross_entropy(logits.float().transpose(1, 2), targets, ignore_index=-100, reduction="none")
    counts = (targets != -100).sum(-1).clamp(min=1)
    return ce.sum(-1) / counts


class TaskModel(nn.Module):
    """One forward for all of a step's tasks, so DDP sees a single forward per backward.

    `choose_explain` (Stage 2 with scheduled sampling) is called between the predict pass and the
    explain pass with the predict pass's encoder states, and returns the explain batch to use.
    """

    wraps_seq2seq = True  # r2d.decode.unwrap looks through it

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, predict=None, explain=None, choose_explain=None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if predict is not None:
            ids, mask, targets = predict
            res = self.model(input_ids=ids, attention_mask=mask, labels=targets)
            out["pred"] = per_example_ce(res.logits, targets)
            if choose_explain is not None:
                explain = choose_explain(res.encoder_last_hidden_state, ids, mask)
        if explain is not None:
            ids, mask, targets = explain
            res = self.model(input_ids=ids, attention_mask=mask, labels=targets)
            out["expl"] = per_example_ce(res.logits, targets)
        return out


# --------------------------------------------------------------------------- helpers
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def stage1_key(cfg: Config) -> str:
    """Identity of a Stage 1 result: (model, data, rationale source, Stage 1 settings, seed)."""
    picked = {
        "model": cfg.model.model_dump(exclude={"cache_dir"}),
        "data": cfg.data.model_dump(),
        "stage1": cfg.stage1.model_dump(exclude={"cache_dir", "enabled"}),
        "seed": cfg.seed,
    }
    return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()[:16]


def stage1_location(cfg: Config) -> str:
    """Where a Stage 1 result is kept: a local path or a URI (s3://, gs://) on the shared storage."""
    root = cfg.stage1.cache_dir or f"{cfg.resources.storage_path.rstrip('/')}/stage1"
    if "://" not in root:
        root = os.path.abspath(root)
    return f"{root.rstrip('/')}/{stage1_key(cfg)}"


class Stage1Store:
    """Stage 1 results by hash, through pyarrow.fs (as Ray's own storage), so that a local disk and
    S3/GCS behave alike. A result is complete once its DONE marker exists; DONE is written last."""

    def __init__(self, location: str):
        import pyarrow.fs as pafs

        self.location = location
        self.fs, self.path = pafs.FileSystem.from_uri(location) if "://" in location else (
            pafs.LocalFileSystem(), location)

    def done(self) -> bool:
        import pyarrow.fs as pafs

        return self.fs.get_file_info(f"{self.path}/DONE").type != pafs.FileType.NotFound

    def info(self) -> dict:
        with self.fs.open_input_stream(f"{self.path}/DONE") as f:
            return json.loads(f.read().decode())

    def fetch(self, local_dir: Path) -> Path:
        import pyarrow.fs as pafs

        local_dir.mkdir(parents=True, exist_ok=True)
        pafs.copy_files(f"{self.path}/model", str(local_dir), source_filesystem=self.fs,
                        destination_filesystem=pafs.LocalFileSystem())
        return local_dir

    def publish(self, local_model_dir: Path, info: dict) -> None:
        import pyarrow.fs as pafs

        # Concurrent publishers of one key write identical files; readers wait for DONE.
        self.fs.create_dir(f"{self.path}/model", recursive=True)
        pafs.copy_files(str(local_model_dir), f"{self.path}/model", source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=self.fs)
        with self.fs.open_output_stream(f"{self.path}/DONE") as f:
            f.write(json.dumps(info, indent=1).encode())


def _autocast(cfg: Config, device: torch.device):
    if device.type == "cuda" and cfg.resources.precision != "fp32":
        dtype = torch.bfloat16 if cfg.resources.precision == "bf16" else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast("cpu", enabled=False)  # CPU runs stay fp32


@dataclass
class Batch:
    """The tensors of one (micro-)batch, built from row indices of a TokenizedSplit."""

    split: TokenizedSplit
    rows: list[int]
    pad_id: int
    device: torch.device

    def inputs(self, field_rows: list[list[int]]):
        return pad([field_rows[i] for i in self.rows], self.pad_id, self.device)

    def targets(self, field_rows: list[list[int]]) -> torch.Tensor:
        return pad_targets([field_rows[i] for i in self.rows], self.pad_id, self.device)


def save_weights(model: nn.Module, directory: Path) -> None:
    """Weights only, on this worker's disk. (transformers' save_pretrained writes on rank 0 only
    once torch.distributed is up, so it cannot keep a per-worker copy.)"""
    from safetensors.torch import save_model

    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    save_model(unwrap(model), str(directory / "model.safetensors"))


def save_checkpoint(path: Path, model, state: dict) -> None:
    path.mkdir(parents=True, exist_ok=True)
    unwrap(model).save_pretrained(str(path / "model"))
    torch.save(state, path / "state.pt")


# --------------------------------------------------------------------------- evaluation of labels
@torch.no_grad()
def predict_split_labels(
    model, tokenizer, split: TokenizedSplit, labels: list[str], cfg: Config, runtime: Runtime
) -> list[tuple[str, str, bool, float]]:
    """(id, predicted label, valid, confidence) for the whole split: each worker a shard, gathered."""
    from r2d.decode import predict_labels

    model.eval()
    scorer = LabelScorer(tokenizer, labels, runtime.device)
    mine = list(range(runtime.rank, len(split), runtime.world_size))
    out = []
    bs = cfg.evaluation.batch_size
    for start in range(0, len(mine), bs):
        rows = mine[start : start + bs]
        ids, mask = pad([split.predict[i] for i in rows], tokenizer.pad_token_id, runtime.device)
        with _autocast(cfg, runtime.device):
            preds = predict_labels(model, tokenizer, scorer, ids, mask, cfg.evaluation.label_decoding)
        out += [(split.ids[i], p, v, c) for i, p, v, c in zip(rows, preds.labels, preds.valid, preds.confidence)]
    gathered = runtime.gather(out)
    order = {ex_id: i for i, ex_id in enumerate(split.ids)}
    return sorted(gathered, key=lambda r: order[r[0]])


def macro_f1(gold: list[str], pred: list[str], labels: list[str]) -> float:
    from r2d.metrics import LabelMetrics

    return LabelMetrics(labels).score(gold, pred)["macro_f1"]


@torch.no_grad()
def dev_loss(model, split: TokenizedSplit, pad_id: int, cfg: Config, runtime: Runtime) -> float:
    """Mean per-example explain loss on dev (Stage 1 model selection), over all workers."""
    model.eval()
    mine = list(range(runtime.rank, len(split), runtime.world_size))
    losses = []
    for start in range(0, len(mine), cfg.evaluation.batch_size):
        batch = Batch(split, mine[start : start + cfg.evaluation.batch_size], pad_id, runtime.device)
        ids, mask = batch.inputs(split.explain)
        with _autocast(cfg, runtime.device):
            out = unwrap(model)(input_ids=ids, attention_mask=mask, labels=batch.targets(split.rationale_targets))
        losses += per_example_ce(out.logits, batch.targets(split.rationale_targets)).tolist()
    allx = runtime.gather(losses)
    return float(np.mean(allx))


# --------------------------------------------------------------------------- one stage
@dataclass
class StageResult:
    best_score: float
    best_step: int
    steps_run: int
    stopped_early: bool
    best_model_dir: Path


def train_stage(
    stage: int,
    model: nn.Module,
    tokenizer,
    ds: Dataset,
    train_split: TokenizedSplit,
    dev_split: TokenizedSplit,
    cfg: Config,
    runtime: Runtime,
    work_dir: Path,
    resume_state: dict | None,
) -> StageResult:
    """Run Stage 1 (explain) or Stage 2 (per the variant's objective) to its best checkpoint."""
    scfg: StageConfig = cfg.stage1 if stage == 1 else cfg.stage2
    objective = "explain" if stage == 1 else get_variant(cfg.variant).objective
    pad_id = tokenizer.pad_token_id
    device = runtime.device
    labels = ds.labels
    if scfg.batch_size % (runtime.world_size * scfg.grad_accum):
        raise ValueError(
            f"stage{stage}.batch_size={scfg.batch_size} must divide by workers x grad_accum "
            f"({runtime.world_size} x {scfg.grad_accum})"
        )

    task_model = runtime.wrap(TaskModel(model))
    optimizer = torch.optim.AdamW(model.parameters(), lr=scfg.lr, weight_decay=scfg.weight_decay)
    lr_schedule = get_linear_schedule_with_warmup(optimizer, 0, scfg.max_steps)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and cfg.resources.precision == "fp16")
    order = BatchOrder(len(train_split), scfg.batch_size, cfg.seed + 1000 * stage)

    s2 = cfg.stage2
    schedule = Schedule.from_config(s2.schedule, s2.max_steps)
    gate = ConfidenceGate(s2.schedule.tau_reset_steps, s2.schedule.confidence_temperature)
    alpha_warmup_steps = s2.alpha_warmup * s2.max_steps
    patience_from = schedule.warmup_steps + schedule.transition_steps if stage == 2 else 0
    scorer = LabelScorer(tokenizer, labels, device)
    higher_is_better = stage == 2  # Stage 2: dev macro-F1; Stage 1: dev loss
    best_dir = work_dir / f"stage{stage}_best"

    start_step, best, best_step, bad_evals = 0, -math.inf if higher_is_better else math.inf, -1, 0
    if resume_state is not None:
        optimizer.load_state_dict(resume_state["optimizer"])
        lr_schedule.load_state_dict(resume_state["lr_schedule"])
        scaler.load_state_dict(resume_state["scaler"])
        gate.load_state_dict(resume_state["gate"])
        torch.set_rng_state(resume_state["torch_rng"])
        start_step = resume_state["step"] + 1
        best, best_step, bad_evals = resume_state["best"], resume_state["best_step"], resume_state["bad_evals"]
        if resume_state.get("best_model") is not None:
            shutil.rmtree(best_dir, ignore_errors=True)
            shutil.copytree(resume_state["best_model"], best_dir)

    pending: list[tuple[int, dict]] = []  # metrics since the last report (flushed with checkpoints)
    stopped_early = False
    step = start_step - 1
    bar = tqdm(range(start_step, scfg.max_steps), desc=f"stage {stage}", leave=False,
               disable=None if runtime.is_main else True)  # None: off when stderr is not a terminal
    for step in bar:
        task_model.train()
        a = alpha_at(step, s2.alpha, alpha_warmup_steps) if stage == 2 else 0.0
        p = schedule(step) if (stage == 2 and objective == "joint") else 0.0
        global_rows = order.global_batch(step)
        my_rows = order.shard(step, runtime.rank, runtime.world_size)
        uniforms = step_uniforms(cfg.seed, step, len(global_rows))
        per_rank = len(my_rows)
        my_uniforms = uniforms[runtime.rank * per_rank : (runtime.rank + 1) * per_rank]
        micro = per_rank // scfg.grad_accum
        stats = {"loss": 0.0, "loss_pred": 0.0, "loss_expl": 0.0, "used_predicted": 0.0}

        for m in range(scfg.grad_accum):
            rows = my_rows[m * micro : (m + 1) * micro]
            draws = my_uniforms[m * micro : (m + 1) * micro]
            batch = Batch(train_split, rows, pad_id, device)
            chosen: list[int] = []

            def choose_explain(enc_states, ids, mask, batch=batch, draws=draws, chosen=chosen, p=p, step=step, m=m):
                # Scheduled sampling: per example, the predicted label with probability p(t).
                gold = [train_split.label_index[i] for i in batch.rows]
                use = [u < p for u in draws]
                if any(use):
                    if s2.label_decoding == "score":
                        best_idx, conf = scorer(task_model, enc_states, mask)
                        pred = best_idx.tolist()
                    else:  # the authors' way: greedy generation, outside-the-set kept as gold
                        texts = generate_text(task_model, ids, mask, tokenizer, scorer.label_ids.shape[1] + 2)
                        pred = [labels.index(t.strip().lower()) if t.strip().lower() in labels else -1 for t in texts]
                        conf = scorer(task_model, enc_states, mask)[1]
                    if s2.schedule.shape == "confidence_adaptive":
                        accept = gate.accept_probability(conf.tolist(), step)
                        gen = np.random.default_rng([cfg.seed, 104729, step, m, runtime.rank])
                        use = [u and gen.random() < q for u, q in zip(use, accept)]
                    label_idx = [pr if (u and pr >= 0) else g for u, pr, g in zip(use, pred, gold)]
                else:
                    label_idx = gold
                chosen.extend(int(u) for u, li, g in zip(use, label_idx, gold))
                given = [train_split.explain_given[k][i] for k, i in zip(label_idx, batch.rows)]
                e_ids, e_mask = pad(given, pad_id, device)
                return e_ids, e_mask, batch.targets(train_split.rationale_targets)

            predict = (*batch.inputs(train_split.predict), batch.targets(train_split.label_targets))
            explain = (*batch.inputs(train_split.explain), batch.targets(train_split.rationale_targets))
            with _autocast(cfg, device):
                if objective == "explain":  # Stage 1
                    out = task_model(explain=explain)
                    loss = out["expl"].mean()
                elif objective == "label_only":  # sft
                    out = task_model(predict=predict)
                    loss = out["pred"].mean()
                elif objective == "multitask":  # dss: rationale not conditioned on a label
                    out = task_model(predict=predict, explain=explain)
                    loss = a * out["pred"].mean() + (1 - a) * out["expl"].mean()
                else:  # joint: r2d and its ablations
                    out = task_model(predict=predict, choose_explain=choose_explain)
                    loss = a * out["pred"].mean() + (1 - a) * out["expl"].mean()
            if stage == 2 and step == cfg.debug.inject_nan_at_step:
                loss = loss * float("nan")
            if not torch.isfinite(loss):
                raise NonFiniteLoss(f"non-finite loss {loss.item()} at stage {stage} step {step}")
            scaler.scale(loss / scfg.grad_accum).backward()
            stats["loss"] += loss.item() / scfg.grad_accum
            if "pred" in out:
                stats["loss_pred"] += out["pred"].mean().item() / scfg.grad_accum
            if "expl" in out:
                stats["loss_expl"] += out["expl"].mean().item() / scfg.grad_accum
            if chosen:
                stats["used_predicted"] += float(np.mean(chosen)) / scfg.grad_accum

        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        lr_schedule.step()
        # Each worker saw its shard of the global batch: log the global batch's numbers.
        record = {f"stage{stage}/{k}": v for k, v in runtime.mean(stats).items()}
        if stage == 2:
            record.update({"stage2/alpha": a, "stage2/p": p})
        record[f"stage{stage}/step"] = step
        pending.append((step, record))
        bar.set_postfix(loss=f"{stats['loss']:.3f}")

        last = step == scfg.max_steps - 1
        if (step + 1) % scfg.eval_every and not last:
            continue
        # ---- evaluate, select, checkpoint, maybe stop
        if stage == 1:
            score = dev_loss(task_model, dev_split, pad_id, cfg, runtime)
            improved = score < best
            pending.append((step, {"stage1/dev_loss": score}))
        else:
            preds = predict_split_labels(task_model, tokenizer, dev_split, labels, cfg, runtime)
            gold = [labels[i] for i in dev_split.label_index]
            score = macro_f1(gold, [p_[1] for p_ in preds], labels)
            improved = score > best
            pending.append((step, {"stage2/dev_macro_f1": score}))
        if improved:
            best, best_step, bad_evals = score, step, 0
            # Every worker keeps its own copy (its local disk); nothing assumes a shared filesystem.
            save_weights(model, best_dir)
        elif step + 1 > patience_from:
            bad_evals += 1
        if stage == 2:  # the selection score so far: a sweep's running objective
            pending.append((step, {"stage2/best_dev_macro_f1": best}))
        stop = bad_evals >= scfg.patience
        checkpoint = None
        if runtime.is_main:
            checkpoint = Path(tempfile.mkdtemp(prefix="r2d-ckpt-", dir=work_dir))
            state = {
                "stage": stage,
                "step": step,
                "optimizer": optimizer.state_dict(),
                "lr_schedule": lr_schedule.state_dict(),
                "scaler": scaler.state_dict(),
                "gate": gate.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "best": best,
                "best_step": best_step,
                "bad_evals": bad_evals,
                "best_model": "best_model",
                "done": stop or last,
            }
            save_checkpoint(checkpoint, model, state)
            shutil.copytree(best_dir, checkpoint / "best_model")
        runtime.report(step, pending, checkpoint)
        if checkpoint is not None:
            shutil.rmtree(checkpoint, ignore_errors=True)
        pending = []
        if stop:
            stopped_early = True
            break
    bar.close()
    runtime.barrier()
    return StageResult(best, best_step, step + 1, stopped_early, best_dir)


# --------------------------------------------------------------------------- the whole job
@dataclass
class Prepared:
    cfg: Config
    ds: Dataset
    model: nn.Module
    tokenizer: Any
    splits: dict[str, TokenizedSplit]


def prepare(cfg: Config, device: torch.device) -> Prepared:
    """Resolve the variant, load data, build model + tokenizer, tokenise every split."""
    cfg = resolve(cfg)
    seed_everything(cfg.seed)
    if cfg.resources.torch_threads:
        torch.set_num_threads(cfg.resources.torch_threads)
    ds = load_dataset(cfg.data)
    model, tokenizer = load_model(cfg.model, cfg.seed, tokenizer_corpus(ds.train, ds.labels))
    model.to(device)
    d = cfg.data
    splits = {
        name: tokenize_split(ds.split(name), ds.labels, tokenizer, d.max_input_tokens, d.max_target_tokens)
        for name in ("train", "dev", "test")
    }
    return Prepared(cfg, ds, model, tokenizer, splits)


def load_weights(model: nn.Module, directory: Path) -> None:
    """Load weights saved by save_weights or save_pretrained (tied embeddings are stored once)."""
    from safetensors.torch import load_model

    missing, unexpected = load_model(unwrap(model), str(Path(directory) / "model.safetensors"), strict=False)
    if missing or unexpected:
        raise RuntimeError(f"{directory}: weights do not fit the model ({missing[:3]} {unexpected[:3]})")


def run(cfg: Config, out_dir: Path, runtime: Runtime | None = None, stage1_only: bool = False) -> dict[str, Any]:
    """Train one variant end to end and evaluate it; writes the run directory (r2d/schema.py).

    `stage1_only` trains (or finds) the Stage 1 result and stops: a sweep does this once per seed
    before its Stage 2 trials, which then all reuse it.
    """
    from r2d.evaluate import evaluate_and_write

    runtime = runtime or Runtime()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work_dir = out_dir / "work"
    work_dir.mkdir(exist_ok=True)
    t0 = time.time()
    timings: dict[str, float] = {"started_at": t0}  # wall clock, so a driver can measure its overhead
    prep = prepare(cfg, runtime.device)
    cfg, model = prep.cfg, prep.model

    resume = None
    if runtime.resume_from is not None and (Path(runtime.resume_from) / "state.pt").exists():
        resume = torch.load(Path(runtime.resume_from) / "state.pt", weights_only=False)
        resume["best_model"] = str(Path(runtime.resume_from) / "best_model")
        load_weights(model, Path(runtime.resume_from) / "model")

    stage1_info: dict[str, Any] = {"enabled": cfg.stage1.enabled}
    if cfg.stage1.enabled and not (resume and resume["stage"] == 2):
        store = Stage1Store(stage1_location(cfg))
        stage1_info.update(key=stage1_key(cfg), location=store.location)
        if store.done():
            stage1_info["reused"] = True
            load_weights(model, store.fetch(work_dir / "stage1_fetched"))
        else:
            stage1_info["reused"] = False
            t = time.time()
            res = train_stage(1, model, prep.tokenizer, prep.ds, prep.splits["train"], prep.splits["dev"],
                              cfg, runtime, work_dir, resume if resume and resume["stage"] == 1 else None)
            timings["stage1_s"] = time.time() - t
            load_weights(model, res.best_model_dir)
            stage1_info.update(best_dev_loss=res.best_score, best_step=res.best_step, steps=res.steps_run)
            if runtime.is_main:
                published = work_dir / "stage1_publish"
                unwrap(model).save_pretrained(str(published))
                prep.tokenizer.save_pretrained(str(published))
                store.publish(published, stage1_info)
            runtime.barrier()
        resume = None if resume and resume["stage"] == 1 else resume
    if stage1_only:
        return {"stage1": stage1_info, "timings": timings}

    t = time.time()
    res2 = train_stage(2, model, prep.tokenizer, prep.ds, prep.splits["train"], prep.splits["dev"],
                       cfg, runtime, work_dir, resume)
    timings["stage2_s"] = time.time() - t
    load_weights(model, res2.best_model_dir)
    stage2_info = {"best_dev_macro_f1": res2.best_score, "best_step": res2.best_step,
                   "steps": res2.steps_run, "stopped_early": res2.stopped_early}
    t = time.time()
    summary = evaluate_and_write(prep, model, out_dir, runtime,
                                 extra={"stage1": stage1_info, "stage2": stage2_info, "timings": timings,
                                        "runtime": runtime.describe()})
    timings["evaluate_s"] = time.time() - t
    timings["finished_at"] = time.time()
    timings["total_s"] = timings["finished_at"] - t0
    if runtime.is_main:
        from r2d.schema import METRICS_FILE

        (out_dir / METRICS_FILE).write_text(json.dumps(summary, indent=1))  # now with the full timings
        model_dir = out_dir / "model"
        unwrap(model).save_pretrained(str(model_dir))
        prep.tokenizer.save_pretrained(str(model_dir))
        shutil.rmtree(work_dir, ignore_errors=True)
    return summary
