"""--until-decided over the referee's plan, the loop itself (sweeps/_adaptive.py) without Ray: each look's
sweep is replaced by writing the trials' run directories (r2d's own writer) and their per-seed metric values
are planted, so which comparison closes when is known. What is real: the plan's questions and grid points,
the configuration fingerprints that match runs to questions, the strata and baselines the analysis chooses,
the group-sequential decisions, the MLflow parent run (sqlite) and the state file `--resume` reads.
(The loop with real trials on a Ray cluster: tests/test_sweeps.py, one study.)"""

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from analysis.load.runs import load_run_dirs
from analysis.load.systems import match_systems
from r2d.run import tracking
from r2d.sweep.study import AdaptiveOptions, SweepOptions, base_config, trial_config
from r2d.train.evaluate import write_run_dir
from r2d.train.record import system_id

from .conftest import ROOT
from .sim_runs import LABELS, Population, draw_test_set, simulate_rows

sys.path.insert(0, str(ROOT / "sweeps"))
import _adaptive  # noqa: E402  (the scripts' module, as referee.py imports it)
import referee  # noqa: E402

METRICS = ("correct", "macro_f1", "corpus_bleu")


def planted(system, seed: int) -> float:
    """A run's value on every metric, in points: teacher forcing 20 points worse, transition 0.3 one point
    better with a 3-point seed sd (stays open), everything else the baseline up to 0.005 points."""
    noise = np.random.default_rng([seed, sum(map(ord, system.name))]).normal()
    if system.settings.get("variant") == "teacher_forcing":
        return 50.0 + 0.005 * noise
    if system.setting("transition") == 0.3:
        return 71.0 + 3.0 * noise
    return 70.0 + 0.005 * noise


class FakeLooks:
    """Stands in for `run_sweep`: writes each asked trial that has no run yet (FINISHED runs are reused, as
    the real sweep reuses them); counts what each look trained; can be made to die at a given look."""

    def __init__(self, root: Path, base: dict, die_at_look: int | None = None) -> None:
        self.root, self.base, self.die_at_look = root, base, die_at_look
        self.trained: list[set[tuple[str, int]]] = []
        self.dead_look: list[str] = []  # MLflow runs of the look it died in
        self.test_set = draw_test_set(np.random.default_rng(0), 40, Population())

    def __call__(self, study, opts, questions, analyse=None):
        if self.die_at_look == len(self.trained) + 1:
            # as a SIGKILLed driver leaves a look: its sweep's parent and a trial in flight RUNNING in MLflow
            for tags in ({"r2d.kind": "sweep", **opts.parent_tags}, {}):
                self.dead_look.append(tracking.start_run(opts.tracking_uri, study.name, "dead-look", {},
                                                         {"r2d.sweep_id": "dead-look", **tags}))
            raise KeyboardInterrupt
        look: set[tuple[str, int]] = set()
        for q in questions:
            point = {key: values[0] for key, values in q.study.grid.items()}
            for seed in q.study.seeds:
                cfg = trial_config(self.base, point, seed)
                key = (system_id(cfg), seed)
                out = self.root / f"{key[0][:12]}-s{seed}"
                if out.exists() or key in look:
                    continue
                rows = simulate_rows(np.random.default_rng(seed), self.test_set, 0.5, rationales=True)
                write_run_dir(out, cfg, LABELS, {"test": rows}, {"splits": {"test": {"n": len(rows)}}})
                look.add(key)
        self.trained.append(look)
        return {"sweep_id": f"look-{len(self.trained)}", "reused": []}


def planted_values(matched, metrics):
    return {metric: {s.name: {seed: planted(s, seed) for seed in s.seeds} for s in matched.systems}
            for metric in metrics}


@pytest.fixture
def plan_loop(tmp_path, monkeypatch):
    """The referee plan's study and questions, options on tmp_path, the fake looks patched in."""
    opts = SweepOptions(storage_path=str(tmp_path / "storage"), tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                        overrides=["data.triage.size=300"])
    base = base_config(referee.DEFAULT, opts)
    runs = tmp_path / "runs"
    monkeypatch.setattr(_adaptive, "_load", lambda uri, study, record, cache: match_systems(load_run_dirs([runs])))
    monkeypatch.setattr(_adaptive, "per_seed_values", planted_values)

    def start(die_at_look=None):
        fake = FakeLooks(runs, base, die_at_look)
        monkeypatch.setattr(_adaptive, "run_sweep", fake)
        return fake

    return opts, base, start


def test_plan_until_decided_adds_seeds_only_where_a_question_is_open_and_resumes(plan_loop, capsys):
    opts, base, start = plan_loop
    # no futility stop: transition 0.3 is meant to stay open to the last look (tests/test_sequential_futility.py)
    questions, adaptive = referee.PLANS[None], AdaptiveOptions(max_seeds=7, futility=0.0)
    # the driver dies (Ctrl-C) when the second look's trials are asked for
    fake = start(die_at_look=2)
    with pytest.raises(KeyboardInterrupt):
        _adaptive.run_until_decided(referee.DEFAULT, opts, adaptive, False, questions)
    dead_look = fake.dead_look
    distinct = {system_id(trial_config(base, p, 0)) for q in questions for p in _adaptive.grid_points(q.study.grid)}
    assert len(distinct) == 11 and len(fake.trained) == 1
    assert {sid for sid, _ in fake.trained[0]} == distinct and len(fake.trained[0]) == 11 * 3  # each once
    saved = json.loads(next(Path(opts.storage_path).glob("referee-adaptive-*/state.json")).read_text())
    assert saved["looks_done"] == 1
    assert MlflowClient(opts.tracking_uri).get_run(saved["parent_run_id"]).info.status == "KILLED"
    # five families: controls, schedule, and the rationale-source question per source (its alpha split 3 ways)
    states = {key: json.loads(text) for key, text in saved["states"].items()}
    assert sorted(states) == ["controls", "rationale_source (rationale_source=llm)",
                              "rationale_source (rationale_source=nurse)",
                              "rationale_source (rationale_source=nurse_post)", "schedule"]
    split = [s["design"]["alpha"] for k, s in states.items() if k.startswith("rationale")]
    assert split == [pytest.approx(0.05 / 3)] * 3
    assert states["controls"]["design"]["alpha"] == 0.05
    # look 1 decides what the planted values make plain: teacher forcing worse, the other controls equivalent
    controls = {c["system"]: c for c in states["controls"]["comparisons"] if c["metric"] == "correct"}
    assert {c["status"] for name, c in controls.items() if "teacher_forcing" in name} == {"worse"}
    assert all(c["status"] == "equivalent" for name, c in controls.items() if "teacher_forcing" not in name)
    schedule = {c["system"]: c["status"] for c in states["schedule"]["comparisons"] if c["metric"] == "correct"}
    assert sorted(schedule.values()) == ["equivalent", "open", "open"]  # both transition-0.3 shapes stay open
    # ... and only the schedule question still needs seeds: transition 0.3 and its baseline (linear 0.6)
    assert sorted((p["stage2.schedule.shape"], p["stage2.schedule.transition"]) for p in saved["open"]) == \
        [("exponential", 0.3), ("linear", 0.3), ("linear", 0.6)]

    # --resume continues the same design: look 2 onwards, three configurations per look, nothing retrained
    fake = start()
    final = _adaptive.run_until_decided(referee.DEFAULT, dataclasses.replace(opts, resume=True), adaptive, False,
                                        questions)
    assert [len(look) for look in fake.trained] == [3 * 2, 3 * 2]  # looks at 5 and 7 seeds: 2 new seeds each
    client = MlflowClient(opts.tracking_uri)
    assert [client.get_run(run).info.status for run in dead_look] == ["KILLED", "KILLED"]  # none left RUNNING
    assert "2 run(s) of the interrupted look marked KILLED" in capsys.readouterr().out
    assert all(seed >= 3 for look in fake.trained for _, seed in look)
    record = json.loads(next(Path(opts.storage_path).glob("referee-adaptive-*/state.json")).read_text())
    assert record["looks_done"] == 3 and record["design"] == saved["design"]
    states = {key: json.loads(text) for key, text in record["states"].items()}
    assert states["controls"] == json.loads(saved["states"]["controls"])  # closed at look 1, never re-read
    still = [c for c in states["schedule"]["comparisons"] if c["status"] not in ("equivalent", "better", "worse")]
    assert still and all(c["status"] == "undecided" and "maximum seeds" in c["reason"] for c in still)
    assert "### controls (baseline" in final and "### schedule (baseline" in final
    assert "3 looks, 45 trials" in final  # 11 x 3, then 3 configurations x 2 new seeds twice
    parent = MlflowClient(opts.tracking_uri).get_run(record["parent_run_id"])
    assert parent.info.status == "FINISHED" and parent.data.tags["r2d.kind"] == "adaptive"
    assert "### schedule" in parent.data.tags["mlflow.note.content"]
    capsys.readouterr()


def test_plan_dry_run_counts_distinct_configurations(plan_loop, capsys):
    opts, _, _ = plan_loop
    text = _adaptive.run_until_decided(referee.DEFAULT, opts, AdaptiveOptions(max_seeds=7), True,
                                       referee.PLANS[None])
    assert "11 configurations in 3 question(s)" in text and "at most 77" in text and "first look: 33 trials" in text
    assert not Path(opts.storage_path).exists()
