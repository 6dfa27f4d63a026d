"""Issue 25: nothing dropped silently. A run whose predictions file is corrupt (binary junk, not UTF-8, a quote
left open, a word in a metric column) stops the report with one line naming the file and the line, exit 2,
before anything is written; `--skip-unreadable` leaves it out, names it on stderr, and each row it affects
says how many seeds it lost. Runs are written by r2d's own writer (tests/sim_runs.py) and read by the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analysis.cli import main
from analysis.errors import InputError
from analysis.load.runs import load_run_dirs
from analysis.report import report_for_sweep
from tests import sim_runs as sim

N, SEEDS, LINE = 40, (0, 1, 2), 12  # LINE: the corrupted line of the file (the header is line 1)
PREDICTIONS = "predictions/test.csv"
RATIONALE, CORRECT = 6, 4  # field indexes of pred_rationale and correct in r2d.schema.PREDICTION_COLUMNS
COMMON = ["--resamples", "200", "--no-plots", "--metrics", "correct", "--baseline", "alpha=0.5"]


def write_study(root: Path) -> Path:
    """Two configurations (constant_mix at alpha 0.5, the baseline, and 0.6), three seeds each: a-s0 ... b-s2."""
    rng = np.random.default_rng(0)
    test_set = sim.draw_test_set(rng, N, sim.Population())
    for name, overrides in (("a", sim.AA_BASELINE), ("b", sim.AA_SYSTEM)):
        for seed in SEEDS:
            sim.write_sim_run(root, f"{name}-s{seed}", overrides, seed, sim.simulate_rows(rng, test_set, 0.3))
    return root


def _edit_field(line: bytes, index: int, edit) -> bytes:
    fields = line.rstrip(b"\r\n").split(b",")
    fields[index] = edit(fields[index])
    return b",".join(fields) + b"\r\n"


def _corrupt(path: Path, case: str) -> None:
    """Break `path` in line LINE (and, for quotes, a later line) as `case` says."""
    lines = path.read_bytes().splitlines(keepends=True)
    at = LINE - 1
    if case == "nul":  # binary junk: NUL bytes inside a rationale
        lines[at] = _edit_field(lines[at], RATIONALE, lambda field: field[:3] + b"\x00\x00\x00" + field[3:])
    elif case == "utf8":  # bytes that are not UTF-8
        lines[at] = _edit_field(lines[at], RATIONALE, lambda field: field + b"\xff\xfe")
    elif case == "open-quote":  # a quote never closed: it swallows every line after it
        lines[at] = _edit_field(lines[at], RATIONALE, lambda field: b'"' + field)
    elif case in ("swallow", "merge"):  # a quote that a later quote closes: rows merge into one 13-field record
        lines[at] = _edit_field(lines[at], RATIONALE, lambda field: b'"' + field)
        later = at + (3 if case == "swallow" else 1)
        lines[later] = _edit_field(lines[later], RATIONALE, lambda field: field + b'"')
    elif case == "number":  # a word where a metric must be a number
        lines[at] = _edit_field(lines[at], CORRECT, lambda field: b"yes")
    path.write_bytes(b"".join(lines))


CASES = {
    "nul": "line 12: binary data (byte 0x00)",
    "utf8": "not UTF-8 text (invalid start byte at byte",
    "open-quote": "line 12 (to line 41): invalid CSV",
    "swallow": "line 12: a quoted field runs to line 15 over lines that are whole rows",
    "merge": "line 12 (a quoted field runs to line 13): 39 rows, but the run recorded 40 examples",
    "number": "line 12: column correct holds 'yes', not a number",
}


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    return write_study(tmp_path_factory.mktemp("corrupt") / "runs")


def _study(clean: Path, tmp_path: Path, case: str, run: str = "b-s1") -> tuple[Path, Path]:
    """A copy of the clean study with `run`'s predictions broken by `case`; (runs folder, the broken file)."""
    import shutil

    root = tmp_path / "runs"
    shutil.copytree(clean, root)
    _corrupt(root / run / PREDICTIONS, case)
    return root, root / run / PREDICTIONS


def _row(markdown: str, setting: str) -> str:
    return next(line for line in markdown.splitlines() if line.startswith("| ") and setting in line)


@pytest.mark.parametrize("case", CASES)
def test_a_corrupt_file_stops_the_report_naming_file_and_line(clean, tmp_path, capsys, case) -> None:
    root, broken = _study(clean, tmp_path, case)
    out = tmp_path / "out"
    assert main(["report", "--runs", str(root), "--out", str(out), *COMMON]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and "Traceback" not in captured.err, captured.err
    assert captured.err.startswith("python -m analysis report: error: --runs: " + str(broken) + ": ")
    assert CASES[case] in captured.err and "--skip-unreadable" in captured.err
    if case == "utf8":
        assert "line 12)" in captured.err
    assert not out.exists()  # nothing written


@pytest.mark.parametrize("case", CASES)
def test_skip_unreadable_names_the_file_and_the_row_says_the_seed_it_lost(clean, tmp_path, capsys, case) -> None:
    root, broken = _study(clean, tmp_path, case)
    out = tmp_path / "out"
    assert main(["report", "--runs", str(root), "--out", str(out), *COMMON, "--skip-unreadable"]) == 0
    captured = capsys.readouterr()
    skipped = [line for line in captured.err.splitlines() if "skipped unreadable" in line]
    assert len(skipped) == 1 and str(broken) in skipped[0] and CASES[case] in skipped[0], captured.err
    markdown = (out / "significance.md").read_text()
    assert "| 2 (0,2); 1 seed unreadable |" in _row(markdown, "alpha=0.6")
    assert "unreadable" not in _row(markdown, "alpha=0.5")  # the baseline kept its three seeds
    assert "the row lost n seeds to predictions files that could not be read" in markdown  # the footer says why
    assert f"- missing: b-s1 (constant_mix alpha=0.6, seed 1): {broken}" in markdown  # the old note stays
    assert "seeds_unreadable" in (out / "significance.csv").read_text()


def test_a_baseline_seed_lost_is_lost_to_the_rows_compared_with_it(clean, tmp_path, capsys) -> None:
    root, _ = _study(clean, tmp_path, "nul", run="a-s2")
    out = tmp_path / "out"
    assert main(["report", "--runs", str(root), "--out", str(out), *COMMON, "--skip-unreadable"]) == 0
    markdown = (out / "significance.md").read_text()
    assert "| 2 (0,1); 1 seed unreadable |" in _row(markdown, "alpha=0.5")
    assert "| 2 (0,1); 1 seed unreadable |" in _row(markdown, "alpha=0.6")  # it shares its baseline's seeds


def test_two_unreadable_files_are_one_error_line_and_two_skipped_lines(clean, tmp_path, capsys) -> None:
    root, first = _study(clean, tmp_path, "nul", run="b-s1")
    _corrupt(root / "b-s2" / PREDICTIONS, "number")
    out = tmp_path / "out"
    assert main(["report", "--runs", str(root), "--out", str(out), *COMMON]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(first) in err and "(and 1 more unreadable run(s))" in err
    assert main(["report", "--runs", str(root), "--out", str(out), *COMMON, "--skip-unreadable"]) == 0
    captured = capsys.readouterr()
    assert sum("skipped unreadable" in line for line in captured.err.splitlines()) == 2
    assert "| 1 (0); 2 seeds unreadable |" in _row(captured.out, "alpha=0.6")


def test_failed_runs_and_a_missing_split_are_not_unreadable(clean, tmp_path, capsys) -> None:
    """A FAILED run, or one without the split's file, is a note as before: no error, no 'unreadable'."""
    import shutil

    root = tmp_path / "runs"
    shutil.copytree(clean, root)
    (root / "b-s1" / PREDICTIONS).unlink()
    record = json.loads((root / "b-s2" / "run.json").read_text())
    (root / "b-s2" / "run.json").write_text(json.dumps({**record, "status": "FAILED", "error": "RuntimeError: boom"}))
    out = tmp_path / "out"
    assert main(["report", "--runs", str(root), "--out", str(out), *COMMON]) == 0
    captured = capsys.readouterr()
    assert "unreadable" not in captured.out and "skipped" not in captured.err
    assert "no predictions for split 'test'" in captured.out and "status FAILED (RuntimeError: boom)" in captured.out


def _plan(root: Path) -> Path:
    """plan.json with one question: b against a, every seed (as r2d's referee plan writes it)."""
    ids = {name: json.loads((root / f"{name}-s0" / "run.json").read_text())["system_id"] for name in "ab"}
    trials = [{"system_id": ids[name], "seed": seed, "settings": {}} for name in "ab" for seed in SEEDS]
    question = {"id": "alpha", "point": 1, "title": "alpha", "question": "Does alpha matter?"}
    plan = {"plan": "referee", "sweep_id": "sw", "seeds": list(SEEDS)}
    plan["questions"] = [{**question, "baseline": "alpha=0.5", "trials": trials}]
    path = root.parent / "plan.json"
    path.write_text(json.dumps(plan))
    return path


def test_the_referee_report_stops_too_and_skips_when_told(clean, tmp_path, capsys) -> None:
    root, broken = _study(clean, tmp_path, "merge")
    plan, out = _plan(root), tmp_path / "referee"
    argv = ["referee", "--plan", str(plan), "--runs", str(root), "--out", str(out), "--resamples", "200"]
    assert main([*argv, "--no-plots", "--metrics", "correct"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--runs: {broken}: line 12" in err and not out.exists()
    assert main([*argv, "--no-plots", "--metrics", "correct", "--skip-unreadable"]) == 0
    captured = capsys.readouterr()
    assert sum(f"skipped unreadable: {broken}" in line for line in captured.err.splitlines()) == 1
    assert "1 seed unreadable" in (out / "alpha" / "significance.md").read_text()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # MLflow's own SQLAlchemy usage
def test_report_for_sweep_stops_before_writing_and_skips_when_told(clean, tmp_path, capsys) -> None:
    """The sweep driver's path: runs in MLflow (predictions artifact corrupt), `report_for_sweep`."""
    from mlflow import MlflowClient

    root, _ = _study(clean, tmp_path, "number")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("corrupt", artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(experiment, run_name="sweep", tags={"r2d.sweep_id": "sw-c"})
    for run in load_run_dirs([root]):
        tags = {"r2d.sweep_id": "sw-c", "mlflow.parentRunId": parent.info.run_id, "r2d.variant": "constant_mix"}
        child = client.create_run(experiment, run_name=run.name, tags=tags)
        client.log_metric(child.info.run_id, "test/n", N)
        client.log_artifacts(child.info.run_id, run.source)
        client.set_terminated(child.info.run_id)
    client.set_terminated(parent.info.run_id)
    out = tmp_path / "sweep-out"
    options = {"tracking_uri": uri, "cache_dir": tmp_path / "cache", "metrics": ["correct"], "n_resamples": 200}
    options |= {"baseline": "alpha=0.5", "attach": False, "plots": False}
    with pytest.raises(InputError) as caught:
        report_for_sweep("sw-c", out_dir=out, **options)
    assert "artifact predictions/test.csv of MLflow run" in str(caught.value) and "line 12: column correct" in str(
        caught.value
    )
    assert not out.exists()
    report = report_for_sweep("sw-c", out_dir=out, skip_unreadable=True, **options)
    assert len(report.skipped) == 1 and "line 12: column correct" in report.skipped[0]
    assert "report_for_sweep sw-c: skipped unreadable: artifact predictions/test.csv" in capsys.readouterr().err
    assert "1 seed unreadable" in _row(report.markdown, "alpha=0.6")
