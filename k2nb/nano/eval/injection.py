"""The injected tool failure of the ``injected`` condition: the first python call fails, for real.

``mode="nameerror"`` (default): the model's code is run by the real python tool on a scratch copy of
the namespace from which the first name the code reads is removed (from the globals and, for a
builtin such as ``print``, from the builtins), so the observation is a genuine NameError traceback in
the tool's own format, and the real namespace is untouched. ``mode="transient"``: the code is not run
and the observation says the kernel was busy. Forks (parallel paths) fail their own first call.
"""

from __future__ import annotations

import ast
import builtins
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from k2nb.agent import Executor, Observation, ToolCallRequest

INJECT_MODES = ("nameerror", "transient")
BUSY = "the python kernel was busy and the code did not run; run it again"


class FailFirstCall:
    """An Executor that fails the first ``python`` call and runs every later one through ``inner``."""

    def __init__(self, inner: Executor, mode: str = "nameerror"):
        if mode not in INJECT_MODES:
            raise ValueError(f"inject mode must be 'nameerror' or 'transient', not {mode!r}")
        self.inner, self.mode = inner, mode
        self.failed: str | None = None  # the call id that was failed

    def tool_schemas(self) -> list[dict[str, Any]]:
        return self.inner.tool_schemas()

    def fork(self) -> FailFirstCall:
        fork = getattr(self.inner, "fork", None)
        return FailFirstCall(fork() if fork is not None else self.inner, self.mode)

    def execute(self, call: ToolCallRequest) -> Observation:
        if self.failed is not None or call.name != "python":
            return self.inner.execute(call)
        code = (call.parsed or {}).get("code")
        if not isinstance(code, str):
            return self.inner.execute(call)  # a malformed call fails on its own; inject on a real one
        self.failed = call.id
        obs = self._nameerror(call, code) if self.mode == "nameerror" else None
        if obs is None:
            from k2nb.agent import Observation

            obs = Observation(call.id, call.name, f"error: {BUSY}", ok=False, error_kind="tool_error",
                              error=BUSY)
        obs.data["injected"] = self.mode
        return obs

    def _nameerror(self, call: ToolCallRequest, code: str) -> Observation | None:
        from k2nb.agent.executor import python_observation
        from k2nb.agent.python_tool import PythonTool

        name = first_loaded_name(code)
        namespace = getattr(self.inner, "namespace", None)
        if name is None or namespace is None:
            return None
        scratch = dict(namespace)
        scratch.pop(name, None)
        if hasattr(builtins, name):
            scratch["__builtins__"] = {k: v for k, v in vars(builtins).items() if k != name}
        tool = PythonTool(scratch)
        result = tool.run(code)
        if result.ename != "NameError":  # the name was bound before it was read: fall back
            return None
        return python_observation(call, result, tool.model_text(result))


def first_loaded_name(code: str) -> str | None:
    """The first name (in source order) that ``code`` reads without having bound it first."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    bound: set[str] = set()
    nodes = sorted((n for n in ast.walk(tree) if isinstance(n, (ast.Name, ast.alias))),
                   key=lambda n: (getattr(n, "lineno", 0), getattr(n, "col_offset", 0)))
    for n in nodes:
        if isinstance(n, ast.alias):
            bound.add((n.asname or n.name).split(".")[0])
        elif isinstance(n.ctx, ast.Store):
            bound.add(n.id)
        elif n.id not in bound:
            return n.id
    return None
