"""The ``python`` tool as the traces declare and run it.

``run_python`` gives what ``k2nb.agent``'s python tool shows the model, so that an observation in a
training trace is exactly what the agent would return; this package does not import the agent (the
curriculum is the recipe of a model, not a user of the loop), and tests compare the two.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

PYTHON_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "python",
        "description": "Run Python code in the notebook kernel and return what it prints.",
        "parameters": {
            "type": "object",
            "properties": {"code": {"type": "string", "description": "Python code to run."}},
            "required": ["code"],
        },
    },
}
# The same tool exactly as k2nb.agent's PythonTool declares it (its docstring, wrapped lines joined), which
# is what the eval, the examples and %%k2think send; a test checks the two are equal. One character of
# difference (a kept line break, "return\nits") means no training trace has the declaration the model
# is run with. Training alternates between the two declarations so that the model does not depend on
# the exact wording of the tool description.
AGENT_PYTHON_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "python",
        "description": "Run Python code in a persistent namespace (variables survive between calls) and "
                       "return its printed output, the value of the last expression and any error.",
        "parameters": {
            "type": "object",
            "properties": {"code": {"type": "string", "description": "Python source to execute; the value "
                                                                     "of a final expression is shown."}},
            "required": ["code"],
        },
    },
}
TOOLS: list[dict[str, Any]] = [PYTHON_TOOL]
TOOL_SETS: list[list[dict[str, Any]]] = [[PYTHON_TOOL], [AGENT_PYTHON_TOOL]]


def run_python(code: str, namespace: dict[str, Any], cell: int = 1) -> str:
    """Run ``code`` in ``namespace`` and return what the model reads, in the format of
    ``k2nb.agent``'s python tool (``PythonResult.to_model_text``): stdout, then the repr of a trailing
    expression, ``(no output)`` when there is neither; an exception becomes a traceback of the cell's
    own frames (``File "<k2nb-python-N>", line L`` + the line + carets + ``NameError: ...``). Library
    frames and chained exceptions are left out to keep observations short for a small model."""
    import ast
    import linecache
    import traceback

    filename = f"<k2nb-python-{cell}>"
    linecache.cache[filename] = (len(code), None, code.splitlines(keepends=True), filename)
    buf = io.StringIO()
    value_text = None
    try:
        tree = ast.parse(code, filename, mode="exec")
        last_expr = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last_expr = ast.Expression(tree.body.pop().value)
        with contextlib.redirect_stdout(buf):
            exec(compile(tree, filename, "exec"), namespace)
            if last_expr is not None:
                value = eval(compile(last_expr, filename, "eval"), namespace)
                if value is not None:
                    value_text = repr(value)
    except Exception as exc:  # noqa: BLE001 - any error is an observation, as in a notebook
        te = traceback.TracebackException.from_exception(exc)
        te.stack = traceback.StackSummary.from_list([f for f in te.stack if f.filename == filename])
        te.__cause__ = te.__context__ = None
        error = "".join(te.format()).rstrip("\n")
        body = buf.getvalue().rstrip("\n")
        return f"{body}\n{error}" if body else error
    finally:
        linecache.cache.pop(filename, None)
    parts = [t for t in (buf.getvalue().rstrip("\n"), value_text) if t]
    return "\n".join(parts) if parts else "(no output)"
