"""`r2d data summary | train | evaluate`: the command line over the library.

Errors in config, data or model stop with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import NoReturn, get_args

from r2d.config import (
    REPRODUCIBLE_PINS,
    Config,
    ConfigError,
    DataConfig,
    Options,
    blame,
    load_config,
    override_origins,
    pins_missing,
)
from r2d.data import DataError, load_dataset
from r2d.model.modeling import ModelError
from r2d.run import runner
from r2d.run.preflight import check_run, check_writable
from r2d.schema import CONFIG_FILE, RUN_FILE
from r2d.scoring.health import health_line
from r2d.train.evaluate import evaluate, write_run_dir
from r2d.train.prepare import check_pins, prepare
from r2d.train.runtime import Runtime

PINNED_MARK = "R2D_PINNED_REEXEC"  # set in the re-executed process: never re-execute twice


def pin_cpu_paths(cfg: Config, in_process: bool) -> None:
    """resources.reproducible: the CPU code paths are pinned by environment switches that take effect
    only if set before torch starts, and this module has imported torch. So the command re-executes
    itself (same interpreter, same arguments) with REPRODUCIBLE_PINS added, before it has created
    anything. Called in-process (`main(argv)`), it does not replace its caller: it stops with what to set."""
    if not cfg.resources.reproducible or not pins_missing():
        return
    if in_process or os.environ.get(PINNED_MARK):
        check_pins(cfg.resources)  # raises ConfigError naming the switches to set
        return
    env = {**os.environ, **REPRODUCIBLE_PINS, PINNED_MARK: "1"}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "r2d.cli", *sys.argv[1:]], env)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (`prog: error: ...`), exit code 2, as every other."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config file (default: built-in defaults)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override, e.g. --set stage2.schedule.shape=exponential (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="r2d", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="inspect datasets")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    summary = data_sub.add_parser("summary", help="split sizes and label counts, as JSON")
    _common(summary)
    summary.add_argument("--dataset", choices=get_args(DataConfig.model_fields["dataset"].annotation))
    summary.add_argument("--data-path", help="file or directory of the dataset")

    train = sub.add_parser("train", help="train one variant and evaluate it")
    _common(train)
    train.add_argument("--out", required=True, help="run directory to write")
    train.add_argument("--workers", type=int, default=None,
                       help="Ray Train workers (default: resources.num_workers; 1 runs in process)")
    train.add_argument("--ray", action="store_true", help="run under Ray Train even with one worker")

    regen = sub.add_parser("regenerate", help="re-train one recorded MLflow run here; are its predictions identical?")
    which = regen.add_mutually_exclusive_group(required=True)
    which.add_argument("--run-id", help="the training's MLflow run id")
    which.add_argument("--parent-run-id", help="a sweep's parent run id: re-train one of its trials (--trial, --seed)")
    regen.add_argument("--trial", default=None, help="with --parent-run-id: the Tune trial id (tag r2d.trial_id)")
    regen.add_argument("--seed", type=int, default=None, help="with --parent-run-id: the trial's seed")
    regen.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db")
    regen.add_argument("--out", default=None, help="directory for the re-run (default: a temporary one)")

    evaluate = sub.add_parser("evaluate", help="re-evaluate a saved run")
    evaluate.add_argument("--run", required=True, help="run directory written by `r2d train`")
    evaluate.add_argument("--split", action="append", choices=["dev", "test"], help="split(s) (default: test)")
    evaluate.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return parser


def cmd_data_summary(args: argparse.Namespace) -> int:
    options: Options = {}
    if args.dataset:
        options[f"--dataset {args.dataset}"] = ("data.dataset", args.dataset)
    if args.data_path:
        options[f"--data-path {args.data_path}"] = ("data.path", args.data_path)
    cfg = load_config(args.config, args.overrides, options)
    ds = load_dataset(cfg.data)
    _warn(ds.warnings)
    print(json.dumps(ds.summary(), indent=1))
    return 0


def _warn(warnings: list[str]) -> None:
    for line in warnings:
        print(f"r2d: warning: {line}", file=sys.stderr)


def cmd_train(args: argparse.Namespace) -> int:
    """Everything checked first (config, --out, data, paths, MLflow, Ray's room), then the run."""
    options: Options = {}
    if args.workers is not None:
        options[f"--workers {args.workers}"] = ("resources.num_workers", args.workers)
    cfg = load_config(args.config, args.overrides, options)
    pin_cpu_paths(cfg, args.in_process)
    out = Path(args.out)
    on_ray = cfg.resources.num_workers > 1 or args.ray
    try:
        check_writable(out, "--out", directory=True)
        warnings = check_run(cfg, on_ray=on_ray)
    except ConfigError as err:
        raise blame(err, override_origins(args.overrides, options)) from None
    _warn(warnings)  # before the run: doubtful data is told while it can still be stopped
    summary = runner.train(cfg, out, on_ray=on_ray)
    _print_summary(summary, out)
    return 0


def _print_summary(summary: dict, out: Path) -> None:
    for split, m in summary.get("splits", {}).items():
        shown = {k: round(v, 4) for k, v in m.items() if k in
                 ("accuracy", "macro_f1", "corpus_bleu", "bleu", "bertscore_f1", "consistency", "invalid_rate")}
        print(f"{split}: {json.dumps(shown)}")
    for note in summary.get("notes", []):
        print(f"note: {note}")
    if "health" in summary:
        print(health_line(summary["health"]))
    print(f"run directory: {out}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    run_dir = Path(args.run)
    if not (run_dir / CONFIG_FILE).exists() or not (run_dir / "model").is_dir():
        raise ConfigError(f"--run {run_dir}: not a finished run directory (expected {CONFIG_FILE} and model/)")
    overrides = [f"model.name={run_dir / 'model'}", *args.overrides]
    overrides.append(f"evaluation.splits={json.dumps(args.split or ['test'])}")
    cfg = load_config(run_dir / CONFIG_FILE, overrides)
    pin_cpu_paths(cfg, args.in_process)  # a run trained in reproducible mode is re-evaluated so too
    # Re-evaluating does not retrain: the saved model is loaded through from_pretrained.
    prep = prepare(cfg, Runtime().device)
    before = json.loads((run_dir / RUN_FILE).read_text()) if (run_dir / RUN_FILE).exists() else {}
    rows_by_split, summary = evaluate(prep, prep.model, Runtime())
    # run.json is rewritten: keep what tied the run to MLflow and to its sweep
    write_run_dir(run_dir, cfg, prep.ds.labels, rows_by_split, summary,
                  **{k: before[k] for k in ("mlflow_run_id", "sweep_id", "run_name") if k in before})
    _print_summary(summary, run_dir)
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    args.in_process = argv is not None  # called as a function: never re-executed (pin_cpu_paths)
    try:
        if args.command == "data":
            return cmd_data_summary(args)
        if args.command == "train":
            return cmd_train(args)
        if args.command == "regenerate":
            # Imported here: mlflow is heavy and the other commands do not need it.
            from r2d.run.regenerate import cmd_regenerate

            uri = args.tracking_uri or load_config(None).tracking.tracking_uri
            return cmd_regenerate(args.run_id, uri, args.out, args.parent_run_id, args.trial, args.seed,
                                  before_training=lambda cfg: pin_cpu_paths(cfg, args.in_process))
        return cmd_evaluate(args)
    except (ConfigError, DataError, ModelError) as err:
        print(f"r2d: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
