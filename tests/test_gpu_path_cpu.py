"""The GPU presets' code path, run on CPU: only the weights are replaced, by a random model.

Each preset (its data, decoding mode, precision switch, evaluation) runs `r2d.train.run` for a couple
of Stage 1 and Stage 2 steps and one evaluation, with `model.name` pointing at a local directory
that holds a randomly initialised model of a hub architecture (r2d.model.modeling.save_random_init) and a
tokenizer trained offline. Needs the trainer (r2d/train/loop.py): a failure here may be the trainer's.

CI form (< 90 s): configs/pubmedqa-t5-small.yaml, whose own shape is t5-small. Bench form
(R2D_BIG_SHAPES=1): every GPU preset at its own shape (t5-base, t5-large, flan-t5-large: minutes
each and several GB of RAM), the paper presets among them.

Shortened for CPU, against the presets: 2 steps per stage (eval and checkpoint at step 2), batch 2,
8 training and 4 evaluation examples, 64 input / 16 target tokens (presets: 1024 / 256), rationales
of at most 8 new tokens (255), 1 worker and no GPU (bf16 stays set; autocast is GPU-only), triage
size 200, and BERTScore with the offline MiniLM (the presets' roberta-large needs the hub).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from r2d import schema
from r2d.config import load_config
from r2d.data import load_dataset
from r2d.model.modeling import save_random_init, tokenizer_corpus

BIG = os.environ.get("R2D_BIG_SHAPES") == "1"
# CI: the one preset whose own architecture is t5-small; every other preset runs in the bench form.
CI_CASES = ["configs/pubmedqa-t5-small.yaml"]
ALL_PRESETS = sorted({*map(str, Path("configs").glob("paper-*.yaml")), "configs/pubmedqa-t5-base.yaml",
                      "configs/pubmedqa-t5-small.yaml", "configs/triage-flan-t5-large.yaml"})


def bioasq_json(path: Path, n: int = 40) -> Path:
    """A tiny file in the official BioASQ Task B format (r2d/data/bioasq.py): yes/no questions."""
    questions = []
    for i in range(n):
        yes = i % 2 == 0
        questions.append({
            "id": f"b{i:03d}", "type": "yesno", "body": f"Does drug {i} lower blood pressure in adults?",
            "snippets": [{"text": f"In trial {i}, drug {i} {'lowered' if yes else 'did not change'} blood pressure."}],
            "exact_answer": "yes" if yes else "no",
            "ideal_answer": [f"{'Yes' if yes else 'No'}: trial {i} found {'a drop' if yes else 'no change'}."],
        })
    questions.append({"id": "f1", "type": "factoid", "body": "Which gene?", "snippets": [], "exact_answer": [["X"]],
                      "ideal_answer": ["X."]})
    path.write_text(json.dumps({"questions": questions}), encoding="utf-8")
    return path


def cpu_overrides(cfg, tmp: Path, model_dir: Path, pubmedqa_dir: Path, bioasq_file: Path) -> list[str]:
    data_path = {"pubmedqa": pubmedqa_dir, "bioasq": bioasq_file}.get(cfg.data.dataset)
    over = {
        "model.name": model_dir, "model.cache_dir": tmp / "cache", "stage1.cache_dir": tmp / "stage1",
        "resources.storage_path": tmp / "ray", "resources.num_workers": 1, "resources.use_gpu": "false",
        "resources.torch_threads": 1, "tracking.enabled": "false",  # one core: the suite runs two files at once
        "data.max_train_examples": 8, "data.max_eval_examples": 4, "data.max_input_tokens": 64,
        "data.max_target_tokens": 16, "data.triage.size": 200,
        "stage1.max_steps": 2, "stage1.eval_every": 2, "stage1.batch_size": 2,
        "stage2.max_steps": 2, "stage2.eval_every": 2, "stage2.batch_size": 2,
        "evaluation.batch_size": 4, "evaluation.max_rationale_tokens": 8,
        "evaluation.bertscore.model": "null", "evaluation.bertscore.num_layers": 4,
    }
    if data_path is not None:
        over["data.path"] = data_path
    return [f"{k}={v}" for k, v in over.items()]


@pytest.fixture(scope="module")
def bioasq_file(tmp_path_factory) -> Path:
    return bioasq_json(tmp_path_factory.mktemp("bioasq") / "taskb.json")


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory, pubmedqa_dir, bioasq_file):
    """shape -> a saved random-init model of it; one tokenizer trained on all three datasets' texts."""
    root = tmp_path_factory.mktemp("random-init")
    texts: list[str] = []
    for dataset, path in (("pubmedqa", pubmedqa_dir), ("bioasq", bioasq_file), ("triage", None)):
        over = [f"data.dataset={dataset}", "data.triage.size=200", "data.max_train_examples=200"]
        ds = load_dataset(load_config(None, over + ([f"data.path={path}"] if path else [])).data)
        texts += tokenizer_corpus(ds.train, ds.labels)
    made: dict[str, Path] = {}

    def get(shape: str) -> Path:
        if shape not in made:
            cfg = load_config(None, [f"model.cache_dir={root / 'cache'}"])
            made[shape] = save_random_init(shape, cfg.model, 0, texts, root / shape.replace("/", "_"))
        return made[shape]

    return get


def run_preset(preset: str, shape: str | None, tmp_path: Path, model_dirs, pubmedqa_dir, bioasq_file) -> None:
    from r2d.train.loop import run  # the trainer under test (imports torch, the model code, Ray's runtime)

    base = load_config(preset)
    shape = shape or base.model.name
    cfg = load_config(preset, cpu_overrides(base, tmp_path, model_dirs(shape), pubmedqa_dir, bioasq_file))
    assert cfg.stage2.label_decoding == base.stage2.label_decoding == "generate"
    out = tmp_path / "run"
    summary = run(cfg, out)

    assert summary["stage1"]["steps"] == 2 and summary["stage2"]["steps"] == 2
    record = json.loads((out / schema.RUN_FILE).read_text())
    assert record["status"] == "FINISHED" and record["dataset"] == base.data.dataset
    for split in cfg.evaluation.splits:
        lines = (out / schema.predictions_path(split)).read_text(encoding="utf-8").splitlines()
        assert lines[0].split(",") == list(schema.PREDICTION_COLUMNS) and len(lines) - 1 <= 4
    saved = json.loads((out / "model" / "config.json").read_text())
    source = json.loads((model_dirs(shape) / "config.json").read_text())
    for key in ("d_model", "d_ff", "num_layers", "num_heads", "feed_forward_proj", "vocab_size"):
        assert saved[key] == source[key], key

@pytest.mark.slow
@pytest.mark.parametrize("preset", CI_CASES)
def test_gpu_preset_path_on_cpu(preset, tmp_path, model_dirs, pubmedqa_dir, bioasq_file):
    run_preset(preset, None, tmp_path, model_dirs, pubmedqa_dir, bioasq_file)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # t5-large shapes: tens of minutes on 2 shared cores, ~15 GB of RAM
@pytest.mark.skipif(not BIG, reason="bench: R2D_BIG_SHAPES=1 runs every preset at its own shape")
@pytest.mark.parametrize("preset", ALL_PRESETS)
def test_gpu_preset_path_on_cpu_own_shape(preset, tmp_path, model_dirs, pubmedqa_dir, bioasq_file):
    run_preset(preset, None, tmp_path, model_dirs, pubmedqa_dir, bioasq_file)
