"""Check that the running environment has exactly the versions a lock file pins.

Exit 0 when every pinned package is installed at its pinned version; else exit 1 with one
line naming the first package that differs. scripts/install.sh runs it after installing with
`-c LOCK`, because a constraints file does not stop an already-installed, different version.
"""

from __future__ import annotations

import importlib.metadata as metadata
import sys
from collections.abc import Callable
from pathlib import Path

from packaging.utils import canonicalize_name


def read_lock(path: Path) -> dict[str, str]:
    """`name==version` lines of a lock (comments and blank lines skipped): normalised name -> version."""
    pins: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not name.strip() or not version.strip():
            raise ValueError(f"{path}:{number}: expected 'name==version', got {raw!r}")
        pins[canonicalize_name(name.strip())] = version.strip()
    return pins


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def first_mismatch(pins: dict[str, str], installed: Callable[[str], str | None] = _installed) -> str | None:
    """One line naming the first package whose installed version is not the pinned one, else None."""
    for name in sorted(pins):
        have = installed(name)
        if have != pins[name]:
            found = "not installed" if have is None else f"installed {have}"
            return f"lockcheck: {name} is {found}, the lock pins {pins[name]}"
    return None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("lockcheck: usage: lockcheck.py LOCKFILE", file=sys.stderr)
        return 2
    try:
        problem = first_mismatch(read_lock(Path(args[0])))
    except (OSError, ValueError) as err:
        print(f"lockcheck: {err}", file=sys.stderr)
        return 2
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
