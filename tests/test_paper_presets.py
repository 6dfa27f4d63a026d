"""The GPU presets load; the paper presets are the authors' recipe; the hub shapes are the published ones.

Recipe values: quamranhasan/Reason2Decide (commit c24e912), src/r2d/train_stage1.py, train_stage2.py
and inference.py, as cited in each configs/paper-*.yaml. Shapes: each model's config.json on the hub;
parameter counts: the sizes the hub shows for the checkpoints (60.5M, 223M, 738M, 783M).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from r2d.config import load_config
from r2d.data import load_dataset
from r2d.model import modeling
from r2d.model.modeling import (
    HUB_T5_SHAPES,
    build_architecture,
    hub_t5_config,
    load_model,
    save_random_init,
    tokenizer_corpus,
)
from r2d.train.schedules import Schedule

PAPER_PRESETS = sorted(str(p) for p in Path("configs").glob("paper-*.yaml"))
GPU_PRESETS = ["configs/pubmedqa-t5-base.yaml", "configs/pubmedqa-t5-small.yaml", "configs/triage-flan-t5-large.yaml"]
BIG = os.environ.get("R2D_BIG_SHAPES") == "1"

# config.json of each checkpoint (t5-small/base/large: T5 v1.0; google/flan-t5-large: T5 v1.1), and
# the exact parameter count transformers gives that architecture (output layer counted once if tied).
PUBLISHED = {
    "t5-small": dict(d_model=512, d_ff=2048, d_kv=64, num_heads=8, num_layers=6, num_decoder_layers=6,
                     feed_forward_proj="relu", tied=True, params=60_506_624, hub_size=60.5e6),
    "t5-base": dict(d_model=768, d_ff=3072, d_kv=64, num_heads=12, num_layers=12, num_decoder_layers=12,
                    feed_forward_proj="relu", tied=True, params=222_903_552, hub_size=223e6),
    "t5-large": dict(d_model=1024, d_ff=4096, d_kv=64, num_heads=16, num_layers=24, num_decoder_layers=24,
                     feed_forward_proj="relu", tied=True, params=737_668_096, hub_size=738e6),
    "google/flan-t5-large": dict(d_model=1024, d_ff=2816, d_kv=64, num_heads=16, num_layers=24,
                                 num_decoder_layers=24, feed_forward_proj="gated-gelu", tied=False,
                                 params=783_150_080, hub_size=783e6),
}


def test_the_paper_presets_exist():
    names = {Path(p).stem for p in PAPER_PRESETS}
    assert names == {"paper-pubmedqa-t5-base", "paper-pubmedqa-t5-large", "paper-bioasq-t5-base",
                     "paper-bioasq-t5-large", "paper-triage-flan-t5-large"}


@pytest.mark.parametrize("path", PAPER_PRESETS + GPU_PRESETS)
def test_gpu_preset_loads_with_a_known_shape(path):
    cfg = load_config(path)
    assert cfg.model.name in HUB_T5_SHAPES
    assert cfg.resources.use_gpu and cfg.resources.precision == "bf16"
    assert cfg.stage2.label_decoding == "generate" and cfg.evaluation.label_decoding == "generate"
    assert (cfg.evaluation.bertscore.model, cfg.evaluation.bertscore.num_layers) == ("roberta-large", 17)


@pytest.mark.parametrize("path", PAPER_PRESETS)
def test_paper_preset_is_the_authors_recipe(path):
    cfg = load_config(path)
    s1, s2 = cfg.stage1, cfg.stage2
    assert (s1.lr, s1.batch_size, s1.grad_accum, s1.max_steps, s1.eval_every, s1.patience) == (5e-5, 64, 1, 50_000,
                                                                                                1000, 3)
    assert (s2.lr, s2.batch_size, s2.grad_accum, s2.max_steps, s2.eval_every, s2.patience) == (5e-5, 64, 1, 30_000,
                                                                                                500, 5)
    assert s1.weight_decay == s2.weight_decay == 0.0 and s1.enabled and cfg.variant == "r2d"
    assert (s2.alpha, s2.alpha_warmup) == (0.7, 0.05)
    assert (cfg.data.max_input_tokens, cfg.data.max_target_tokens) == (1024, 256)
    assert cfg.evaluation.max_rationale_tokens == 255  # generate(max_length=256) counts the start token

    # train_stage2.py fraction_predicted_labels(), step for step over the whole of Stage 2.
    warmup, transition = int(0.05 * s2.max_steps), int(0.6 * s2.max_steps)
    schedule = Schedule.from_config(s2.schedule, s2.max_steps)
    for step in range(s2.max_steps):
        authors = 0.0 if step < warmup else min(0.9, (step - warmup) / max(1, transition))
        assert schedule(step) == pytest.approx(authors, abs=1e-12), step


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_hub_shape_is_the_published_config(name):
    config, published = hub_t5_config(name), PUBLISHED[name]
    for key in ("d_model", "d_ff", "d_kv", "num_heads", "num_layers", "num_decoder_layers", "feed_forward_proj"):
        assert getattr(config, key) == published[key], key
    assert (config.vocab_size, config.pad_token_id, config.eos_token_id, config.decoder_start_token_id) == (32128, 0,
                                                                                                           1, 0)
    assert config.relative_attention_num_buckets == 32 and config.layer_norm_epsilon == 1e-6


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_hub_shape_has_the_published_parameter_count(name):
    with torch.device("meta"):  # the real constructor, shapes only: t5-large in a fraction of a second
        model = build_architecture(name)
    published = PUBLISHED[name]
    assert model.num_parameters() == published["params"]
    assert abs(model.num_parameters() - published["hub_size"]) / published["hub_size"] < 0.001
    assert (model.lm_head.weight is model.shared.weight) == published["tied"]
    assert len(model.encoder.block) == published["num_layers"] and len(model.decoder.block) == published[
        "num_decoder_layers"]


def _triage_texts(cache_dir) -> tuple:
    cfg = load_config(None, ["data.dataset=triage", "data.triage.size=300", f"model.cache_dir={cache_dir}"])
    ds = load_dataset(cfg.data)
    return cfg, tokenizer_corpus(ds.train, ds.labels)


def _round_trip(name: str, cfg, texts, out_dir: Path) -> None:
    """Random init -> save_pretrained -> the real from_pretrained path: same shape, same outputs."""
    save_random_init(name, cfg.model, 0, texts, out_dir)
    local = load_config(None, [f"model.name={out_dir}", f"model.cache_dir={cfg.model.cache_dir}"])
    model, tok = load_model(local.model, seed=0)
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2) and len(tok) <= 32128
    fresh = build_architecture(name, seed=0).eval()
    model.eval()
    assert model.num_parameters() == fresh.num_parameters()
    assert (model.lm_head.weight is model.shared.weight) == (fresh.lm_head.weight is fresh.shared.weight)
    batch = tok(["predict: fever and cough"], return_tensors="pt")
    labels = tok(["see doctor"], return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(model(**batch, labels=labels).logits, fresh(**batch, labels=labels).logits)


def test_random_init_round_trip_t5_small(cache_dir, tmp_path):
    cfg, texts = _triage_texts(cache_dir)
    _round_trip("t5-small", cfg, texts, tmp_path / "t5-small")


def test_random_init_round_trip_v1_1_output_layer(cache_dir, tmp_path, monkeypatch):
    """flan-t5's own output layer survives save and reload (at small width; the code path is the same)."""
    small = dict(HUB_T5_SHAPES["google/flan-t5-large"], d_model=64, d_ff=128, num_heads=2, num_layers=2,
                 num_decoder_layers=2)
    monkeypatch.setitem(modeling.HUB_T5_SHAPES, "google/flan-t5-large", small)
    cfg, texts = _triage_texts(cache_dir)
    _round_trip("google/flan-t5-large", cfg, texts, tmp_path / "flan")
    reloaded = load_model(load_config(None, [f"model.name={tmp_path / 'flan'}"]).model, seed=0)[0]
    assert not getattr(reloaded.config, "scale_decoder_outputs", False)  # v1.1: no d_model**-0.5 output scaling


@pytest.mark.skipif(not BIG, reason="bench: R2D_BIG_SHAPES=1 builds t5-base/large and flan-t5-large for real")
@pytest.mark.parametrize("name", ["t5-base", "t5-large", "google/flan-t5-large"])
def test_random_init_round_trip_big(name, cache_dir, tmp_path):
    cfg, texts = _triage_texts(cache_dir)
    _round_trip(name, cfg, texts, tmp_path / name.replace("/", "_"))
