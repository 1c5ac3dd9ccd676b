"""The layer rule (docs/architecture.md): a module imports only from layers below its own, and no
import circle exists, counting imports made inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "bayespref"
# Packages of the same rank must not import each other either.
RANK = {
    "errors": 0,
    "io": 1,
    "data": 2,
    "model": 3,
    "posterior": 4,
    "inference": 5,
    "collect": 5,
    "analysis": 6,
    "checks": 7,
    "report": 8,
    "workflows": 9,
    "cli": 10,
}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported(tree: ast.AST, known: set[str]) -> set[str]:
    """The bayespref modules a module imports, anywhere in it."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module in known:
            for alias in node.names:  # `from bayespref.inference import device` names a module
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in known else node.module)
    return found


def layer(module: str) -> str:
    return module.split(".")[1]


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {
        name: imported(ast.parse(path.read_text()), set(found)) - {name}
        for name, path in found.items()
    }


def test_every_subpackage_has_a_layer_and_states_its_rule():
    packages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert packages == set(RANK) - {"errors"}
    for package in packages:
        docstring = ast.get_docstring(ast.parse((PACKAGE / package / "__init__.py").read_text()))
        assert docstring and "Imports" in docstring, package


def test_no_module_imports_a_layer_above_its_own():
    wrong = []
    for importer, targets in import_graph().items():
        if importer == "bayespref":  # the public API gathers every layer
            continue
        for target in targets:
            if target == "bayespref" or layer(target) == layer(importer):
                continue
            if RANK[layer(target)] >= RANK[layer(importer)]:
                wrong.append(f"{importer} imports {target}")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_circle():
    graph = import_graph()
    state: dict[str, str] = {}
    circles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                circles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not circles, "\n".join(circles)


def test_modules_and_functions_stay_small_or_say_why():
    too_long = []
    for name, path in modules().items():
        source = path.read_text()
        if len(source.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"module {name}")
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                reason = lines[first - 2].strip().startswith("#")
                body_reason = any(
                    line.strip().startswith("# One long function")
                    for line in lines[node.lineno : node.lineno + 4]
                )
                if length > MAX_FUNCTION_LINES and not (reason or body_reason):
                    too_long.append(f"function {name}.{node.name} ({length} lines)")
    assert not too_long, "\n".join(too_long)


def test_the_library_selects_no_matplotlib_backend():
    for name, path in modules().items():
        assert "matplotlib.use(" not in path.read_text(), name
        assert "import matplotlib.pyplot" not in path.read_text(), name
