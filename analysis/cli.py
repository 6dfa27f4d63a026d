"""`python -m analysis report | referee`: the command line over `analysis.report.build_report`.

    python -m analysis report --experiment NAME [--baseline SYSTEM] [--metrics ...] [--out DIR]
    python -m analysis report --sweep-id ID [--tracking-uri URI] ...
    python -m analysis report --runs DIR [DIR ...] ...
    python -m analysis referee --plan SWEEP/plan.json --runs DIR [DIR ...] [--out DIR]  (analysis.referee)

Prints the Markdown table, writes every output under `--out`, and attaches them to the sweep's
parent MLflow run when the runs came from one sweep. Bad input is one line naming the option, exit 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.errors import InputError
from analysis.load.mlflow_runs import load_mlflow_runs
from analysis.load.runs import Run, load_run_dirs
from analysis.metrics import DEFAULT_METRICS, METRICS
from analysis.options import CI_METHODS, CORRECTIONS, TESTS
from analysis.referee.report import HTML_FILE, MARKDOWN_FILE, build_referee_report, load_plan
from analysis.report import Report, attach_to_mlflow, build_report
from analysis.stats.resampling import DEFAULT_RESAMPLES


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (and exit 2), like the report's own input errors."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print `message` on one line and exit 2."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    """`python -m analysis report` and `python -m analysis referee`, and their options."""
    parser = _Parser(prog="python -m analysis", description="Significance tables and plots for r2d runs.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    report = commands.add_parser("report", help="write the significance table, CSV, LaTeX and plots")
    source = report.add_argument_group("runs (one of)")
    source.add_argument("--experiment", help="MLflow experiment name")
    source.add_argument("--sweep-id", help="a sweep's id (MLflow tag r2d.sweep_id)")
    source.add_argument("--filter", help="an MLflow search filter string, e.g. \"tags.`r2d.variant` = 'r2d'\"")
    source.add_argument("--runs", nargs="+", metavar="DIR", help="run directories, or folders holding them")
    report.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI / ./mlruns)")
    report.add_argument("--cache-dir", help="where MLflow artifacts are cached (default ~/.cache/r2d-analysis)")
    report.add_argument(
        "--baseline",
        help="system name, variant, or key=value,... settings (default: the "
        "paper's recipe r2d/linear/0.6, else r2d, else sft)",
    )
    _statistics_options(report)
    report.add_argument("--out", help="output directory (default outputs/analysis/<experiment|sweep|runs>)")
    report.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    report.add_argument("--no-attach", action="store_true", help="do not log the outputs to the sweep's parent run")
    referee = commands.add_parser(
        "referee", help="answer the referee: a plan.json and its runs -> referee.md and a self-contained referee.html"
    )
    referee.add_argument("--plan", required=True, help="the sweep's plan.json (questions, baselines, trials)")
    referee.add_argument("--runs", required=True, nargs="+", metavar="DIR", help="run directories, or folders of them")
    _statistics_options(referee)
    referee.add_argument("--out", help="output directory (default: referee/ beside plan.json)")
    referee.add_argument("--no-plots", action="store_true", help="skip the PNG plots (the HTML then has none)")
    return parser


def _statistics_options(parser: argparse.ArgumentParser) -> None:
    """The options `report` and `referee` share: what to analyse and how (`build_report`'s keyword arguments)."""
    parser.add_argument("--split", default="test", help="predictions split to analyse (default test)")
    parser.add_argument("--dataset", help="keep runs of this dataset only")
    parser.add_argument(
        "--metrics",
        nargs="+",
        metavar="METRIC",
        help=f"metrics (default: those available of {', '.join(DEFAULT_METRICS)}); known: {', '.join(METRICS)}",
    )
    parser.add_argument(
        "--test",
        default="auto",
        choices=TESTS,
        help="test for the table's p-values (auto: paired bootstrap with one seed, the crossed seed x example "
        "test with several); randomization and mcnemar ignore seed variance with several seeds",
    )
    parser.add_argument("--ci", default="bca", choices=CI_METHODS, help="bootstrap interval (default bca)")
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument(
        "--resamples",
        type=int,
        default=DEFAULT_RESAMPLES,
        help="bootstrap resamples and randomisation trials (default 10000)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the resampling (default 0)")
    parser.add_argument("--correction", default="holm", choices=CORRECTIONS, help="many-comparisons correction")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument(
        "--target-effect",
        type=float,
        metavar="POINTS",
        help="a difference to power for, in points (e.g. 2 = 2 accuracy points or 2 BLEU): "
        "each comparison gets the seeds needed to detect it at 80%% power",
    )
    parser.add_argument(
        "--exclude-unhealthy",
        action="store_true",
        help="leave runs flagged collapsed, still_improving, diverged or failed out of the statistics",
    )
    parser.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="leave out runs whose predictions file cannot be read (binary junk, not UTF-8, a broken quote, a cut "
        "file...) instead of stopping; stderr names each file, and each row says how many seeds it lost",
    )
    parser.add_argument(
        "--pooled",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="crossed test: pool the seed x system variance over the systems sharing a baseline and seeds, "
        "when Bartlett's check does not reject (default off: see analysis/README.md); both MDEs are shown either way",
    )


def _statistics(arguments: argparse.Namespace) -> dict[str, Any]:
    """`build_report`'s keyword arguments from the shared options."""
    return {
        "metrics": arguments.metrics,
        "test": arguments.test,
        "ci": arguments.ci,
        "confidence": arguments.confidence,
        "n_resamples": arguments.resamples,
        "seed": arguments.seed,
        "correction": arguments.correction,
        "alpha": arguments.alpha,
        "split": arguments.split,
        "dataset": arguments.dataset,
        "plots": not arguments.no_plots,
        "target_effect": arguments.target_effect,
        "exclude_unhealthy": arguments.exclude_unhealthy,
        "pooled": arguments.pooled,
        "skip_unreadable": arguments.skip_unreadable,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """The command line's entry point; returns the exit code (2 for bad input)."""
    arguments = _parser().parse_args(argv)
    command = {"report": _report_command, "referee": _referee_command}[arguments.command]
    try:
        return command(arguments)
    except InputError as error:
        print(f"python -m analysis {arguments.command}: error: {error}", file=sys.stderr)
        return 2


@dataclass
class _LoadedRuns:
    """The runs a command reads, and what it needs to know about where they came from."""

    runs: list[Run]
    default_name: str  # names the default output directory
    option: str  # the option that named the runs, for error messages
    parent_ids: list[str] = field(default_factory=list)  # sweep parents to attach the report to
    notes: list[str] = field(default_factory=list)


def _report_command(arguments: argparse.Namespace) -> int:
    """Load the runs, build and write the report, print it, and attach it to the sweep's parent run."""
    loaded = _load(arguments)
    out_dir = Path(arguments.out or Path("outputs") / "analysis" / str(loaded.default_name).replace("/", "_"))
    report = build_report(
        loaded.runs,
        out_dir=out_dir,
        baseline=arguments.baseline,
        extra_notes=loaded.notes,
        source_option=loaded.option,
        **_statistics(arguments),
    )
    _messages(arguments.command, report.messages())
    print(report.markdown)
    print(f"wrote {len(report.files)} files to {out_dir}", file=sys.stderr)
    if loaded.parent_ids and not arguments.no_attach:
        _attach(report, loaded.parent_ids, arguments.tracking_uri)
    return 0


def _referee_command(arguments: argparse.Namespace) -> int:
    """Load the plan and the runs, answer every question, print where the files are and the verdicts."""
    plan = load_plan(arguments.plan)
    runs = load_run_dirs(arguments.runs, split=arguments.split)
    out_dir = Path(arguments.out) if arguments.out else Path(arguments.plan).resolve().parent / "referee"
    referee = build_referee_report(plan, runs, out_dir, **_statistics(arguments))
    _messages(arguments.command, referee.messages())
    print(f"referee report: {out_dir / MARKDOWN_FILE}")
    print(f"                {out_dir / HTML_FILE} (self-contained: opens offline)")
    print(f"                {len(referee.files) - 2} more files: one sub-directory per question")
    print("\n".join(referee.verdict_lines()))
    return 0


def _load(arguments: argparse.Namespace) -> _LoadedRuns:
    """Runs from `--runs` directories, or from MLflow (`--experiment`, `--sweep-id`, `--filter`)."""
    sources = [
        arguments.runs is not None,
        bool(arguments.experiment or arguments.sweep_id or arguments.filter),
    ]
    if sum(sources) != 1:
        raise InputError("--runs", "give either --runs DIR... or MLflow runs (--experiment, --sweep-id, --filter)")
    if arguments.runs is not None:
        return _LoadedRuns(load_run_dirs(arguments.runs, split=arguments.split), "runs", "--runs")
    found = load_mlflow_runs(
        experiment=arguments.experiment,
        sweep_id=arguments.sweep_id,
        filter_string=arguments.filter,
        tracking_uri=arguments.tracking_uri,
        split=arguments.split,
        cache_dir=arguments.cache_dir,
    )
    if not found.runs:
        raise InputError(
            "--experiment" if arguments.experiment else "--sweep-id",
            "no training run (with a run.json artifact) found in MLflow",
        )
    return _LoadedRuns(
        found.runs,
        default_name=arguments.sweep_id or arguments.experiment or "mlflow",
        option="--sweep-id" if arguments.sweep_id else "--experiment" if arguments.experiment else "--filter",
        parent_ids=found.parent_run_ids,
        notes=[f"skipped: {skipped}" for skipped in found.skipped],
    )


def _messages(command: str, messages: list[str]) -> None:
    """One stderr line per skipped unreadable file and per warning (different versions...)."""
    for message in messages:
        print(f"python -m analysis {command}: {message}", file=sys.stderr)


def _attach(report: Report, parent_ids: list[str], tracking_uri: str | None) -> None:
    """Log the report to the sweep's parent run, when the runs belong to exactly one."""
    if len(parent_ids) == 1:
        attach_to_mlflow(report, parent_ids[0], tracking_uri=tracking_uri)
        print(f"attached to MLflow run {parent_ids[0]} (artifacts: analysis/)", file=sys.stderr)
    else:
        print(f"not attached: the runs belong to {len(parent_ids)} sweep parents; pass --sweep-id", file=sys.stderr)
