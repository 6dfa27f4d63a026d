"""Bad input, as a user types it, at every entry point: one line on stderr naming the file, option or
key and what was expected, exit code 2, and nothing created (no file or folder, no MLflow store, no
Ray). One table per entry point; the entry points are called in-process so the battery takes seconds.

A case is (argv, expected substring of the error line). `{tmp}` is the test's tmp_path, where
`bad_files` made every file a case names; `{port}` is a closed port; `{offset}`/`{line}` locate the
first non-UTF-8 byte of the files padded past 32 KiB.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sys
from pathlib import Path

import pytest
import ray

from r2d import cli
from r2d.sweep import cli as sweep_cli
from r2d.sweep import run as sweep

from .conftest import ROOT

PAD_LINES = 400  # bad bytes after this many 100-byte lines: past the first 32 KiB of any reader


def _rows(n: int, **extra) -> list[dict]:
    return [{"id": f"r{i}", "question": f"question {i} " + "x" * 40, "label": "yes" if i % 2 else "no",
             "rationale": f"because {i}", **extra} for i in range(n)]


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, object]:
    """Every file the cases name, in tmp_path; returns the facts the expected messages use."""
    pad = "# " + "x" * 97 + "\n"
    yaml_prefix = (pad * PAD_LINES + "run_name: caf").encode()
    jsonl_prefix = _jsonl(_rows(PAD_LINES)).encode() + b'{"id": "bad", "question": "caf'
    files: dict[str, str | bytes] = {
        "empty.yaml": "",
        "comments.yaml": "# a preset, every line commented out\n# seed: 1\n",
        "latin1.yaml": yaml_prefix + b"\xe9\n",
        "syntax.yaml": "seed: 1\nstage1: [unclosed\n",
        "tabs.yaml": "stage1:\n\tmax_steps: 3\n",
        "dup.yaml": "seed: 1\nstage2: {max_steps: 10}\nseed: 2\n",
        "list.yaml": "- stage1\n- stage2\n",
        "unknown.yaml": "stage3: {max_steps: 1}\n",
        "batch.yaml": "stage2: {batch_size: 30, grad_accum: 4}\n",
        "negseed.yaml": "seed: -3\n",
        "afile.txt": "not a directory\n",
        "good.jsonl": _jsonl(_rows(30)),
        "latin1.jsonl": jsonl_prefix + b'\xe9", "label": "no", "rationale": "r"}\n',
        "badjson.jsonl": _jsonl(_rows(1)) + '{"id": "r9", "question": \n',
        "nested.jsonl": _jsonl(_rows(2)) + json.dumps({"question": {"text": "q"}, "label": "no", "rationale": "r"}),
        "nodev.jsonl": _jsonl(_rows(30, split="train")),
        "extra.csv": "id,question,label,rationale\nr1,q one,yes,because\nr2,q two,no,because,stray\n",
        "duphead.csv": "id,question,label,label,rationale\nr1,q,yes,no,because\n",
        "nohead.csv": "id,question,label\nr1,q,yes\n",
        "list.json": "[1, 2]\n",
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    (tmp_path / "dir").mkdir()
    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return {"tmp": tmp_path, "port": port, "yaml_offset": len(yaml_prefix), "yaml_line": PAD_LINES + 1,
            "jsonl_offset": len(jsonl_prefix), "jsonl_line": PAD_LINES + 1}


def _fill(text: str, facts: dict[str, object]) -> str:
    return text.format(**facts)


def _snapshot(tmp_path: Path) -> set[str]:
    return {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")}


def _repo_state() -> dict[str, float]:
    """What a bug could write into the repository: an MLflow store, runs, Ray storage."""
    names = ("mlflow.db", "mlruns", "outputs")
    return {name: os.stat(ROOT / name).st_mtime for name in names if (ROOT / name).exists()}


@pytest.fixture(autouse=True)
def no_training(monkeypatch):
    """A case that got past every check fails here at once, instead of training or starting Ray."""
    def started(*args, **kwargs):
        raise AssertionError("the bad input was not caught: a training or Ray was about to start")

    monkeypatch.setattr(cli.runner, "train", started)
    monkeypatch.setattr(sweep, "ensure_ray", started)


def _assert_refused(rc: int, err: str, expected: str, tmp_path: Path, before: set[str], repo: dict) -> None:
    assert rc == 2, err
    assert err.count("\n") == 1 and ": error: " in err, err  # one line
    assert expected in err, err
    assert _snapshot(tmp_path) == before  # nothing created: no --out, no mlflow.db, no sweep folder, no cache
    assert _repo_state() == repo
    assert not ray.is_initialized()


# --------------------------------------------------------------------------- r2d data summary
DATA_CASES = [
    (["--dataset", "jsonl", "--data-path", "{tmp}/dir"], "{tmp}/dir: is a directory, expected a file"),
    (["--dataset", "csv", "--data-path", "{tmp}/missing.csv"], "{tmp}/missing.csv: file not found"),
    (["--dataset", "csv", "--data-path", "{tmp}/extra.csv"], "{tmp}/extra.csv: line 3: 5 fields, the header has 4"),
    (["--dataset", "csv", "--data-path", "{tmp}/duphead.csv"], "duphead.csv: line 1: header names column 'label'"),
    (["--dataset", "csv", "--data-path", "{tmp}/nohead.csv"], "nohead.csv: line 1: the header has no 'rationale'"),
    (["--dataset", "jsonl", "--data-path", "{tmp}/latin1.jsonl"],
     "latin1.jsonl: not UTF-8 text (invalid continuation byte at byte {jsonl_offset}, line {jsonl_line})"),
    (["--dataset", "jsonl", "--data-path", "{tmp}/badjson.jsonl"], "badjson.jsonl: line 2: invalid JSON"),
    (["--dataset", "jsonl", "--data-path", "{tmp}/nested.jsonl"],
     "nested.jsonl: line 3: field 'question': expected text, got a JSON object"),
    (["--dataset", "bioasq", "--data-path", "{tmp}/dir"], "{tmp}/dir: is a directory, expected a file"),
    (["--dataset", "bioasq", "--data-path", "{tmp}/list.json"], "list.json: expected an object with a 'questions'"),
    (["--dataset", "pubmedqa", "--data-path", "{tmp}/dir"], "{tmp}/dir/ori_pqal.json: file not found"),
    (["--dataset", "triage", "--data-path", "{tmp}/good.jsonl"], "data.path: {tmp}/good.jsonl: the triage data is"),
    (["--dataset", "bioasq", "--data-path", "tests/fixtures/bioasq_taskb.json", "--set", "data.rationale_source=nurse"],
     "data.rationale_source: 'nurse': the bioasq data has ['default'] only"),
    (["--dataset", "jsonl"], "data.path: the jsonl dataset needs a file"),
    (["--dataset", "spreadsheet"], "argument --dataset: invalid choice: 'spreadsheet'"),
    (["--config", "{tmp}/dir"], "{tmp}/dir: is a directory, expected a config file"),
    (["--config", "{tmp}/empty.yaml"], "empty.yaml: empty config file"),
    (["--config", "{tmp}/latin1.yaml"],
     "latin1.yaml: not UTF-8 text (invalid continuation byte at byte {yaml_offset}, line {yaml_line})"),
    (["--set", "data.triage.size=10"], "--set data.triage.size=10: Input should be greater than or equal to 50"),
    (["--set", "data.dev_fraction=.nan"], "--set data.dev_fraction=.nan: Input should be a finite number"),
]


@pytest.mark.parametrize("argv, expected", DATA_CASES, ids=[" ".join(c[0]) for c in DATA_CASES])
def test_r2d_data(argv, expected, bad_files, tmp_path, capsys):
    before, repo = _snapshot(tmp_path), _repo_state()
    rc = _exit_code(cli.main, ["data", "summary", *[_fill(a, bad_files) for a in argv]])
    _assert_refused(rc, capsys.readouterr().err, _fill(expected, bad_files), tmp_path, before, repo)


def _exit_code(main, argv: list[str]) -> int:
    """main(argv)'s return code, or argparse's exit code."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


# --------------------------------------------------------------------------- r2d train
TRAIN_CASES = [
    (["--config", "{tmp}/dir"], "{tmp}/dir: is a directory, expected a config file"),
    (["--config", "{tmp}/missing.yaml"], "{tmp}/missing.yaml: config file not found"),
    (["--config", "{tmp}/empty.yaml"], "{tmp}/empty.yaml: empty config file"),
    (["--config", "{tmp}/comments.yaml"], "{tmp}/comments.yaml: empty config file"),
    (["--config", "{tmp}/latin1.yaml"], "not UTF-8 text (invalid continuation byte at byte {yaml_offset}, line"),
    (["--config", "{tmp}/syntax.yaml"], "syntax.yaml: line 3: invalid YAML (expected ',' or ']', but got "
                                        "'<stream end>', while parsing a flow sequence started on line 2)"),
    (["--config", "{tmp}/tabs.yaml"], "tabs.yaml: line 2: invalid YAML (found character '\\t' that cannot start"),
    (["--config", "{tmp}/dup.yaml"], "dup.yaml: line 3: invalid YAML (duplicate key 'seed')"),
    (["--config", "{tmp}/list.yaml"], "list.yaml: expected a mapping of sections at the top level, got a list"),
    (["--config", "{tmp}/unknown.yaml"], "unknown.yaml: stage3: unknown key"),
    (["--config", "{tmp}/batch.yaml"], "batch.yaml: stage2.batch_size: 30 must be divisible by "
                                       "resources.num_workers x stage2.grad_accum (1 x 4)"),
    (["--config", "{tmp}/negseed.yaml"], "negseed.yaml: seed: Input should be greater than or equal to 0 (got -3)"),
    (["--set", "seed=-1"], "--set seed=-1: Input should be greater than or equal to 0 (got -1)"),
    (["--set", "seed"], "--set 'seed': expected key.path=value"),
    (["--set", "stage2..max_steps=3"], "--set 'stage2..max_steps=3': expected key.path=value"),
    (["--set", "stage2.schedule.shape=cosine"], "--set stage2.schedule.shape=cosine: Input should be 'linear'"),
    (["--set", "stage2.schedule.shap=linear"], "--set stage2.schedule.shap=linear: unknown key"),
    (["--set", "stage2.max_steps.x=1"], "--set stage2.max_steps.x=1: stage2.max_steps: Input should be a valid int"),
    (["--set", "stage2.eval_every=5000"], "--set stage2.eval_every=5000: 5000 must be <= stage2.max_steps (2000)"),
    (["--set", "stage2.lr=.inf"], "--set stage2.lr=.inf: Input should be a finite number"),
    (["--set", "variant=r3d"], "--set variant=r3d: Input should be 'sft', 'dss'"),
    (["--set", "evaluation.splits=test"], "--set evaluation.splits=test: Input should be a valid list"),
    (["--config", "{tmp}/batch.yaml", "--set", "stage2.grad_accum=7"],
     "--set stage2.grad_accum=7: stage2.batch_size: 30 must be divisible by"),
    (["--workers", "0"], "--workers 0: Input should be greater than or equal to 1 (got 0)"),
    (["--workers", "3"], "--workers 3: stage1.batch_size: 64 must be divisible by resources.num_workers x "
                         "stage1.grad_accum (3 x 1)"),
    (["--workers", "1024", "--set", "stage1.batch_size=1024", "--set", "stage2.batch_size=1024"],
     "--workers 1024: 1024 worker(s) of {{'CPU': 1.0}} do not fit the local Ray"),
    (["--workers", "two"], "argument --workers: invalid int value: 'two'"),
    (["--set", "data.dataset=csv", "--set", "data.path={tmp}/extra.csv"], "extra.csv: line 3: 5 fields"),
    (["--set", "data.dataset=jsonl", "--set", "data.path={tmp}/nodev.jsonl"],
     "{tmp}/nodev.jsonl: the dev split is empty (30 train, 0 dev, 0 test examples)"),
    (["--set", "model.name={tmp}/no-model"], "--set model.name={tmp}/no-model: {tmp}/no-model: no such model dir"),
    (["--set", "model.name={tmp}/dir"], "--set model.name={tmp}/dir: {tmp}/dir: not a saved model (no config.json)"),
    (["--set", "resources.storage_path={tmp}/afile.txt"], "{tmp}/afile.txt: exists and is not a directory"),
    (["--out", "{tmp}/afile.txt"], "--out: {tmp}/afile.txt: exists and is not a directory"),
    (["--set", "tracking.enabled=true", "--set", "tracking.tracking_uri=http://127.0.0.1:{port}"],
     "--set tracking.tracking_uri=http://127.0.0.1:{port}: http://127.0.0.1:{port}: no MLflow server answers"),
]


@pytest.mark.parametrize("argv, expected", TRAIN_CASES, ids=[" ".join(c[0]) for c in TRAIN_CASES])
def test_r2d_train(argv, expected, bad_files, tmp_path, capsys):
    tmp = tmp_path
    # where a bug would write: all inside tmp_path (a case's own --set or --out comes later and wins)
    common = ["--out", f"{tmp}/out", "--set", f"model.cache_dir={tmp}/cache", "--set",
              f"resources.storage_path={tmp}/ray", "--set", f"tracking.tracking_uri=sqlite:///{tmp}/mlflow.db"]
    before, repo = _snapshot(tmp_path), _repo_state()
    rc = _exit_code(cli.main, ["train", *common, *[_fill(a, bad_files) for a in argv]])
    _assert_refused(rc, capsys.readouterr().err, _fill(expected, bad_files), tmp_path, before, repo)


# --------------------------------------------------------------------------- sweeps/*.py
def _study_module():
    """sweeps/schedule_sensitivity.py, imported from its path (sweeps/ is not a package)."""
    sys.path.insert(0, str(ROOT / "sweeps"))  # the script imports its neighbour _common
    try:
        spec = importlib.util.spec_from_file_location("schedule_sensitivity", ROOT / "sweeps/schedule_sensitivity.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "sweeps"))
    return module


STUDY = _study_module()
ADAPTIVE = sys.modules["_adaptive"]  # sweeps/_adaptive.py, imported by the script

ADAPTIVE_CASES = [
    (["--until-decided", "--margin", "macro_f1=0"], "--margin macro_f1=0: expected METRIC=POINTS with a positive"),
    (["--until-decided", "--margin", "fluency=2"], "--margin fluency=2: unknown metric 'fluency'"),
    (["--until-decided", "--budget", "1m"], "--budget 1m: smaller than the first look's estimate"),
    (["--until-decided", "--budget", "soon"], "--budget soon: expected a duration such as 45m"),
    (["--until-decided", "--max-seeds", "2"], "--max-seeds 2: expected at least the first look's 3 seeds"),
    (["--until-decided", "--search", "optuna"], "--until-decided: not with --search optuna"),
    (["--until-decided", "--seeds", "0", "1"], "--until-decided: not with --seeds"),
    (["--budget", "1h"], "--budget: only with --until-decided"),
    (["--futility", "0.1"], "--futility: only with --until-decided"),
    (["--until-decided", "--futility", "1"], "--futility 1: expected a conditional power from 0"),
]


@pytest.mark.parametrize("argv, expected", ADAPTIVE_CASES, ids=[" ".join(c[0]) for c in ADAPTIVE_CASES])
def test_until_decided_refuses_bad_options_before_anything_starts(argv, expected, tmp_path, capsys):
    common = ["--storage-path", f"{tmp_path}/storage", "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]
    before, repo = _snapshot(tmp_path), _repo_state()
    rc = _exit_code(lambda a: sweep_cli.main_for(STUDY.DEFAULT, a, STUDY.PRESETS,
                                                until_decided=ADAPTIVE.run_until_decided), [*common, *argv])
    _assert_refused(rc, capsys.readouterr().err, expected, tmp_path, before, repo)


def test_until_decided_dry_run_shows_the_looks_and_the_trials(tmp_path, capsys):
    rc = sweep_cli.main_for(STUDY.DEFAULT, ["--storage-path", f"{tmp_path}/storage", "--until-decided", "--dry-run",
                                            "--max-seeds", "7", "--tracking-uri", f"sqlite:///{tmp_path}/m.db"],
                            STUDY.PRESETS, until_decided=ADAPTIVE.run_until_decided)
    out = capsys.readouterr().out
    assert rc == 0 and "looks at 3, 5, 7 seeds" in out and "at most 28" in out and "O'Brien-Fleming" in out
    assert not (tmp_path / "storage").exists() and not (tmp_path / "m.db").exists()

SWEEP_CASES = [
    (["--grid", "stage2.schedule.shape=linear,cosine"], "--grid stage2.schedule.shape=cosine: Input should be"),
    (["--grid", "stage2.schedule.shap=linear"], "--grid stage2.schedule.shap=linear: unknown key"),
    (["--grid", "stage2.schedule.transition=0.3,20"],
     "--grid stage2.schedule.transition=20: Input should be less than or equal to 10"),
    (["--grid", "stage2.grad_accum=1,3"], "--grid stage2.grad_accum=3: stage2.batch_size: 32 must be divisible by"),
    (["--grid", "stage2.schedule.shape="], "--grid 'stage2.schedule.shape=': expected KEY=V1,V2"),
    (["--grid", "stage2.schedule.shape"], "--grid 'stage2.schedule.shape': expected KEY=V1,V2"),
    (["--grid", "seed=1,2"], "--grid seed=1,2: seeds are repeats, not a grid axis (use --seeds)"),
    (["--grid", "stage2.schedule.shape=step,step"], "--grid stage2.schedule.shape=step,step: a value is given twice"),
    (["--grid", "data.rationale_source=llm,doctor"], "--grid data.rationale_source=doctor: data.rationale_source: "
                                                     "'doctor' is not a triage source"),
    (["--seeds", "0", "-1"], "--seeds -1: Input should be greater than or equal to 0 (got -1)"),
    (["--seeds", "0", "0"], "--seeds 0 0: expected distinct seeds"),
    (["--seeds", "zero"], "argument --seeds: invalid int value: 'zero'"),
    (["--search", "optuna", "--samples", "0"], "--samples 0: expected an integer from 1"),
    (["--samples", "4"], "--samples: only with --search optuna"),
    (["--search", "optuna", "--grid", "stage2.alpha=0.5"], "--grid: only with --search grid"),
    (["--search", "optuna", "--search-seed", "-1"], "--search-seed -1: expected an integer from 0"),
    (["--search", "bayes"], "argument --search: invalid choice: 'bayes'"),
    (["--max-concurrent", "0"], "--max-concurrent 0: expected an integer from 1"),
    (["--resume"], "--resume: no sweep of study schedule_sensitivity under {tmp}/storage"),
    (["--resume", "--sweep-id", "schedule_sensitivity-19990101-000000"], "--resume: no sweep of study"),
    (["--rerun-errored"], "--rerun-errored: only with --resume"),
    (["--sweep-id", "x"], "--sweep-id: only with --resume"),
    (["--preset", "pubmedqa-t5-huge"], "argument --preset: invalid choice: 'pubmedqa-t5-huge'"),
    (["--set", "stage2.schedule.steepness=0"], "--set stage2.schedule.steepness=0: Input should be greater than 0"),
    (["--set", "seed=3"], "--set seed=3: each trial sets seed (use --seeds)"),
    (["--set", "stage2.schedule.shape=step"], "--set stage2.schedule.shape=step: each trial sets stage2.schedule"),
    (["--set", "stage2.alpha=-1"], "--set stage2.alpha=-1: Input should be greater than or equal to 0"),
    (["--set", "resources.num_workers=1024", "--set", "stage1.batch_size=1024", "--set", "stage2.batch_size=1024"],
     "--set resources.num_workers=1024: 1024 worker(s) of {{'CPU': 0.9}} and 1 trial driver(s) of 0.05 CPU do not fit"),
    (["--set", "data.dataset=csv", "--set", "data.path={tmp}/extra.csv"], "extra.csv: line 3: 5 fields"),
    (["--storage-path", "{tmp}/afile.txt"], "--storage-path {tmp}/afile.txt: {tmp}/afile.txt: exists and is not a dir"),
    (["--tracking-uri", "http://127.0.0.1:{port}"],
     "--tracking-uri http://127.0.0.1:{port}: http://127.0.0.1:{port}: no MLflow server answers"),
    (["--fresh", "--resume"], "--fresh: not with --resume (a resumed sweep keeps its plan)"),
    (["--dry-run", "--grid", "stage2.schedule.shape=cosine"], "--grid stage2.schedule.shape=cosine: Input should be"),
]


@pytest.mark.parametrize("argv, expected", SWEEP_CASES, ids=[" ".join(c[0]) for c in SWEEP_CASES])
def test_sweep_script(argv, expected, bad_files, tmp_path, capsys):
    tmp = tmp_path
    common = ["--storage-path", f"{tmp}/storage", "--tracking-uri", f"sqlite:///{tmp}/mlflow.db",
              "--set", f"model.cache_dir={tmp}/cache", "--no-analysis"]
    study = STUDY.DEFAULT
    grid, seeds = json.dumps(study.grid), list(study.seeds)
    before, repo = _snapshot(tmp_path), _repo_state()
    argv = [*common, *[_fill(a, bad_files) for a in argv]]
    rc = _exit_code(lambda a: sweep_cli.main_for(study, a, STUDY.PRESETS), argv)
    _assert_refused(rc, capsys.readouterr().err, _fill(expected, bad_files), tmp_path, before, repo)
    assert (json.dumps(study.grid), study.seeds) == (grid, seeds)  # the script's study is left as it was


# --------------------------------------------------------------------------- the checks pass good input
def test_good_input_gets_past_every_check(tmp_path):
    """The control: the shipped presets as a user runs them reach the training / Ray (stopped there)."""
    with pytest.raises(AssertionError, match="was about to start"):
        cli.main(["train", "--config", "configs/triage-tiny.yaml", "--out", f"{tmp_path}/out",
                  "--set", f"model.cache_dir={tmp_path}/cache"])
    with pytest.raises(AssertionError, match="was about to start"):
        sweep_cli.main_for(STUDY.DEFAULT, [
            "--storage-path", f"{tmp_path}/storage", "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db",
            "--grid", "data.rationale_source=llm,nurse", "--seeds", "0", "3", "--max-concurrent", "1"], STUDY.PRESETS)


def test_an_interrupted_sweep_is_one_line_and_exit_130(tmp_path, monkeypatch, capsys):
    """Ctrl-C (or SIGTERM) reaches the CLI as KeyboardInterrupt once the parent run is KILLED
    (r2d.run.runner.sweep_run; the sweep raises it instead of Tune's own SIGINT handling)."""
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt("signal 2")

    monkeypatch.setattr(sweep_cli, "run_sweep", interrupted)
    rc = sweep_cli.main_for(STUDY.DEFAULT, ["--storage-path", f"{tmp_path}/storage",
                                            "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"], STUDY.PRESETS)
    err = capsys.readouterr().err.strip()
    assert rc == 130 and err.count("\n") == 0 and "interrupted" in err and "--resume" in err


def test_a_sweep_where_no_trial_finished_is_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
    """Every trial failed (r2d.sweep.check_something_finished): the parent run ends FAILED and the CLI
    says so in one line, instead of the analysis' traceback about no usable run."""
    def nothing_finished(*args, **kwargs):
        raise sweep.SweepFailed("no trial finished (2 failed; first error: FloatingPointError: nan)")

    monkeypatch.setattr(sweep_cli, "run_sweep", nothing_finished)
    rc = sweep_cli.main_for(STUDY.DEFAULT, ["--storage-path", f"{tmp_path}/storage",
                                            "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"], STUDY.PRESETS)
    err = capsys.readouterr().err.strip()
    assert rc == 1 and err.count("\n") == 0 and "no trial finished" in err and "error:" in err
