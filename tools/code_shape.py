"""Check the shape of the code: no import cycle, no long function or class.

    python tools/code_shape.py            # prints the longest pieces and any cycle

Limits: functions at most 80 lines, classes at most 250 (the Settings dataclass,
a list of fields, excepted). Imports inside functions count too: a lazy import is
still a dependency.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "impasto"
MAX_FUNCTION, MAX_CLASS = 80, 250
EXEMPT_CLASSES = {"Settings"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, tree: ast.AST) -> set[str]:
    """Modules of the package that ``path`` imports."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + (node.module.split(".") if node.module else []))
            if not target.startswith("impasto"):
                continue
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("impasto"))
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def main() -> int:
    graph, too_long = {}, []
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in files}
    for path in files:
        tree = ast.parse(path.read_text())
        graph[module_name(path)] = {m for m in imports(path, tree) if m in modules}
        graph[module_name(path)].discard(module_name(path))
        for node in ast.walk(tree):
            lines = getattr(node, "end_lineno", 0) - getattr(node, "lineno", 0) + 1
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and lines > MAX_FUNCTION:
                too_long.append(f"{path.relative_to(PACKAGE)}: function {node.name}, {lines} lines")
            long_class = isinstance(node, ast.ClassDef) and lines > MAX_CLASS
            if long_class and node.name not in EXEMPT_CLASSES:
                too_long.append(f"{path.relative_to(PACKAGE)}: class {node.name}, {lines} lines")
    # A package's __init__ importing its own submodules is not a cycle of dependencies.
    for name, deps in graph.items():
        graph[name] = {d for d in deps if not d.startswith(name + ".")}
    found = cycles(graph)
    for line in too_long:
        print("too long:", line)
    for cycle in found:
        print("import cycle:", " -> ".join(cycle))
    if not too_long and not found:
        print(
            f"{len(files)} modules: no import cycle, no function over {MAX_FUNCTION} lines, "
            f"no class over {MAX_CLASS} lines"
        )
    return 1 if too_long or found else 0


if __name__ == "__main__":
    sys.exit(main())
