"""A sweep's folder on a local path and on S3 (moto's server on 127.0.0.1, reached as S3 through pyarrow.fs):
where Tune writes, the driver's local folder, publishing it, and what --resume finds."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from r2d.sweep.storage import SweepStorage

from .servers import moto_s3


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp, moto_s3(tmp_path_factory.mktemp("moto")) as endpoint:
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": endpoint}.items():
            mp.setenv(key, value)
        import boto3

        boto3.client("s3").create_bucket(Bucket="sweeps")
        yield "s3://sweeps/r2d"


def write_state(folder: Path, sweep_id: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sweep.json").write_text(json.dumps({"sweep_id": sweep_id}))


def test_local_storage_is_the_sweep_folder_and_resume_finds_the_latest(tmp_path):
    store = SweepStorage(str(tmp_path))
    assert store.local and store.uri("s-1") == f"{tmp_path}/s-1" and store.local_dir("s-1") == tmp_path / "s-1"
    assert store.latest("s") is None
    write_state(tmp_path / "s-2", "s-2")
    time.sleep(0.05)
    write_state(tmp_path / "s-1", "s-1")  # written last: the latest
    write_state(tmp_path / "other-3", "other-3")
    assert store.latest("s") == ("s-1", {"sweep_id": "s-1"})
    assert store.latest("s", "s-2") == ("s-2", {"sweep_id": "s-2"})
    store.publish(tmp_path / "s-1", "s-1")  # nothing to copy: the folder is the storage
    (tmp_path / "s-adaptive-1").mkdir()
    (tmp_path / "s-adaptive-1" / "state.json").write_text(json.dumps({"looks": 1}))  # --until-decided's
    assert store.latest("s-adaptive", filename="state.json") == ("s-adaptive-1", {"looks": 1})


def test_s3_storage_gets_the_published_folder_and_resume_finds_it_there(s3, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = SweepStorage(s3 + "/")
    assert not store.local and store.uri("s-1") == f"{s3}/s-1"
    assert store.local_dir("s-1") == tmp_path / "outputs" / "sweeps" / "s-1"  # the driver's own folder
    assert store.latest("s") is None
    for sweep_id in ("s-1", "s-2"):
        write_state(store.local_dir(sweep_id), sweep_id)
        (store.local_dir(sweep_id) / "ray.log").write_text("log")
        store.publish(store.local_dir(sweep_id), sweep_id)
        time.sleep(1.1)  # S3 keeps modification times to the second
    import boto3

    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="sweeps")["Contents"]}
    assert {"r2d/s-1/sweep.json", "r2d/s-1/ray.log", "r2d/s-2/sweep.json"} <= keys
    # another machine (no local folder) resumes from storage alone
    shutil.rmtree(tmp_path / "outputs")
    assert store.latest("s") == ("s-2", {"sweep_id": "s-2"})
    assert store.latest("s", "s-1") == ("s-1", {"sweep_id": "s-1"})
    assert SweepStorage("s3://sweeps/nothing-here").latest("s") is None
