"""The referee report (`python -m analysis referee`): a plan.json of three questions and simulated run directories
(tests/sim_runs.py: r2d's own writer, known truth) -> referee.md and a self-contained referee.html.

The study: r2d is the baseline; teacher_forcing is far worse (a planted effect: decided, r2d better),
constant_mix equal to r2d (no effect: undecided, with an MDE); r2d's and teacher_forcing's runs on the
LLM rationales are shared by several questions; one planned trial has no run (a note).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from analysis.cli import main
from analysis.errors import InputError
from analysis.load.runs import load_run_dirs
from analysis.metrics import METRICS
from analysis.referee.page import Image, Paragraph, Table, parse_markdown_table, split_table, to_html
from analysis.referee.report import build_referee_report, load_plan, runs_for_question, write_referee_report
from analysis.referee.verdicts import comparison_verdict
from analysis.tables.comparison import ComparisonRow
from tests import sim_runs as sim

SEEDS = [0, 1, 2]
MU, LOW = 0.6, -0.9  # logits: r2d and the controls without an effect; teacher_forcing's planted deficit
SYSTEMS = {
    "r2d": (("variant=r2d",), MU),
    "teacher_forcing": (("variant=teacher_forcing",), LOW),
    "constant_mix": (("variant=constant_mix",), MU),
    "combined_ft": (("variant=combined_ft",), MU),
    "r2d_exponential": (("variant=r2d", "stage2.schedule.shape=exponential"), MU),
    "r2d_transition_03": (("variant=r2d", "stage2.schedule.transition=0.3"), MU),
    "r2d_nurse": (("variant=r2d", "data.rationale_source=nurse"), MU),
    "teacher_forcing_nurse": (("variant=teacher_forcing", "data.rationale_source=nurse"), LOW),
}
QUESTIONS = [
    ("controls", 1, ["r2d", "teacher_forcing", "constant_mix", "combined_ft"], "variant=r2d"),
    ("schedule", 3, ["r2d", "r2d_exponential", "r2d_transition_03"], "variant=r2d,shape=linear,transition=0.6"),
    ("rationale_source", 3, ["r2d", "teacher_forcing", "r2d_nurse", "teacher_forcing_nurse"], "variant=r2d"),
]
MISSING = ("combined_ft", 2)  # planned, never run
OPTIONS = {"n_resamples": 300, "metrics": ["correct", "macro_f1"]}


def write_study(root: Path, n: int = 150, rng_seed: int = 0) -> dict[str, str]:
    """Every system's runs on one shared test set (but the missing trial); returns system -> system_id."""
    rng = np.random.default_rng(rng_seed)
    population = sim.Population(sd_example=1.0, sd_seed=0.1, sd_interaction=0.3)
    test_set = sim.draw_test_set(rng, n, population)
    system_ids = {}
    for name, (overrides, mu) in SYSTEMS.items():
        interaction = rng.normal(0, population.sd_interaction, n)
        for seed in SEEDS:
            rows = sim.simulate_rows(
                rng, test_set, mu, seed_effect=rng.normal(0, population.sd_seed), interaction=interaction
            )
            if (name, seed) == MISSING:
                continue
            run_dir = sim.write_sim_run(root, f"{name}-s{seed}", overrides, seed, rows)
            system_ids[name] = json.loads((run_dir / "run.json").read_text())["system_id"]
    return system_ids


def plan_data(system_ids: dict[str, str]) -> dict:
    """plan.json as r2d's plan writes it."""
    questions = []
    for question_id, point, systems, baseline in QUESTIONS:
        trials = [
            {"system_id": system_ids[name], "seed": seed, "settings": {"name": name}}
            for name in systems
            for seed in SEEDS
        ]
        questions.append(
            {
                "id": question_id,
                "point": point,
                "title": question_id.replace("_", " "),
                "question": f"What does {question_id} show?",
                "baseline": baseline,
                "trials": trials,
            }
        )
    return {"plan": "referee", "sweep_id": "sweep-test", "seeds": SEEDS, "questions": questions}


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("referee")
    system_ids = write_study(root / "runs")
    plan_path = root / "plan.json"
    plan_path.write_text(json.dumps(plan_data(system_ids), indent=1))
    plan = load_plan(plan_path)
    runs = load_run_dirs([root / "runs"])
    report = build_referee_report(plan, runs, root / "out", **OPTIONS)
    return {"root": root, "plan_path": plan_path, "plan": plan, "runs": runs, "report": report, "ids": system_ids}


def _verdicts(report, question_id: str) -> dict[tuple[str, str], object]:
    answer = next(a for a in report.answers if a.question.id == question_id)
    return {(v.metric, v.system): v for v in answer.verdicts}


def test_both_files_exist_and_the_html_is_self_contained(study: dict) -> None:
    out = study["root"] / "out"
    markdown, page = (out / "referee.md").read_text(), (out / "referee.html").read_text()
    assert {out / "referee.md", out / "referee.html"} <= set(study["report"].files)
    assert "http://" not in page and "https://" not in page  # nothing fetched: no scripts, fonts, stylesheets
    assert "<script" not in page and "<link" not in page
    assert page.count("data:image/png;base64,") >= 3  # one plot per question and metric at least
    assert re.search(r"<table>.*<td class=\"right\">", page, re.S)  # the tables as HTML, numbers right-aligned
    for point, words in ((1, "fixed teacher forcing"), (2, "for every claim"), (3, "interaction with the rationale")):
        assert f"Point {point}. " in markdown and words in markdown
    assert "![controls: correct systems](controls/plots/correct_systems.png)" in markdown
    assert (out / "controls" / "significance.csv").is_file() and (out / "schedule" / "plots").is_dir()
    plan = study["plan"]
    assert f"{len(plan.shared)} trials are shared between questions" in markdown
    assert len(plan.shared) == 6  # r2d x 3 seeds (three questions), teacher_forcing x 3 seeds (two)


def test_each_point_has_a_verdict_line(study: dict) -> None:
    report = study["report"]
    lines = report.verdict_lines()
    for question_id, point, *_ in QUESTIONS:
        assert any(line.startswith(f"Point {point}, {question_id}: ") for line in lines)
    markdown = report.markdown
    point_two = markdown.split("## Point 2. ")[1].split("## Point 3. ")[0]
    assert "metric:correct|test:crossed" in point_two and "controls: " in point_two  # every signature, per question


def test_a_large_effect_is_decided_in_the_right_direction(study: dict) -> None:
    verdicts = _verdicts(study["report"], "controls")
    for metric in ("correct", "macro_f1"):
        verdict = verdicts[metric, "teacher_forcing"]
        assert verdict.decided and verdict.better == "r2d"
        label = METRICS[metric].label
        assert re.match(
            rf"teacher_forcing vs r2d: {label} -\d+\.\d points \[-\d+\.\d, -\d+\.\d\], p [<=] [\d.]+ \(Holm\): "
            r"r2d is better, decided\.$",
            verdict.sentence,
        ), verdict.sentence
    summary = next(a.summary for a in study["report"].answers if a.question.id == "controls")
    assert summary.startswith("Point 1, controls: accuracy: of 3 comparisons with r2d, r2d is better than 1")
    assert "(teacher_forcing)" in summary and "no system is better than r2d" in summary


def test_no_effect_is_undecided_with_its_mde(study: dict) -> None:
    report = study["report"]
    verdict = _verdicts(report, "controls")["correct", "constant_mix"]
    assert not verdict.decided
    row = next(r for r in report.answers[0].report.rows if r.system == "constant_mix" and r.metric == "correct")
    assert not row.undecided and math.isfinite(row.mde)  # the MDE fits the range: stated as a number
    assert f"is {row.mde * 100:.1f} points" in verdict.sentence
    assert ": undecided; the smallest difference these 3 seeds (150 examples) can detect at 80% power" in (
        verdict.sentence
    )
    assert re.search(
        r"; (about \d+ seeds would be needed to detect|even 1000 seeds would not detect) the observed difference "
        r"\(\d+\.\d+ points\)",
        verdict.sentence,
    ), verdict.sentence
    assert verdict.sentence in report.markdown


def test_a_shared_run_is_used_by_every_question_that_lists_it(study: dict) -> None:
    report, ids = study["report"], study["ids"]
    used = {}
    for answer in report.answers:
        used[answer.question.id] = {
            (run.system_id, seed, run.source)
            for system in answer.report.matched.systems
            for seed, run in system.runs.items()
        }
    r2d_runs = {entry for entry in used["controls"] if entry[0] == ids["r2d"]}
    assert len(r2d_runs) == 3
    assert r2d_runs <= used["schedule"] and r2d_runs <= used["rationale_source"]  # the same run directories
    tf_runs = {entry for entry in used["controls"] if entry[0] == ids["teacher_forcing"]}
    assert tf_runs <= used["rationale_source"] and not tf_runs & used["schedule"]
    # under each rationale source, each system is compared with that source's r2d
    readings = next(a.readings for a in report.answers if a.question.id == "rationale_source")
    assert any(
        line.startswith("teacher_forcing vs r2d, accuracy, by rationale source: llm: r2d better") for line in readings
    )


def test_a_missing_trial_is_a_note(study: dict) -> None:
    controls = study["report"].answers[0].report
    note = next(note for note in controls.notes if note.startswith("plan: no run of trial"))
    assert f"(system {study['ids']['combined_ft']}) seed 2" in note and "name=combined_ft" in note
    assert note in study["report"].markdown
    row = next(r for r in controls.rows if r.system == "combined_ft" and r.metric == "correct")
    assert row.seeds == [0, 1]  # compared with r2d on the seeds they share


def test_fewer_than_two_systems_is_an_error(study: dict, tmp_path: Path) -> None:
    data = plan_data(study["ids"])
    data["questions"][1]["trials"] = [t for t in data["questions"][1]["trials"] if t["settings"]["name"] == "r2d"]
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data))
    plan = load_plan(path)
    with pytest.raises(InputError, match=r"questions\[1\] \(schedule\): 1 configuration\(s\) with a usable run"):
        runs_for_question(plan.questions[1], study["runs"])


def _malformed(data: dict, case: str) -> dict | str:
    if case == "not-json":
        return '{"plan": "referee", '
    if case == "seed-type":
        data["questions"][2]["trials"][4]["seed"] = "1"
    elif case == "missing-trials":
        del data["questions"][0]["trials"]
    elif case == "point":
        data["questions"][1]["point"] = 4
    elif case == "unknown-seed":
        data["questions"][0]["trials"][0]["seed"] = 7
    elif case == "kind":
        data["plan"] = "ablations"
    return data


@pytest.mark.parametrize(
    ("case", "field"),
    [
        ("not-json", "file: not JSON (line 1"),
        ("seed-type", "questions[2].trials[4].seed: expected an integer"),
        ("missing-trials", "questions[0].trials: missing"),
        ("point", "questions[1].point: expected one of the referee's points"),
        ("unknown-seed", "questions[0].trials[0].seed: 7 is not one of the plan's seeds"),
        ("kind", "plan: expected 'referee'"),
    ],
)
def test_a_malformed_plan_is_one_error_naming_file_and_field(tmp_path: Path, case: str, field: str) -> None:
    data = _malformed(plan_data({name: f"id-{name}" for name in SYSTEMS}), case)
    path = tmp_path / "plan.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    with pytest.raises(InputError) as caught:
        load_plan(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {field}"), message
    assert "\n" not in message


def test_cli_prints_the_files_and_the_verdicts(study: dict, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli"
    arguments = ["referee", "--plan", str(study["plan_path"]), "--runs", str(study["root"] / "runs")]
    code = main([*arguments, "--out", str(out), "--resamples", "300", "--metrics", "correct", "--no-plots"])
    printed = capsys.readouterr().out
    assert code == 0
    assert f"referee report: {out / 'referee.md'}" in printed and str(out / "referee.html") in printed
    assert "Point 1, controls: accuracy: of 3 comparisons with r2d" in printed
    assert "teacher_forcing vs r2d: accuracy -" in printed and "r2d is better, decided." in printed
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    assert main(["referee", "--plan", str(bad), "--runs", str(study["root"] / "runs")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and error.startswith(f"python -m analysis referee: error: {bad}: file:")


def test_write_referee_report_returns_the_files(study: dict, tmp_path: Path) -> None:
    files = write_referee_report(
        study["plan"], study["runs"], tmp_path / "w", n_resamples=300, metrics=["correct"], plots=False
    )
    assert files[:2] == [tmp_path / "w" / "referee.md", tmp_path / "w" / "referee.html"]
    assert all(path.is_file() for path in files)
    assert "(plot missing" not in files[1].read_text()  # no plots asked for: none referenced


def _row(**fields) -> ComparisonRow:
    base = dict(
        metric="macro_f1",
        system="teacher_forcing",
        baseline="r2d",
        is_baseline=False,
        settings={},
        n_examples=200,
        seeds=[0, 1, 2],
        estimate=0.5,
        ci_low=0.45,
        ci_high=0.55,
        ci_method="percentile",
        seed_scores={},
        comparison_seeds=[0, 1, 2],
    )
    return ComparisonRow(**{**base, **fields})


def test_verdict_words_follow_the_row() -> None:
    spec = METRICS["macro_f1"]
    decided = _row(delta=-0.031, delta_low=-0.05, delta_high=-0.012, p_adjusted=0.004, significant=True, mde=0.02)
    assert comparison_verdict(decided, spec, None).sentence == (
        "teacher_forcing vs r2d: macro-F1 -3.1 points [-5.0, -1.2], p = 0.004 (Holm): r2d is better, decided."
    )
    better = _row(delta=0.02, delta_low=0.01, delta_high=0.03, p_adjusted=0.0001, significant=True)
    assert comparison_verdict(better, spec, None, "bonferroni").sentence.endswith(
        "p < 0.001 (Bonferroni): teacher_forcing is better, decided."
    )
    open_row = _row(delta=0.004, delta_low=-0.02, delta_high=0.03, p_adjusted=0.41, mde=0.062, seeds_needed=9)
    assert comparison_verdict(open_row, spec, None).sentence == (
        "teacher_forcing vs r2d: macro-F1 +0.40 points [-2.0, +3.0], p = 0.410 (Holm): undecided; the smallest "
        "difference these 3 seeds (200 examples) can detect at 80% power is 6.2 points; about 9 seeds would be "
        "needed to detect the observed difference (0.40 points)."
    )
    words = "undecided with 2 seeds: about 9 seeds needed to detect the observed Δ (0.40 points) at 80% power"
    wide = _row(delta=0.004, delta_low=-0.9, delta_high=0.9, p_adjusted=0.8, mde=1.5, undecided=words)
    sentence = comparison_verdict(wide, spec, _row(is_baseline=True, unhealthy={1: ["collapsed"]})).sentence
    assert sentence.startswith("teacher_forcing vs r2d: macro-F1 +0.40 points, p = 0.800 (Holm): " + words + ".")
    assert "[" not in sentence and sentence.endswith("(† unhealthy runs in this comparison: see the notes.)")


def test_page_tables_split_per_metric_and_text_is_escaped(tmp_path: Path) -> None:
    lines = [
        "| system | seeds | accuracy | Δ accuracy | macro-F1 | Δ macro-F1 | BLEU | Δ BLEU |",
        "|:--|--:|--:|--:|--:|--:|--:|--:|",
        "| r2d (baseline) | 3 (0,1,2) | 60.0 [55.0, 65.0] | baseline | 59.0 | baseline | 40.0 | baseline |",
    ]
    table = parse_markdown_table(lines)
    assert table.align == ("left",) + ("right",) * 7
    parts = split_table(table)
    assert [part.header for part in parts] == [
        ("system", "seeds", "accuracy", "Δ accuracy"),
        ("system", "seeds", "macro-F1", "Δ macro-F1"),
        ("system", "seeds", "BLEU", "Δ BLEU"),
    ]
    assert split_table(Table(table.header[:6], table.align[:6], ())) == [Table(table.header[:6], table.align[:6], ())]
    page = to_html([Paragraph("a <b> & `x<y>` **bold**"), Image("missing.png", "gone")], tmp_path, "t")
    assert "a &lt;b&gt; &amp; <code>x&lt;y&gt;</code> <strong>bold</strong>" in page
    assert "(plot missing: missing.png)" in page
