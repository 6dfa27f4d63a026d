"""The trainer in process: every variant, determinism, Stage 1 reuse, failures, a run that learns."""

import json
import shutil

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from r2d.cli import main
from r2d.config import load_config, validate_config
from r2d.model.decode import LabelScorer, predict_labels
from r2d.run import runner
from r2d.schema import PREDICTION_COLUMNS
from r2d.train.batches import pad
from r2d.train.loop import NonFiniteLoss, run
from r2d.train.prepare import prepare
from r2d.train.runtime import Runtime
from r2d.variants import VARIANT_NAMES, VARIANTS

from .conftest import tiny_overrides


def tiny(cache_dir, **extra):
    return load_config(None, tiny_overrides(cache_dir, **extra))


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_every_variant_runs_and_writes_a_run_directory(variant, cache_dir, tmp_path):
    summary = run(tiny(cache_dir, variant=variant), tmp_path)
    preds = pd.read_csv(tmp_path / "predictions/test.csv", keep_default_na=False)
    assert list(preds.columns) == list(PREDICTION_COLUMNS) and len(preds) == 24
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["status"] == "FINISHED" and record["variant"] == variant
    m = summary["splits"]["test"]
    assert 0 <= m["macro_f1"] <= 1 and summary["stage1"]["enabled"] == VARIANTS[variant].stage1
    if variant == "sft":
        assert (preds["pred_rationale"] == "").all() and "bleu" not in m
    else:
        assert "corpus_bleu" in m and "consistency" in m
    assert (tmp_path / "model" / "model.safetensors").exists()


def test_variants_fix_their_settings(cache_dir):
    # a loaded config is the resolved one: the variant's settings win over the user's
    r = tiny(cache_dir, variant="teacher_forcing", **{"stage2.schedule.shape": "exponential"})
    assert r.stage2.schedule.cap == 0.0 and r.stage2.schedule.shape == "constant" and r.stage1.enabled
    assert tiny(cache_dir, variant="dss").stage2.alpha == 0.5
    sf = tiny(cache_dir, variant="student_forcing")
    assert (sf.stage2.schedule.cap, sf.stage2.schedule.warmup) == (1.0, 0.0)
    assert not tiny(cache_dir, variant="combined_ft").stage1.enabled
    combined = tiny(cache_dir, variant="combined_ft")
    assert tiny(cache_dir, variant="combined_ft", **{"stage1.enabled": "true"}) == combined
    # resolving is idempotent: a run's config.yaml loads back to the same config
    assert validate_config(r.to_dict()) == r


def test_same_seed_same_predictions_and_stage1_reused(cache_dir, tmp_path):
    cfg = tiny(cache_dir, seed=11, **{"stage2.schedule.cap": 1.0})
    first = run(cfg, tmp_path / "a")
    second = run(cfg, tmp_path / "b")
    a = (tmp_path / "a/predictions/test.csv").read_bytes()
    assert a == (tmp_path / "b/predictions/test.csv").read_bytes()
    assert first["stage1"]["reused"] is False and second["stage1"]["reused"] is True
    assert first["stage1"]["key"] == second["stage1"]["key"]
    # another schedule reuses the same Stage 1; another seed does not
    third = run(tiny(cache_dir, seed=11, **{"stage2.schedule.shape": "step"}), tmp_path / "c")
    assert third["stage1"]["reused"] is True
    other = run(tiny(cache_dir, seed=12), tmp_path / "d")
    assert other["stage1"]["reused"] is False


def test_stage2_does_not_depend_on_the_stage1_cache(cache_dir, tmp_path):
    """Cold store (Stage 1 trained here, its dropout drew random numbers) vs warm store (fetched)."""
    cfg = tiny(cache_dir, seed=21, **{"model.tiny.dropout_rate": 0.2, "stage1.cache_dir": str(tmp_path / "store")})
    cold = run(cfg, tmp_path / "cold")
    warm = run(cfg, tmp_path / "warm")
    assert cold["stage1"]["reused"] is False and warm["stage1"]["reused"] is True
    predictions = [(tmp_path / name / "predictions/test.csv").read_bytes() for name in ("cold", "warm")]
    assert predictions[0] == predictions[1]


def test_plateau_lr_halves_without_improvement_and_patience_stops(cache_dir, tmp_path):
    """`lr_decay: plateau`: the lr is halved at each evaluation that does not beat the best dev macro-F1,
    and the first such evaluation after the schedule's transition stops the stage (patience 1)."""
    evals = []
    runtime = Runtime(on_report=lambda step, metrics: evals.extend(
        (s, m) for s, m in metrics if "stage2/dev_macro_f1" in m))
    cfg = tiny(cache_dir, **{"stage2.lr_decay": "plateau", "stage2.max_steps": 40, "stage2.eval_every": 2,
                             "stage2.patience": 1, "stage2.schedule.transition": 0.1})
    summary = run(cfg, tmp_path, runtime)
    best, lr, stop_at = -1.0, cfg.stage2.lr, None
    for step, m in evals:
        improved = m["stage2/dev_macro_f1"] > best
        best = max(best, m["stage2/dev_macro_f1"])
        lr = lr if improved else lr * cfg.stage2.plateau_factor
        assert m["stage2/lr"] == pytest.approx(lr), f"step {step}"
        if not improved and step + 1 > 0.1 * 40 and stop_at is None:
            stop_at = step
    assert stop_at is not None, "a 40-step tiny run never stalled: the test cannot tell"
    assert summary["stage2"]["stopped_early"] and summary["stage2"]["steps"] == stop_at + 1
    assert summary["stage2"]["best_step"] < stop_at and not summary["health"]["still_improving"]


def test_weight_average_is_selected_checkpointed_and_resumed_exactly(cache_dir, tmp_path):
    """`stage2.ema_decay`: dev selection scores the average of the weights (not the live ones), a
    checkpoint carries the average, and a run resumed from a mid-run checkpoint predicts exactly as
    the uninterrupted one."""
    extra = {"stage2.max_steps": 12, "stage2.eval_every": 4, "stage2.patience": 9}
    saved = tmp_path / "at_step_7"

    def keep_step_7(step, metrics):
        if step == 7:
            shutil.copytree(tmp_path / "ckpt/latest", saved)

    cfg = tiny(cache_dir, seed=31, **extra, **{"stage2.ema_decay": 0.8})
    run(cfg, tmp_path / "full", Runtime(checkpoint_dir=tmp_path / "ckpt", on_report=keep_step_7))
    state = torch.load(saved / "state.pt", weights_only=False)
    assert int(state["ema"]["n_averaged"]) == 8  # updated after each of steps 0..7
    live = load_file(saved / "model/model.safetensors")
    averaged = {k.removeprefix("module."): v for k, v in state["ema"].items() if k.startswith("module.")}
    assert any(not torch.equal(live[k], averaged[k]) for k in live), "the average is the live weights"
    run(cfg, tmp_path / "resumed", Runtime(resume_from=saved))
    plain = run(tiny(cache_dir, seed=31, **extra), tmp_path / "plain")
    preds = {name: (tmp_path / name / "predictions/test.csv").read_bytes() for name in ("full", "resumed")}
    assert preds["full"] == preds["resumed"]
    full = json.loads((tmp_path / "full/metrics.json").read_text())
    assert full["stage2"]["best_dev_macro_f1"] != plain["stage2"]["best_dev_macro_f1"] or \
        (tmp_path / "plain/predictions/test.csv").read_bytes() != preds["full"]


def test_a_collapsed_run_is_flagged(cache_dir, tmp_path):
    """Six steps from scratch: the model answers the explain prompt with nothing."""
    summary = run(tiny(cache_dir), tmp_path)
    preds = pd.read_csv(tmp_path / "predictions/test.csv", keep_default_na=False)
    assert (preds["pred_rationale"] == "").mean() > 0.5
    assert summary["health"]["collapsed"] and json.loads((tmp_path / "run.json").read_text())["health"]["collapsed"]
    assert not run(tiny(cache_dir, variant="sft"), tmp_path / "sft")["health"]["collapsed"]  # writes none


def test_scheduled_sampling_uses_predicted_labels(cache_dir, tmp_path):
    history = []
    rt = Runtime(on_report=lambda step, records: history.extend(records))
    run(tiny(cache_dir, variant="student_forcing"), tmp_path / "sf", rt)
    used = [r["stage2/used_predicted"] for _, r in history if "stage2/used_predicted" in r]
    assert used and min(used) == 1.0  # p = 1: every example conditioned on its predicted label
    history.clear()
    run(tiny(cache_dir, variant="teacher_forcing"), tmp_path / "tf", rt)
    used = [r["stage2/used_predicted"] for _, r in history if "stage2/used_predicted" in r]
    assert used and max(used) == 0.0
    steps = [r["stage2/step"] for _, r in history if "stage2/step" in r]
    assert steps == list(range(6))


def test_nan_loss_fails_the_run_and_says_so(cache_dir, tmp_path):
    with pytest.raises(NonFiniteLoss, match="non-finite loss nan at stage 2 step 2"):
        runner.train(tiny(cache_dir, **{"debug.inject_nan_at_step": 2}), tmp_path)
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["status"] == "FAILED" and "NonFiniteLoss" in record["error"]
    assert record["health"]["failed"] and record["health"]["diverged"]
    assert not (tmp_path / "predictions").exists()


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "--set", "stage2.schedule.shape=cosine", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("r2d: error: --set stage2.schedule.shape=cosine: Input should be") and "\n" not in err
    assert main(["train", "--set", f"model.name={tmp_path}/missing", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == (f"r2d: error: --set model.name={tmp_path}/missing: {tmp_path}/missing: "
                                       "no such model directory\n")
    assert not (tmp_path / "o").exists()  # checked before the run directory was made
    assert main(["evaluate", "--run", str(tmp_path / "nothing")]) == 2
    assert "not a finished run directory" in capsys.readouterr().err


# ---------------------------------------------------------------------------- a run that learns
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The CPU default, shortened: Stage 1 + Stage 2 on the synthetic triage data. 100 + 80 steps
    reached dev macro-F1 0.46 (the test's bar: 0.19) and BLEU 33 in 71 s; 150 + 120 steps 0.58 in 103 s."""
    out = tmp_path_factory.mktemp("learned")
    cfg = load_config("configs/triage-tiny.yaml", [
        f"model.cache_dir={out / 'cache'}", f"resources.storage_path={out / 'ray'}", "data.triage.size=1500",
        "data.max_eval_examples=200", "resources.torch_threads=1",  # one core: the suite runs two files at once
        "stage1.max_steps=100", "stage1.batch_size=32", "stage1.eval_every=100", "stage2.max_steps=80",
        "stage2.batch_size=32", "stage2.eval_every=40",
        "evaluation.splits=[dev]", "evaluation.bertscore.enabled=false", "evaluation.max_rationale_tokens=40",
    ])
    summary = run(cfg, out / "run")
    return cfg, out / "run", summary


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the fixture's training runs in this test's setup: minutes, more on a busy machine
def test_training_learns_above_majority(trained):
    cfg, run_dir, summary = trained
    preds = pd.read_csv(run_dir / "predictions/dev.csv", keep_default_na=False)
    majority = preds["gold_label"].value_counts().iloc[0]
    majority_macro_f1 = 2 * majority / (len(preds) + majority) / preds["gold_label"].nunique()
    assert summary["splits"]["dev"]["macro_f1"] > majority_macro_f1 + 0.1
    assert summary["splits"]["dev"]["accuracy"] > majority / len(preds)
    # a run that learned is not flagged: it writes rationales, and its label loss fell
    assert not any(summary["health"][f] for f in ("collapsed", "diverged", "failed")), summary["health"]
    assert json.loads((run_dir / "run.json").read_text())["health"] == summary["health"]


@pytest.mark.slow
def test_score_and_generate_agree_on_a_trained_model(trained):
    cfg, run_dir, _ = trained
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"name": str(run_dir / "model")})})
    prep = prepare(cfg, torch.device("cpu"))
    split = prep.splits["dev"]
    ids, mask = pad(split.predict[:100], prep.tokenizer.pad_token_id, torch.device("cpu"))
    scorer = LabelScorer(prep.tokenizer, prep.ds.labels, torch.device("cpu"))
    prep.model.eval()
    scored = predict_labels(prep.model, prep.tokenizer, scorer, ids, mask, "score")
    generated = predict_labels(prep.model, prep.tokenizer, scorer, ids, mask, "generate")
    agree = sum(a == b for a, b in zip(scored.labels, generated.labels)) / 100
    assert agree >= 0.9, agree
    # generate can leave the label set; such outputs are flagged, never mapped
    assert all(v == (g in prep.ds.labels) for g, v in zip(generated.labels, generated.valid))


@pytest.mark.slow
def test_evaluate_cli_reproduces_saved_run(trained, capsys):
    _, run_dir, summary = trained
    before = (run_dir / "predictions/dev.csv").read_bytes()
    assert main(["evaluate", "--run", str(run_dir), "--split", "dev"]) == 0
    assert (run_dir / "predictions/dev.csv").read_bytes() == before


def test_r2d_train_says_how_the_training_went(cache_dir, tmp_path, capsys):
    """The console ends with one health line naming what to try, and no transformers save/load bars."""
    from r2d.cli import main

    args = ["train", "--out", str(tmp_path / "run")]
    for override in tiny_overrides(cache_dir):
        args += ["--set", override]
    assert main(args) == 0
    out, err = capsys.readouterr()
    record = json.loads((tmp_path / "run/run.json").read_text())
    assert record["health"]["collapsed"]  # six steps from scratch (test_a_collapsed_run_is_flagged)
    health = [line for line in out.splitlines() if line.startswith("health: ")]
    assert len(health) == 1 and "collapsed" in health[0] and "stage2.lr" in health[0]
    assert "Writing model shards" not in out + err and "Loading weights" not in out + err


def test_a_gain_below_min_delta_is_not_an_improvement(cache_dir, tmp_path):
    """stage2.min_delta: only the first evaluation beats -inf by more than 1.0 of macro-F1, so it stays
    the best (the selected weights), and the run is not 'still improving' at its last evaluation."""
    summary = run(tiny(cache_dir, **{"stage2.min_delta": 1.0, "stage2.patience": 10}), tmp_path)
    first_eval = tiny(cache_dir).stage2.eval_every - 1
    assert summary["stage2"]["best_step"] == first_eval < summary["stage2"]["steps"] - 1
    assert not summary["health"]["still_improving"]
