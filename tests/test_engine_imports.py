"""The engine's modules import downward only: no cycles, and the model knows neither its generator
nor its loader; the kernels know nothing above them."""

from __future__ import annotations

import ast
from pathlib import Path

import k2nb.engine

ENGINE = Path(k2nb.engine.__file__).parent


def _module(path: Path) -> str:
    rel = path.relative_to(ENGINE.parent.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path, modules: frozenset[str] = frozenset()) -> set[str]:
    """Every module `path` imports, anywhere in it (lazy imports inside functions included);
    ``from package import submodule`` counts as importing the submodule when it is in `modules`."""
    mod = _module(path)
    package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rsplit(".", 1)[0]
            target = node.module or ""
            if node.level:
                target = f"{base}.{target}" if target else base
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.add(sub if sub in modules else target)
    return out


def _graph() -> dict[str, set[str]]:
    files = {_module(p): p for p in ENGINE.rglob("*.py")}
    modules = frozenset(files)
    return {m: {i for i in _imports(p, modules) if i in files and i != m} for m, p in files.items()}


def test_no_import_cycle_inside_the_engine():
    graph = _graph()
    done: set[str] = set()

    def visit(m: str, path: list[str]) -> None:
        if m in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(m):] + [m]))
        if m in done:
            return
        for n in sorted(graph[m]):
            visit(n, path + [m])
        done.add(m)

    for m in sorted(graph):
        visit(m, [])


def test_the_model_knows_neither_generator_nor_loader():
    graph = _graph()
    assert not graph["k2nb.engine.model"] & {"k2nb.engine.generate", "k2nb.engine.loader"}


def test_ops_import_nothing_above_them():
    graph = _graph()
    for m, deps in graph.items():
        if m.startswith("k2nb.engine.ops"):
            assert all(d.startswith("k2nb.engine.ops") or d == "k2nb.engine.errors" for d in deps), (m, deps)


def test_engine_imports_no_layer_above_it():
    above = ("k2nb.agent", "k2nb.backends", "k2nb.formats", "k2nb.widgets", "k2nb.magics", "IPython",
             "ipywidgets")
    for path in ENGINE.rglob("*.py"):
        bad = [i for i in _imports(path) if i.startswith(above)]
        assert not bad, (path.name, bad)
