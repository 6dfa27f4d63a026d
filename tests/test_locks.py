"""locks/*.txt cover what pyproject requires, and scripts/lockcheck.py rejects a version that differs."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _script(name: str):
    # scripts/ is not a package (it runs before r2d is installed), so load the files by path.
    spec = importlib.util.spec_from_file_location(f"_r2d_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lock = _script("lock")
lockcheck = _script("lockcheck")


def test_locks_cover_every_required_distribution():
    required = lock.closure(lock.pyproject_requirements(ROOT / "pyproject.toml"))
    assert {"torch", "transformers", "psycopg", "moto", "pytest"} <= set(required)
    for name in ("cpu.txt", "cuda.txt"):
        pinned = lockcheck.read_lock(ROOT / "locks" / name)
        missing = sorted(set(required) - set(pinned))
        assert not missing, f"locks/{name} lacks {missing}"


def test_cpu_lock_matches_this_environment():
    assert lockcheck.first_mismatch(lockcheck.read_lock(ROOT / "locks" / "cpu.txt")) is None


def test_check_names_the_package_that_differs(tmp_path):
    fake = tmp_path / "lock.txt"
    fake.write_text("# fake\nPyYAML==0.0.1\n")
    assert lockcheck.first_mismatch(lockcheck.read_lock(fake), {"pyyaml": "6.0.2"}.get) == (
        "lockcheck: pyyaml is installed 6.0.2, the lock pins 0.0.1")
    assert "not installed" in lockcheck.first_mismatch({"no-such-dist": "1.0"}, lambda _: None)
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "lockcheck.py"), str(fake)],
                         capture_output=True, text=True)
    assert run.returncode == 1
    assert run.stderr.count("\n") == 1 and "pyyaml" in run.stderr and "0.0.1" in run.stderr


def test_malformed_lock_line_is_named(tmp_path):
    bad = tmp_path / "lock.txt"
    bad.write_text("torch>=2\n")
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "lockcheck.py"), str(bad)],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "lock.txt:1" in run.stderr
