"""Issue 25 item 5d: a split the runs do not have is blamed on --split, listing the splits they have."""
from __future__ import annotations

from pathlib import Path

import pytest

from analysis.errors import InputError
from analysis.load.runs import Run, attach_predictions
from analysis.load.systems import _usable_runs


def _run_without(split: str, tmp_path: Path, name: str) -> Run:
    run = Run(name=name, record={"status": "FINISHED", "seed": 0, "splits": ["test"]}, source=str(tmp_path))
    return attach_predictions(run, tmp_path / name / "predictions" / f"{split}.csv", split)


def test_a_split_no_run_has_is_blamed_on_split_and_lists_the_splits(tmp_path):
    runs = [_run_without("dev", tmp_path, "a"), _run_without("dev", tmp_path, "b")]
    with pytest.raises(InputError) as caught:
        _usable_runs(runs, "dev", "--runs")
    assert caught.value.option == "--split"
    message = str(caught.value)
    assert "'dev'" in message and "the runs have: test" in message and "\n" not in message


def test_failed_runs_are_still_blamed_on_the_source_option(tmp_path):
    failed = Run(name="f", record={"status": "FAILED", "seed": 0, "splits": ["test"]}, source=str(tmp_path))
    failed = attach_predictions(failed, tmp_path / "f.csv", "dev")
    with pytest.raises(InputError) as caught:
        _usable_runs([failed, _run_without("dev", tmp_path, "a")], "dev", "--runs")
    assert caught.value.option == "--runs"
