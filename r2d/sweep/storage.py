"""Where a sweep keeps its folder: `resources.storage_path`, a local directory or a URI (s3://, gs://).

Tune writes each phase's experiment (trial results, checkpoints) straight to `<storage>/<sweep id>/`.
The driver's own files (sweep.json, the plan, search_space.json, timings.json, ray.log, the analysis)
are written to a local folder and, on remote storage, copied to the same place in storage: on a
local storage path the two are one directory (as before), on s3:// the local folder is the driver's
`outputs/sweeps/<sweep id>` and storage holds what another machine needs to resume the sweep.
Storage goes through pyarrow.fs, as Ray's and the Stage 1 store's do (credentials and endpoint from
the environment: AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL_S3, ...).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

LOCAL_FOLDER = "outputs/sweeps"  # under the driver's working directory, for remote storage


def is_local(storage: str) -> bool:
    """A plain path or file:// URI (the driver's disk, or a mount every node has)."""
    return "://" not in storage or storage.startswith("file://")


class SweepStorage:
    """The sweeps of one storage path: find one to resume, name a new one's places, publish its files."""

    def __init__(self, storage: str):
        self.storage = storage.rstrip("/") or "/"
        self.local = is_local(self.storage)
        if self.local:
            self.fs, self.root = pafs.LocalFileSystem(), self.storage.removeprefix("file://")
        else:
            self.fs, self.root = pafs.FileSystem.from_uri(self.storage)
            self.root = self.root.rstrip("/")

    def uri(self, sweep_id: str) -> str:
        """Where Tune stores the sweep's phases (a local path or a URI)."""
        return f"{self.root}/{sweep_id}" if self.local else f"{self.storage}/{sweep_id}"

    def local_dir(self, sweep_id: str) -> Path:
        """The driver's folder of the sweep: the storage's own on a local path."""
        return Path(self.root) / sweep_id if self.local else Path(LOCAL_FOLDER).absolute() / sweep_id

    def latest(self, study: str, sweep_id: str | None = None,
               filename: str = "sweep.json") -> tuple[str, dict[str, Any]] | None:
        """(folder name, state) of the most recently written `<study>-*/<filename>` (sweep.json; an
        adaptive study's state.json), or of the folder `sweep_id`."""
        try:
            entries = self.fs.get_file_info(pafs.FileSelector(self.root, allow_not_found=True))
        except OSError:
            return None
        found = []
        for entry in entries:
            if entry.type != pafs.FileType.Directory or not entry.base_name.startswith(f"{study}-"):
                continue
            if sweep_id and entry.base_name != sweep_id:
                continue
            info = self.fs.get_file_info(f"{entry.path}/{filename}")
            if info.type == pafs.FileType.File:
                found.append((info.mtime.timestamp() if info.mtime else 0.0, entry.base_name, info.path))
        if not found:
            return None
        _, name, path = max(found)
        with self.fs.open_input_stream(path) as f:
            return name, json.loads(f.read().decode())

    def publish(self, local_dir: Path, sweep_id: str) -> None:
        """Copy the driver's folder of the sweep to storage (nothing to do on a local path)."""
        if self.local or not local_dir.is_dir():
            return
        pafs.copy_files(str(local_dir), f"{self.root}/{sweep_id}", source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=self.fs)


def new_sweep_id(study: str) -> str:
    return f"{study}-{time.strftime('%Y%m%d-%H%M%S')}"
