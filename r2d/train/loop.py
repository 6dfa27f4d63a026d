"""The training loop: Stage 1 (rationales), Stage 2 (label + rationale with scheduled sampling).

Read top to bottom: `run()` is the whole job, `train_stage()` one stage, phase by phase: set up,
then per step train (`train_step`), and every `eval_every` steps evaluate, select, checkpoint and
maybe stop. The config arrives resolved (r2d/config.py: the variant applied). A variant only
changes settings and picks an objective (r2d/train/objectives.py); a schedule is a function of the step
(r2d/train/schedules.py); scheduled sampling is r2d/train/sampling.py. What differs between running in this
process and as a Ray Train worker sits behind `Runtime` (r2d/train/runtime.py).
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from r2d.config import StageConfig
from r2d.model.decode import LabelScorer, unwrap
from r2d.scoring import health
from r2d.train.batches import Batch, BatchOrder, step_uniforms
from r2d.train.checkpoints import TrainState, load_checkpoint, load_weights, restore, save_checkpoint, save_weights
from r2d.train.evaluate import dev_loss, dev_macro_f1, evaluate, write_run_dir
from r2d.train.objectives import OBJECTIVES, Step, TaskModel
from r2d.train.prepare import Prepared, prepare
from r2d.train.runtime import Runtime
from r2d.train.sampling import ScheduledSampler
from r2d.train.schedules import Schedule, alpha_at
from r2d.train.stage1_store import Stage1Store
from r2d.variants import VARIANTS


class NonFiniteLoss(FloatingPointError):
    """Training produced a NaN/inf loss: the run fails (FAILED in MLflow) with this reason."""


@dataclass
class StageResult:
    best_score: float
    best_step: int
    steps_run: int
    stopped_early: bool
    best_model_dir: Path
    losses: list[float]  # the label loss (L_pred) of every step run in this process (health: did it rise?)


@dataclass
class StageLoop:
    """One stage's moving parts, built once before its first step."""

    stage: int
    scfg: StageConfig
    objective: Callable
    model: nn.Module  # the seq2seq model (weights saved from here)
    task_model: nn.Module  # TaskModel, wrapped by the runtime (DDP with several workers)
    optimizer: torch.optim.Optimizer
    lr_schedule: Any
    plateau: bool  # lr_schedule steps on dev macro-F1 at each evaluation, not every step
    ema: AveragedModel | None  # Stage 2's weight average (stage2.ema_decay > 0): what is selected and kept
    scaler: torch.amp.GradScaler
    order: BatchOrder
    schedule: Schedule
    sampler: ScheduledSampler
    alpha_warmup_steps: float
    patience_from: float  # evaluations without improvement count only after this step
    best_dir: Path
    state: TrainState


def _lr_schedule(scfg: StageConfig, optimizer: torch.optim.Optimizer, plateau: bool) -> Any:
    """Linear decay to 0 over max_steps (stepped every step), or ReduceLROnPlateau on dev macro-F1
    (Stage 2's `lr_decay: plateau`, stepped at every evaluation)."""
    if plateau:
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=scfg.plateau_factor,
                                                          patience=0, threshold=0.0)
    return get_linear_schedule_with_warmup(optimizer, 0, scfg.max_steps)


def setup_stage(stage: int, prep: Prepared, runtime: Runtime, work_dir: Path, resume: dict | None) -> StageLoop:
    cfg, model = prep.cfg, prep.model
    scfg: StageConfig = cfg.stage1 if stage == 1 else cfg.stage2
    if scfg.batch_size % (runtime.world_size * scfg.grad_accum):
        raise ValueError(f"stage{stage}.batch_size={scfg.batch_size} must divide by workers x grad_accum "
                         f"({runtime.world_size} x {scfg.grad_accum})")
    optimizer = torch.optim.AdamW(model.parameters(), lr=scfg.lr, weight_decay=scfg.weight_decay)
    s2 = cfg.stage2
    schedule = Schedule.from_config(s2.schedule, s2.max_steps)
    plateau = stage == 2 and s2.lr_decay == "plateau"
    ema = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(s2.ema_decay))
           if stage == 2 and s2.ema_decay > 0 else None)
    loop = StageLoop(
        stage=stage, scfg=scfg, objective=OBJECTIVES["explain" if stage == 1 else VARIANTS[cfg.variant].objective],
        model=model, task_model=runtime.wrap(TaskModel(model)), optimizer=optimizer,
        lr_schedule=_lr_schedule(scfg, optimizer, plateau), plateau=plateau,
        ema=ema,
        scaler=torch.amp.GradScaler("cuda", enabled=runtime.device.type == "cuda"
                                    and cfg.resources.precision == "fp16"),
        order=BatchOrder(len(prep.splits["train"]), scfg.batch_size, cfg.stage_seed(stage) + 1000 * stage),
        schedule=schedule,
        sampler=ScheduledSampler(cfg, prep.ds.labels, LabelScorer(prep.tokenizer, prep.ds.labels, runtime.device),
                                 prep.tokenizer, runtime.rank),
        alpha_warmup_steps=s2.alpha_warmup * s2.max_steps,
        patience_from=schedule.warmup_steps + schedule.transition_steps if stage == 2 else 0,
        best_dir=work_dir / f"stage{stage}_best",
        state=TrainState(stage, -1, -math.inf if stage == 2 else math.inf, -1, 0),  # Stage 2: dev macro-F1 up
    )
    # Each stage draws its randomness (dropout) from its own seed, so Stage 2 is a function of (the
    # Stage 1 weights, the config, the seed) only: the same whether Stage 1 was just trained in this
    # process (its steps consumed random numbers) or fetched from the store. A resume restores the RNG.
    torch.manual_seed(cfg.stage_seed(stage) + 1000 * stage)
    if resume is not None:
        loop.state = restore(resume, loop.best_dir, **_components(loop))
    return loop


def _components(loop: StageLoop) -> dict[str, Any]:
    """What a checkpoint saves and a resume restores, besides the weights and the TrainState."""
    parts = {"optimizer": loop.optimizer, "lr_schedule": loop.lr_schedule, "scaler": loop.scaler,
             "gate": loop.sampler.gate}
    return parts if loop.ema is None else {**parts, "ema": loop.ema}


def train_step(loop: StageLoop, step: int, prep: Prepared, runtime: Runtime) -> dict[str, float]:
    """One optimiser step over this worker's shard of the global batch; returns the logged numbers."""
    cfg, scfg, stage = prep.cfg, loop.scfg, loop.stage
    loop.task_model.train()
    joint = stage == 2 and VARIANTS[cfg.variant].objective == "joint"
    a = alpha_at(step, cfg.stage2.alpha, loop.alpha_warmup_steps) if stage == 2 else 0.0
    p = loop.schedule(step) if joint else 0.0
    my_rows = loop.order.shard(step, runtime.rank, runtime.world_size)
    uniforms = step_uniforms(cfg.stage_seed(stage), step, scfg.batch_size)  # the global batch's draws
    my_uniforms = uniforms[runtime.rank * len(my_rows) : (runtime.rank + 1) * len(my_rows)]
    micro = len(my_rows) // scfg.grad_accum
    stats = {"loss": 0.0, "loss_pred": 0.0, "loss_expl": 0.0, "used_predicted": 0.0}
    for m in range(scfg.grad_accum):
        batch = Batch(prep.splits["train"], my_rows[m * micro : (m + 1) * micro], prep.tokenizer.pad_token_id,
                      runtime.device)
        s = Step(step, m, a, p, my_uniforms[m * micro : (m + 1) * micro], loop.sampler)
        with runtime.autocast(cfg.resources.precision):
            loss, out = loop.objective(loop.task_model, batch, s)
        if stage == 2 and step == cfg.debug.inject_nan_at_step:
            loss = loss * float("nan")
        if not torch.isfinite(loss):
            raise NonFiniteLoss(f"non-finite loss {loss.item()} at stage {stage} step {step}")
        loop.scaler.scale(loss / scfg.grad_accum).backward()
        stats["loss"] += loss.item() / scfg.grad_accum
        for key, name in (("pred", "loss_pred"), ("expl", "loss_expl")):
            if key in out:
                stats[name] += out[key].mean().item() / scfg.grad_accum
        if s.used_predicted:
            stats["used_predicted"] += sum(s.used_predicted) / len(s.used_predicted) / scfg.grad_accum
    loop.scaler.unscale_(loop.optimizer)
    torch.nn.utils.clip_grad_norm_(loop.model.parameters(), 1.0)
    loop.scaler.step(loop.optimizer)
    loop.scaler.update()
    loop.optimizer.zero_grad(set_to_none=True)
    if loop.ema is not None:
        loop.ema.update_parameters(loop.model)
    if not loop.plateau:
        loop.lr_schedule.step()
    # Each worker saw its shard of the global batch: log the global batch's numbers.
    record = {f"stage{stage}/{k}": v for k, v in runtime.mean(stats).items()}
    if stage == 2:
        record.update({"stage2/alpha": a, "stage2/p": p})
    record[f"stage{stage}/step"] = step
    return record


def evaluate_and_select(loop: StageLoop, step: int, prep: Prepared, runtime: Runtime) -> dict[str, float]:
    """Score dev, keep the best weights, count patience; returns the numbers to log."""
    st = loop.state
    selected = loop.task_model if loop.ema is None else TaskModel(loop.ema.module)  # what is scored and kept
    if loop.stage == 1:
        score = dev_loss(loop.task_model, prep.splits["dev"], prep.tokenizer.pad_token_id, prep.cfg, runtime)
        improved, logged = score < st.best - loop.scfg.min_delta, {"stage1/dev_loss": score}
    else:
        score = dev_macro_f1(selected, prep.tokenizer, prep.splits["dev"], prep.ds.labels, prep.cfg, runtime)
        improved, logged = score > st.best + loop.scfg.min_delta, {"stage2/dev_macro_f1": score}
        if loop.plateau:
            loop.lr_schedule.step(score)
            logged["stage2/lr"] = loop.optimizer.param_groups[0]["lr"]
    if improved:
        st.best, st.best_step, st.bad_evals = score, step, 0
        # Every worker keeps its own copy (its local disk); nothing assumes a shared filesystem.
        save_weights(selected, loop.best_dir)
    elif step + 1 > loop.patience_from:
        st.bad_evals += 1
    return logged


def checkpoint_and_report(loop: StageLoop, step: int, pending: list, runtime: Runtime, work_dir: Path) -> None:
    """Rank 0 writes a checkpoint; the runtime persists it and hands the pending metrics to tracking."""
    checkpoint = None
    if runtime.is_main:
        checkpoint = Path(tempfile.mkdtemp(prefix="r2d-ckpt-", dir=work_dir))
        save_checkpoint(checkpoint, loop.model, loop.state, loop.best_dir, **_components(loop))
    runtime.report(step, pending, checkpoint)
    if checkpoint is not None:
        shutil.rmtree(checkpoint, ignore_errors=True)


def train_stage(stage: int, prep: Prepared, runtime: Runtime, work_dir: Path, resume: dict | None) -> StageResult:
    """Run Stage 1 (explain) or Stage 2 (the variant's objective) to its best checkpoint."""
    loop = setup_stage(stage, prep, runtime, work_dir, resume)
    max_steps, eval_every, patience = loop.scfg.max_steps, loop.scfg.eval_every, loop.scfg.patience
    pending: list[tuple[int, dict]] = []  # metrics since the last report (flushed with checkpoints)
    stopped_early, step, losses = False, loop.state.step, []
    bar = tqdm(range(loop.state.step + 1, max_steps), desc=f"stage {stage}", leave=False,
               disable=None if runtime.is_main else True)  # None: off when stderr is not a terminal
    for step in bar:
        record = train_step(loop, step, prep, runtime)
        pending.append((step, record))
        losses.append(record[f"stage{stage}/loss_pred"])
        bar.set_postfix(loss=f"{record[f'stage{stage}/loss']:.3f}")
        if (step + 1) % eval_every and step != max_steps - 1:
            continue
        pending.append((step, evaluate_and_select(loop, step, prep, runtime)))
        if stage == 2:  # the selection score so far: a sweep's running objective
            pending.append((step, {"stage2/best_dev_macro_f1": loop.state.best}))
        loop.state.step = step
        checkpoint_and_report(loop, step, pending, runtime, work_dir)
        pending = []
        if loop.state.bad_evals >= patience:
            stopped_early = True
            break
    bar.close()
    runtime.barrier()
    st = loop.state
    return StageResult(st.best, st.best_step, step + 1, stopped_early, loop.best_dir, losses)


def _stage1(prep: Prepared, runtime: Runtime, work_dir: Path, resume: dict | None,
            timings: dict[str, float]) -> dict[str, Any]:
    """Find Stage 1 in the store, or train it and publish it there; the model ends with its weights."""
    store = Stage1Store(prep.cfg)
    info: dict[str, Any] = {"enabled": True, "key": store.key, "location": store.location}
    if store.done():
        info["reused"] = True
        load_weights(prep.model, store.fetch(work_dir / "stage1_fetched"))
        return info
    info["reused"] = False
    t = time.time()
    res = train_stage(1, prep, runtime, work_dir, resume)
    timings["stage1_s"] = time.time() - t
    load_weights(prep.model, res.best_model_dir)
    info.update(best_dev_loss=res.best_score, best_step=res.best_step, steps=res.steps_run)
    if runtime.is_main:
        published = work_dir / "stage1_publish"
        unwrap(prep.model).save_pretrained(str(published))
        prep.tokenizer.save_pretrained(str(published))
        store.publish(published, info)
    runtime.barrier()
    return info


def run(cfg, out_dir: Path, runtime: Runtime | None = None, stage1_only: bool = False) -> dict[str, Any]:
    """Train one (resolved) config end to end and evaluate it; writes the run directory (r2d/schema.py).

    `stage1_only` trains (or finds) the Stage 1 result and stops: a sweep does this once per seed
    before its Stage 2 trials, which then all reuse it.
    """
    runtime = runtime or Runtime()
    out_dir = Path(out_dir)
    work_dir = out_dir / "work"
    work_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    timings: dict[str, float] = {"started_at": t0}  # wall clock, so a driver can measure its overhead
    prep = prepare(cfg, runtime.device)
    resume = load_checkpoint(runtime.resume_from, prep.model) if runtime.resume_from is not None else None

    stage1_info: dict[str, Any] = {"enabled": cfg.stage1.enabled}
    if cfg.stage1.enabled and not (resume and resume["stage"] == 2):
        stage1_info = _stage1(prep, runtime, work_dir, resume if resume and resume["stage"] == 1 else None, timings)
        resume = None if resume and resume["stage"] == 1 else resume
    elif cfg.stage1.enabled:  # resumed in Stage 2: the checkpoint's weights descend from this Stage 1
        store = Stage1Store(cfg)
        stage1_info = {"enabled": True, "key": store.key, "location": store.location, "resumed_in_stage2": True}
    if stage1_only:
        return {"stage1": stage1_info, "timings": timings}

    t = time.time()
    resumed_at = resume["step"] if resume is not None else None  # a restarted run: its checkpoint's step
    res2 = train_stage(2, prep, runtime, work_dir, resume)
    timings["stage2_s"] = time.time() - t
    load_weights(prep.model, res2.best_model_dir)
    stage2_info = {"best_dev_macro_f1": res2.best_score, "best_step": res2.best_step,
                   "steps": res2.steps_run, "stopped_early": res2.stopped_early, "resumed_at_step": resumed_at,
                   "loss_trend": health.loss_trend(res2.losses, cfg.stage2.alpha_warmup * cfg.stage2.max_steps)}
    t = time.time()
    rows_by_split, results = evaluate(prep, prep.model, runtime)
    timings["evaluate_s"] = time.time() - t
    timings["finished_at"] = time.time()
    timings["total_s"] = timings["finished_at"] - t0
    writes_rationales = VARIANTS[cfg.variant].objective != "label_only"
    last_split = list(rows_by_split.values())[-1] if rows_by_split else []
    flags = health.flags(stage2_info, [r["pred_rationale"] for r in last_split] if writes_rationales else None,
                         prep.ds.labels)
    summary = {**results, "stage1": stage1_info, "stage2": stage2_info, "health": flags, "timings": timings,
               "runtime": runtime.describe()}
    if runtime.is_main:
        unwrap(prep.model).save_pretrained(str(out_dir / "model"))
        prep.tokenizer.save_pretrained(str(out_dir / "model"))
        write_run_dir(out_dir, cfg, prep.ds.labels, rows_by_split, summary, health=flags)
        shutil.rmtree(work_dir, ignore_errors=True)
    return summary
