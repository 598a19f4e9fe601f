"""The shape of the package: small modules and functions, imports at the top.

The layers themselves are import-linter's contracts (``make lint``, pyproject.toml);
these checks hold what it does not see.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from helpers import ROOT

PACKAGE = ROOT / "src" / "churn_pipeline"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
#: declarative parser set-up, long by nature
LONG_BY_NATURE = {("cli.py", "build_parser")}
#: third-party packages that are heavy, or absent where part of the package runs (the functions'
#: runtime has no numpy, Glue no IPython): imported where they are used
DEFERRED_IMPORTS = {
    "boto3", "botocore", "flask", "gunicorn", "IPython", "jupyter_client", "jupyter_core", "matplotlib", "nbclient",
    "nbconvert",
    "nbformat", "numpy", "optuna", "pandas", "papermill", "pyarrow", "pyspark", "sagemaker", "scipy", "statelint",
    "stepfunctions", "xgboost",
}  # fmt: skip


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _functions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def test_no_module_is_over_the_limit():
    long = {
        str(p.relative_to(PACKAGE)): n for p in _modules() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_function_is_over_the_limit():
    long = []
    for path in _modules():
        for node in _functions(ast.parse(path.read_text())):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES and (path.name, node.name) not in LONG_BY_NATURE:
                long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({length} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_function_level_imports_are_heavy_third_party_packages_only():
    """A deferred import of the package's own modules would hide a cycle from import-linter's reader."""
    misplaced = []
    for path in _modules():
        for function in _functions(ast.parse(path.read_text())):
            for node in ast.walk(function):
                if isinstance(node, ast.ImportFrom):
                    names = [node.module or ""] if not node.level else ["(the package)"]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                else:
                    continue
                misplaced += [
                    f"{path.relative_to(PACKAGE)}:{node.lineno} {name}"
                    for name in names
                    if name.split(".")[0] not in DEFERRED_IMPORTS
                ]
    assert not misplaced, f"function-level imports that belong at the top: {misplaced}"


def _module_map() -> list[tuple[set[str], set[str]]]:
    """(modules named in the second column, every backticked name of the row) per row of the README's map."""
    text = (ROOT / "README.md").read_text()
    table = text[text.index("## Module map") : text.index("## Layout")]
    rows = []
    for line in table.splitlines():
        cells = line.split("|")
        if len(cells) > 3 and "`" in cells[2]:
            rows.append((set(re.findall(r"`([^`]+)`", cells[2])), set(re.findall(r"`([^`]+)`", line))))
    return rows


def test_the_readmes_module_map_matches_the_tree():
    rows = _module_map()
    named = set().union(*(modules for modules, _ in rows))
    tree = {p.relative_to(PACKAGE).with_suffix("").as_posix().removesuffix("/__init__") for p in _modules()}
    tree.discard("__init__")

    def mapped(module: str) -> bool:
        package, _, name = module.rpartition("/")
        in_row = any(f"{package}/*" in modules and name in row for modules, row in rows)
        return module in named or in_row or any(m.startswith(f"{module}/") for m in named)

    assert [m for m in sorted(tree) if not mapped(m) and f"{m}/*" not in named] == []
    listed = {m for m in named if not m.endswith("/*")} | {m[:-2] for m in named if m.endswith("/*")}
    assert sorted(listed - tree) == []


def import_cycles(package: str = "churn_pipeline") -> tuple[dict[str, set[str]], list[list[str]]]:
    """(every module's direct imports within the package, the groups of modules that import each other
    in a cycle), over every import, deferred ones included (grimp reads them all)."""
    import grimp

    graph = grimp.build_graph(package)
    edges = {m: graph.find_modules_directly_imported_by(m) for m in sorted(graph.modules)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in edges[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while not group or group[-1] != module:
                group.append(stack.pop())
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in edges:
        if module not in index:
            visit(module)
    return edges, cycles


def test_the_package_has_no_import_cycle():
    """The layers contract keeps imports between layers downward; within a layer, siblings may import
    each other, but never round in a circle."""
    assert import_cycles()[1] == []


if __name__ == "__main__":  # the import graph in figures: python tests/test_structure.py
    edges, cycles = import_cycles()
    print(f"{len(edges)} modules, {sum(len(e) for e in edges.values())} imports, {len(cycles)} cycles")
    for group in cycles:
        print(f"  cycle of {len(group)}: {' '.join(m.removeprefix('churn_pipeline.') for m in group)}")
