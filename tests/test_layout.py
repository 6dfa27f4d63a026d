"""The house's arrows point down: the library (r2d/) never imports the analysis layer, and analysis/
imports no torch and nothing of r2d but its run-directory schema. Imports inside functions count."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted((ROOT / "r2d").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_library_never_imports_the_analysis_layer(path):
    assert not {m for m in imported_modules(path) if m == "analysis" or m.startswith("analysis.")}


@pytest.mark.parametrize("path", sorted((ROOT / "analysis").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_analysis_imports_no_torch_and_only_the_schema_of_r2d(path):
    modules = imported_modules(path)
    assert not {m for m in modules if m.split(".")[0] == "torch"}
    assert {m for m in modules if m.split(".")[0] == "r2d"} <= {"r2d.schema"}
