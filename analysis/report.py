"""`python -m analysis report`: runs -> matched systems -> statistics -> table, plots, signatures.

    python -m analysis report --experiment NAME [--baseline SYSTEM] [--metrics ...] [--out DIR]
    python -m analysis report --sweep-id ID [--tracking-uri URI] ...
    python -m analysis report --runs DIR [DIR ...] ...

From Python (e.g. at the end of a sweep): `build_report(runs, out_dir=...)` returns a `Report`
(`.markdown`, `.rows`, `.files`); `attach_to_mlflow(report, parent_run_id)` logs its files to a run;
`report_for_sweep(sweep_id, ...)` does all three for a sweep's parent run.

What is computed, per metric (see DESIGN.md section 6):
- each system: mean over seeds, with a bootstrap CI over examples (BCa with one seed; with several,
  a percentile interval of the seed x example stratified bootstrap) and the spread across seeds;
- each system vs the baseline of its stratum (its rationale source): the difference with its CI,
  and the p-value of the table's test, corrected for the comparisons of that metric (Holm by
  default). `--test auto` uses the paired bootstrap with one seed and the paired t-test over
  seed-matched runs with several (calibrated; the two-way bootstrap is conservative); every other
  test's p-value is in the CSV;
- the minimum detectable effect at 80% power, printed beside non-significant differences.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analysis import __version__, across_seeds, intervals, power, resampling, significance, sufficient
from analysis.errors import InputError
from analysis.metrics import DEFAULT_METRICS, METRICS, MetricSpec, resolve_metric
from analysis.mlflow_runs import load_mlflow_runs
from analysis.runs import Run, load_run_dirs
from analysis.systems import MatchedSystems, System, match_systems
from analysis.tables import ComparisonRow, csv_table, latex_table, markdown_table

TESTS = ("auto", "paired-bootstrap", "randomization", "mcnemar", "t-test", "wilcoxon")
CORRECTIONS = ("holm", "bonferroni")
TEST_LABELS = {
    "paired-bootstrap": "paired bootstrap",
    "randomization": "approximate randomisation",
    "mcnemar": "exact McNemar",
    "t-test": "paired t-test over seeds",
    "wilcoxon": "Wilcoxon signed-rank over seeds",
}
# The paper's recipe (linear schedule over 60% of training) is the default baseline when present.
DEFAULT_BASELINES = (
    {"variant": "r2d", "shape": "linear", "transition": 0.6},
    {"variant": "r2d"},
    {"variant": "sft"},
)


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


# --------------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------------


def _choose_metrics(matched: MatchedSystems, requested: Sequence[str] | None, notes: list[str]) -> list[MetricSpec]:
    frames = [run.predictions for system in matched.systems for run in system.runs.values()]
    if requested:
        specs = []
        for name in requested:
            spec = resolve_metric(name)
            if spec is None:
                raise InputError("--metrics", f"unknown metric {name!r}; expected some of: {', '.join(METRICS)}")
            lacking = [
                run.name
                for system in matched.systems
                for run in system.runs.values()
                if not spec.available(run.predictions)
            ]
            if lacking:
                raise InputError(
                    "--metrics",
                    f"{spec.name} has no values in run(s) {', '.join(lacking[:5])}; expected a metric every run has"
                    + (" (was the judge configured?)" if spec.name == "judge" else ""),
                )
            specs.append(spec)
        return list(dict.fromkeys(specs))
    specs = []
    for name in DEFAULT_METRICS:
        spec = METRICS[name]
        if all(spec.available(frame) for frame in frames):
            specs.append(spec)
        elif any(spec.available(frame) for frame in frames):
            notes.append(f"metrics: {spec.name} is missing from some runs; left out (ask for it with --metrics)")
    return specs


def _matches(system: System, wanted: dict[str, object]) -> bool:
    for key, value in wanted.items():
        have = system.setting(key)
        if have is None:
            return False
        try:
            if not math.isclose(float(have), float(value)):  # type: ignore[arg-type]
                return False
        except (TypeError, ValueError):
            if str(have) != str(value):
                return False
    return True


def _parse_baseline(spec: str) -> dict[str, str] | None:
    if "=" not in spec:
        return None
    pairs = [part.split("=", 1) for part in spec.split(",") if part.strip()]
    return {key.strip(): value.strip() for key, value in pairs}


def choose_baselines(matched: MatchedSystems, baseline: str | None) -> dict[tuple, System | None]:
    """The baseline of each stratum: a system name, a variant, `key=value,...` settings, or the default.

    The default is the paper's recipe (r2d, linear, transition 0.6) when present, else r2d, else sft,
    else the first system.
    """
    strata: dict[tuple, list[System]] = {}
    for system in matched.systems:
        strata.setdefault(system.stratum, []).append(system)
    chosen: dict[tuple, System | None] = {}
    for stratum, members in strata.items():
        if baseline is None:
            pick = None
            for wanted in DEFAULT_BASELINES:
                candidates = [system for system in members if _matches(system, wanted)]
                if len(candidates) == 1 or (candidates and wanted is DEFAULT_BASELINES[0]):
                    pick = candidates[0]
                    break
            chosen[stratum] = pick or members[0]
            continue
        candidates = [system for system in members if system.name == baseline]
        if not candidates:
            wanted = _parse_baseline(baseline) or {"variant": baseline}
            candidates = [system for system in members if _matches(system, wanted)]
        if len(candidates) > 1:
            raise InputError(
                "--baseline",
                f"{baseline!r} matches several systems ({', '.join(s.name for s in candidates)}); "
                "name one of them, or give key=value settings",
            )
        chosen[stratum] = candidates[0] if candidates else None
    if baseline is not None and not any(chosen.values()):
        names = ", ".join(system.name for system in matched.systems)
        raise InputError(
            "--baseline",
            f"no system matches {baseline!r}; expected a system name ({names}), a variant, or key=value settings",
        )
    return chosen


def _stratum_label(stratum: tuple) -> str:
    parts = [f"{key}={value}" for key, value in stratum if value is not None]
    return ", ".join(parts) or "all"


# --------------------------------------------------------------------------------------------------
# Statistics per metric
# --------------------------------------------------------------------------------------------------


class _Statistics:
    """Sufficient statistics per (system, seed, metric), computed once (corpus BLEU tokenises text)."""

    def __init__(self, matched: MatchedSystems) -> None:
        self.matched = matched
        self._cache: dict[tuple[str, int, str], np.ndarray] = {}

    def run(self, system: System, seed: int, spec: MetricSpec) -> np.ndarray:
        key = (system.name, seed, spec.name)
        if key not in self._cache:
            self._cache[key] = spec.statistics(self.matched.frame(system, seed), self.matched.labels)
        return self._cache[key]

    def system(self, system: System, seeds: Sequence[int], spec: MetricSpec) -> np.ndarray:
        return np.stack([self.run(system, seed, spec) for seed in seeds])  # [R, n, d]

    def correctness(self, system: System, seeds: Sequence[int], spec: MetricSpec) -> np.ndarray:
        return np.stack([self.matched.frame(system, seed)[spec.column].to_numpy(np.float64) for seed in seeds])


def _primary_test(test: str, n_seeds: int) -> str:
    if test == "auto":
        return "t-test" if n_seeds >= 2 else "paired-bootstrap"
    return test


def _analyse_metric(
    matched: MatchedSystems,
    spec: MetricSpec,
    baselines: dict[tuple, System | None],
    cache: _Statistics,
    options: dict,
    notes: list[str],
) -> list[ComparisonRow]:
    finalize = spec.finalize
    common = {"finalize": finalize, "n_resamples": options["n_resamples"], "seed": options["seed"]}
    n_examples = len(matched.example_ids)
    if spec.kind == "mean":
        for system in matched.systems:
            for seed in system.seeds:
                unscored = int(matched.frame(system, seed)[spec.column].isna().sum())
                if unscored:
                    notes.append(
                        f"{spec.name}: {unscored} of {n_examples} examples have no score in "
                        f"{system.runs[seed].name}; left out of its mean (the other examples stay paired)"
                    )

    # each system on its own: estimate, CI, per-seed scores (systems with the same seeds share a draw)
    rows: dict[str, ComparisonRow] = {}
    by_seeds: dict[tuple[int, ...], list[System]] = {}
    for system in matched.systems:
        by_seeds.setdefault(tuple(system.seeds), []).append(system)
    for seeds, members in by_seeds.items():
        block = np.stack([cache.system(system, seeds, spec) for system in members])
        cis = intervals.bootstrap_cis(block, method=options["ci"], confidence=options["confidence"], **common)
        per_seed = sufficient.per_run_scores(block, finalize)
        for index, system in enumerate(members):
            baseline = baselines.get(system.stratum)
            rows[system.name] = ComparisonRow(
                metric=spec.name,
                system=system.name,
                baseline=baseline.name if baseline else None,
                is_baseline=baseline is system,
                settings=dict(system.settings),
                n_examples=n_examples,
                seeds=list(seeds),
                estimate=float(cis.estimate[index]),
                ci_low=float(cis.low[index]),
                ci_high=float(cis.high[index]),
                ci_method=cis.method,
                seed_scores={seed: float(score) for seed, score in zip(seeds, per_seed[index], strict=True)},
            )

    # comparisons with the baseline, grouped by (baseline, seeds in common) to share one draw
    std_errors: dict[str, tuple[float, int | None]] = {}  # of each difference, for its MDE
    groups: dict[tuple[str, tuple[int, ...]], list[System]] = {}
    for system in matched.systems:
        baseline = baselines.get(system.stratum)
        if baseline is None or baseline is system:
            continue
        shared = tuple(seed for seed in system.seeds if seed in baseline.runs)
        if not shared:
            notes.append(f"{spec.name}: {system.name} shares no seed with {baseline.name}; not compared")
            continue
        groups.setdefault((baseline.name, shared), []).append(system)
    for (baseline_name, seeds), members in groups.items():
        baseline = matched.system(baseline_name)
        base = cache.system(baseline, seeds, spec)
        block = np.stack([cache.system(system, seeds, spec) for system in members])
        paired = significance.paired_bootstrap(
            base, block, method=options["ci"], confidence=options["confidence"], **common
        )
        randomized = significance.approximate_randomization(
            base, block, finalize=finalize, n_trials=options["n_resamples"], seed=options["seed"]
        )
        mcnemar = None
        if spec.binary:
            mcnemar = significance.mcnemar_exact(
                cache.correctness(baseline, seeds, spec),
                np.stack([cache.correctness(s, seeds, spec) for s in members]),
            )
        ttest = wilcoxon = None
        if len(seeds) >= 2:
            base_seed_scores = sufficient.per_run_scores(base, finalize)
            system_seed_scores = sufficient.per_run_scores(block, finalize)
            ttest = across_seeds.paired_ttest(base_seed_scores, system_seed_scores, confidence=options["confidence"])
            wilcoxon = across_seeds.wilcoxon_signed_rank(base_seed_scores, system_seed_scores)
        test = _primary_test(options["test"], len(seeds))
        for index, system in enumerate(members):
            row = rows[system.name]
            row.comparison_seeds = list(seeds)
            row.p_bootstrap = float(paired.p_value[index])
            row.p_randomization = float(randomized.p_value[index])
            row.p_mcnemar = float(mcnemar.p_value[index]) if mcnemar is not None else math.nan
            row.p_ttest = float(ttest.p_value[index]) if ttest is not None else math.nan
            row.p_wilcoxon = float(wilcoxon.p_value[index]) if wilcoxon is not None else math.nan
            row.test = test
            row.delta = float(paired.delta[index])
            if test == "t-test" and ttest is not None:
                row.delta_low, row.delta_high = float(ttest.low[index]), float(ttest.high[index])
                row.delta_ci = "t"
            else:
                row.delta_low, row.delta_high = (
                    float(paired.delta_low[index]),
                    float(paired.delta_high[index]),
                )
                row.delta_ci = f"bootstrap-{paired.method}"
            row.p_value = {
                "paired-bootstrap": row.p_bootstrap,
                "randomization": row.p_randomization,
                "mcnemar": row.p_mcnemar,
                "t-test": row.p_ttest,
                "wilcoxon": row.p_wilcoxon,
            }[test]
            uses_t = test == "t-test" and ttest is not None
            std_errors[system.name] = (
                float(ttest.std_error[index]) if uses_t else float(paired.delta_std_error[index]),
                len(seeds) - 1 if uses_t else None,  # the t-test's degrees of freedom
            )
        if test in ("t-test", "wilcoxon") and len(seeds) < 2:
            notes.append(
                f"{spec.name}: --test {test} needs >= 2 seed-matched runs; {len(seeds)} for "
                f"{', '.join(s.name for s in members)} (no p-value)"
            )
        if test == "wilcoxon" and 2 <= len(seeds) <= 5:
            notes.append(f"{spec.name}: Wilcoxon over {len(seeds)} seeds cannot reach p < 0.0625")

    ordered = []
    for stratum in dict.fromkeys(system.stratum for system in matched.systems):
        members = [system for system in matched.systems if system.stratum == stratum]
        members.sort(key=lambda system: not rows[system.name].is_baseline)
        ordered += [rows[system.name] for system in members]
    compared = [row for row in ordered if row.compared and not math.isnan(row.p_value)]
    adjusted = (
        power.adjust_pvalues(np.array([row.p_value for row in compared]), options["correction"]) if compared else []
    )
    for row, p_adjusted in zip(compared, adjusted, strict=True):
        row.p_adjusted = float(p_adjusted)
        row.significant = bool(p_adjusted < options["alpha"])
    for row in ordered:
        if row.system in std_errors:
            std_error, df = std_errors[row.system]
            row.mde = float(
                power.minimum_detectable_effect(
                    std_error, alpha=options["alpha"], n_comparisons=max(1, len(compared)), df=df
                )
            )
    return ordered


def _signature(spec: MetricSpec, rows: list[ComparisonRow], options: dict, matched: MatchedSystems) -> str:
    tests = "+".join(sorted({row.test for row in rows if row.test})) or "none"
    ci = "+".join(sorted({row.ci_method for row in rows}))
    seeds = sorted({len(row.seeds) for row in rows})
    n_seeds = str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"
    m = sum(1 for row in rows if row.compared and not math.isnan(row.p_value))
    return (
        f"metric:{spec.name}|test:{tests}|ci:{ci}-{options['confidence'] * 100:g}%|"
        f"resamples:{options['n_resamples']}|seed:{options['seed']}|n:{len(matched.example_ids)}|seeds:{n_seeds}|"
        f"correction:{options['correction']}(m={m})|alpha:{options['alpha']:g}|split:{matched.split}|"
        f"analysis:{__version__}"
    )


def _footer(options: dict, baselines: dict[str, str], tests_used: set[str], seeds_used: bool) -> list[str]:
    correction = {"holm": "Holm-Bonferroni", "bonferroni": "Bonferroni"}[options["correction"]]
    confidence = f"{options['confidence'] * 100:g}%"
    lines = [
        f"Mean [{confidence} CI]"
        + (
            " and sd across seeds; CIs from a seed x example stratified bootstrap (percentile, conservative)"
            if seeds_used
            else f"; CIs from a bootstrap over examples ({options['ci']})"
        )
        + f", {options['n_resamples']} resamples, seed {options['seed']}.",
        "Δ: system - baseline ["
        + confidence
        + " CI], p corrected for the comparisons of each metric by "
        + f"{correction}; * significant at alpha = {options['alpha']:g}; "
        + "mde: minimum detectable effect at 80% power.",
        "Test: " + ", ".join(TEST_LABELS[test] for test in sorted(tests_used)) + "; all tests' p-values in the CSV.",
        "Baseline: "
        + "; ".join(f"{name} ({stratum})" if stratum != "all" else name for stratum, name in baselines.items())
        + ".",
    ]
    return lines


# --------------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------------


def build_report(
    runs: Sequence[Run] | MatchedSystems,
    *,
    out_dir: str | Path | None = None,
    metrics: Sequence[str] | None = None,
    baseline: str | None = None,
    test: str = "auto",
    ci: str = "bca",
    confidence: float = 0.95,
    n_resamples: int = resampling.DEFAULT_RESAMPLES,
    seed: int = 0,
    correction: str = "holm",
    alpha: float = 0.05,
    split: str = "test",
    dataset: str | None = None,
    plots: bool = True,
    extra_notes: Sequence[str] = (),
    source_option: str = "--runs",
) -> Report:
    """Analyse runs (or `MatchedSystems`) and, with `out_dir`, write the table, CSV, LaTeX and plots.

    Raises `InputError` (naming the option) for bad input: no usable run, unknown metric or baseline...
    """
    if test not in TESTS:
        raise InputError("--test", f"unknown test {test!r}; expected one of {', '.join(TESTS)}")
    if correction not in CORRECTIONS:
        raise InputError("--correction", f"unknown correction {correction!r}; expected holm or bonferroni")
    if ci not in ("bca", "percentile"):
        raise InputError("--ci", f"unknown interval {ci!r}; expected bca or percentile")
    if n_resamples < 100:
        raise InputError("--resamples", f"{n_resamples} resamples is too few; expected >= 100 (default 10000)")
    if not 0 < alpha < 1 or not 0 < confidence < 1:
        raise InputError("--alpha", f"expected alpha and confidence in (0, 1), got {alpha} and {confidence}")
    matched = (
        runs
        if isinstance(runs, MatchedSystems)
        else match_systems(runs, split=split, dataset=dataset, source_option=source_option)
    )
    if len(matched.example_ids) < resampling.MIN_EXAMPLES:
        raise InputError(
            source_option,
            f"only {len(matched.example_ids)} examples are common to all runs; "
            f"the bootstrap needs at least {resampling.MIN_EXAMPLES}",
        )
    notes = list(extra_notes) + list(matched.notes)
    specs = _choose_metrics(matched, metrics, notes)
    if not specs:
        raise InputError("--metrics", "none of the default metrics is available in every run; name some")
    if test == "mcnemar":
        not_binary = [spec.name for spec in specs if not spec.binary]
        if not_binary:
            raise InputError(
                "--test",
                f"mcnemar: expected 0/1 metrics (correct, consistent, label_valid), got {', '.join(not_binary)}",
            )
    chosen = choose_baselines(matched, baseline)
    for stratum, system in chosen.items():
        if system is None:
            notes.append(
                f"baseline: no system matches {baseline!r} in stratum {_stratum_label(stratum)}; "
                "its systems are not compared"
            )
    options = {
        "n_resamples": n_resamples,
        "seed": seed,
        "ci": ci,
        "confidence": confidence,
        "test": test,
        "correction": correction,
        "alpha": alpha,
    }

    cache = _Statistics(matched)
    rows: list[ComparisonRow] = []
    signatures: dict[str, str] = {}
    for spec in specs:
        metric_rows = _analyse_metric(matched, spec, chosen, cache, options, notes)
        rows += metric_rows
        signatures[spec.name] = _signature(spec, metric_rows, options, matched)

    baselines = {_stratum_label(stratum): system.name for stratum, system in chosen.items() if system}
    tests_used = {row.test for row in rows if row.test}
    seeds_used = any(len(row.seeds) > 1 for row in rows)
    footer = _footer(options, baselines, tests_used or {"paired-bootstrap"}, seeds_used)
    signature_lines = [signatures[spec.name] for spec in specs]
    note_lines = (
        ["", "Notes (mismatches are reported, never dropped silently):"] + [f"- {note}" for note in notes]
        if notes
        else []
    )
    markdown = markdown_table(rows, specs, footer + [""] + signature_lines + note_lines)
    latex = latex_table(rows, specs, footer, signature_lines)
    csv_text = csv_table(rows, signatures)
    report = Report(matched, rows, specs, baselines, signatures, notes, markdown, latex, csv_text)
    if out_dir is not None:
        write_report(report, out_dir, plots=plots)
    return report


def write_report(report: Report, out_dir: str | Path, *, plots: bool = True) -> list[Path]:
    """Write significance.{md,tex,csv} and plots/*.png under `out_dir`; returns the files written."""
    from analysis.plots import plot_systems, plot_transition

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
    **options,
) -> Report:
    """For the sweep driver: read a sweep's runs from MLflow, write the report, attach it to the parent."""
    source = load_mlflow_runs(
        experiment=experiment,
        sweep_id=sweep_id,
        tracking_uri=tracking_uri,
        split=options.get("split", "test"),
        cache_dir=cache_dir,
    )
    if not source.runs:
        raise InputError("--sweep-id", f"no training run with tag r2d.sweep_id = {sweep_id!r}")
    report = build_report(source.runs, out_dir=out_dir, **options)
    if attach and len(source.parent_run_ids) == 1:
        attach_to_mlflow(report, source.parent_run_ids[0], tracking_uri=tracking_uri)
    return report


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (and exit 2), like the report's own input errors."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
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
    report.add_argument("--split", default="test", help="predictions split to analyse (default test)")
    report.add_argument("--dataset", help="keep runs of this dataset only")
    report.add_argument(
        "--baseline",
        help="system name, variant, or key=value,... settings (default: the "
        "paper's recipe r2d/linear/0.6, else r2d, else sft)",
    )
    report.add_argument(
        "--metrics",
        nargs="+",
        metavar="METRIC",
        help=f"metrics (default: those available of {', '.join(DEFAULT_METRICS)}); known: {', '.join(METRICS)}",
    )
    report.add_argument(
        "--test",
        default="auto",
        choices=TESTS,
        help="test for the table's p-values (auto: paired bootstrap with one seed, t-test over seeds with several)",
    )
    report.add_argument("--ci", default="bca", choices=("bca", "percentile"), help="bootstrap interval (default bca)")
    report.add_argument("--confidence", type=float, default=0.95)
    report.add_argument(
        "--resamples",
        type=int,
        default=resampling.DEFAULT_RESAMPLES,
        help="bootstrap resamples and randomisation trials (default 10000)",
    )
    report.add_argument("--seed", type=int, default=0, help="seed of the resampling (default 0)")
    report.add_argument("--correction", default="holm", choices=CORRECTIONS, help="many-comparisons correction")
    report.add_argument("--alpha", type=float, default=0.05)
    report.add_argument("--out", help="output directory (default outputs/analysis/<experiment|sweep|runs>)")
    report.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    report.add_argument("--no-attach", action="store_true", help="do not log the outputs to the sweep's parent run")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    try:
        return _report_command(arguments)
    except InputError as error:
        print(f"python -m analysis report: error: {error}", file=sys.stderr)
        return 2


def _report_command(arguments: argparse.Namespace) -> int:
    sources = [
        arguments.runs is not None,
        bool(arguments.experiment or arguments.sweep_id or arguments.filter),
    ]
    if sum(sources) != 1:
        raise InputError("--runs", "give either --runs DIR... or MLflow runs (--experiment, --sweep-id, --filter)")
    parent_ids: list[str] = []
    extra_notes: list[str] = []
    if arguments.runs is not None:
        runs = load_run_dirs(arguments.runs, split=arguments.split)
        default_name, source_option = "runs", "--runs"
    else:
        source = load_mlflow_runs(
            experiment=arguments.experiment,
            sweep_id=arguments.sweep_id,
            filter_string=arguments.filter,
            tracking_uri=arguments.tracking_uri,
            split=arguments.split,
            cache_dir=arguments.cache_dir,
        )
        if not source.runs:
            raise InputError(
                "--experiment" if arguments.experiment else "--sweep-id",
                "no training run (with a run.json artifact) found in MLflow",
            )
        runs, parent_ids = source.runs, source.parent_run_ids
        extra_notes = [f"skipped: {skipped}" for skipped in source.skipped]
        default_name = arguments.sweep_id or arguments.experiment or "mlflow"
        source_option = "--sweep-id" if arguments.sweep_id else "--experiment" if arguments.experiment else "--filter"
    out_dir = Path(arguments.out or Path("outputs") / "analysis" / str(default_name).replace("/", "_"))
    report = build_report(
        runs,
        out_dir=out_dir,
        metrics=arguments.metrics,
        baseline=arguments.baseline,
        test=arguments.test,
        ci=arguments.ci,
        confidence=arguments.confidence,
        n_resamples=arguments.resamples,
        seed=arguments.seed,
        correction=arguments.correction,
        alpha=arguments.alpha,
        split=arguments.split,
        dataset=arguments.dataset,
        plots=not arguments.no_plots,
        extra_notes=extra_notes,
        source_option=source_option,
    )
    print(report.markdown)
    print(f"wrote {len(report.files)} files to {out_dir}", file=sys.stderr)
    if parent_ids and not arguments.no_attach:
        if len(parent_ids) == 1:
            attach_to_mlflow(report, parent_ids[0], tracking_uri=arguments.tracking_uri)
            print(f"attached to MLflow run {parent_ids[0]} (artifacts: analysis/)", file=sys.stderr)
        else:
            print(
                f"not attached: the runs belong to {len(parent_ids)} sweep parents; pass --sweep-id",
                file=sys.stderr,
            )
    return 0
