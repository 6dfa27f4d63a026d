"""Issue 25: the report's signature names the versions the runs were made with (run.json `environment`, or the
MLflow tags r2d.env.*), and runs made with different versions are a warning: stderr, the footer, the notes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from analysis.cli import main
from analysis.load.mlflow_runs import _fill_from_tags
from analysis.load.runs import Run
from analysis.load.versions import collect_versions, environment_from_tags
from tests.test_bad_input_corrupt import COMMON, write_study

ENVIRONMENT = {
    "python": "3.11.7",
    "torch": "2.13.0+cpu",
    "transformers": "5.25.0",
    "ray": "2.50.0",
    "mlflow": "3.1.0",
    "optuna": None,  # not installed: r2d records None
    "sacrebleu": "2.5.1",
    "bert-score": "0.3.13",
    "git_commit": "1c1a26b9d0e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8",
    "cpu_model": "Intel(R) Xeon(R)",
    "ATEN_CPU_CAPABILITY": "avx2",
}
SIGNATURE = "torch:2.13.0+cpu|transformers:5.25.0|r2d:1c1a26b"


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    return write_study(tmp_path_factory.mktemp("versions") / "runs")


def _study(clean: Path, tmp_path: Path, environment_of) -> Path:
    """A copy of the study whose run.json `environment` is `environment_of(run name)` (None: the key removed)."""
    root = tmp_path / "runs"
    shutil.copytree(clean, root)
    for record_path in root.glob("*/run.json"):
        record = json.loads(record_path.read_text())
        environment = environment_of(record_path.parent.name)
        record.pop("environment", None)
        if environment is not None:
            record["environment"] = environment
        record_path.write_text(json.dumps(record))
    return root


def _report(root: Path, tmp_path: Path, capsys) -> tuple[str, str]:
    out = tmp_path / "out"
    assert main(["report", "--runs", str(root), "--out", str(out), *COMMON]) == 0
    captured = capsys.readouterr()
    return (out / "significance.md").read_text(), captured.err


def test_same_versions_are_in_the_signature_and_no_warning(clean, tmp_path, capsys) -> None:
    markdown, err = _report(_study(clean, tmp_path, lambda name: ENVIRONMENT), tmp_path, capsys)
    signature = next(line for line in markdown.splitlines() if line.startswith("metric:correct|"))
    assert signature.endswith("|analysis:0.1.0|" + SIGNATURE), signature
    assert "warning" not in err.lower() and "Warning" not in markdown and "versions:" not in markdown


def test_a_different_torch_is_a_warning_naming_the_key_and_values(clean, tmp_path, capsys) -> None:
    def environment(name: str) -> dict:
        return {**ENVIRONMENT, "torch": "2.12.0+cpu"} if name.startswith("b") else ENVIRONMENT

    markdown, err = _report(_study(clean, tmp_path, environment), tmp_path, capsys)
    warnings = [line for line in err.splitlines() if "warning" in line]
    expected = "the runs compared were made with different versions: torch 2.12.0+cpu (3 runs), 2.13.0+cpu (3 runs)"
    assert warnings == [f"python -m analysis report: warning: {expected}"], err
    assert f"Warning: {expected}" in markdown.split("metric:correct|")[0]  # a footer line, above the signatures
    assert "|torch:2.12.0+cpu,2.13.0+cpu|transformers:5.25.0|r2d:1c1a26b" in markdown
    assert "- versions: torch differs across the runs (2.12.0+cpu: b-s0, b-s1, b-s2; 2.13.0+cpu: a-s0" in markdown


def test_a_different_commit_is_a_warning_too(clean, tmp_path, capsys) -> None:
    def environment(name: str) -> dict:
        return {**ENVIRONMENT, "git_commit": "9f8e7d6c5b4a"} if name == "a-s0" else ENVIRONMENT

    markdown, err = _report(_study(clean, tmp_path, environment), tmp_path, capsys)
    assert "warning: the runs compared were made with different versions: r2d commit 1c1a26b (5 runs), " in err
    assert "9f8e7d6 (1 run)" in err and "|r2d:1c1a26b,9f8e7d6" in markdown


def test_runs_without_an_environment_say_unrecorded_and_do_not_warn(clean, tmp_path, capsys) -> None:
    markdown, err = _report(_study(clean, tmp_path, lambda name: None), tmp_path, capsys)
    assert "|analysis:0.1.0|versions:unrecorded" in markdown
    assert "warning" not in err.lower() and "Warning" not in markdown


def test_the_cpu_and_isa_switches_are_not_versions() -> None:
    other = {**ENVIRONMENT, "cpu_model": "AMD EPYC", "ATEN_CPU_CAPABILITY": "default"}
    runs = [Run("x", {"environment": ENVIRONMENT}, "x"), Run("y", {"environment": other}, "y")]
    versions = collect_versions(runs)
    assert versions.warning() is None and versions.signature() == SIGNATURE


def test_mlflow_tags_give_the_environment_when_run_json_has_none() -> None:
    tags = {
        "r2d.env.torch": "2.13.0+cpu",
        "r2d.env.transformers": "5.25.0",
        "r2d.env.git_commit": "1c1a26b9",
        "r2d.variant": "r2d",
        "r2d.health.collapsed": "false",
    }
    assert environment_from_tags(tags) == {"torch": "2.13.0+cpu", "transformers": "5.25.0", "git_commit": "1c1a26b9"}
    record: dict = {"run_name": "x"}
    _fill_from_tags(record, tags)
    assert record["environment"]["torch"] == "2.13.0+cpu"
    assert collect_versions([Run("x", record, "mlflow:1")]).signature() == SIGNATURE
    kept = {"environment": {"torch": "2.1.0"}}
    _fill_from_tags(kept, tags)
    assert kept["environment"] == {"torch": "2.1.0"}  # run.json's own record wins
