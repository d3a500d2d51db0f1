"""Print the package-level import graph of src/mergenet, counting imports inside functions too.

Why not `grimp` alone: the report also needs to say how many imports sit inside functions, and which
edges close a cycle. Usage: `python scripts/package_graph.py` (add `--modules` for module edges).
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def imports(path: Path, module: str) -> list[tuple[str, bool]]:
    """(imported module, whether the import sits inside a function) for every mergenet import."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend((a.name, inner) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    pkg = module.split(".") if is_pkg else module.split(".")[:-1]
                    pkg = pkg[: len(pkg) - child.level + 1]
                    base = ".".join(pkg + ([base] if base else []))
                found.append((base, inner))
            visit(child, inner)

    visit(tree, False)
    return [(m, n) for m, n in found if m == "mergenet" or m.startswith("mergenet.")]


def strongly_connected(graph: dict[str, list[str]]) -> list[set[str]]:
    """Groups of packages that reach each other (a DAG has none)."""

    def reach(start: str) -> set[str]:
        seen, todo = {start}, [start]
        while todo:
            for nxt in graph.get(todo.pop(), []):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    reached = {p: reach(p) for p in graph}
    groups = {frozenset(q for q in reached[p] if p in reached.get(q, set())) for p in graph}
    return [set(g) for g in sorted(groups, key=sorted) if len(g) > 1]


def main() -> None:
    show_modules = "--modules" in sys.argv
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    nested_count = 0
    for path in sorted((ROOT / "mergenet").rglob("*.py")):
        if "migrations" in path.parts:
            continue
        mod = module_name(path)
        for target, nested in imports(path, mod):
            nested_count += nested
            a, b = package_of(mod), package_of(target)
            if a != b and b != "mergenet":
                edges[(a, b)].append(f"{mod} -> {target}" + (" (in function)" if nested else ""))
    packages = sorted({p for e in edges for p in e})
    graph = {p: sorted(b for a, b in edges if a == p) for p in packages}
    print("package -> packages it imports")
    for p in packages:
        deps = ", ".join(d.removeprefix("mergenet.") for d in graph[p])
        print(f"  {p.removeprefix('mergenet.')}: {deps}")
    print("\npackage cycles (strongly connected groups of more than one package):")
    for group in strongly_connected(graph):
        print("  " + " <-> ".join(sorted(g.removeprefix("mergenet.") for g in group)))
    cycles = sorted({tuple(sorted((a, b))) for a, b in edges if (b, a) in edges})
    print(f"\ntwo-package cycles: {len(cycles)}")
    for a, b in cycles:
        print(f"  {a} <-> {b}")
        for e in edges[(a, b)] + edges[(b, a)]:
            print(f"      {e}")
    print(f"\nmergenet imports inside functions (all, incl. intra-package): {nested_count}")
    if show_modules:
        for (a, b), es in sorted(edges.items()):
            print(f"\n{a} -> {b}")
            for e in es:
                print(f"  {e}")


if __name__ == "__main__":
    main()
