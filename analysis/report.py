"""A report: runs -> matched systems -> metrics and baselines -> rows -> table, plots, signatures.

From Python (e.g. at the end of a sweep): `build_report(runs, out_dir=...)` returns a `Report`
(`.markdown`, `.rows`, `.files`); `attach_to_mlflow(report, parent_run_id)` logs its files to a run;
`report_for_sweep(sweep_id, ...)` does all three for a sweep's parent run. The command line
`python -m analysis report` is `analysis.cli`.

What is computed, per metric (see DESIGN.md section 6, and `analysis.tables.rows`):
- each system: mean over seeds, with a bootstrap CI over examples (BCa with one seed; with several,
  a percentile interval of the seed x example stratified bootstrap) and the spread across seeds;
- each system vs the baseline of its stratum (its rationale source): the difference with its CI,
  and the p-value of the table's test, corrected for the comparisons of that metric (Holm by
  default). `--test auto` uses the paired bootstrap with one seed and the crossed seed x example test
  (`analysis.stats.crossed`: seed and example variance) over seed-matched runs with several; every other
  test's p-value is in the CSV;
- the minimum detectable effect at 80% power, printed beside non-significant differences, and the
  seeds needed to detect the observed delta and the `--target-effect`; a CI or MDE wider than the
  metric's range is replaced by words (`analysis.tables.decide`).
Rows are configurations (`system_id`), each on one set of seeds (`analysis.tables.seedplan`); runs flagged
unhealthy are listed and marked, or left out with `exclude_unhealthy`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.errors import InputError
from analysis.load.mlflow_runs import load_mlflow_runs
from analysis.load.runs import Run
from analysis.load.selection import baseline_notes, choose_baselines, choose_metrics, stratum_label
from analysis.load.systems import MatchedSystems, match_systems
from analysis.load.versions import collect_versions
from analysis.metrics import MetricSpec
from analysis.options import AnalysisOptions
from analysis.stats.resampling import DEFAULT_RESAMPLES, MIN_EXAMPLES
from analysis.tables.comparison import ComparisonRow
from analysis.tables.decide import seeds_needed_notes
from analysis.tables.render import csv_table, footer, latex_table, markdown_table, signature
from analysis.tables.rows import Baselines, compose_rows


@dataclass
class Report:
    """Everything a report computed and wrote. `markdown` is what the CLI prints."""

    matched: MatchedSystems
    rows: list[ComparisonRow]
    metrics: list[MetricSpec]
    baselines: dict[str, str]  # stratum label -> baseline system name
    signatures: dict[str, str]
    notes: list[str]
    markdown: str
    latex: str
    csv: str
    files: list[Path] = field(default_factory=list)
    out_dir: Path | None = None
    skipped: list[str] = field(default_factory=list)  # each unreadable predictions file left out: the parser's words
    warnings: list[str] = field(default_factory=list)  # e.g. runs made with different versions (also in the footer)

    def messages(self) -> list[str]:
        """The lines for stderr: one per skipped unreadable file, one per warning."""
        return [f"skipped unreadable: {skipped}" for skipped in self.skipped] + [
            f"warning: {warning}" for warning in self.warnings
        ]


def build_report(
    runs: Sequence[Run] | MatchedSystems,
    *,
    out_dir: str | Path | None = None,
    metrics: Sequence[str] | None = None,
    baseline: str | None = None,
    test: str = "auto",
    ci: str = "bca",
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    correction: str = "holm",
    alpha: float = 0.05,
    split: str = "test",
    dataset: str | None = None,
    plots: bool = True,
    extra_notes: Sequence[str] = (),
    source_option: str = "--runs",
    target_effect: float | None = None,
    exclude_unhealthy: bool = False,
    pooled: bool = False,
    skip_unreadable: bool = False,
) -> Report:
    """Analyse runs (or `MatchedSystems`) and, with `out_dir`, write the table, CSV, LaTeX and plots.

    `target_effect` (display units: points) gets its own seeds-needed figure per comparison;
    `exclude_unhealthy` leaves runs with an unhealthy flag out of every statistic (and says so).
    Raises `InputError` (naming the option) for bad input: no usable run, unknown metric or baseline, a
    predictions file that cannot be read (unless `skip_unreadable`: then left out, and `Report.skipped`
    names it and the rows say how many seeds they lost), all before anything is written.
    """
    options = AnalysisOptions(n_resamples, seed, ci, confidence, test, correction, alpha, target_effect, pooled=pooled)
    options.validate()
    matched = _matched(
        runs,
        split=split,
        dataset=dataset,
        source_option=source_option,
        exclude_unhealthy=exclude_unhealthy,
        skip_unreadable=skip_unreadable,
    )
    notes = list(extra_notes) + list(matched.notes)
    choice = choose_metrics(matched, metrics, notes)
    options.check_metrics(choice.specs)
    chosen = choose_baselines(matched, baseline)
    notes += baseline_notes(chosen, baseline)
    rows = compose_rows(matched, choice, chosen, options, notes)
    notes += seeds_needed_notes(rows, choice.specs, target_effect, len(matched.example_ids))
    report = _render(matched, rows, choice.specs, chosen, notes, options)
    if out_dir is not None:
        write_report(report, out_dir, plots=plots)
    return report


def _matched(
    runs: Sequence[Run] | MatchedSystems,
    *,
    split: str,
    dataset: str | None,
    source_option: str,
    exclude_unhealthy: bool,
    skip_unreadable: bool,
) -> MatchedSystems:
    """The runs as matched systems, refusing fewer common examples than the bootstrap needs."""
    if isinstance(runs, MatchedSystems):
        matched = runs
    else:
        matched = match_systems(
            runs,
            split=split,
            dataset=dataset,
            source_option=source_option,
            exclude_unhealthy=exclude_unhealthy,
            skip_unreadable=skip_unreadable,
        )
    if len(matched.example_ids) < MIN_EXAMPLES:
        raise InputError(
            source_option,
            f"only {len(matched.example_ids)} examples are common to all runs; "
            f"the bootstrap needs at least {MIN_EXAMPLES}",
        )
    return matched


def _render(
    matched: MatchedSystems,
    rows: list[ComparisonRow],
    specs: list[MetricSpec],
    chosen: Baselines,
    notes: list[str],
    options: AnalysisOptions,
) -> Report:
    """The rows as Markdown, LaTeX and CSV, with the footer, one signature per metric, and the notes."""
    n_examples = len(matched.example_ids)
    versions = collect_versions(run for system in matched.systems for run in system.runs.values())
    notes = notes + versions.notes()
    warnings = [warning] if (warning := versions.warning()) else []
    signatures = {
        spec.name: signature(
            spec,
            [row for row in rows if row.metric == spec.name],
            options,
            n_examples,
            matched.split,
            versions.signature(),
        )
        for spec in specs
    }
    baselines = {stratum_label(stratum): system.name for stratum, system in chosen.items() if system}
    footer_lines = footer(options, baselines, rows, warnings)
    signature_lines = list(signatures.values())
    note_lines = (
        ["", "Notes (mismatches are reported, never dropped silently):"] + [f"- {note}" for note in notes]
        if notes
        else []
    )
    markdown = markdown_table(rows, specs, footer_lines + [""] + signature_lines + note_lines)
    latex = latex_table(rows, specs, footer_lines, signature_lines)
    csv_text = csv_table(rows, signatures)
    skipped = [str(run.unreadable) for run in matched.unreadable]
    return Report(
        matched,
        rows,
        specs,
        baselines,
        signatures,
        notes,
        markdown,
        latex,
        csv_text,
        skipped=skipped,
        warnings=warnings,
    )


def write_report(report: Report, out_dir: str | Path, *, plots: bool = True) -> list[Path]:
    """Write significance.{md,tex,csv} and plots/*.png under `out_dir`; returns the files written."""
    # imported here, not at the top: matplotlib is heavy, and --no-plots and tests do without it
    from analysis.tables.plots import plot_systems, plot_transition

    out = Path(out_dir)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    files = []
    for name, text in (
        ("significance.md", report.markdown),
        ("significance.tex", report.latex),
        ("significance.csv", report.csv),
    ):
        (out / name).write_text(text)
        files.append(out / name)
    if plots:
        for spec in report.metrics:
            metric_rows = [row for row in report.rows if row.metric == spec.name]
            files.append(plot_systems(metric_rows, spec, out / "plots" / f"{spec.name}_systems.png"))
            transition = plot_transition(metric_rows, spec, out / "plots" / f"{spec.name}_transition.png")
            if transition is not None:
                files.append(transition)
    report.files, report.out_dir = files, out
    return files


def attach_to_mlflow(
    report: Report, run_id: str, *, tracking_uri: str | None = None, artifact_path: str = "analysis"
) -> None:
    """Log the report's written files to an MLflow run (the sweep's parent) under `artifact_path/`."""
    if report.out_dir is None:
        raise ValueError("write the report first (build_report(..., out_dir=...) or write_report)")
    # imported here, not at the top: MLflow is heavy and optional (reports from run directories do without it)
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=tracking_uri).log_artifacts(run_id, str(report.out_dir), artifact_path=artifact_path)


def report_for_sweep(
    sweep_id: str,
    *,
    out_dir: str | Path,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    attach: bool = True,
    cache_dir: str | Path | None = None,
    **build_options: Any,
) -> Report:
    """For the sweep driver: read a sweep's runs from MLflow, write the report, attach it to the parent.

    `build_options` are `build_report`'s keyword arguments (metrics, baseline, n_resamples, skip_unreadable...):
    an unreadable predictions file is an `InputError` before anything is written, unless `skip_unreadable`.
    """
    found = load_mlflow_runs(
        experiment=experiment,
        sweep_id=sweep_id,
        tracking_uri=tracking_uri,
        split=build_options.get("split", "test"),
        cache_dir=cache_dir,
    )
    if not found.runs:
        raise InputError("--sweep-id", f"no training run with tag r2d.sweep_id = {sweep_id!r}")
    report = build_report(found.runs, out_dir=out_dir, **build_options)
    for message in report.messages():  # the driver's log: what was skipped, which versions differ
        print(f"report_for_sweep {sweep_id}: {message}", file=sys.stderr)
    if attach and len(found.parent_run_ids) == 1:
        attach_to_mlflow(report, found.parent_run_ids[0], tracking_uri=tracking_uri)
    return report
