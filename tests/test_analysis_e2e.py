"""End to end through the whole report path (files -> runs -> systems -> table), on run directories written by
r2d's own writer (`r2d.train.evaluate.write_run_dir`) from simulated predictions with known truth (tests/sim_runs.py).

Issue 10: a row is one configuration, one set of seeds per row, one macro-F1, metrics a system cannot have
shown as n/a, words for numbers that cannot be true, calibration and power through the report path;
issue 11: health flags in the notes, marked rows, --exclude-unhealthy.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from sklearn.metrics import f1_score

from analysis.cli import main
from analysis.load import health as analysis_health
from analysis.load.runs import load_run_dir, load_run_dirs
from analysis.metrics import METRICS
from analysis.report import build_report
from r2d.scoring import health as r2d_health
from r2d.scoring.metrics import LabelMetrics
from tests import sim_runs as sim

R2D = ("variant=r2d",)
CAP_05 = ("variant=constant_mix", "stage2.schedule.cap=0.5")
CAP_09 = ("variant=constant_mix", "stage2.schedule.cap=0.9")
ALPHA_06 = ("variant=constant_mix", "stage2.schedule.cap=0.5", "stage2.alpha=0.6")


def _accuracy(run_dir: Path) -> float:
    return float(pd.read_csv(run_dir / "predictions" / "test.csv")["correct"].mean())


def _write_study(
    root: Path, systems: dict[str, tuple[tuple[str, ...], float]], seeds: dict[str, list[int]], n: int = 120, **kw
) -> dict[tuple[str, int], Path]:
    """Runs of each system (overrides, mu) on its seeds, on one shared test set; returns (system, seed) -> dir."""
    rng = np.random.default_rng(kw.pop("rng_seed", 0))
    population = kw.pop("population", sim.Population(1.0, 0.2, 0.3))
    test_set = sim.draw_test_set(rng, n, population)
    dirs = {}
    for name, (overrides, mu) in systems.items():
        interaction = rng.normal(0, population.sd_interaction, n)
        for seed in seeds[name]:
            rows = sim.simulate_rows(
                rng,
                test_set,
                mu,
                seed_effect=rng.normal(0, population.sd_seed),
                interaction=interaction,
                rationales=kw.get("rationales", {}).get(name, True),
            )
            dirs[name, seed] = sim.write_sim_run(root, f"{name}-s{seed}", overrides, seed, rows)
    return dirs


def _rows(report, metric: str = "correct") -> dict:
    return {row.system: row for row in report.rows if row.metric == metric}


def test_configurations_differing_only_in_a_free_setting_are_separate_rows(tmp_path: Path) -> None:
    systems = {"r2d": (R2D, 0.4), "cap05": (CAP_05, 0.6), "cap09": (CAP_09, 0.9), "alpha06": (ALPHA_06, 1.2)}
    dirs = _write_study(tmp_path / "runs", systems, dict.fromkeys(systems, [0, 1]))
    report = build_report(load_run_dirs([tmp_path / "runs"]), metrics=["correct"], n_resamples=300, plots=False)
    rows = _rows(report)
    # the variant always, then the settings that differ and that the variant does not fix (shape: it does)
    names = {
        "r2d": "r2d cap=0.9 alpha=0.5",
        "cap05": "constant_mix cap=0.5 alpha=0.5",
        "cap09": "constant_mix cap=0.9 alpha=0.5",
        "alpha06": "constant_mix cap=0.5 alpha=0.6",
    }
    assert set(rows) == set(names.values())
    for key, name in names.items():
        assert rows[name].estimate == pytest.approx(np.mean([_accuracy(dirs[key, seed]) for seed in (0, 1)]))
        assert rows[name].system_id == json.loads((dirs[key, 0] / "run.json").read_text())["system_id"]
    assert not any(note.startswith("duplicate") for note in report.notes)

    # the same runs without system_id (an older r2d): grouped as before, and the notes say what that risks
    old = tmp_path / "old"
    shutil.copytree(tmp_path / "runs", old)
    for record_path in old.glob("*/run.json"):
        record = json.loads(record_path.read_text())
        record.pop("system_id"), record.pop("settings")
        record_path.write_text(json.dumps(record))
    merged = build_report(load_run_dirs([old]), metrics=["correct"], n_resamples=300, plots=False)
    assert len(_rows(merged)) == 2  # r2d and constant_mix: the three constant_mix configurations share a row
    assert any("have no system_id" in note and "share a row" in note for note in merged.notes)
    assert any(note.startswith("duplicate: constant_mix has 3 runs on seed 0") for note in merged.notes)


def test_a_missing_seed_keeps_mean_ci_and_delta_on_the_same_seeds(tmp_path: Path) -> None:
    systems = {"r2d": (R2D, 0.5), "cap05": (CAP_05, 0.8), "cap09": (CAP_09, 0.2)}
    seeds = {"r2d": [0, 1, 2], "cap05": [0, 1], "cap09": [0, 1, 2, 3]}
    root = tmp_path / "runs"
    dirs = _write_study(root, systems, seeds, population=sim.Population(1.0, 0.4, 0.3))
    sim.write_sim_run(root, "cap05-s2", CAP_05, 2, None)  # seed 2 of cap05 failed
    out = tmp_path / "out"
    assert (
        main(
            [
                "report",
                "--runs",
                str(root),
                "--out",
                str(out),
                "--resamples",
                "300",
                "--metrics",
                "correct",
                "--no-plots",
            ]
        )
        == 0
    )
    table = pd.read_csv(out / "significance.csv")
    markdown = (out / "significance.md").read_text()
    by_name = table.set_index("system")
    baseline = by_name.loc["r2d cap=0.9"]
    for key, name, used in (("cap05", "constant_mix cap=0.5", [0, 1]), ("cap09", "constant_mix cap=0.9", [0, 1, 2])):
        row = by_name.loc[name]
        assert row["seeds"] == row["comparison_seeds"] == ";".join(map(str, used))
        assert row["estimate"] == pytest.approx(np.mean([_accuracy(dirs[key, seed]) for seed in used]))
        assert row["baseline_estimate"] == pytest.approx(np.mean([_accuracy(dirs["r2d", seed]) for seed in used]))
        assert row["delta"] == pytest.approx(row["estimate"] - row["baseline_estimate"])
        assert row["ci_low"] <= row["estimate"] <= row["ci_high"]
        assert f"| {name} | {len(used)} ({','.join(map(str, used))}) |" in markdown
    assert baseline["seeds"] == "0;1;2"
    assert "status FAILED (RuntimeError: boom)" in markdown
    assert "constant_mix cap=0.9 drops seed(s) 3 (its baseline r2d cap=0.9 has no usable run for them)" in markdown
    assert "constant_mix cap=0.5 lacks seed(s) 2 of its baseline r2d cap=0.9" in markdown


def test_two_runs_of_one_system_on_one_seed_keep_the_most_recent(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    _write_study(root, {"r2d": (R2D, 0.5), "cap05": (CAP_05, 0.5)}, {"r2d": [0], "cap05": [0]})
    rng = np.random.default_rng(9)
    rerun = sim.simulate_rows(rng, sim.draw_test_set(np.random.default_rng(0), 120, sim.Population()), 3.0)
    newer = sim.write_sim_run(root, "cap05-rerun-s0", CAP_05, 0, rerun)
    os.utime(root / "cap05-s0" / "run.json", (1_000_000_000, 1_000_000_000))  # the older one
    report = build_report(load_run_dirs([root]), metrics=["correct"], n_resamples=300, plots=False)
    row = _rows(report)["constant_mix"]
    assert row.estimate == pytest.approx(_accuracy(newer))
    duplicate = next(note for note in report.notes if note.startswith("duplicate"))
    assert "kept cap05-rerun-s0" in duplicate and "dropped cap05-s0 (2001-09-09" in duplicate
    assert "most recent" in duplicate


def test_health_flags_are_listed_marked_and_can_be_excluded(tmp_path: Path, capsys) -> None:
    assert set(analysis_health.INFORMATIONAL) == set(r2d_health.FLAGS) - set(r2d_health.UNHEALTHY)
    root = tmp_path / "runs"
    test_set = sim.draw_test_set(np.random.default_rng(0), 120, sim.Population())
    rng = np.random.default_rng(1)
    for seed in range(3):
        sim.write_sim_run(
            root, f"r2d-s{seed}", R2D, seed, sim.simulate_rows(rng, test_set, 0.5), unhealthy=("early_stopped",)
        )  # informational: healthy
        flags = ("collapsed", "still_improving") if seed == 1 else ()
        sim.write_sim_run(root, f"cap05-s{seed}", CAP_05, seed, sim.simulate_rows(rng, test_set, 0.5), unhealthy=flags)
    out = tmp_path / "out"
    assert (
        main(
            [
                "report",
                "--runs",
                str(root),
                "--out",
                str(out),
                "--resamples",
                "300",
                "--no-plots",
                "--metrics",
                "correct",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "| constant_mix † | 3 (0,1,2) |" in printed and "| r2d (baseline) | 3 (0,1,2) |" in printed
    assert "health: cap05-s1 (constant_mix, seed 1): collapsed, still_improving" in printed
    assert "early_stopped" not in printed and "†: the row's runs include unhealthy ones" in printed
    assert pd.read_csv(out / "significance.csv").set_index("system").loc["constant_mix", "unhealthy"] == (
        "1:collapsed,still_improving"
    )

    assert (
        main(
            [
                "report",
                "--runs",
                str(root),
                "--out",
                str(out),
                "--resamples",
                "300",
                "--no-plots",
                "--metrics",
                "correct",
                "--exclude-unhealthy",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "| constant_mix | 2 (0,2) |" in printed and "†" not in printed.split("\n\n")[0]
    assert "excluded (--exclude-unhealthy): cap05-s1 (constant_mix, seed 1): collapsed, still_improving" in printed

    only_sick = tmp_path / "sick"
    sim.write_sim_run(only_sick, "r2d-s0", R2D, 0, sim.simulate_rows(rng, test_set, 0.5), unhealthy=("diverged",))
    assert main(["report", "--runs", str(only_sick), "--exclude-unhealthy", "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "error: --exclude-unhealthy:" in error and "expected" in error


def test_health_from_mlflow_tags() -> None:
    tags = {
        "r2d.health": "collapsed",
        "r2d.health.collapsed": "true",
        "r2d.health.early_stopped": "true",
        "r2d.health.diverged": "false",
    }
    flags = analysis_health.health_from_tags(tags)
    assert analysis_health.unhealthy_flags({"health": flags}) == ["collapsed"]
    assert analysis_health.unhealthy_flags({"health": "diverged,failed"}) == ["diverged", "failed"]
    assert analysis_health.unhealthy_flags({"health": "healthy"}) == []
    assert analysis_health.unhealthy_flags({}) is None


def test_metrics_a_system_cannot_have_are_na_for_it_only(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    systems = {"r2d": (R2D, 0.5), "sft": (("variant=sft",), 0.2), "cap05": (CAP_05, 0.6)}
    _write_study(root, systems, dict.fromkeys(systems, [0, 1]), rationales={"sft": False})
    report = build_report(load_run_dirs([root]), n_resamples=300, plots=False)
    assert [spec.name for spec in report.metrics] == [
        "correct",
        "macro_f1",
        "corpus_bleu",
        "bertscore_f1",
        "consistent",
    ]
    for metric in ("corpus_bleu", "bertscore_f1", "consistent"):
        assert set(_rows(report, metric)) == {"r2d", "constant_mix"}
        assert any(note.startswith(f"metrics: {metric} is n/a for sft") for note in report.notes)
    assert set(_rows(report, "correct")) == {"r2d", "sft", "constant_mix"}
    sft_line = next(line for line in report.markdown.splitlines() if line.startswith("| sft"))
    assert sft_line.count("| n/a ") == 6  # value and delta cells of BLEU, BERTScore, consistency
    assert "missing from some runs; left out" not in report.markdown


@pytest.mark.parametrize(
    ("gold", "pred", "labels"),
    [
        (["yes"] * 30 + ["no"] * 20, ["yes"] * 25 + ["no"] * 5 + ["no"] * 15 + ["yes"] * 5, ["yes", "no", "maybe"]),
        (["yes"] * 30 + ["no"] * 20, ["yes"] * 20 + ["unsure"] * 10 + ["no"] * 20, ["yes", "no", "maybe"]),
        (["yes"] * 30 + ["no"] * 20, ["yes"] * 28 + ["maybe"] * 2 + ["no"] * 20, ["yes", "no", "maybe"]),
    ],
    ids=["absent-class", "invalid-output", "predicted-never-gold"],
)
def test_one_macro_f1_in_r2d_analysis_and_sklearn(tmp_path: Path, gold, pred, labels) -> None:
    rows = [
        {
            "id": f"q{i:03d}",
            "gold_label": g,
            "pred_label": p,
            "label_valid": int(p in labels),
            "correct": int(g == p),
            "gold_rationale": "",
            "pred_rationale": "",
            "judge": float("nan"),
        }
        for i, (g, p) in enumerate(zip(gold, pred, strict=True))
    ]
    run_dir = sim.write_sim_run(tmp_path, "run", R2D, 0, rows, labels=labels)
    frame = load_run_dir(run_dir).predictions  # the one predictions file, read back
    r2d_side = LabelMetrics(labels).score(frame["gold_label"].tolist(), frame["pred_label"].tolist())
    spec = METRICS["macro_f1"]
    analysis_side = float(spec.finalize(spec.statistics(frame, labels).sum(axis=0)))
    reference = f1_score(frame["gold_label"], frame["pred_label"], average="macro")
    assert r2d_side["macro_f1"] == pytest.approx(reference, abs=1e-12)
    assert analysis_side == pytest.approx(reference, abs=1e-12)
    assert set(r2d_side) >= {f"f1/{label}" for label in labels}  # per-class F1 for every label of the set
    report = build_report(load_run_dirs([tmp_path]), metrics=["macro_f1"], n_resamples=300, plots=False)
    assert report.rows[0].estimate == pytest.approx(reference, abs=1e-12)


def test_a_ci_or_mde_wider_than_the_range_becomes_words(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    _write_study(
        root,
        {"r2d": (R2D, 0.5), "cap05": (CAP_05, 0.3)},
        {"r2d": [0, 1], "cap05": [0, 1]},
        population=sim.Population(1.0, 2.0, 0.0),
        rng_seed=3,
    )
    report = build_report(load_run_dirs([root]), metrics=["correct"], n_resamples=300, plots=False, target_effect=5)
    row = _rows(report)["constant_mix"]
    assert row.mde > 1.0  # a t-test over 2 seeds (1 df): an MDE beyond 100 points
    assert row.undecided.startswith("undecided with 2 seeds: about ")
    assert "seeds needed to detect the target effect (5.0 points) at 80% power" in row.undecided
    assert int(row.undecided.split("about ")[1].split()[0]) == row.seeds_needed_target > 2
    line = next(line for line in report.markdown.splitlines() if line.startswith("| constant_mix"))
    assert "mde" not in line and "[" not in line.split("|")[4]  # no interval and no MDE printed in the delta cell
    assert f"{row.mde * 100:.1f}" not in report.markdown
    assert pd.read_csv(__import__("io").StringIO(report.csv))["undecided"].fillna("").str.startswith("undecided").any()


@pytest.mark.parametrize("bad", ["-1", "0", "nan"])
def test_target_effect_must_be_positive(tmp_path: Path, capsys, bad: str) -> None:
    root = tmp_path / "runs"
    _write_study(root, {"r2d": (R2D, 0.5), "cap05": (CAP_05, 0.3)}, {"r2d": [0], "cap05": [0]})
    assert main(["report", "--runs", str(root), "--target-effect", bad, "--out", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "error: --target-effect:" in error and "expected" in error


# --------------------------------------------------------------------------------------------------
# Calibration and power through the whole report path (the bench: bench/bench_report_calibration.py)
# --------------------------------------------------------------------------------------------------


def _binomial_band(rate: float, trials: int, confidence: float = 0.999) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    return scipy_stats.binom.ppf(tail, trials, rate) / trials, scipy_stats.binom.isf(tail, trials, rate) / trials


AA_REPS, POWER_REPS = 60, 40


def test_aa_and_a_planted_delta_through_the_report_path(tmp_path: Path) -> None:
    """A/A studies (3 seeds, seed and example variance) are marked significant at about alpha; a delta planted
    at the design's MDE is found with about the 80% power the report claims. The design's MDE is the crossed
    test's, from the variance components the A/A reports measured (averaged: the truth, up to Monte Carlo
    error), and the MDEs the reports printed are centred on it. Tolerances: 99.9% binomial bands (the bench
    runs 1,000 replications: bench/bench_report_calibration.py, figure in analysis/README.md)."""
    n_seeds, population = 3, sim.Population(sd_example=1.0, sd_seed=0.1, sd_interaction=0.3)
    rng = np.random.default_rng(2027)
    null = [
        sim.replicate_comparison(
            tmp_path / f"aa{i}", rng, n=100, n_seeds=n_seeds, population=population, n_resamples=300
        )
        for i in range(AA_REPS)
    ]
    rate = np.mean([row.significant for row in null])
    print(f"A/A rate {rate:.3f} over {AA_REPS}")
    low, high = _binomial_band(0.05, AA_REPS)
    assert low <= rate <= high, rate
    assert {row.test for row in null} == {"crossed"}
    design_mde = sim.design_mde(null)
    reported = float(np.median([row.mde for row in null]))
    assert 0.75 * design_mde <= reported <= 1.25 * design_mde, (reported, design_mde)
    planted = [
        sim.replicate_comparison(
            tmp_path / f"d{i}",
            rng,
            n=100,
            n_seeds=n_seeds,
            population=population,
            accuracy_delta=design_mde,
            n_resamples=300,
        )
        for i in range(POWER_REPS)
    ]
    found = np.mean([row.significant and row.delta > 0 for row in planted])
    print(f"power {found:.3f} over {POWER_REPS} at the design's MDE {design_mde:.4f} (reports' median {reported:.4f})")
    low, high = _binomial_band(0.8, POWER_REPS)
    assert low <= found <= high, (found, design_mde)
