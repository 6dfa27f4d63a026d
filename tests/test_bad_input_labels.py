"""A one-off typo in a label (issue 25 item 5b): one row in 60 spelled `yse`.

With the label set declared (data.labels), the typo is a one-line error naming the file, line and
label, raised before anything is created; without a declaration it is a one-line warning before the
training starts; `r2d data summary` shows the label counts. The built-in datasets declare theirs.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from r2d import cli
from r2d.config import load_config
from r2d.data import DataError, Example, load_dataset
from r2d.data.base import rare_labels_warning
from r2d.sweep import cli as sweep_cli
from r2d.sweep import run as sweep

from .conftest import ROOT

N, TYPO_ROW = 60, 15  # the 16th row (0-based 15), a 'yes', is misspelled
DECLARED = '--set=data.labels=["yes", "no", "maybe"]'


def _label(i: int) -> str:
    return "yse" if i == TYPO_ROW else ("yes", "no", "maybe")[i % 3]


def _write(tmp_path: Path, kind: str) -> tuple[Path, int]:
    """The 60-row file and the line the typo is on (CSV: after its header)."""
    rows = [{"id": f"r{i}", "question": f"question {i}", "label": _label(i), "rationale": f"because {i}"}
            for i in range(N)]
    path = tmp_path / f"labels.{kind}"
    if kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path, TYPO_ROW + 1
    path.write_text("id,question,label,rationale\n" + "".join(
        f"{r['id']},{r['question']},{r['label']},{r['rationale']}\n" for r in rows))
    return path, TYPO_ROW + 2


def _snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _train_argv(tmp_path: Path, kind: str, path: Path) -> list[str]:
    # where a training would write: all inside tmp_path
    return ["train", "--out", f"{tmp_path}/out", "--set", f"model.cache_dir={tmp_path}/cache",
            "--set", f"resources.storage_path={tmp_path}/ray", "--set", "tracking.enabled=true",
            "--set", f"tracking.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
            "--set", f"data.dataset={kind}", "--set", f"data.path={path}"]


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_declared_labels_refuse_the_typo_before_anything_exists(kind, tmp_path, capsys, monkeypatch):
    def started(*args, **kwargs):
        raise AssertionError("the typo was not caught: a training was about to start")

    monkeypatch.setattr(cli.runner, "train", started)
    path, line = _write(tmp_path, kind)
    before = _snapshot(tmp_path)
    rc = cli.main([*_train_argv(tmp_path, kind, path), DECLARED])
    err = capsys.readouterr().err
    assert rc == 2
    assert err == f"r2d: error: {path}:{line}: label 'yse' is not one of yes, no, maybe (data.labels)\n"
    assert _snapshot(tmp_path) == before  # no run directory, no MLflow store, no cache
    # `r2d data summary` refuses it the same way
    assert cli.main(["data", "summary", "--dataset", kind, "--data-path", str(path), DECLARED]) == 2
    assert f"{path}:{line}: label 'yse'" in capsys.readouterr().err


def test_declared_labels_from_a_config_file(tmp_path, capsys):
    path, line = _write(tmp_path, "jsonl")
    config = tmp_path / "labels.yaml"
    config.write_text(f"data:\n  dataset: jsonl\n  path: {path}\n  labels: ['Yes', 'no', 'maybe']\n")
    assert cli.main(["data", "summary", "--config", str(config)]) == 2
    assert f"{path}:{line}: label 'yse' is not one of yes, no, maybe (data.labels)" in capsys.readouterr().err
    # unquoted, YAML reads yes/no as booleans: told, not silently turned into 'True'
    config.write_text(f"data:\n  dataset: jsonl\n  path: {path}\n  labels: [yes, no, maybe]\n")
    assert cli.main(["data", "summary", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "data.labels: [True, False, 'maybe']: YAML reads an unquoted" in err


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_undeclared_typo_is_a_warning_before_training(kind, tmp_path, capsys, monkeypatch):
    seen: list[str] = []

    def train(cfg, out, on_ray=False):  # what stderr held when the training would have started
        seen.append(capsys.readouterr().err)
        return {}

    monkeypatch.setattr(cli.runner, "train", train)
    path, line = _write(tmp_path, kind)
    assert cli.main(_train_argv(tmp_path, kind, path)) == 0
    assert len(seen) == 1
    assert seen[0] == (f"r2d: warning: {path}: rare label 'yse' (1 of 60 rows, first on line {line}): a typo? "
                       "Declare the label set (data.labels) to make any other label an error\n")


def test_summary_shows_label_counts_and_the_warning(tmp_path, capsys):
    path, _ = _write(tmp_path, "jsonl")
    assert cli.main(["data", "summary", "--dataset", "jsonl", "--data-path", str(path)]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["label_counts"] == {"yes": 19, "no": 20, "maybe": 20, "yse": 1}
    assert list(summary["label_counts"])[-1] == "yse"  # most frequent first: the rare one at the end
    assert summary["labels"] == ["maybe", "no", "yes", "yse"]  # undeclared: the extra class, shown
    assert len(summary["warnings"]) == 1 and "rare label 'yse'" in summary["warnings"][0]
    assert captured.err.startswith("r2d: warning: ") and captured.err.count("\n") == 1
    # the typo fixed and the set declared: no warning, the declared set (sorted) is the label set
    path.write_text(path.read_text().replace('"yse"', '"yes"'))
    assert cli.main(["data", "summary", "--dataset", "jsonl", "--data-path", str(path), DECLARED]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["label_counts"] == {"yes": 20, "no": 20, "maybe": 20} and summary["warnings"] == []
    assert summary["labels"] == ["maybe", "no", "yes"] and captured.err == ""


def test_rare_means_fewer_than_2_rows_or_1_percent():
    def examples(counts: dict[str, int]) -> list[Example]:
        labels = [label for label, n in counts.items() for _ in range(n)]
        return [Example(f"e{i}", "q", label, "r") for i, label in enumerate(labels)]

    assert rare_labels_warning(examples({"yes": 30, "no": 28, "maybe": 2}), "f", {}) is None  # 2 of 60: not rare
    assert rare_labels_warning(examples({"yes": 300, "no": 294, "maybe": 6}), "f", {}) is None  # 6 of 600: 1%
    assert "'maybe' (5 of 600 rows)" in rare_labels_warning(examples({"yes": 300, "no": 295, "maybe": 5}), "f", {})
    two = rare_labels_warning(examples({"yes": 300, "no": 298, "noo": 1, "ys": 1}), "f", {"e598": 7})
    assert two == ("f: rare labels 'noo' (1 of 600 rows, first on line 7), 'ys' (1 of 600 rows): a typo? "
                   "Declare the label set (data.labels) to make any other label an error")


def test_built_in_datasets_declare_theirs(pubmedqa_dir):
    def data(*overrides):
        return load_config(None, list(overrides)).data

    # PubMedQA's declared yes/no/maybe: the real data passes, with its labels named in any order
    ds = load_dataset(data("data.dataset=pubmedqa", f"data.path={pubmedqa_dir}", 'data.labels=["yes","no","maybe"]'))
    assert ds.labels == ["maybe", "no", "yes"] and ds.warnings == []
    assert ds.summary()["label_counts"] == {"yes": 552, "no": 338, "maybe": 110}
    with pytest.raises(DataError, match=r"^data.labels: yes, no: the pubmedqa data's labels are maybe, no, yes; "):
        load_dataset(data("data.dataset=pubmedqa", f"data.path={pubmedqa_dir}", 'data.labels=["yes","no"]'))
    triage = load_dataset(data("data.triage.size=200"))
    assert triage.warnings == [] and len(triage.labels) == 5
    bioasq = load_dataset(data("data.dataset=bioasq", "data.path=tests/fixtures/bioasq_taskb.json"))
    assert bioasq.labels == ["no", "yes"] and bioasq.warnings == []


def test_bioasq_label_outside_its_set_names_the_line(tmp_path):
    text = (ROOT / "tests/fixtures/bioasq_taskb.json").read_text()
    data = json.loads(text)
    q = next(q for q in data["questions"] if q.get("type") == "yesno")
    q["exact_answer"] = "perhaps"
    bad = tmp_path / "taskb.json"
    bad.write_text(json.dumps(data, indent=1))
    line = next(n for n, row in enumerate(bad.read_text().splitlines(), 1) if f'"id": "{q["id"]}"' in row)
    with pytest.raises(DataError) as err:
        load_dataset(load_config(None, ["data.dataset=bioasq", f"data.path={bad}"]).data)
    assert str(err.value) == f"{bad}:{line}: id {q['id']}: label 'perhaps' is not one of no, yes (bioasq's labels)"


def _study():
    """sweeps/schedule_sensitivity.py, imported from its path (sweeps/ is not a package)."""
    sys.path.insert(0, str(ROOT / "sweeps"))
    try:
        spec = importlib.util.spec_from_file_location("schedule_sensitivity", ROOT / "sweeps/schedule_sensitivity.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "sweeps"))
    return module


def test_sweep_warns_once_before_it_starts(tmp_path, capsys, monkeypatch):
    def started(*args, **kwargs):
        raise AssertionError("a dry run started Ray")

    monkeypatch.setattr(sweep, "ensure_ray", started)
    path, line = _write(tmp_path, "jsonl")
    study = _study()
    argv = ["--storage-path", f"{tmp_path}/storage", "--tracking-uri", f"sqlite:///{tmp_path}/m.db",
            "--set", "data.dataset=jsonl", "--set", f"data.path={path}", "--set", "data.rationale_source=default"]
    before = _snapshot(tmp_path)
    rc = sweep_cli.main_for(study.DEFAULT, ["--dry-run", *argv], study.PRESETS)
    err = capsys.readouterr().err
    assert rc == 0, err
    assert err == f"warning: {path}: rare label 'yse' (1 of 60 rows, first on line {line}): a typo? " \
                  "Declare the label set (data.labels) to make any other label an error\n"
    # declared, the sweep refuses it before anything exists (a real run, not a dry run)
    rc = sweep_cli.main_for(study.DEFAULT, [*argv, DECLARED], study.PRESETS)
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert err.endswith(f": error: {path}:{line}: label 'yse' is not one of yes, no, maybe (data.labels)\n")
    assert _snapshot(tmp_path) == before
