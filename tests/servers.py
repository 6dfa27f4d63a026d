"""Real servers for tests and benchmarks, each on 127.0.0.1 and a free port, each stopped by its PID:
PostgreSQL 15 (Debian's, run as an unprivileged user since it refuses root), an MLflow tracking
server on a given backend store, and moto's S3-compatible server (the stand-in for S3)."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_USER = "r2dpg"  # PostgreSQL refuses to run as root
START_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(["useradd", "-r", "-M", "-s", "/usr/sbin/nologin", PG_USER], check=True)
        return pwd.getpwnam(PG_USER)


def _wait(ready, what: str, proc: subprocess.Popen, log: Path) -> None:
    """Poll `ready()` until it is true; bounded by START_TIMEOUT_S, and stops if the server died."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        if ready():
            return
        time.sleep(0.3)
    raise TimeoutError(f"{what} not ready after {START_TIMEOUT_S:.0f} s: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Stop the process group this module started (the server and the workers it forked), by its PID."""
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def postgres() -> Iterator[str]:
    """A fresh PostgreSQL 15 cluster with a database `mlflow`; yields its SQLAlchemy URI (psycopg 3)."""
    user = _pg_user()
    root = Path(tempfile.mkdtemp(prefix="r2d-pg-"))
    os.chown(root, user.pw_uid, user.pw_gid)
    data, log, port = root / "data", root / "postgres.log", free_port()
    subprocess.run([PG_BIN / "initdb", "-D", data, "-U", "mlflow", "--auth=trust", "-E", "UTF8"],
                   user=user.pw_uid, group=user.pw_gid, check=True, capture_output=True)
    with open(log, "w") as out:
        os.chown(log, user.pw_uid, user.pw_gid)
        proc = subprocess.Popen([PG_BIN / "postgres", "-D", data, "-h", "127.0.0.1", "-p", str(port), "-k", root,
                                 "-c", "max_connections=200", "-c", "fsync=off"],
                                user=user.pw_uid, group=user.pw_gid, stdout=out, stderr=out, start_new_session=True)
    admin = f"host=127.0.0.1 port={port} user=mlflow dbname=postgres"

    def ready() -> bool:
        try:
            with psycopg.connect(admin, connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    try:
        _wait(ready, "postgres", proc, log)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE mlflow")
        yield f"postgresql+psycopg://mlflow@127.0.0.1:{port}/mlflow"
    finally:
        _stop(proc, signal.SIGINT)  # PostgreSQL's fast shutdown
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def _http_server(cmd: list[str], what: str, url: str, probe: str, log: Path,
                 env: dict[str, str] | None = None) -> Iterator[str]:
    """Start `cmd` (its own process group, output to `log`), wait until GET `url + probe` is 200,
    yield `url`, and stop it by its PID at the end."""
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=out, start_new_session=True, env=env)

    def ready() -> bool:
        try:
            with urllib.request.urlopen(url + probe, timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        _wait(ready, what, proc, log)
        yield url
    finally:
        _stop(proc)


@contextmanager
def mlflow_server(backend_uri: str, artifacts: Path, workers: int = 2, jobs: bool = False) -> Iterator[str]:
    """`mlflow server` on `backend_uri`, artifacts proxied to `artifacts`; yields its http:// URI.
    `jobs`: MLflow 3's GenAI job consumers (three huey processes r2d never uses; off in tests, where
    they compete for the cores; the load bench keeps them on, as a default `mlflow server` runs)."""
    port = free_port()
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(workers), "--backend-store-uri", backend_uri, "--artifacts-destination", str(artifacts)]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": str(jobs).lower()}
    with _http_server(cmd, "mlflow server", f"http://127.0.0.1:{port}", "/health",
                      artifacts.parent / f"mlflow-server-{os.getpid()}.log", env) as uri:
        yield uri


@contextmanager
def moto_s3(workdir: Path) -> Iterator[str]:
    """moto's S3-compatible server (`python -m moto.server`, in memory); yields its endpoint URL.
    Clients reach it as S3: AWS_ENDPOINT_URL_S3=<url> and any AWS_ACCESS_KEY_ID / SECRET."""
    port = free_port()
    cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with _http_server(cmd, "moto server", f"http://127.0.0.1:{port}", "/moto-api/data.json",
                      workdir / "moto.log") as url:
        yield url
