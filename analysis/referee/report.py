"""The referee report: a plan (`plan.json`) and the run directories -> `referee.md` and a self-contained `referee.html`.

    python -m analysis referee --plan SWEEP/plan.json --runs SWEEP/runs [--out DIR]

Each question of the plan (`analysis.referee.plan`) is analysed on its own runs by `build_report`
(the same table, CSV, LaTeX, plots and signatures as `python -m analysis report`, in `<out>/<id>/`)
with the question's baseline; `analysis.referee.verdicts` turns the rows into sentences. The document
follows the referee's three points:

1. "Ablations that isolate scheduled sampling from multi-task regularisation: ..." (the controls);
2. "Confidence intervals and significance tests for every claim." (answered by every question's
   CIs and tests: a short section says how, with every signature line);
3. "The schedule's stability across seeds, its sensitivity to ..." (schedule, rationale source).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.errors import InputError
from analysis.load.runs import Run, unreadable_runs
from analysis.referee.page import (
    Block,
    Code,
    Heading,
    Image,
    Items,
    Paragraph,
    Quote,
    parse_markdown_table,
    split_table,
    table_lines,
    to_html,
    to_markdown,
)
from analysis.referee.plan import Question, RefereePlan, load_plan, runs_for_question
from analysis.referee.verdicts import (
    CORRECTION_LABELS,
    Verdict,
    comparison_verdicts,
    seed_stability,
    source_readings,
    summary_clauses,
    summary_verdict,
)
from analysis.report import Report, build_report
from analysis.tables.seedplan import seed_list

__all__ = ["Answer", "RefereeReport", "build_referee_report", "load_plan", "runs_for_question", "write_referee_report"]

POINTS = {
    1: "Ablations that isolate scheduled sampling from multi-task regularisation: fixed teacher forcing, "
    "joint training without a schedule, standard fine-tuning with the combined objective.",
    2: "Confidence intervals and significance tests for every claim.",
    3: "The schedule's stability across seeds, its sensitivity to the transition rate and decay shape, "
    "and its interaction with the rationale source.",
}
MARKDOWN_FILE, HTML_FILE = "referee.md", "referee.html"


@dataclass
class Answer:
    """One question answered: its report (written under `<out>/<question id>/`) and its verdicts in words."""

    question: Question
    report: Report
    verdicts: list[Verdict]
    summary: str  # one line: the heading and one clause per metric
    clauses: list[str]  # the same clauses, one per metric
    readings: list[str]  # the spread across seeds; how each comparison reads under each rationale source


@dataclass
class RefereeReport:
    """The whole referee report: the plan, each question's answer, the Markdown, the files written."""

    plan: RefereePlan
    answers: list[Answer]
    markdown: str
    out_dir: Path
    files: list[Path] = field(default_factory=list)

    def messages(self) -> list[str]:
        """Each question's stderr lines (skipped unreadable files, version warnings), each line once."""
        return list(dict.fromkeys(message for answer in self.answers for message in answer.report.messages()))

    def verdict_lines(self) -> list[str]:
        """Each question's summary, then its comparisons' sentences (what the CLI prints)."""
        lines = []
        for answer in self.answers:
            lines.append(answer.summary)
            lines += [f"  {verdict.sentence}" for verdict in answer.verdicts]
        return lines


def answer_question(question: Question, runs: Sequence[Run], out_dir: str | Path, **options: Any) -> Answer:
    """Analyse one question on its runs (report written to `out_dir`); errors name the question in the plan."""
    notes: list[str] = []
    question_runs = runs_for_question(question, runs, notes)
    try:
        report = build_report(question_runs, out_dir=out_dir, baseline=question.baseline, extra_notes=notes, **options)
    except InputError as error:
        raise InputError(question.where, str(error)) from None
    verdicts = comparison_verdicts(report.rows, report.metrics, options.get("correction", "holm"))
    summary = summary_verdict(f"Point {question.point}, {question.id}", verdicts)
    readings = seed_stability(report.rows, report.metrics) + source_readings(verdicts)
    return Answer(question, report, verdicts, summary, summary_clauses(verdicts), readings)


def build_referee_report(plan: RefereePlan, runs: Sequence[Run], out_dir: str | Path, **options: Any) -> RefereeReport:
    """Answer every question (each report under `out_dir/<id>/`), then write `referee.md` and `referee.html`.

    `options` are `build_report`'s statistical keyword arguments (metrics, test, n_resamples, seed,
    correction, alpha, target_effect, exclude_unhealthy, split, dataset, plots); the baseline is each question's.
    """
    out = Path(out_dir)
    # Every planned run is checked before any question is answered: an unreadable file stops the report before
    # anything is written (unless skip_unreadable), not half-way, after earlier questions' files.
    unreadable_runs(
        [run for run in runs if (run.system_id, run.seed) in plan.trials],
        "--runs",
        bool(options.get("skip_unreadable")),
    )
    answers = [answer_question(question, runs, out / question.id, **options) for question in plan.questions]
    blocks = referee_blocks(plan, answers, runs, options)
    markdown = to_markdown(blocks)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKDOWN_FILE).write_text(markdown)
    (out / HTML_FILE).write_text(to_html(blocks, out, _title(plan)))
    files = [out / MARKDOWN_FILE, out / HTML_FILE] + [path for answer in answers for path in answer.report.files]
    return RefereeReport(plan, answers, markdown, out, files)


def write_referee_report(plan: RefereePlan, runs: Sequence[Run], out_dir: str | Path, **options: Any) -> list[Path]:
    """Write `referee.md`, `referee.html` and each question's report under `out_dir`; returns the files written."""
    return build_referee_report(plan, runs, out_dir, **options).files


def _title(plan: RefereePlan) -> str:
    return f"Answers to the referee: sweep {plan.sweep_id}"


def referee_blocks(
    plan: RefereePlan, answers: Sequence[Answer], runs: Sequence[Run], options: dict[str, Any]
) -> list[Block]:
    """The document: title, plan summary, the verdicts at a glance, then the referee's points in order."""
    blocks: list[Block] = [Heading(1, _title(plan)), Paragraph(_plan_summary(plan, runs))]
    blocks += [
        Paragraph(
            "Every number and verdict below is computed by `python -m analysis referee` from the runs' per-example "
            "predictions; each question's full table (CSV with every test's p-value, LaTeX) and plots are in its "
            "sub-directory."
        ),
        Heading(2, "Verdicts at a glance"),
    ]
    for answer in answers:
        question = answer.question
        blocks += [
            Paragraph(f"**Point {question.point}, {question.title}** (`{question.id}`)"),
            Items(tuple(answer.clauses), ("summary",) * len(answer.clauses)),
        ]
    for point, words in POINTS.items():
        blocks.append(Heading(2, f"Point {point}. {words}"))
        if point == 2:
            blocks += _point_two(answers, options)
        for answer in answers:
            if answer.question.point == point:
                blocks += _question_blocks(plan, answer)
    return blocks


def _plan_summary(plan: RefereePlan, runs: Sequence[Run]) -> str:
    found = {(run.system_id, run.seed) for run in runs} & plan.trials
    configurations = {system_id for system_id, _ in plan.trials}
    return (
        f"Plan: {len(plan.trials)} trials ({len(configurations)} configurations on seeds {seed_list(plan.seeds)}) "
        f"answer {len(plan.questions)} questions; {len(plan.shared)} trials are shared between questions "
        f"(trained once, analysed in each question that lists them). Runs found for {len(found)} of the "
        f"{len(plan.trials)} trials."
    )


def _question_blocks(plan: RefereePlan, answer: Answer) -> list[Block]:
    """One question: its words, runs, table, verdicts, plots, notes and signatures."""
    question, report = answer.question, answer.report
    shared = len(question.keys & plan.shared)
    matched = report.matched
    blocks: list[Block] = [
        Heading(3, f"{question.title} (`{question.id}`)"),
        Quote(question.question),
        Paragraph(
            f"Baseline: **{', '.join(report.baselines.values()) or 'none'}**"
            + (f" (plan: `{question.baseline}`)" if question.baseline else "")
            + f". {len(question.trials)} trials, {shared} shared with other questions; "
            f"{len(matched.systems)} systems on {len(matched.example_ids)} {matched.split} examples"
            + (f" of {matched.dataset}" if matched.dataset else "")
            + f". Files: `{question.id}/significance.md`, `.csv`, `.tex`."
        ),
    ]
    lines = table_lines(report.markdown)
    if len(lines) >= 2:
        blocks += split_table(parse_markdown_table(lines))  # one table per metric when there are more than two
    blocks.append(Items(tuple(_footer(report.markdown, len(lines)))))
    classes = [_css(verdict) for verdict in answer.verdicts] + [""] * len(answer.readings)
    sentences = [verdict.sentence for verdict in answer.verdicts] + answer.readings
    blocks += [
        Heading(4, "Verdicts"),
        Items(tuple(answer.clauses), ("summary",) * len(answer.clauses)),
        Items(tuple(sentences), tuple(classes)),
    ]
    out_dir = report.out_dir
    for path in report.files:
        if path.suffix == ".png" and out_dir is not None:
            relative = f"{question.id}/{path.relative_to(out_dir).as_posix()}"
            blocks.append(Image(relative, f"{question.id}: {path.stem.replace('_', ' ')}"))
    notes = sorted(report.notes, key=lambda note: not note.startswith(("health:", "excluded", "plan:")))
    if notes:
        blocks += [Heading(4, "Notes (health of the runs first; mismatches are reported, never dropped)")]
        blocks.append(Items(tuple(notes)))
    blocks += [Heading(4, "Signatures"), Code(tuple(report.signatures.values()))]
    return blocks


def _footer(markdown: str, n_table_lines: int) -> list[str]:
    """The lines that explain the table (after it, up to the first blank line): CIs, Δ, test, baseline, marks."""
    footer = []
    for line in markdown.splitlines()[n_table_lines + 1 :]:
        if not line.strip():
            break
        footer.append(line)
    return footer


def _css(verdict: Verdict) -> str:
    if verdict.unhealthy:
        return "unhealthy"
    return "decided" if verdict.decided else "undecided"


def _point_two(answers: Sequence[Answer], options: dict[str, Any]) -> list[Block]:
    """Point 2 is answered by every question's CIs and tests: how, and every signature line."""
    correction = CORRECTION_LABELS.get(options.get("correction", "holm"), options.get("correction", "holm"))
    confidence = f"{options.get('confidence', 0.95) * 100:g}%"
    tests = [
        f"`{answer.question.id}`: " + line.removeprefix("Test: ")
        for answer in answers
        for line in answer.report.markdown.splitlines()
        if line.startswith("Test: ")
    ]
    signatures = [f"{answer.question.id}: {sig}" for answer in answers for sig in answer.report.signatures.values()]
    return [
        Paragraph(
            "This point is not a separate study: it is answered by every verdict of points 1 and 3. Each system's "
            f"mean has a {confidence} CI; each difference from the baseline has its {confidence} CI and a p-value "
            f"corrected by {correction} across the comparisons of its metric within its question (each question "
            "is its own family); a difference that is not significant states the smallest difference the design "
            "can detect at 80% power and the seeds the observed difference would need. A CI or MDE wider than the "
            "metric's range is replaced by words. Calibration (A/A rejection rate, power at the MDE) is tested: "
            "see analysis/README.md."
        ),
        Items(tuple(tests)),
        Paragraph("The signature lines say how every number was computed:"),
        Code(tuple(signatures)),
    ]
