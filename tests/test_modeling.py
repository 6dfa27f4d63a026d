import threading

import pytest
import torch
from transformers import AutoTokenizer, T5ForConditionalGeneration, T5Tokenizer

from r2d.config import load_config
from r2d.data import load_dataset
from r2d.model.modeling import ModelError, load_model, tiny_tokenizer, tokenizer_corpus

from .conftest import tiny_overrides


def test_tiny_tokenizer_and_model_round_trip(cache_dir, tmp_path):
    cfg = load_config(None, tiny_overrides(cache_dir))
    ds = load_dataset(cfg.data)
    model, tok = load_model(cfg.model, seed=0, tokenizer_texts=tokenizer_corpus(ds.train, ds.labels))
    assert len(tok) > 100 and tok.pad_token_id == 0 and tok.eos_token_id == 1 and tok.unk_token_id == 2
    text = "predict: " + ds.train[0].input
    ids = tok(text).input_ids
    assert tok.unk_token_id not in ids and ids[-1] == tok.eos_token_id
    assert tok.decode(ids, skip_special_tokens=True) == text

    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    for loader in (AutoTokenizer, T5Tokenizer):
        again = loader.from_pretrained(str(tmp_path))
        assert len(again) == len(tok) and again(text).input_ids == ids
    reloaded = T5ForConditionalGeneration.from_pretrained(tmp_path).eval()
    model.eval()
    batch = tok([text], return_tensors="pt")
    with torch.no_grad():
        a = model(**batch, labels=tok(["home care"], return_tensors="pt").input_ids).logits
        b = reloaded(**batch, labels=tok(["home care"], return_tensors="pt").input_ids).logits
    assert torch.equal(a, b)
    # loading by path goes through the real from_pretrained code path
    cfg2 = load_config(None, [f"model.name={tmp_path}"])
    m2, t2 = load_model(cfg2.model, seed=0)
    assert len(t2) == len(tok)


def test_tokenizer_cached_by_content(cache_dir):
    cfg = load_config(None, tiny_overrides(cache_dir))
    ds = load_dataset(cfg.data)
    texts = tokenizer_corpus(ds.train, ds.labels)
    _, a = load_model(cfg.model, 0, texts)
    _, b = load_model(cfg.model, 1, texts)
    assert a.name_or_path == b.name_or_path


def test_missing_model_dir_is_a_clear_error(tmp_path):
    cfg = load_config(None, [f"model.name={tmp_path / 'nope'}"])
    with pytest.raises(ModelError, match="model.name=.*nope: no such model directory"):
        load_model(cfg.model, 0)
    empty = tmp_path / "empty"
    empty.mkdir()
    cfg = load_config(None, [f"model.name={empty}"])
    with pytest.raises(ModelError, match="cannot load"):
        load_model(cfg.model, 0)


def test_trials_building_one_tokenizer_at_once_all_get_it(tmp_path):
    """Two trials that start together with a cold cache (a sweep with no Stage 1 phase) build the same
    tokenizer: both succeed with the same vocabulary, and neither deletes the other's work in progress
    (a shared `<hash>.tmp` did: one trial failed with spiece.model not found)."""
    cfg = load_config(None, [f"model.cache_dir={tmp_path}", "model.tiny.vocab_size=300"]).model
    texts = [f"patient {i} reports {w} pain for {i % 7} days" for i in range(400) for w in ("chest", "back")]
    foreign = tmp_path / "tokenizers" / "another-process.tmp-x"  # someone else's build in progress
    foreign.mkdir(parents=True)
    results, errors = [], []

    def build():
        try:
            results.append(tiny_tokenizer(texts, cfg).get_vocab())
        except Exception as err:  # noqa: BLE001 - the test reports any failure of either builder
            errors.append(err)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 2 and results[0] == results[1]
    assert foreign.exists()
    built = [p.name for p in (tmp_path / "tokenizers").iterdir() if p != foreign]
    assert len(built) == 1 and ".tmp" not in built[0]  # the loser's directory is cleaned up
    assert tiny_tokenizer(texts, cfg).get_vocab() == results[0]  # a later trial reads the cache
