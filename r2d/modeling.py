"""Load a seq2seq model and its tokenizer: a hub id, a local directory, or the `tiny-t5` preset.

`tiny-t5` is a small T5Config with a SentencePiece unigram tokenizer trained on the training split,
cached under `model.cache_dir/tokenizers/<content hash>`, so that it works with no model hub.
Hub ids and local directories go through the real `from_pretrained` code path.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

import torch
from transformers import (
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    T5Config,
    T5ForConditionalGeneration,
    T5Tokenizer,
)

from r2d import prompts
from r2d.config import ModelConfig

TINY = "tiny-t5"


class ModelError(ValueError):
    """A model that cannot be loaded; the message names model.name and what is wrong."""


def _train_sentencepiece(texts: list[str], vocab_size: int, out_dir: Path) -> int:
    import sentencepiece as spm

    model = io.BytesIO()
    size = vocab_size
    for _ in range(3):
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(texts),
                model_writer=model,
                vocab_size=size,
                model_type="unigram",
                # T5's ids: pad 0, eos 1, unk 2, no bos.
                pad_id=0,
                eos_id=1,
                unk_id=2,
                bos_id=-1,
                character_coverage=1.0,
                input_sentence_size=200_000,
                shuffle_input_sentence=False,  # determinism: same texts -> same vocabulary
                num_threads=1,
                minloglevel=2,
            )
            break
        except RuntimeError as err:
            # "Vocabulary size too high (N). Please set it to a value <= M.": shrink to fit the data.
            match = re.search(r"<= (\d+)", str(err))
            if not match:
                raise
            size = int(match.group(1))
            model = io.BytesIO()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "spiece.model").write_bytes(model.getvalue())
    return size


def tiny_tokenizer(texts: Iterable[str], cfg: ModelConfig) -> PreTrainedTokenizerBase:
    """Train (or reuse, by content hash) a SentencePiece tokenizer on `texts`; T5Tokenizer-loadable."""
    texts = list(texts)
    digest = hashlib.sha256()
    digest.update(str(cfg.tiny.vocab_size).encode())
    for t in texts:
        digest.update(t.encode("utf-8") + b"\0")
    out_dir = Path(cfg.cache_dir) / "tokenizers" / digest.hexdigest()[:16]
    if not (out_dir / "tokenizer_config.json").exists():
        tmp = out_dir.with_name(out_dir.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        _train_sentencepiece(texts, cfg.tiny.vocab_size, tmp)
        # transformers 5: T5Tokenizer(vocab_file=...) silently yields a 4-token tokenizer; loading the
        # directory with spiece.model and extra_ids=0 works, and save_pretrained writes tokenizer.json.
        tok = T5Tokenizer.from_pretrained(str(tmp), extra_ids=0)
        tok.save_pretrained(str(tmp))
        shutil.rmtree(out_dir, ignore_errors=True)
        tmp.rename(out_dir)  # atomic: a half-trained tokenizer is never picked up
    tok = AutoTokenizer.from_pretrained(str(out_dir))
    import sentencepiece as spm

    expected = spm.SentencePieceProcessor(model_file=str(out_dir / "spiece.model")).get_piece_size()
    if len(tok) != expected:
        raise ModelError(f"model.name=tiny-t5: tokenizer in {out_dir} has {len(tok)} tokens, expected {expected}")
    return tok


def tiny_model(tokenizer: PreTrainedTokenizerBase, cfg: ModelConfig, seed: int) -> T5ForConditionalGeneration:
    t = cfg.tiny
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=t.d_model,
        d_ff=t.d_ff,
        d_kv=t.d_kv,
        num_layers=t.num_layers,
        num_decoder_layers=t.num_decoder_layers,
        num_heads=t.num_heads,
        dropout_rate=t.dropout_rate,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)  # the initial weights are part of what a seed fixes
    return T5ForConditionalGeneration(config)


def load_pretrained(name_or_dir: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A hub id or a local directory (saved with save_pretrained), through from_pretrained."""
    looks_local = name_or_dir.startswith((".", "/", "~")) or Path(name_or_dir).exists()
    if looks_local and not Path(name_or_dir).expanduser().is_dir():
        raise ModelError(f"model.name={name_or_dir}: no such model directory")
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_dir)
        model = AutoModelForSeq2SeqLM.from_pretrained(name_or_dir)
    except (OSError, ValueError) as err:  # transformers raises either for a dir without a model
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(f"model.name={name_or_dir}: cannot load ({first})") from None
    return model, tokenizer


def tokenizer_corpus(examples: Iterable, labels: list[str]) -> list[str]:
    """What the tiny tokenizer learns from: every prompt form, rationales and labels of the train split."""
    texts = list(labels) + [prompts.predict(""), prompts.explain(""), prompts.explain_given("", "")]
    for ex in examples:
        texts += [prompts.explain_given(ex.label, ex.input), ex.rationale]
    return texts


def load_model(
    cfg: ModelConfig, seed: int, tokenizer_texts: Iterable[str] | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The one entry point: `tiny-t5` builds from config (tokenizer trained on the given texts)."""
    if cfg.name == TINY:
        if tokenizer_texts is None:
            raise ModelError("model.name=tiny-t5: needs the training texts to train its tokenizer")
        tokenizer = tiny_tokenizer(tokenizer_texts, cfg)
        return tiny_model(tokenizer, cfg, seed), tokenizer
    return load_pretrained(cfg.name)
