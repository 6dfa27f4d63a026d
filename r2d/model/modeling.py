"""Load a seq2seq model and its tokenizer: a hub id, a local directory, or the `tiny-t5` preset.

`tiny-t5` is a small T5Config with a SentencePiece unigram tokenizer trained on the training split,
cached under `model.cache_dir/tokenizers/<content hash>`, so that it works with no model hub.
Hub ids and local directories go through the real `from_pretrained` code path.

Without a hub, `HUB_T5_SHAPES` gives the architectures of the hub models the presets name (their
published configs) and `random_init_model` / `save_random_init` build one with random weights and a
tokenizer trained on the data: the GPU presets' code path, runnable on CPU with the preset's shapes.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

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
from transformers.utils import logging as hf_logging

from r2d.config import ModelConfig
from r2d.model import prompts

TINY = "tiny-t5"
# transformers' own bars ('Loading weights', 'Writing model shards', one per load or save) say
# nothing to a user of r2d; the training's own progress bar and summary lines do.
hf_logging.disable_progress_bar()


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
        _build_tokenizer_dir(texts, cfg.tiny.vocab_size, out_dir)
    tok = AutoTokenizer.from_pretrained(str(out_dir))
    import sentencepiece as spm

    expected = spm.SentencePieceProcessor(model_file=str(out_dir / "spiece.model")).get_piece_size()
    if len(tok) != expected:
        raise ModelError(f"model.name=tiny-t5: tokenizer in {out_dir} has {len(tok)} tokens, expected {expected}")
    return tok


def _build_tokenizer_dir(texts: list[str], vocab_size: int, out_dir: Path) -> None:
    """Train the tokenizer into a directory of this process's own, then rename it to `out_dir`.

    Trials that start together (a sweep with no Stage 1 phase) build the same tokenizer at once: each
    in its own temporary directory, and the first rename wins. The rename is atomic, so a reader never
    sees a half-written tokenizer, and nobody deletes a directory another process may be reading.
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{out_dir.name}.tmp-", dir=out_dir.parent))
    tmp.chmod(0o755)  # as a plain mkdir would leave it (mkdtemp's 0700 would hide a shared cache)
    try:
        _train_sentencepiece(texts, vocab_size, tmp)
        # transformers 5: T5Tokenizer(vocab_file=...) silently yields a 4-token tokenizer; loading the
        # directory with spiece.model and extra_ids=0 works, and save_pretrained writes tokenizer.json.
        tok = T5Tokenizer.from_pretrained(str(tmp), extra_ids=0)
        tok.save_pretrained(str(tmp))
        try:
            tmp.rename(out_dir)
        except OSError:  # another process renamed its identical tokenizer first (ENOTEMPTY / EEXIST)
            if not (out_dir / "tokenizer_config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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


# The published configs (config.json on the hub) of the models the presets name, written out so
# that their shapes need no hub. t5-small/base/large: T5 v1.0 (ReLU feed-forward, the output layer
# tied to the embeddings); google/flan-t5-large: T5 v1.1 (gated-GELU feed-forward, untied output).
_T5_COMMON: dict[str, Any] = dict(
    vocab_size=32128,  # 32,000 SentencePiece pieces + 100 sentinels, padded to a multiple of 128
    d_kv=64,
    relative_attention_num_buckets=32,
    relative_attention_max_distance=128,
    dropout_rate=0.1,
    layer_norm_epsilon=1e-6,
    initializer_factor=1.0,
    is_encoder_decoder=True,
    pad_token_id=0,
    eos_token_id=1,
    decoder_start_token_id=0,
)
HUB_T5_SHAPES: dict[str, dict[str, Any]] = {
    "t5-small": dict(d_model=512, d_ff=2048, num_heads=8, num_layers=6, num_decoder_layers=6,
                     feed_forward_proj="relu", tie_word_embeddings=True),
    "t5-base": dict(d_model=768, d_ff=3072, num_heads=12, num_layers=12, num_decoder_layers=12,
                    feed_forward_proj="relu", tie_word_embeddings=True),
    "t5-large": dict(d_model=1024, d_ff=4096, num_heads=16, num_layers=24, num_decoder_layers=24,
                     feed_forward_proj="relu", tie_word_embeddings=True),
    "google/flan-t5-large": dict(d_model=1024, d_ff=2816, num_heads=16, num_layers=24, num_decoder_layers=24,
                                 feed_forward_proj="gated-gelu", tie_word_embeddings=False),
}
# The hub's newer ids for the same checkpoints.
HUB_ALIASES = {"google-t5/t5-small": "t5-small", "google-t5/t5-base": "t5-base", "google-t5/t5-large": "t5-large"}


def hub_t5_config(name: str) -> T5Config:
    """The architecture of a hub T5 model (by its published config), without the hub."""
    key = HUB_ALIASES.get(name, name)
    if key not in HUB_T5_SHAPES:
        raise ModelError(f"model.name={name}: no built-in shape; known: {', '.join(HUB_T5_SHAPES)}")
    return T5Config(**_T5_COMMON, **HUB_T5_SHAPES[key])


def offline_tokenizer(texts: Iterable[str], cfg: ModelConfig, vocab_size: int = 32000) -> PreTrainedTokenizerBase:
    """A T5-style tokenizer (pad 0, eos 1, unk 2) trained on `texts`, as large as the data allows.

    Not the hub model's tokenizer (that needs the hub): the ids it uses fit inside the model's
    32,128-row embedding, so the architecture stays exactly the published one.
    """
    big = cfg.model_copy(update={"tiny": cfg.tiny.model_copy(update={"vocab_size": vocab_size})})
    return tiny_tokenizer(texts, big)


def build_architecture(name: str, seed: int = 0) -> T5ForConditionalGeneration:
    """A randomly initialised model of hub model `name`'s architecture (under `torch.device("meta")`,
    shapes only: how the tests count parameters without allocating them)."""
    torch.manual_seed(seed)  # the initial weights are part of what a seed fixes
    model = T5ForConditionalGeneration(hub_t5_config(name))
    if not HUB_T5_SHAPES[HUB_ALIASES.get(name, name)]["tie_word_embeddings"]:
        _untie_output_layer(model)
    return model


def random_init_model(
    name: str, cfg: ModelConfig, seed: int, tokenizer_texts: Iterable[str]
) -> tuple[T5ForConditionalGeneration, PreTrainedTokenizerBase]:
    """A randomly initialised model of hub model `name`'s architecture, and an offline tokenizer."""
    config = hub_t5_config(name)
    tokenizer = offline_tokenizer(tokenizer_texts, cfg)
    if len(tokenizer) > config.vocab_size:
        raise ModelError(f"model.name={name}: tokenizer has {len(tokenizer)} tokens > vocab {config.vocab_size}")
    return build_architecture(name, seed), tokenizer


def save_random_init(name: str, cfg: ModelConfig, seed: int, tokenizer_texts: Iterable[str], out_dir: Path) -> Path:
    """`random_init_model` saved with save_pretrained (model + tokenizer): a local `model.name`."""
    model, tokenizer = random_init_model(name, cfg, seed, tokenizer_texts)
    out_dir = Path(out_dir)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return out_dir


def _untie_output_layer(model: T5ForConditionalGeneration) -> None:
    """Give a T5 v1.1 model its own output layer, as the published checkpoints have.

    transformers 5 builds every T5 tied (T5Config forces tie_word_embeddings=True and keeps v1.1's
    meaning as scale_decoder_outputs=False); a v1.1 checkpoint still loads untied because it holds
    both matrices. A random model has none, so its output layer is made separate here.
    """
    if model.lm_head.weight is model.shared.weight:
        weight = torch.empty_like(model.shared.weight)
        torch.nn.init.normal_(weight, mean=0.0, std=model.config.initializer_factor)  # T5's untied lm_head init
        model.lm_head.weight = torch.nn.Parameter(weight)
    model.config.tie_word_embeddings = False  # saved as such: a reload keeps both matrices


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
