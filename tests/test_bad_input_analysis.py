"""Bad input to `python -m analysis report`, as a user types it: exit 2, one line on stderr (no traceback)
naming the file, field or option and what was expected, and nothing created (no output folder, no
artifact cache, no MLflow store). The companion of tests/test_bad_input.py (the r2d entry points).

A case is (argv, expected substring of the error line). `{tmp}` is the test's tmp_path, where
`bad_runs` wrote one valid tiny run directory (`good`, from test_analysis_report.write_run: no training)
and patched copies of it; `{store}` is an existing MLflow sqlite store; `{port}` a closed port;
`{latin_offset}` the byte offset of the bad byte planted in `latin/predictions/test.csv`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest

from analysis.cli import main

from .conftest import ROOT
from .test_analysis_report import write_run

N_EXAMPLES = 40
CUT_LINE = 12  # the truncated files stop in this line (the header is line 1)


def _snapshot(tmp_path: Path) -> set[str]:
    return {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")}


def _repo_state() -> dict[str, float]:
    """What a bug could write into the repository (the working directory): an MLflow store, outputs."""
    names = ("mlflow.db", "mlruns", "outputs")
    return {name: os.stat(ROOT / name).st_mtime for name in names if (ROOT / name).exists()}


def _exit_code(argv: list[str]) -> int:
    """main(argv)'s return code, or argparse's exit code."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


def _copy(good: Path, root: Path, name: str) -> Path:
    target = root / name
    shutil.copytree(good, target)
    return target


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


@pytest.fixture
def bad_runs(tmp_path: Path, mlflow_store: str) -> dict[str, object]:
    """The run directories the cases name, each a copy of one valid run with one thing broken."""
    good = write_run(tmp_path, variant="r2d", n=N_EXAMPLES).rename(tmp_path / "good")
    csv_name = "predictions/test.csv"
    lines = _lines(good / csv_name)

    cut = _copy(good, tmp_path, "cut")  # the download stopped mid-row, in the third field
    (cut / csv_name).write_bytes(b"".join(lines[: CUT_LINE - 1]) + b",".join(lines[CUT_LINE - 1].split(b",")[:3]))
    noeol = _copy(good, tmp_path, "noeol")  # stopped just before the last line end: every field is there
    (noeol / csv_name).write_bytes(b"".join(lines[:CUT_LINE]).rstrip(b"\r\n"))
    (_copy(good, tmp_path, "corrupt") / "run.json").write_text('{"run_name": "r2d-corrupt", "status": ')
    (_copy(good, tmp_path, "listjson") / "run.json").write_text('["r2d", 0]\n')
    (_copy(good, tmp_path, "latinjson") / "run.json").write_bytes(b'{"run_name": "caf\xe9"}\n')
    (_copy(good, tmp_path, "nopred") / csv_name).unlink()
    latin = _copy(good, tmp_path, "latin")  # saved by a spreadsheet as Latin-1: a lone e-acute in line 12
    (latin / csv_name).write_bytes(b"".join(lines[: CUT_LINE - 1]) + b"\xe9" + b"".join(lines[CUT_LINE - 1 :]))
    (_copy(good, tmp_path, "emptycsv") / csv_name).write_bytes(b"")
    header = lines[0].decode().rstrip("\r\n").split(",")
    keep = [i for i, column in enumerate(header) if column != "correct"]
    (_copy(good, tmp_path, "nocorrect") / csv_name).write_bytes(
        b"".join(b",".join(line.rstrip(b"\r\n").split(b",")[i] for i in keep) + b"\n" for line in lines)
    )
    disjoint = tmp_path / "disjoint"  # two systems on other examples: ids renamed in the second one
    _copy(good, disjoint, "a")
    other = _copy(good, disjoint, "b")
    record = json.loads((other / "run.json").read_text())
    record.update(run_name="sft-other", variant="sft", system={"variant": "sft"})
    (other / "run.json").write_text(json.dumps(record))
    (other / csv_name).write_text((other / csv_name).read_text().replace("\nq0", "\nx0"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "notadb.txt").write_text("not a database\n")
    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return {"tmp": tmp_path, "store": mlflow_store, "port": port, "latin_offset": len(b"".join(lines[: CUT_LINE - 1]))}


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory) -> str:
    """An existing MLflow sqlite store with one experiment (made once: MLflow's migrations take seconds)."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri).create_experiment("schedules", artifact_location=(root / "artifacts").as_uri())
    return uri


NO_USABLE = "--runs: no usable run (finished, with test predictions) among 1: "
CASES = [
    # the files of a run directory
    (["--runs", "{tmp}/cut"], "{tmp}/cut/predictions/test.csv: line 12: 3 fields, the header has 13; "
                              "the file ends mid-row (truncated?)"),
    (["--runs", "{tmp}/noeol"], "{tmp}/noeol/predictions/test.csv: line 12: the last row has no line end: "
                                "the file was cut mid-row (truncated?); expected every row ended"),
    (["--runs", "{tmp}/corrupt"], NO_USABLE + "{tmp}/corrupt: unreadable run.json: invalid JSON at line 1 column 39 "
                                  "(Expecting value); expected the JSON object r2d writes"),
    (["--runs", "{tmp}/listjson"], NO_USABLE + "{tmp}/listjson: unreadable run.json: expected a JSON object "
                                   "(run_name, status, seed, ...), got a JSON list"),
    (["--runs", "{tmp}/latinjson"], NO_USABLE + "{tmp}/latinjson: unreadable run.json: not UTF-8 text "
                                    "(invalid continuation byte at byte 17, line 1)"),
    (["--runs", "{tmp}/nopred"], "no predictions for split 'test': {tmp}/nopred/predictions/test.csv not found"),
    (["--runs", "{tmp}/good", "--split", "dev"],
     "--split: no run has split 'dev'; the runs have: test"),
    (["--runs", "{tmp}/latin"], "{tmp}/latin/predictions/test.csv: not UTF-8 text (invalid continuation byte at byte "
                                "{latin_offset}, line 12)"),
    (["--runs", "{tmp}/emptycsv"], "{tmp}/emptycsv/predictions/test.csv: empty file; expected a header row"),
    (["--runs", "{tmp}/nocorrect"], "{tmp}/nocorrect/predictions/test.csv: missing column(s) correct"),
    # which runs
    (["--runs", "{tmp}/missing"], "--runs: {tmp}/missing does not exist; expected run directories (with run.json)"),
    (["--runs", "{tmp}/good/run.json"], "--runs: {tmp}/good/run.json is a file; expected a run directory"),
    (["--runs", "{tmp}/empty"], "--runs: no run directory (with run.json) under {tmp}/empty"),
    (["--runs", "{tmp}/disjoint"], "--runs: the runs share no example id (e.g. r2d-linear-0.6-llm-s0 has 'q000', "
                                   "sft-other has 'x000'); expected runs on the same dataset and split"),
    ([], "--runs: give either --runs DIR... or MLflow runs (--experiment, --sweep-id, --filter)"),
    # MLflow
    (["--experiment", "schedules", "--tracking-uri", "sqlite:///{tmp}/nostore.db"],
     "--tracking-uri: sqlite:///{tmp}/nostore.db: the MLflow store does not exist (no file {tmp}/nostore.db); "
     "expected an existing store"),
    (["--experiment", "schedules", "--tracking-uri", "{tmp}/mlruns"],
     "--tracking-uri: {tmp}/mlruns: the MLflow store does not exist (no folder {tmp}/mlruns)"),
    (["--experiment", "schedules", "--tracking-uri", "sqlite:///{tmp}/notadb.txt"],
     "--tracking-uri: sqlite:///{tmp}/notadb.txt: {tmp}/notadb.txt is not an SQLite database (file is not a database); "
     "expected an MLflow store"),
    (["--experiment", "schedulez", "--tracking-uri", "{store}"],
     "--experiment: no MLflow experiment named 'schedulez' at {store}; expected one of: Default, schedules"),
    (["--sweep-id", "sw-1", "--tracking-uri", "http://127.0.0.1:{port}"],
     "--tracking-uri: http://127.0.0.1:{port}: no MLflow server answers ("),
    # the statistics' options
    (["--runs", "{tmp}/good", "--confidence", "1.5"],
     "--confidence: expected a confidence level in (0, 1), e.g. 0.95; got 1.5"),
    (["--runs", "{tmp}/good", "--alpha", "0"], "--alpha: expected a significance level in (0, 1), e.g. 0.05; got 0.0"),
    (["--runs", "{tmp}/good", "--metrics", "rouge"], "--metrics: unknown metric 'rouge'; expected some of: correct,"),
    (["--runs", "{tmp}/good", "--baseline", "sft"],
     "--baseline: no system matches 'sft'; expected a system name (r2d), a variant, or key=value settings"),
    (["--runs", "{tmp}/good", "--confidence", "high"], "argument --confidence: invalid float value: 'high'"),
]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # MLflow's own SQLAlchemy usage
@pytest.mark.parametrize("argv, expected", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_analysis_report(argv, expected, bad_runs, tmp_path, capfd):
    """capfd, not capsys: MLflow logs through handlers bound to the real stderr, and those lines count too."""
    store_file = Path(str(bad_runs["store"]).removeprefix("sqlite:///"))
    before, repo, store_mtime = _snapshot(tmp_path), _repo_state(), store_file.stat().st_mtime
    common = ["--out", f"{tmp_path}/out", "--cache-dir", f"{tmp_path}/cache", "--resamples", "200", "--no-plots"]
    rc = _exit_code(["report", *common, *[a.format(**bad_runs) for a in argv]])
    err = capfd.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and "error: " in err and "Traceback" not in err, err  # one line
    assert expected.format(**bad_runs) in err, err
    assert _snapshot(tmp_path) == before  # no --out, no artifact cache, no sqlite file, no mlruns folder
    assert _repo_state() == repo
    assert store_file.stat().st_mtime == store_mtime  # the existing store was only read


def test_the_good_run_gets_a_report(bad_runs, tmp_path, capfd):
    """The control: the run every case breaks is itself fine, so each case fails for its own reason."""
    rc = main(["report", "--runs", f"{tmp_path}/good", "--out", f"{tmp_path}/out", "--resamples", "200", "--no-plots"])
    assert rc == 0, capfd.readouterr().err
    assert (tmp_path / "out" / "significance.md").is_file()
