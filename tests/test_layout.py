"""The house's arrows point down. Each package is a stack of floors along the data path; a module may
import its own room or a room on a lower floor, never one above or beside it, and there is no import
cycle. The library (r2d/) never imports the analysis layer, and analysis/ imports no torch and
nothing of r2d but its run-directory schema. Imports inside functions count."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Top floor first. A room is a sub-package or a module; rooms on one floor do not import each other.
FLOORS = {
    "r2d": [
        ["r2d.sweep"],
        ["r2d.cli"],
        ["r2d.run"],
        ["r2d.train"],
        ["r2d.model"],
        ["r2d.scoring", "r2d.data"],
        ["r2d.config"],
        ["r2d.overrides", "r2d.schema", "r2d.variants", "r2d.textfile"],
        ["r2d"],
    ],
    "analysis": [
        ["analysis.__main__"],
        ["analysis.cli"],
        ["analysis.referee"],
        ["analysis.report"],
        ["analysis.tables", "analysis.sequential"],
        ["analysis.options"],
        ["analysis.load"],
        ["analysis.metrics"],
        ["analysis.stats"],
        ["analysis.errors"],
        ["analysis"],
    ],
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, anywhere in it; `from pkg import mod` counts as `pkg.mod`."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def room_of(module: str) -> tuple[int, str] | None:
    """(floor, room) of an r2d/analysis module: the longest room name that is a prefix of it."""
    package = module.split(".")[0]
    best = None
    for floor, rooms in enumerate(FLOORS.get(package, [])):
        for room in rooms:
            if (module == room or module.startswith(room + ".")) and (best is None or len(room) > len(best[1])):
                best = (floor, room)
    return best


MODULES = {module_name(p): p for package in FLOORS for p in sorted((ROOT / package).rglob("*.py"))}


def project_imports(module: str) -> set[str]:
    """The project modules `module` imports (names that are attributes, not modules, are dropped)."""
    return {name for name in imported_modules(MODULES[module]) if name in MODULES and name != module}


@pytest.mark.parametrize("module", sorted(MODULES), ids=str)
def test_every_module_has_a_room_and_imports_only_down(module):
    floor, room = room_of(module)
    for name in project_imports(module):
        if name.split(".")[0] != module.split(".")[0]:
            continue  # across packages: the tests below
        other_floor, other_room = room_of(name)
        assert other_room == room or other_floor > floor, f"{module} (floor {floor}) imports {name} ({other_room})"


def test_no_import_cycle():
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for name in project_imports(module):
            assert state.get(name) != 1, "import cycle: " + " -> ".join([*path, module, name])
            if name not in state:
                visit(name, [*path, module])
        state[module] = 2

    for module in sorted(MODULES):
        if module not in state:
            visit(module, [])


@pytest.mark.parametrize("path", sorted((ROOT / "r2d").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_library_never_imports_the_analysis_layer(path):
    assert not {m for m in imported_modules(path) if m == "analysis" or m.startswith("analysis.")}


@pytest.mark.parametrize("path", sorted((ROOT / "analysis").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_analysis_imports_no_torch_and_only_the_schema_of_r2d(path):
    modules = imported_modules(path)
    assert not {m for m in modules if m.split(".")[0] == "torch"}
    assert all(m == "r2d.schema" or m.startswith("r2d.schema.") for m in modules if m.split(".")[0] == "r2d")


def test_each_room_says_what_it_is_for():
    for init in [*(ROOT / "r2d").rglob("__init__.py"), *(ROOT / "analysis").rglob("__init__.py")]:
        assert ast.get_docstring(ast.parse(init.read_text())), f"{init.relative_to(ROOT)} has no docstring"
