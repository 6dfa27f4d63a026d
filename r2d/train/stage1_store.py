"""Stage 1 results kept by hash on the shared storage, so many Stage 2 runs reuse one Stage 1.

The key is the identity of a Stage 1 result: (model, data, rationale source, Stage 1 settings,
seed). Storage goes through pyarrow.fs (as Ray's own storage does), so a local disk and S3/GCS
behave alike. A result is complete once its DONE marker exists; DONE is written last.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.fs as pafs

from r2d.config import REPRODUCIBLE_PINS, Config, absolute_path


def stage1_key(cfg: Config) -> str:
    """Identity of a Stage 1 result: (model, data, rationale source, Stage 1 settings, seed, and the
    CPU pins in reproducible mode; keys of runs without it are unchanged)."""
    picked = {
        "model": cfg.model.model_dump(exclude={"cache_dir"}),
        # data.labels unset: left out, so Stage 1 results stored before it existed are still found
        "data": cfg.data.model_dump(exclude={"labels"} if cfg.data.labels is None else None),
        "stage1": cfg.stage1.model_dump(exclude={"cache_dir", "enabled", "seed"}),  # its seed: below
        "seed": cfg.stage_seed(1),
    }
    if cfg.resources.reproducible:  # computed on the pinned CPU paths: never mixed with an unpinned result
        picked["cpu_pins"] = REPRODUCIBLE_PINS
    return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()[:16]


class Stage1Store:
    """One Stage 1 result on the storage: `model/` (weights + tokenizer) and `DONE` (its info)."""

    def __init__(self, cfg: Config):
        self.key = stage1_key(cfg)
        root = absolute_path(cfg.stage1.cache_dir or f"{cfg.resources.storage_path.rstrip('/')}/stage1")
        self.location = f"{root.rstrip('/')}/{self.key}"
        self.fs, self.path = (pafs.FileSystem.from_uri(self.location) if "://" in self.location
                              else (pafs.LocalFileSystem(), self.location))

    def done(self) -> bool:
        return self.fs.get_file_info(f"{self.path}/DONE").type != pafs.FileType.NotFound

    def info(self) -> dict:
        with self.fs.open_input_stream(f"{self.path}/DONE") as f:
            return json.loads(f.read().decode())

    def fetch(self, local_dir: Path) -> Path:
        local_dir.mkdir(parents=True, exist_ok=True)
        pafs.copy_files(f"{self.path}/model", str(local_dir), source_filesystem=self.fs,
                        destination_filesystem=pafs.LocalFileSystem())
        return local_dir

    def publish(self, local_model_dir: Path, info: dict) -> None:
        # Concurrent publishers of one key write identical files; readers wait for DONE.
        self.fs.create_dir(f"{self.path}/model", recursive=True)
        pafs.copy_files(str(local_model_dir), f"{self.path}/model", source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=self.fs)
        with self.fs.open_output_stream(f"{self.path}/DONE") as f:
            f.write(json.dumps(info, indent=1).encode())
