"""The significance table: system x metric, mean with CI, delta vs the baseline, corrected p, a marker.

Rendered as Markdown (printed and written), LaTeX (booktabs) and CSV (long format, every number
unrounded and every test's p-value). Each metric gets a signature line under the table, in the
spirit of sacreBLEU's, so that a reader can tell exactly how a number was computed.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import pandas as pd

from analysis import __version__
from analysis.load.health import MARKER
from analysis.metrics import MetricSpec
from analysis.options import EXAMPLE_LEVEL_TESTS, TEST_LABELS, AnalysisOptions
from analysis.tables.comparison import ComparisonRow
from analysis.tables.decide import value_ci_fits

IGNORES_SEED_VARIANCE = "ignores seed variance"


def _number(value: float, scale: float, signed: bool = False) -> str:
    if value is None or math.isnan(value):
        return "-"
    scaled = value * scale
    digits = 1 if abs(scaled) >= 1 or scaled == 0 else 2
    return f"{scaled:+.{digits}f}" if signed else f"{scaled:.{digits}f}"


def format_p(p: float) -> str:
    """A p-value as printed: three decimals, `<0.001` below that, `-` when there is none."""
    if p is None or math.isnan(p):
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _delta_parts(row: ComparisonRow, spec: MetricSpec) -> tuple[str, str, str] | None:
    """(delta with CI, corrected p, note) for a compared row; None for a baseline or an uncompared row."""
    if not row.compared:
        return None
    if row.undecided:  # the CI or MDE would be wider than the metric's range: words instead
        return _number(row.delta, spec.scale, signed=True), format_p(row.p_adjusted), row.undecided
    delta = (
        f"{_number(row.delta, spec.scale, signed=True)} "
        f"[{_number(row.delta_low, spec.scale, signed=True)}, "
        f"{_number(row.delta_high, spec.scale, signed=True)}]"
    )
    note = "" if row.significant or math.isnan(row.mde) else f"mde {_number(row.mde, spec.scale)}"
    if note and not math.isnan(row.mde_pooled):  # both: the pooled seed part's and the comparison's own
        note = f"mde {_number(row.mde_pooled, spec.scale)} pooled · {_number(row.mde_per_comparison, spec.scale)} own"
    return delta, format_p(row.p_adjusted), note


def seeds_cell(seeds: Sequence[int], unreadable: int = 0) -> str:
    """The seeds column: how many, and which (`3 (0,1,2)`), and how many were lost to unreadable files."""
    lost = f"; {unreadable} seed{'s' if unreadable > 1 else ''} unreadable" if unreadable else ""
    return f"{len(seeds)} ({','.join(map(str, seeds))}){lost}"


def _ordered_systems(rows: Sequence[ComparisonRow]) -> list[str]:
    return list(dict.fromkeys(row.system for row in rows))


def _lookup(rows: Sequence[ComparisonRow]) -> dict[tuple[str, str], ComparisonRow]:
    return {(row.system, row.metric): row for row in rows}


@dataclass(frozen=True)
class _Dialect:
    """How one output format writes the body's cells (the Markdown and LaTeX tables share one builder)."""

    escape: Callable[[str], str]
    missing: str  # both cells of a metric the system cannot have (n/a)
    baseline: str  # the delta cell of a baseline
    uncompared: str  # the delta cell of a system with no comparison
    interval: str  # template of the value cell: {estimate}, {low}, {high}
    spread: str  # template appended with several seeds: {sd}
    delta: Callable[[str, str, str, bool], str]  # (delta with CI, corrected p, note, significant) -> cell


def _body(rows: Sequence[ComparisonRow], metrics: Sequence[MetricSpec], dialect: _Dialect) -> list[list[str]]:
    """The table's cells: a line per system (name, seeds, then a value and a delta cell per metric)."""
    table = _lookup(rows)
    body = []
    for system in _ordered_systems(rows):
        first = next(row for row in rows if row.system == system)
        name = dialect.escape(system) + (" (baseline)" if first.is_baseline else "")
        cells = [name + (f" {MARKER}" if first.unhealthy else ""), seeds_cell(first.seeds, len(first.seeds_unreadable))]
        for spec in metrics:
            row = table.get((system, spec.name))
            if row is None:
                cells += [dialect.missing, dialect.missing]
            else:
                cells += [_value_cell(row, spec, dialect), _delta_cell(row, spec, dialect)]
        body.append(cells)
    return body


def _value_cell(row: ComparisonRow, spec: MetricSpec, dialect: _Dialect) -> str:
    if not value_ci_fits(row, spec):
        return f"{_number(row.estimate, spec.scale)} " + dialect.escape("[CI wider than the metric's range]")
    cell = dialect.interval.format(
        estimate=_number(row.estimate, spec.scale),
        low=_number(row.ci_low, spec.scale),
        high=_number(row.ci_high, spec.scale),
    )
    if len(row.seed_scores) > 1:
        cell += dialect.spread.format(sd=_number(row.seed_sd, spec.scale))
    return cell


def _delta_cell(row: ComparisonRow, spec: MetricSpec, dialect: _Dialect) -> str:
    if row.is_baseline:
        return dialect.baseline
    parts = _delta_parts(row, spec)
    if parts is None:
        return dialect.uncompared
    return dialect.delta(*parts, row.significant)


def _markdown_delta(delta: str, p: str, note: str, significant: bool) -> str:
    return f"{delta} p={p}{'*' if significant else ''}" + (f" ({note})" if note else "")


_MARKDOWN = _Dialect(
    escape=str,
    missing="n/a",
    baseline="baseline",
    uncompared="no comparison",
    interval="{estimate} [{low}, {high}]",
    spread=" sd {sd}",
    delta=_markdown_delta,
)


def markdown_table(rows: Sequence[ComparisonRow], metrics: Sequence[MetricSpec], footer: Sequence[str] = ()) -> str:
    """A Markdown table (one row per system, a value and a delta column per metric) and its footer lines."""
    header = ["system", "seeds"]
    for spec in metrics:
        header += [spec.label, f"Δ {spec.label}"]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join([":--", "--:"] + ["--:", "--:"] * len(metrics)) + "|",
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in _body(rows, metrics, _MARKDOWN)]
    return "\n".join(lines + [""] + list(footer)) + "\n"


_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "Δ": r"$\Delta$",
    "†": r"$^\dagger$",
}


def latex_escape(text: str) -> str:
    """`text` with LaTeX's special characters escaped (and Δ as `$\\Delta$`)."""
    return "".join(_LATEX_SPECIALS.get(char, char) for char in str(text))


def _latex_delta(delta: str, p: str, note: str, significant: bool) -> str:
    marker = "$^{*}$" if significant else ""
    return f"{delta}{marker} {{\\scriptsize $p$={latex_escape(p)}" + (f", {latex_escape(note)}" if note else "") + "}"


_LATEX = _Dialect(
    escape=latex_escape,
    missing="n/a",
    baseline="--",
    uncompared="no comparison",
    interval="{estimate} {{\\scriptsize[{low}, {high}]}}",
    spread=" {{\\scriptsize sd {sd}}}",
    delta=_latex_delta,
)


def latex_table(
    rows: Sequence[ComparisonRow],
    metrics: Sequence[MetricSpec],
    footer: Sequence[str] = (),
    signatures: Sequence[str] = (),
) -> str:
    """A booktabs table (`\\usepackage{booktabs}`), footer lines and signatures under it."""
    columns = "lr" + "rr" * len(metrics)
    header = ["System", "Seeds"]
    for spec in metrics:
        header += [latex_escape(spec.label), rf"$\Delta$ {latex_escape(spec.label)}"]
    body = [" & ".join(cells) + r" \\" for cells in _body(rows, metrics, _LATEX)]
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        rf"\begin{{tabular}}{{{columns}}}",
        r"\toprule",
        " & ".join(header) + r" \\",
        r"\midrule",
        *body,
        r"\bottomrule",
        r"\end{tabular}",
        r"\par\smallskip\footnotesize",
    ]
    lines += [latex_escape(line) + r"\\" for line in footer if line]
    lines += [r"\texttt{\scriptsize " + latex_escape(signature) + r"}\\" for signature in signatures]
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def several_seeds(rows: Sequence[ComparisonRow]) -> bool:
    """Whether any comparison is over several seeds (example-level tests then ignore seed variance)."""
    return any(len(row.comparison_seeds) > 1 for row in rows)


def csv_table(rows: Sequence[ComparisonRow], signatures: dict[str, str]) -> str:
    """Long-format CSV: a line per (system, metric), unscaled values, every test's p-value, the signature.

    With several seeds the example-level tests' columns say so: `p_randomization_ignores_seed_variance`,
    `p_mcnemar_ignores_seed_variance`. Numbers are unrounded and kept even where the table prints words
    (`undecided` holds them).
    """
    renamed = {f"p_{test}": f"p_{test}_ignores_seed_variance" for test in EXAMPLE_LEVEL_TESTS}
    pooled = several_seeds(rows)
    records = []
    for row in rows:
        record = asdict(row)
        record["seeds"] = ";".join(map(str, row.seeds))
        record["comparison_seeds"] = ";".join(map(str, row.comparison_seeds))
        record["seed_scores"] = json.dumps({str(k): v for k, v in row.seed_scores.items()})
        record["settings"] = json.dumps(row.settings, sort_keys=True, default=str)
        record["seeds_unreadable"] = ";".join(map(str, row.seeds_unreadable))
        record["unhealthy"] = ";".join(f"{seed}:{','.join(flags)}" for seed, flags in sorted(row.unhealthy.items()))
        record["seed_sd"] = row.seed_sd
        record["signature"] = signatures.get(row.metric, "")
        if pooled:
            record = {renamed.get(key, key): value for key, value in record.items()}
        records.append(record)
    buffer = io.StringIO()
    pd.DataFrame.from_records(records).to_csv(buffer, index=False)
    return buffer.getvalue()


def test_label(test: str, pooled: bool) -> str:
    """A test's name as printed; example-level tests over several seeds say that they ignore seed variance."""
    label = TEST_LABELS[test]
    if pooled and test in EXAMPLE_LEVEL_TESTS:
        label += f" ({IGNORES_SEED_VARIANCE}: (seed, example) pairs pooled as if independent)"
    return label


def signature(
    spec: MetricSpec,
    rows: Sequence[ComparisonRow],
    options: AnalysisOptions,
    n_examples: int,
    split: str,
    versions: str = "versions:unrecorded",
) -> str:
    """The sacreBLEU-style signature of one metric's rows: how every number of that metric was computed.

    `versions` (`analysis.load.versions.Versions.signature`) names what the runs were made with
    (`torch:2.13.0+cpu|transformers:5.25.0|r2d:1c1a26b`): the same config can give other numbers under
    another torch, transformers or r2d commit.
    """
    pooled = several_seeds(rows)
    tests = "+".join(
        test + ("(ignores-seed-variance)" if pooled and test in EXAMPLE_LEVEL_TESTS else "")
        for test in sorted({row.test for row in rows if row.test})
    )
    ci = "+".join(sorted({row.ci_method for row in rows}))
    seeds = sorted({len(row.seeds) for row in rows})
    n_seeds = str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"
    m = sum(1 for row in rows if row.compared and not math.isnan(row.p_value))
    return (
        f"metric:{spec.name}|test:{tests or 'none'}|ci:{ci}-{options.confidence * 100:g}%|"
        f"resamples:{options.n_resamples}|seed:{options.seed}|n:{n_examples}|seeds:{n_seeds}|"
        f"correction:{options.correction}(m={m})|alpha:{options.alpha:g}|split:{split}|"
        f"analysis:{__version__}|{versions}"
    )


def footer(
    options: AnalysisOptions,
    baselines: dict[str, str],
    rows: Sequence[ComparisonRow],
    warnings: Sequence[str] = (),
) -> list[str]:
    """The lines under the table: what the intervals, deltas, test, baselines and marks are; then `warnings`."""
    correction = {"holm": "Holm-Bonferroni", "bonferroni": "Bonferroni"}[options.correction]
    confidence = f"{options.confidence * 100:g}%"
    seeds_used = any(len(row.seeds) > 1 for row in rows)
    pooled = several_seeds(rows)
    tests_used = sorted({row.test for row in rows if row.test}) or ["paired-bootstrap"]
    any_pooled = any(row.seed_part_pooled for row in rows)
    lines = [
        "Seeds: how many, and which; a row's mean, CI and Δ all use those seeds (shared with its baseline).",
        f"Mean [{confidence} CI]"
        + (
            " and sd across seeds; CIs from a seed x example stratified bootstrap (percentile, conservative)"
            if seeds_used
            else f"; CIs from a bootstrap over examples ({options.ci})"
        )
        + f", {options.n_resamples} resamples, seed {options.seed}.",
        "Δ: system - baseline ["
        + confidence
        + " CI], p corrected for the comparisons of each metric by "
        + f"{correction}; * significant at alpha = {options.alpha:g}; "
        + "mde: minimum detectable effect at 80% power; seeds needed in the CSV and the notes.",
        "Test: "
        + ", ".join(test_label(test, pooled) for test in tests_used)
        + ("; seed part pooled over the systems sharing a baseline where allowed (notes)" if any_pooled else "")
        + "; all tests' p-values in the CSV.",
        "Baseline: "
        + "; ".join(f"{name} ({stratum})" if stratum != "all" else name for stratum, name in baselines.items())
        + ".",
    ]
    if any(row.unhealthy for row in rows):
        lines.append(f"{MARKER}: the row's runs include unhealthy ones (collapsed, diverged...; see the notes).")
    if any(row.undecided for row in rows):
        lines.append("undecided: the CI or mde would be wider than the metric's range; the seeds needed are stated.")
    if any(row.seeds_unreadable for row in rows):
        lines.append(
            "n seeds unreadable: the row lost n seeds to predictions files that could not be read, skipped with "
            "--skip-unreadable (the notes and stderr name the files)."
        )
    return lines + [f"Warning: {warning}" for warning in warnings]
