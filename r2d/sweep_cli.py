"""The command line every sweeps/*.py script shares, and what a sweep prints when it ends."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml

from r2d.config import ConfigError
from r2d.data import DataError
from r2d.sweep import Study, SweepOptions, run_sweep


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


def mlflow_ui_command(uri: str) -> str:
    return f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000"


def print_summary(summary: dict[str, Any]) -> None:
    print(f"\nsweep {summary['sweep_id']}: {len(summary['table'])} trials "
          f"(max {summary['concurrency']} at once) in {summary['timings'].get('total_s', 0):.0f} s")
    print(format_table(summary["table"]))
    for r in summary["table"]:
        if r["status"] != "TERMINATED":
            print(f"failed: {r['settings']}: {r['error']}")
    report = summary.get("report")
    if report is not None:
        print("\n" + getattr(report, "markdown", str(report)))
    t = summary["timings"]
    print("\ntimings: " + ", ".join(f"{k} {v:.2f}" if "share" in k else f"{k} {v:.0f} s" for k, v in t.items()))
    print(f"results: {summary['sweep_dir']}")
    print(f"browse:  {mlflow_ui_command(summary['tracking_uri'])}")


def build_parser(study: Study, presets: dict[str, Study]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=study.description or study.name)
    p.add_argument("--preset", choices=sorted(presets), help="a bigger study for a GPU cluster")
    p.add_argument("--search", choices=["grid", "optuna"], default="grid")
    p.add_argument("--samples", type=int, default=8, help="Optuna: configurations to try (each on every seed)")
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
    return p


def main_for(study: Study, argv: list[str] | None = None, presets: dict[str, Study] | None = None) -> int:
    """The command line of a study script: parse, run the sweep, print its summary. Exit 2 on bad input."""
    p = build_parser(study, presets or {})
    args = p.parse_args(argv)
    chosen = (presets or {}).get(args.preset, study) if args.preset else study
    if args.seeds:
        chosen.seeds = args.seeds
    for axis in args.grid:
        key, _, values = axis.partition("=")
        if not key or not values:
            print(f"--grid {axis!r}: expected KEY=V1,V2", file=sys.stderr)
            return 2
        chosen.grid[key] = [yaml.safe_load(v) for v in values.split(",")]
    opts = SweepOptions(search=args.search, samples=args.samples, search_seed=args.search_seed, asha=args.asha,
                        address=args.address, resume=args.resume, rerun_errored=args.rerun_errored,
                        sweep_id=args.sweep_id, overrides=args.overrides, storage_path=args.storage_path,
                        tracking_uri=args.tracking_uri, analysis=not args.no_analysis,
                        max_concurrent=args.max_concurrent)
    try:
        summary = run_sweep(chosen, opts)
    except (ConfigError, DataError, FileNotFoundError) as err:
        print(f"{p.prog}: error: {err}", file=sys.stderr)
        return 2
    print_summary(summary)
    return 0
