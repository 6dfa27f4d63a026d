"""The command line every sweeps/*.py script shares, and what a sweep prints when it ends."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from collections.abc import Callable
from typing import Any

from r2d.cli import OneLineParser
from r2d.config import ConfigError
from r2d.data import DataError
from r2d.model.modeling import ModelError
from r2d.overrides import parse_override
from r2d.sweep.plan import Question
from r2d.sweep.run import Analyse, SweepFailed, dry_run, run_sweep
from r2d.sweep.study import AdaptiveOptions, Study, SweepOptions

# The adaptive loop (sweeps/_adaptive.py): (study, options, adaptive options, dry run) -> what to print.
UntilDecided = Callable[[Study, SweepOptions, AdaptiveOptions, bool, list[Question] | None], str]


def format_table(rows: list[dict[str, Any]]) -> str:
    """The per-trial table, Markdown: settings, status, objective and test metrics."""
    def fmt(v):
        return "" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))

    keys = sorted({k for r in rows for k in r["settings"]})
    header = [k.split(".")[-1] for k in keys] + ["status", "health", "dev F1 (obj)", "test F1", "test acc", "BLEU",
                                                 "BERTScore"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in sorted(rows, key=lambda r: [str(r["settings"].get(k)) for k in keys]):
        cells = [fmt(r["settings"].get(k)) for k in keys] + [r["status"], r.get("health", ""), fmt(r["objective"]),
                                                            fmt(r["test_macro_f1"]),
                                                            fmt(r["test_accuracy"]), fmt(r["test_bleu"]),
                                                            fmt(r["test_bertscore_f1"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


UI_ADDRESS = "http://127.0.0.1:5000"  # where mlflow_ui_command serves the UI


def mlflow_ui_command(uri: str) -> str:
    return f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000"


def runs_table_link(uri: str, experiment_id: str) -> str:
    """The experiment's runs table in the MLflow UI. MLflow 3.17.2 opens an experiment on its GenAI traces
    view unless the URL asks for the machine-learning view (README, MLflow UI). An MLflow server (an
    http(s) tracking URI) serves the UI itself; any other store is browsed through `mlflow ui` here."""
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else UI_ADDRESS
    return f"{base}/#/experiments/{experiment_id}?workflowType=machine_learning"


def print_summary(summary: dict[str, Any]) -> None:
    print(f"\nsweep {summary['sweep_id']}: {len(summary['table'])} trials "
          f"(max {summary['concurrency']} at once) in {summary['timings'].get('total_s', 0):.0f} s")
    print(format_table(summary["table"]))
    for r in summary["table"]:
        if r["status"] != "TERMINATED":
            print(f"failed: {r['settings']}: {r['error']}")
    if summary.get("reused"):
        print(f"reused {len(summary['reused'])} trial(s) a FINISHED run of experiment {summary['experiment']!r} "
              "already answers (same configuration and seed; --fresh retrains them)")
    report = summary.get("report")
    if hasattr(report, "verdict_lines"):  # a plan: the verdicts here, the tables in referee.md / .html
        print("\n" + "\n".join(report.verdict_lines()))
        print("\nreferee report: " + "  ".join(str(p) for p in report.files[:2]))
    elif report is not None:
        print("\n" + getattr(report, "markdown", str(report)))
    t = summary["timings"]
    print("\ntimings: " + ", ".join(f"{k} {v:.2f}" if "share" in k else f"{k} {v:.0f} s" for k, v in t.items()))
    print(f"results: {summary['sweep_dir']}")
    if summary.get("sweep_uri", summary["sweep_dir"]) != summary["sweep_dir"]:  # remote storage (s3://)
        print(f"storage: {summary['sweep_uri']} (trials, checkpoints, sweep.json)")
    print(f"browse:  {mlflow_ui_command(summary['tracking_uri'])}")
    if summary.get("experiment_id"):
        print(f"runs:    {runs_table_link(summary['tracking_uri'], summary['experiment_id'])}")


def build_parser(study: Study, presets: dict[str, Study]) -> argparse.ArgumentParser:
    p = OneLineParser(description=study.description or study.name)
    p.add_argument("--preset", choices=sorted(presets), help="a bigger study for a GPU cluster")
    p.add_argument("--search", choices=["grid", "optuna"], default="grid")
    p.add_argument("--samples", type=int, help="Optuna: configurations to try, each on every seed (default 8)")
    p.add_argument("--search-seed", type=int, default=0, help="Optuna TPE sampler seed")
    p.add_argument("--seeds", type=int, nargs="+", help="seeds (repeats), e.g. --seeds 0 1 2")
    p.add_argument("--asha", action="store_true", help="ASHA early stopping on dev macro-F1")
    p.add_argument("--address", help="join a running Ray cluster ('auto'); default: start a local Ray")
    p.add_argument("--resume", action="store_true", help="continue the latest (or --sweep-id) sweep of this study")
    p.add_argument("--rerun-errored", action="store_true", help="with --resume: rerun trials that errored")
    p.add_argument("--sweep-id", help="with --resume: which sweep")
    p.add_argument("--storage-path", help="Ray storage (local dir or s3://...); default from the preset")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override the preset's config, e.g. --set stage2.max_steps=50")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="replace one grid axis, e.g. --grid stage2.schedule.shape=linear,step")
    p.add_argument("--no-analysis", action="store_true")
    p.add_argument("--max-concurrent", type=int, help="at most this many trials at once (default: what fits)")
    p.add_argument("--verbose", action="store_true",
                   help="Ray's and Tune's own output on the console (default: in ray.log in the sweep folder)")
    p.add_argument("--fresh", action="store_true",
                   help="train every trial, even one a FINISHED run of this study's experiment already answers "
                        "(same configuration fingerprint and seed); not with --resume, which keeps its plan")
    p.add_argument("--until-decided", action="store_true",
                   help="adaptive seeds: planned looks; seeds are added only where a comparison is still open; "
                        "stops when every comparison is closed (better, worse, equivalent) or at the budget")
    p.add_argument("--budget", metavar="DURATION", help="with --until-decided: wall-time budget, e.g. 45m, 1h30m")
    p.add_argument("--max-seeds", type=int, help="with --until-decided: seeds per configuration at the last look "
                   f"(default {AdaptiveOptions.max_seeds})")
    p.add_argument("--margin", action="append", default=[], metavar="METRIC=POINTS",
                   help="with --until-decided: equivalence margin, e.g. --margin macro_f1=2 (defaults in the report)")
    p.add_argument("--futility", type=float, metavar="P",
                   help="with --until-decided: stop a comparison as undecided at an interim look when neither answer "
                        f"is within reach (conditional power below P; default {AdaptiveOptions.futility:g}; 0: never)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan (trials per question, shared, reused, Stage 1s, estimated wall time) "
                        "and stop: nothing starts, nothing is logged")
    return p


def parse_duration(text: str) -> float:
    """'90s', '45m', '1h30m', '2h' or a bare number of minutes -> seconds; ConfigError naming --budget."""
    match = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*", text)
    if re.fullmatch(r"\s*\d+(?:\.\d+)?\s*", text):
        seconds = float(text) * 60
    elif match and any(match.groups()):
        hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    else:
        raise ConfigError(f"--budget {text}: expected a duration such as 45m, 1h30m or 900s")
    if seconds <= 0:
        raise ConfigError(f"--budget {text}: expected a positive duration")
    return seconds


def adaptive_for(args: argparse.Namespace) -> AdaptiveOptions | None:
    """--until-decided and its options, checked (one-line ConfigError naming the option); None without it."""
    given = [flag for flag, value in (("--budget", args.budget), ("--max-seeds", args.max_seeds),
                                      ("--margin", args.margin), ("--futility", args.futility is not None)) if value]
    if not args.until_decided:
        if given:
            raise ConfigError(f"{given[0]}: only with --until-decided")
        return None
    for flag, wrong, why in (("--search optuna", args.search == "optuna", "a search suggests configurations; "
                              "adaptive seeds apply to a grid's fixed comparisons"),
                             ("--seeds", bool(args.seeds), "the looks choose the seeds (0, 1, ... up to --max-seeds)")):
        if wrong:
            raise ConfigError(f"--until-decided: not with {flag}: {why}")
    margins = []
    for text in args.margin:
        metric, _, points = text.partition("=")
        try:
            value = float(points)
        except ValueError:
            value = float("nan")
        if not metric.strip() or not value > 0 or value == float("inf"):
            raise ConfigError(f"--margin {text}: expected METRIC=POINTS with a positive number of points")
        margins.append(f"{metric.strip()}={value:g}")
    adaptive = AdaptiveOptions(margins=tuple(margins), budget_s=parse_duration(args.budget) if args.budget else None)
    if args.futility is not None:
        if not 0.0 <= args.futility < 1.0:
            raise ConfigError(f"--futility {args.futility:g}: expected a conditional power from 0 (never stop for "
                              "futility) up to, not including, 1")
        adaptive = dataclasses.replace(adaptive, futility=args.futility)
    if args.max_seeds is not None:
        if args.max_seeds < adaptive.first_look:
            raise ConfigError(f"--max-seeds {args.max_seeds}: expected at least the first look's "
                              f"{adaptive.first_look} seeds")
        adaptive = dataclasses.replace(adaptive, max_seeds=args.max_seeds)
    return adaptive


def study_for(study: Study, args: argparse.Namespace) -> Study:
    """The study as the options change it (a copy: the script's Study stays as it was). ConfigError
    naming the option for a value out of range or options that do not go together."""
    for flag, value, low in (("--samples", args.samples, 1), ("--max-concurrent", args.max_concurrent, 1),
                             ("--search-seed", args.search_seed, 0)):
        if value is not None and not low <= value < 2**32:
            raise ConfigError(f"{flag} {value}: expected an integer from {low} to {2**32 - 1}")
    for flag, given, needs in (("--samples", args.samples is not None, args.search == "optuna"),
                               ("--grid", bool(args.grid), args.search == "grid"),
                               ("--rerun-errored", args.rerun_errored, args.resume),
                               ("--fresh", args.fresh, not args.resume),
                               ("--sweep-id", bool(args.sweep_id), args.resume)):
        if given and not needs:
            raise ConfigError(f"{flag}: " + {"--samples": "only with --search optuna",
                                             "--grid": "only with --search grid",
                                             "--fresh": "not with --resume (a resumed sweep keeps its plan)"}
                              .get(flag, "only with --resume"))
    seeds = list(args.seeds or study.seeds)
    if len(set(seeds)) < len(seeds):
        raise ConfigError(f"--seeds {' '.join(map(str, seeds))}: expected distinct seeds (each is one repeat)")
    grid = dict(study.grid)
    for axis in args.grid:
        key, _, values = axis.partition("=")
        key = key.strip()
        if "" in key.split(".") or not values:
            raise ConfigError(f"--grid {axis!r}: expected KEY=V1,V2")
        if key == "seed":
            raise ConfigError(f"--grid {axis}: seeds are repeats, not a grid axis (use --seeds)")
        points = [parse_override(f"{key}={v}")[1] for v in values.split(",")]  # each parsed as --set parses it
        if len({json.dumps(v, default=str) for v in points}) < len(points):
            raise ConfigError(f"--grid {axis}: a value is given twice")
        grid[key] = points
    for text in args.overrides:  # a --set the trials would overwrite is a mistake, not a setting
        key = text.partition("=")[0].strip()
        if key == "seed" or key in grid:
            raise ConfigError(f"--set {text}: each trial sets {key} (use --{'seeds' if key == 'seed' else 'grid'})")
    return dataclasses.replace(study, grid=grid, seeds=seeds)


def questions_for(questions: list[Question], study: Study, args: argparse.Namespace) -> list[Question]:
    """A plan's questions as the options change them: --seeds replaces every question's seeds. Every
    question's study must share the plan's preset: one base config, so shared trials are the same."""
    for q in questions:
        if q.study.config != study.config:
            raise ConfigError(f"plan question {q.id!r}: its study's preset {q.study.config} is not the plan's "
                              f"{study.config}; a plan's trials share one preset")
    if args.grid:
        raise ConfigError("--grid: not with a plan of questions (each question's grid is its study's)")
    if args.search != "grid":
        raise ConfigError("--search optuna: not with a plan of questions (a plan is a set of grids)")
    for text in args.overrides:  # as study_for: a --set a question's trials would overwrite is a mistake
        key = text.partition("=")[0].strip()
        asked = [q.id for q in questions if key in q.study.grid]
        if asked:
            raise ConfigError(f"--set {text}: the plan's question {asked[0]!r} sets {key} in each of its trials")
    if not args.seeds:
        return questions
    return [dataclasses.replace(q, study=dataclasses.replace(q.study, seeds=list(args.seeds))) for q in questions]


def main_for(study: Study, argv: list[str] | None = None, presets: dict[str, Study] | None = None,
             plans: dict[str | None, list[Question]] | None = None, analyse: Analyse | None = None,
             until_decided: UntilDecided | None = None) -> int:
    """The command line of a study script: parse, check, run the sweep (or --dry-run: print its plan),
    print its summary. `plans` (sweeps/referee.py): the questions of each preset (None: the default),
    composed over the study `study` / `presets[name]`. `analyse`: the significance report of the
    finished sweep and `until_decided` the adaptive loop (sweeps/_common.py and sweeps/_adaptive.py,
    which compose the analysis layer). Bad input (options, config, data, model) is
    one line on stderr and exit code 2, before anything is created; a sweep in which no trial finished,
    one line and exit code 1 (its parent run FAILED)."""
    p = build_parser(study, presets or {})
    args = p.parse_args(argv)
    chosen = (presets or {}).get(args.preset, study) if args.preset else study
    try:
        chosen = study_for(chosen, args)
        questions = questions_for(plans[args.preset], chosen, args) if plans is not None else None
        opts = SweepOptions(search=args.search, samples=args.samples or SweepOptions.samples,
                            search_seed=args.search_seed, asha=args.asha, address=args.address, resume=args.resume,
                            rerun_errored=args.rerun_errored, sweep_id=args.sweep_id, overrides=args.overrides,
                            storage_path=args.storage_path, tracking_uri=args.tracking_uri,
                            analysis=not args.no_analysis, max_concurrent=args.max_concurrent,
                            verbose=args.verbose, fresh=args.fresh)
        adaptive = adaptive_for(args)
        if adaptive is not None:
            if until_decided is None:
                raise ConfigError("--until-decided: this script has no adaptive loop")
            print(until_decided(chosen, opts, adaptive, args.dry_run, questions))
            return 0
        if args.dry_run:
            print("\n".join(dry_run(chosen, opts, questions)))
            return 0
        summary = run_sweep(chosen, opts, questions, analyse)
    except (ConfigError, DataError, ModelError, FileNotFoundError) as err:
        print(f"{p.prog}: error: {err}", file=sys.stderr)
        return 2
    except SweepFailed as err:  # it ran: not bad input (2), but nothing finished to analyse
        print(f"{p.prog}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{p.prog}: interrupted: the sweep's MLflow run and its unfinished trials are KILLED; "
              "finished trials are kept; continue with --resume", file=sys.stderr)
        return 130
    print_summary(summary)
    return 0
