"""The same trial-logging load on an MLflow server backed by sqlite and by PostgreSQL (issue 24):
N concurrent logger processes (params, a per-step metric history, a predictions artifact, a final
state); reports runs/s, metric points/s, errors and the p95 latency of one log call.

    PYTHONPATH=$PWD python bench/bench_tracking_load.py --loggers 64 --steps 20
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from tests.servers import mlflow_server, postgres
from tests.tracking_load import run_load


@contextmanager
def sqlite_store(root: Path) -> Iterator[str]:
    yield f"sqlite:///{root / 'mlflow.db'}"


def measure(backend: str, loggers: int, steps: int, workers: int) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "artifacts").mkdir()
        store = postgres() if backend == "postgresql" else sqlite_store(root)
        with store as db, mlflow_server(db, root / "artifacts", workers=workers, jobs=True) as uri:
            result = run_load(uri, f"load-{backend}", loggers, steps)
        locked = sum(p.read_text().count("database is locked") for p in root.glob("mlflow-server-*.log"))
    finished = loggers - len(result.errors)
    p95_ms = 1000 * float(np.percentile(result.latencies, 95)) if result.latencies else float("nan")
    first = result.errors[0].strip().splitlines()[-1] if result.errors else ""
    return (f"| {backend} | {loggers} | {result.wall_s:.1f} | {finished / result.wall_s:.2f} | "
            f"{finished * steps / result.wall_s:.1f} | {len(result.errors)} | {locked} | {p95_ms:.0f} | {first} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--loggers", type=int, default=64)
    p.add_argument("--steps", type=int, default=20, help="metric points per run, one log call each")
    p.add_argument("--workers", type=int, default=2, help="mlflow server workers")
    p.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    args = p.parse_args(argv)
    if args.loggers < 1 or args.steps < 1 or args.workers < 1:
        p.error("--loggers, --steps and --workers: expected positive integers")
    print("| store | loggers | wall s | runs/s | metric points/s | errors | 'database is locked' in server log "
          "| p95 log call ms | first error |")
    print("|---|---|---|---|---|---|---|---|---|")
    for backend in args.backends:
        print(measure(backend, args.loggers, args.steps, args.workers), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
