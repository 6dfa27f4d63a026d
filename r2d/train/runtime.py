"""Where the training loop runs: this process (one worker), or a Ray Train worker (r2d.run.distributed).

Everything that differs between the two sits behind `Runtime`: the device, the model wrapper (DDP),
gathering evaluation shards, averaging logged numbers over workers, and where checkpoints and
metrics are reported. `map_shards` is the one sharded loop: each worker takes rows
rank, rank + world_size, ..., runs a function on them in batches, and everyone gets all results in
row order.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

Reporter = Callable[[int, list[tuple[int, dict]]], None]


@dataclass
class Runtime:
    """The in-process runtime: one worker. r2d.run.distributed.RayRuntime subclasses it."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    rank: int = 0
    world_size: int = 1
    checkpoint_dir: Path | None = None  # where local checkpoints go (None: none)
    resume_from: Path | None = None  # a checkpoint directory to continue from
    on_report: Reporter | None = None  # rank 0: tracking (r2d.run.tracking.MetricLogger)
    run_id: str | None = None  # the MLflow run it logs to (a Tune trial's checkpoints carry it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, module: nn.Module) -> nn.Module:
        return module

    def gather(self, items: list) -> list:
        """Concatenate a list from every worker, in rank order (identity with one worker)."""
        return items

    def barrier(self) -> None:
        pass

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Average per-worker numbers over workers (identity with one worker)."""
        return values

    def describe(self) -> dict[str, Any]:
        """Where the run ran, recorded in metrics.json."""
        return {"world_size": self.world_size, "device": str(self.device)}

    def autocast(self, precision: str):
        """bf16/fp16 autocast on a GPU; CPU runs stay fp32."""
        if self.device.type == "cuda" and precision != "fp32":
            dtype = torch.bfloat16 if precision == "bf16" else torch.float16
            return torch.autocast("cuda", dtype=dtype)
        return torch.autocast("cpu", enabled=False)

    def map_shards(self, n: int, batch_size: int, fn: Callable[[list[int]], list]) -> list:
        """`fn(rows) -> one result per row` over this worker's share of rows 0..n-1, in batches;
        returns every worker's results, in row order."""
        mine = list(range(self.rank, n, self.world_size))
        out: list[tuple[int, Any]] = []
        for start in range(0, len(mine), batch_size):
            rows = mine[start : start + batch_size]
            out += list(zip(rows, fn(rows), strict=True))
        return [value for _, value in sorted(self.gather(out), key=lambda pair: pair[0])]

    def report(self, step: int, metrics: list[tuple[int, dict]], checkpoint: Path | None) -> None:
        """Persist a checkpoint (if any), then hand the metrics since the last report to tracking."""
        if checkpoint is not None and self.checkpoint_dir is not None:
            target = self.checkpoint_dir / "latest"
            tmp = self.checkpoint_dir / "latest.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(checkpoint, tmp)
            shutil.rmtree(target, ignore_errors=True)
            tmp.rename(target)
        if self.on_report is not None and self.is_main:
            self.on_report(step, metrics)
