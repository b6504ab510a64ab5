"""The package's floors (docs/architecture.md): imports point down, never up, and never in a circle.

Every `import` of a k2nb module counts, also those inside functions (a lazy import is still a
dependency); only imports under `if TYPE_CHECKING:` are left out (they are annotations, not code).
"""

from __future__ import annotations

import ast
from pathlib import Path

import k2nb

ROOT = Path(k2nb.__file__).parent

# Lowest floor first. A module belongs to the group of its longest matching prefix. A module may
# import its own group, or any group of a lower floor; groups that share a floor do not see each
# other (the engine knows no chat format, the format no engine).
FLOORS: list[tuple[str, ...]] = [
    ("k2nb.events", "k2nb.routing", "k2nb.engine.errors"),  # records every floor speaks
    ("k2nb.engine.ops",),  # kernels and weight formats
    ("k2nb.engine", "k2nb.models", "k2nb.formats"),  # the runtime | the chat formats
    ("k2nb.backends",),
    ("k2nb.agent",),
    ("k2nb.widgets",),  # views of a run, static figures included
    ("k2nb.kernels", "k2nb.magics"),
    ("k2nb.cli", "k2nb.terminal", "k2nb.demo", "k2nb.nano", "k2nb.__main__", "k2nb"),
]
# same-floor groups that may import each other
SIBLINGS = {("k2nb.engine", "k2nb.models"), ("k2nb.models", "k2nb.engine"), ("k2nb.magics", "k2nb.kernels")}
# the top floor is the entry points and the embedded model's recipe: any of them may use the others
SIBLINGS |= {(a, b) for a in FLOORS[-1] for b in FLOORS[-1]}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(path: Path, name: str) -> set[str]:
    tree = ast.parse(path.read_text())
    skip = _type_checking_lines(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("k2nb"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.startswith("k2nb"):
                # `from k2nb.x import y` may name a submodule y
                out.update(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names)
    return {m for m in out if m != name}


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}
# `k2nb` itself (the package: its version, the lazy entry points) runs before any submodule anyway, so
# importing a name from it is no dependency of ideas
GRAPH = {
    name: {m for m in imports_of(p, name) if m in MODULES and m != "k2nb"} for name, p in MODULES.items()
}


def group_of(name: str) -> tuple[int, str]:
    best: tuple[int, str] | None = None
    for floor, groups in enumerate(FLOORS):
        for g in groups:
            if (name == g or name.startswith(g + ".")) and (best is None or len(g) > len(best[1])):
                best = (floor, g)
    assert best is not None, f"{name} is on no floor: add it to FLOORS and docs/architecture.md"
    return best


def test_imports_point_down_the_floors() -> None:
    wrong = []
    for name, deps in sorted(GRAPH.items()):
        floor, group = group_of(name)
        for dep in sorted(deps):
            dep_floor, dep_group = group_of(dep)
            ok = dep_floor < floor or dep_group == group or (group, dep_group) in SIBLINGS
            if not ok:
                wrong.append(f"{name} ({group}) imports {dep} ({dep_group})")
    assert not wrong, "imports against the floors:\n" + "\n".join(wrong)


def test_the_graph_sees_lazy_imports() -> None:
    # what the checks below rely on: function-level imports are edges, TYPE_CHECKING ones are not
    assert "k2nb.backends.engine" in GRAPH["k2nb.agent.turn"]  # imported inside think()
    assert "k2nb.agent.trajectory" not in GRAPH["k2nb.agent.notebook_export"]  # annotations only


def test_no_import_cycles() -> None:
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(GRAPH[node]):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep) :] + [dep])
            elif dep not in state:
                visit(dep, stack)
        stack.pop()
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [])
    # a package importing its own submodules (re-exports) is not a cycle of ideas
    real = [c for c in cycles if not all(c[0] == m or m.startswith(c[0] + ".") for m in c)]
    assert not real, "import cycles:\n" + "\n".join(" -> ".join(c) for c in real)


def test_the_loop_knows_no_chat_format() -> None:
    for name, deps in GRAPH.items():
        if name.startswith("k2nb.agent"):
            assert not {d for d in deps if d.startswith("k2nb.formats")}, f"{name} imports a chat format"
            assert "THINK_END" not in MODULES[name].read_text(), f"{name} names a K2 marker"
