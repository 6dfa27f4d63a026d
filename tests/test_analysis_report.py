"""End to end: run directories and a real MLflow (sqlite) store -> `python -m analysis report` outputs.

The run directories are written here in the format of `r2d.schema` (run.json + predictions CSV), so
these tests exercise `analysis/` without training anything and without torch.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.cli import main
from analysis.errors import InputError
from analysis.load.runs import load_run_dirs
from analysis.report import build_report, report_for_sweep

LABELS = ["home care", "see doctor", "urgent care", "emergency"]
WORDS = "patient should see doctor home care urgent pain fever since yesterday today chest cough rash".split()
RESAMPLES = "300"
REPO = Path(__file__).resolve().parents[1]


def write_run(
    root: Path,
    *,
    variant: str,
    shape: str = "linear",
    transition: float = 0.6,
    source: str = "llm",
    seed: int = 0,
    skill: float = 0.7,
    n: int = 80,
    status: str = "FINISHED",
    dataset: str = "triage",
    drop_examples: int = 0,
    judge: str = "none",  # "none": column empty; "some": a few NaN; "all": scored
) -> Path:
    """One run directory as `r2d train` writes it; examples share gold data and difficulty across runs."""
    shared = np.random.default_rng(0)
    gold = shared.choice(LABELS, n)
    references = [" ".join(shared.choice(WORDS, shared.integers(5, 12))) for _ in range(n)]
    difficulty = shared.normal(0, 1, n)
    name = f"{variant}-{shape}-{transition}-{source}-s{seed}"
    rng = np.random.default_rng(zlib.crc32(name.encode()))  # stable across processes, unlike hash()
    run_dir = root / name
    (run_dir / "predictions").mkdir(parents=True)
    record = {
        "schema_version": 1,
        "run_name": name,
        "status": status,
        "variant": variant,
        "dataset": dataset,
        "rationale_source": source,
        "seed": seed,
        "schedule": {
            "shape": shape,
            "warmup": 0.05,
            "transition": transition,
            "cap": 0.9,
            "steepness": None,
            "alpha": 0.7,
        },
        "system": {"variant": variant, "shape": shape, "transition": transition},
        "labels": LABELS,
        "splits": ["test"],
        "git_commit": "0" * 40,
        "sweep_id": None,
        "mlflow_run_id": None,
    }
    if status != "FINISHED":
        record["error"] = "RuntimeError: CUDA out of memory\nTraceback..."
    (run_dir / "run.json").write_text(json.dumps(record))
    if status != "FINISHED":
        return run_dir
    p_correct = 1 / (1 + np.exp(-(np.log(skill / (1 - skill)) + difficulty + rng.normal(0, 0.1))))
    correct = rng.random(n) < p_correct
    pred = np.where(correct, gold, rng.choice(LABELS + ["not a label"], n))
    hypotheses = [
        " ".join(w if rng.random() < skill else str(rng.choice(WORDS)) for w in ref.split()) for ref in references
    ]
    judge_scores = {"none": np.full(n, np.nan), "some": rng.random(n), "all": rng.random(n)}[judge]
    if judge == "some":
        judge_scores[:5] = np.nan
    frame = pd.DataFrame(
        {
            "id": [f"q{i:03d}" for i in range(n)],
            "gold_label": gold,
            "pred_label": pred,
            "label_valid": np.isin(pred, LABELS).astype(int),
            "correct": (pred == gold).astype(int),
            "gold_rationale": references,
            "pred_rationale": hypotheses,
            "bleu": rng.gamma(2, 10, n),
            "bertscore_p": rng.beta(8, 2, n),
            "bertscore_r": rng.beta(8, 2, n),
            "bertscore_f1": np.clip(rng.beta(8, 2, n) + 0.1 * (skill - 0.7), 0, 1),
            "consistent": (rng.random(n) < 0.8).astype(int),
            "judge": judge_scores,
        }
    )
    frame.iloc[drop_examples:].to_csv(run_dir / "predictions" / "test.csv", index=False)
    return run_dir


@pytest.fixture
def sweep_dirs(tmp_path: Path) -> Path:
    """A schedule sweep (2 shapes x 2 rates) plus sft, 3 seeds; sft's seed 2 failed; one run lacks examples."""
    root = tmp_path / "runs"
    for shape, transition, skill in [
        ("linear", 0.6, 0.7),
        ("linear", 0.3, 0.72),
        ("exponential", 0.3, 0.69),
        ("exponential", 0.6, 0.7),
    ]:
        for seed in range(3):
            write_run(
                root,
                variant="r2d",
                shape=shape,
                transition=transition,
                seed=seed,
                skill=skill,
                drop_examples=2 if (shape, transition, seed) == ("linear", 0.3, 1) else 0,
            )
    for seed in range(3):
        write_run(root, variant="sft", seed=seed, skill=0.5, status="FAILED" if seed == 2 else "FINISHED")
    return root


def test_report_from_run_directories(sweep_dirs: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["report", "--runs", str(sweep_dirs), "--out", str(out), "--resamples", RESAMPLES]) == 0
    printed = capsys.readouterr().out
    assert "| system | seeds | accuracy | Δ accuracy |" in printed
    assert "r2d shape=linear transition=0.6 (baseline)" in printed  # the paper's recipe is the default
    # with several seeds the default test is the crossed seed x example test (issue 10; was the t-test)
    assert "Holm-Bonferroni" in printed and "crossed seed x example test" in printed
    assert (
        "metric:correct|test:crossed|ci:percentile-95%|resamples:300|seed:0|n:78|seeds:2-3|correction:holm(m=4)"
        in printed
    )
    # mismatches are reported, never dropped silently
    assert "status FAILED (RuntimeError: CUDA out of memory)" in printed
    assert "has no usable run for seed(s) 2" in printed
    assert "2 example id(s) are not in every run" in printed and "lacks 2 of them" in printed

    table = pd.read_csv(out / "significance.csv")
    metrics = {"correct", "macro_f1", "corpus_bleu", "bertscore_f1", "consistent"}  # judge is empty: left out
    assert set(table["metric"]) == metrics and len(table) == 5 * len(metrics)
    compared = table[~table["is_baseline"]]
    assert (compared["p_adjusted"] >= compared["p_value"] - 1e-12).all()
    # with several seeds the example-level tests' columns say that they ignore seed variance (issue 10)
    pooled = ["p_randomization_ignores_seed_variance", "p_mcnemar_ignores_seed_variance"]
    assert "p_randomization" not in table.columns and "p_mcnemar" not in table.columns
    assert compared[["p_crossed", "p_bootstrap", pooled[0], "p_ttest", "p_wilcoxon"]].notna().all().all()
    assert (compared["p_value"] == compared["p_crossed"]).all() and (compared["delta_ci"] == "crossed-t").all()
    assert compared.loc[compared["metric"] == "correct", pooled[1]].notna().all()
    assert (table["ci_low"] <= table["estimate"]).all() and (table["estimate"] <= table["ci_high"]).all()
    sft = table[(table["system"].str.startswith("sft")) & (table["metric"] == "correct")].iloc[0]
    assert sft["comparison_seeds"] == "0;1" and sft["delta"] < 0

    latex = (out / "significance.tex").read_text()
    assert all(rule in latex for rule in (r"\toprule", r"\midrule", r"\bottomrule", r"$\Delta$ accuracy"))
    assert "shape=linear" in latex and r"r2d\_" not in latex
    for plot in ("correct_systems.png", "correct_transition.png", "corpus_bleu_transition.png"):
        assert (out / "plots" / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_single_seed_report_finds_a_planted_difference(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    for variant, skill in [("r2d", 0.7), ("teacher_forcing", 0.71), ("student_forcing", 0.93)]:
        write_run(root, variant=variant, skill=skill, n=200)
    report = build_report(
        load_run_dirs([root]), out_dir=tmp_path / "out", metrics=["accuracy", "bleu"], n_resamples=1000, plots=False
    )
    rows = {(row.system, row.metric): row for row in report.rows}
    assert report.baselines == {"rationale_source=llm": "r2d"}
    planted = rows[("student_forcing", "correct")]
    assert planted.significant and planted.delta > 0.1 and planted.test == "paired-bootstrap"
    assert planted.delta_low > 0 and planted.delta_ci == "bootstrap-bca"
    close = rows[("teacher_forcing", "correct")]
    assert not close.significant and close.mde > abs(close.delta)  # readable: below what n can detect
    assert "(mde " in report.markdown and "p=" in report.markdown
    assert report.signatures["correct"].startswith("metric:correct|test:paired-bootstrap|ci:bca-95%|")
    assert "seeds:1|" in report.signatures["correct"]
    assert [row.ci_method for row in report.rows] == ["bca"] * len(report.rows)


def test_rationale_sources_get_their_own_baseline_and_panels(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    for source in ("llm", "nurse"):
        for variant, skill in [("r2d", 0.7), ("sft", 0.6)]:
            for seed in range(2):
                write_run(root, variant=variant, source=source, seed=seed, skill=skill)
    report = build_report(
        load_run_dirs([root]),
        baseline="sft",
        metrics=["correct", "corpus_bleu"],
        n_resamples=300,
        out_dir=tmp_path / "out",
        correction="bonferroni",
    )
    assert report.baselines == {"rationale_source=llm": "sft source=llm", "rationale_source=nurse": "sft source=nurse"}
    compared = {row.system: row.baseline for row in report.rows if not row.is_baseline}
    assert compared == {"r2d source=llm": "sft source=llm", "r2d source=nurse": "sft source=nurse"}
    assert "Bonferroni" in report.markdown and "correction:bonferroni(m=2)" in report.markdown
    assert (tmp_path / "out" / "plots" / "correct_systems.png").is_file()


def test_partly_missing_judge_scores_are_reported(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    for variant in ("r2d", "sft"):
        write_run(root, variant=variant, judge="some")
    report = build_report(load_run_dirs([root]), metrics=["judge"], n_resamples=300, plots=False)
    assert any("judge: 5 of 80 examples have no score" in note for note in report.notes)
    assert all(np.isfinite(row.estimate) for row in report.rows)


@pytest.mark.parametrize(
    ("extra_arguments", "option"),
    [
        (["--metrics", "rouge"], "--metrics"),
        (["--metrics", "judge"], "--metrics"),  # the judge was not configured: its column is empty
        (["--baseline", "nonexistent"], "--baseline"),
        (["--test", "mcnemar", "--metrics", "bleu"], "--test"),
        (["--dataset", "pubmedqa"], "--dataset"),
        (["--resamples", "5"], "--resamples"),
    ],
)
def test_bad_input_is_one_line_naming_the_option(
    sweep_dirs: Path, tmp_path: Path, capsys, extra_arguments, option
) -> None:
    code = main(["report", "--runs", str(sweep_dirs), "--out", str(tmp_path / "out"), *extra_arguments])
    error = capsys.readouterr().err.strip()
    assert code == 2
    assert len(error.splitlines()) == 1
    assert f"error: {option}:" in error and "expected" in error


def test_no_runs_and_mixed_datasets_are_input_errors(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["report", "--runs", str(tmp_path / "empty")]) == 2
    assert "--runs: no run directory" in capsys.readouterr().err
    assert main(["report", "--runs", str(tmp_path / "missing")]) == 2
    assert main(["report"]) == 2  # no source at all
    root = tmp_path / "runs"
    write_run(root, variant="r2d", dataset="triage")
    write_run(root, variant="sft", dataset="pubmedqa")
    with pytest.raises(InputError, match="runs span datasets pubmedqa, triage"):
        build_report(load_run_dirs([root]))
    only_failed = tmp_path / "failed"
    write_run(only_failed, variant="r2d", status="FAILED")
    with pytest.raises(InputError, match="no usable run"):
        build_report(load_run_dirs([only_failed]))


def test_analysis_never_imports_torch(sweep_dirs: Path, tmp_path: Path) -> None:
    """A laptop without torch must be able to regenerate tables: import everything, run the CLI, check."""
    script = (
        "import importlib, pkgutil, sys\n"
        "import mlflow, analysis, analysis.cli\n"
        "for module in pkgutil.walk_packages(analysis.__path__, 'analysis.'):\n"
        "    if not module.name.rpartition('.')[2].startswith('_'):\n"
        "        importlib.import_module(module.name)\n"
        f"code = analysis.cli.main(['report', '--runs', {str(sweep_dirs)!r}, '--out', {str(tmp_path / 'o')!r},"
        " '--resamples', '200', '--metrics', 'correct'])\n"
        "assert code == 0, code\n"
        "assert 'torch' not in sys.modules, 'analysis imported torch'\n"
        "print('no torch')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "no torch" in result.stdout


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # MLflow's own SQLAlchemy usage
def test_report_from_mlflow_sqlite_store(tmp_path: Path, capsys) -> None:
    """Runs logged to a real MLflow store (sqlite) are read back, cached, reported, and attached to the parent."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("schedules", artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(experiment, run_name="sweep", tags={"r2d.sweep_id": "sw-1"})
    local = tmp_path / "local"
    runs = [write_run(local, variant=v, seed=s, skill=k) for v, k in (("r2d", 0.7), ("sft", 0.55)) for s in (0, 1)]
    runs.append(write_run(local, variant="sft", seed=2, status="FAILED"))
    for run_dir in runs:
        record = json.loads((run_dir / "run.json").read_text())
        child = client.create_run(
            experiment,
            run_name=record["run_name"],
            tags={
                "r2d.sweep_id": "sw-1",
                "mlflow.parentRunId": parent.info.run_id,
                "r2d.variant": record["variant"],
                "r2d.seed": str(record["seed"]),
            },
        )
        client.log_artifacts(child.info.run_id, str(run_dir))
        client.set_terminated(child.info.run_id, status=record["status"])
    crashed = client.create_run(
        experiment,
        run_name="r2d-crashed",
        tags={  # died before writing run.json
            "r2d.sweep_id": "sw-1",
            "mlflow.parentRunId": parent.info.run_id,
            "r2d.variant": "r2d",
            "r2d.seed": "2",
        },
    )
    client.set_terminated(crashed.info.run_id, status="FAILED")
    client.set_terminated(parent.info.run_id)

    cache, out = tmp_path / "cache", tmp_path / "out"
    code = main(
        [
            "report",
            "--experiment",
            "schedules",
            "--tracking-uri",
            uri,
            "--cache-dir",
            str(cache),
            "--out",
            str(out),
            "--resamples",
            RESAMPLES,
            "--metrics",
            "correct",
            "corpus_bleu",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "sft (baseline)" not in captured.out and "| r2d (baseline) | 2 (0,1) |" in captured.out  # seeds: count, list
    assert "sft-linear-0.6-llm-s2" in captured.out and "MLflow status FAILED (RuntimeError" in captured.out
    assert "r2d-crashed" in captured.out and "no run.json" in captured.out
    assert f"attached to MLflow run {parent.info.run_id}" in captured.err
    attached = {info.path for info in client.list_artifacts(parent.info.run_id, "analysis")}
    assert {"analysis/significance.md", "analysis/significance.csv", "analysis/plots"} <= attached
    cached = sorted(path.relative_to(cache).as_posix() for path in cache.rglob("*.csv"))
    assert len(cached) == 4 and all(path.endswith("/predictions/test.csv") for path in cached)

    # the sweep driver's entry point: same runs by sweep id, served from the cache
    report = report_for_sweep(
        "sw-1",
        out_dir=tmp_path / "sweep-out",
        tracking_uri=uri,
        cache_dir=cache,
        metrics=["correct"],
        n_resamples=300,
        attach=False,
    )
    assert [row.system for row in report.rows] == ["r2d", "sft"]
    assert main(["report", "--sweep-id", "nope", "--tracking-uri", uri, "--cache-dir", str(cache)]) == 2
    assert "--sweep-id" in capsys.readouterr().err
    assert main(["report", "--experiment", "absent", "--tracking-uri", uri]) == 2
    assert "no MLflow experiment named 'absent'" in capsys.readouterr().err
