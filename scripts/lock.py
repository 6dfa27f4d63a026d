"""Write locks/cpu.txt: exact `name==version` pins of r2d[dev]'s whole dependency closure.

The closure is read from the running environment (importlib.metadata), walking pyproject's
requirements and, recursively, each installed distribution's own requirements (markers evaluated
for this interpreter). Run it from a fresh `.[dev]` install (scripts/install.sh) so the lock is
what a fresh install resolves today: `make lock`. With --cuda it also writes locks/cuda.txt:
pip resolves (`pip install --dry-run --report`, nothing downloaded but metadata) PyPI's default
torch build, which is the CUDA one, with every other package held to the CPU lock's pins, so
the two locks differ only in torch and its nvidia-*/triton dependencies.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import tomllib  # Python >= 3.11; `make lock` runs in the project's venv
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
SELF = "r2d"  # the project itself is installed editable; it is not pinned in its own lock


def pyproject_requirements(pyproject: Path, extras: tuple[str, ...] = ("dev",)) -> list[Requirement]:
    """Requirements of the project plus the given extras, as packaging Requirements."""
    project = tomllib.loads(pyproject.read_text())["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project.get("optional-dependencies", {}).get(extra, [])
    return [Requirement(line) for line in lines]


def _applies(req: Requirement, extras: set[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({"extra": e}) for e in (extras or {""}))


def closure(roots: list[Requirement]) -> dict[str, str]:
    """Installed distributions reachable from `roots`: normalised name -> version."""
    pinned: dict[str, str] = {}
    seen_extras: dict[str, set[str]] = {}
    todo = [(req, set(req.extras)) for req in roots if _applies(req, set())]
    while todo:
        req, extras = todo.pop()
        name = canonicalize_name(req.name)
        if name == SELF:
            continue
        if name in pinned and extras <= seen_extras[name]:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            raise SystemExit(f"lock: {req.name} (required) is not installed; run scripts/install.sh first") from None
        pinned[name] = dist.version
        seen_extras[name] = seen_extras.get(name, set()) | extras
        for line in dist.requires or []:
            sub = Requirement(line)
            if _applies(sub, extras):
                todo.append((sub, set(sub.extras)))
    return pinned


def render(pins: dict[str, str], header: str) -> str:
    body = "".join(f"{name}=={pins[name]}\n" for name in sorted(pins))
    return header + body


def resolve_cuda(cpu_pins: dict[str, str], torch_version: str) -> dict[str, str]:
    """Pins pip resolves from PyPI for CUDA torch + r2d[dev], other packages held to `cpu_pins`."""
    held = {n: v for n, v in cpu_pins.items() if n != "torch"}
    with tempfile.TemporaryDirectory() as tmp:
        constraints, report = Path(tmp) / "held.txt", Path(tmp) / "report.json"
        constraints.write_text(render(held, ""))
        # --isolated and PIP_CONFIG_FILE: the machine's pip config may point at a local CPU wheel.
        command = [sys.executable, "-m", "pip", "install", "--isolated", "--dry-run", "--ignore-installed", "-q",
                   "--index-url", "https://pypi.org/simple", "--report", str(report), "-c", str(constraints),
                   f"torch=={torch_version}", f"{ROOT}[dev]"]
        subprocess.run(command, check=True, env={**os.environ, "PIP_CONFIG_FILE": os.devnull})
        installs = json.loads(report.read_text())["install"]
    pins = {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"] for i in installs}
    pins.pop(SELF, None)
    return pins


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "locks" / "cpu.txt")
    parser.add_argument("--cuda", action="store_true", help="also resolve locks/cuda.txt from PyPI (network)")
    args = parser.parse_args(argv)
    pins = closure(pyproject_requirements(ROOT / "pyproject.toml"))
    header = (f"# r2d[dev] lock, written by `make lock` (scripts/lock.py) from the running environment,\n"
              f"# python {sys.version.split()[0]}, torch {pins.get('torch', '?')}. Exact pins; do not edit.\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(pins, header))
    print(f"lock: {len(pins)} pins -> {args.out}")
    if args.cuda:
        torch_version = pins["torch"].split("+")[0]
        cuda = resolve_cuda(pins, torch_version)
        out = args.out.parent / "cuda.txt"
        header = (f"# r2d[dev] lock for CUDA machines, written by `make lock` (scripts/lock.py --cuda):\n"
                  f"# pip's resolution of PyPI torch=={torch_version} (CUDA build) with the other\n"
                  f"# packages held to locks/cpu.txt. Exact pins; do not edit.\n")
        out.write_text(render(cuda, header))
        print(f"lock: {len(cuda)} pins -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
