"""The built-in `python` tool: run a code string in a persistent namespace, like a notebook cell.

It runs through `k2nb.agent.guard.call_guarded` (a worker thread, per-thread output capture, a
time limit, the stop button); see there why a thread and not a subprocess. `os._exit` and hard
crashes of C extensions cannot be contained short of a subprocess.
"""

from __future__ import annotations

import ast
import linecache
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from k2nb.agent import guard
from k2nb.agent.guard import (
    DEFAULT_CAPTURE_CHARS,
    DEFAULT_TIMEOUT_S,
    CallOutcome,
    ToolInterrupted,
    call_guarded,
    cut_middle,
)
from k2nb.agent.tools import Tool

DEFAULT_MODEL_CHARS = 2_000  # what the model reads back per call


# ---------------------------------------------------------------------------------------------
# the python tool


@dataclass(slots=True)
class PythonResult:
    """One run of the python tool. Full (capture-capped) output; `to_model_text` is what the model
    reads. `ename`/`evalue`/`traceback` follow nbformat's error output."""

    code: str
    stdout: str = ""
    stderr: str = ""
    value: str | None = None  # repr of the last expression, as a notebook shows it
    ename: str | None = None
    evalue: str | None = None
    traceback: list[str] = field(default_factory=list)
    # What the model reads of an error: the cell's own frames and the error line, without library
    # frames or chained exceptions (the full `traceback` stays in the trajectory and the notebook).
    model_traceback: str = ""
    timed_out: bool = False
    abandoned: bool = False
    interrupted: bool = False  # the stop button ended the run during this call
    stdout_chars: int = 0
    stderr_chars: int = 0
    duration_s: float = 0.0
    execution_count: int | None = None

    @property
    def ok(self) -> bool:
        return self.ename is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PythonResult:
        return cls(**data)

    def to_model_text(
        self,
        limit: int = DEFAULT_MODEL_CHARS,
        *,
        error_detail: Literal["traceback", "last_line"] = "traceback",
        empty_text: str = "(no output)",
    ) -> str:
        """stdout, then stderr, then the last value, then the error; capped to `limit` chars.

        The error goes last and keeps its final line even under the cap: that line ('NameError:
        name x is not defined') is what the model most needs to read. `error_detail="last_line"`
        and `empty_text=""` give exactly the observations k2-nano's curriculum trains on.
        """
        parts: list[str] = []
        if self.stdout:
            parts.append(self.stdout.rstrip("\n"))
        if self.stderr:
            parts.append("[stderr]\n" + self.stderr.rstrip("\n"))
        if self.value is not None:
            parts.append(self.value)
        body = "\n".join(parts)
        if self.ename is None:
            return cut_middle(body, limit) if body else empty_text
        error = _short_traceback(self) if error_detail == "traceback" else f"{self.ename}: {self.evalue}"
        if not body:
            return cut_middle(error, limit)
        room = max(limit - len(error) - 1, limit // 2)
        return cut_middle(body, room) + "\n" + cut_middle(error, limit - min(room, len(body)) - 1)


def _short_traceback(r: PythonResult) -> str:
    if r.timed_out or r.interrupted:
        return f"{r.ename}: {r.evalue}"
    return r.model_traceback or "".join(r.traceback).rstrip("\n") or f"{r.ename}: {r.evalue}"


class PythonTool(Tool):
    """`python(code)`: run code in `namespace` (persistent across calls), notebook style."""

    def __init__(
        self,
        namespace: dict[str, Any] | None = None,
        *,
        timeout_s: float | None = DEFAULT_TIMEOUT_S,
        capture_chars: int = DEFAULT_CAPTURE_CHARS,
        model_chars: int = DEFAULT_MODEL_CHARS,
        error_detail: Literal["traceback", "last_line"] = "traceback",
        empty_text: str = "(no output)",
        name: str = "python",
    ):
        self.namespace: dict[str, Any] = namespace if namespace is not None else {"__name__": "__main__"}
        self.timeout_s = timeout_s
        self.capture_chars = capture_chars
        self.model_chars = model_chars
        self.error_detail: Literal["traceback", "last_line"] = error_detail
        self.empty_text = empty_text
        self.execution_count = 0

        def python(code: str) -> PythonResult:
            """Run Python code in a persistent namespace (variables survive between calls) and return
            its printed output, the value of the last expression and any error.

            Args:
                code: Python source to execute; the value of a final expression is shown.
            """
            return self.run(code)

        super().__init__(python, name=name)

    def model_text(self, result: PythonResult) -> str:
        """What the model reads back for `result`, in this tool's style."""
        return result.to_model_text(
            self.model_chars, error_detail=self.error_detail, empty_text=self.empty_text
        )

    def run(self, code: str, *, timeout_s: float | None = None) -> PythonResult:
        """Execute `code`; every failure (syntax, exception, timeout, exit) is in the result."""
        self.execution_count += 1
        result = PythonResult(code=code, execution_count=self.execution_count)
        # Numbered per tool (one per conversation), like notebook cells; k2-nano trains on this format.
        filename = f"<k2nb-python-{self.execution_count}>"
        try:
            body, last = _compile(code, filename)
        except SyntaxError as exc:
            result.ename, result.evalue = type(exc).__name__, str(exc.msg)
            result.traceback = traceback.format_exception_only(type(exc), exc)
            return result
        # Register the source so tracebacks show the failing lines, like IPython's cells.
        linecache.cache[filename] = (len(code), None, code.splitlines(keepends=True), filename)
        ns = self.namespace
        show = last is not None and not code.rstrip().endswith(";")  # IPython's ';' hides the value

        def execute() -> str | None:
            exec(body, ns)
            if last is None:
                return None
            value = eval(last, ns)
            if value is None or not show:
                return None
            ns["_"] = value
            return repr(value)

        limit = self.timeout_s if timeout_s is None else timeout_s
        try:
            out = call_guarded(execute, timeout_s=limit, capture_chars=self.capture_chars, name="k2nb-python")
        except ToolInterrupted as stop:
            stop.result = _filled(result, stop.outcome, limit, filename)
            raise
        return _filled(result, out, limit, filename)


INTERRUPTED = "the run was stopped while this call ran"  # the evalue of an interrupted call


def _filled(result: PythonResult, out: CallOutcome, limit: float | None, filename: str) -> PythonResult:
    """`result` completed with what the guarded call gave."""
    result.stdout, result.stderr = out.stdout, out.stderr
    result.stdout_chars, result.stderr_chars = out.stdout_chars, out.stderr_chars
    result.duration_s = out.duration_s
    result.timed_out, result.abandoned = out.timed_out, out.abandoned
    result.interrupted = out.interrupted
    if out.interrupted:
        result.ename, result.evalue = "KeyboardInterrupt", INTERRUPTED
        result.traceback = [f"{result.ename}: {result.evalue}\n"]
    elif out.timed_out:
        result.ename = "TimeoutError"
        if out.abandoned:
            result.evalue = (
                f"the code ran past the {limit:g} s limit and could not be stopped (it is blocked in a "
                "C call); it was left running in the background"
            )
        else:
            result.evalue = f"the code ran past the {limit:g} s limit and was stopped"
        result.traceback = [f"{result.ename}: {result.evalue}\n"]
    elif out.exception is not None:
        exc = out.exception
        result.ename, result.evalue = type(exc).__name__, str(exc)
        result.traceback = format_user_traceback(exc)
        result.model_traceback = format_cell_traceback(exc, filename)
    else:
        result.value = out.value
    return result


def _compile(code: str, filename: str) -> tuple[Any, Any]:
    """The code as (statements, final expression or None), so the last value can be shown."""
    tree = ast.parse(code, filename=filename, mode="exec")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    body = compile(tree, filename, "exec")
    return body, (compile(last, filename, "eval") if last is not None else None)


def format_cell_traceback(exc: BaseException, filename: str) -> str:
    """The traceback restricted to the frames of the cell `filename`, chained exceptions left out."""
    te = traceback.TracebackException.from_exception(exc)
    te.stack = traceback.StackSummary.from_list([f for f in te.stack if f.filename == filename])
    te.__cause__ = te.__context__ = None
    return "".join(te.format()).rstrip("\n")


_OWN_FILES = frozenset({__file__, guard.__file__})  # the frames of the tool and its guarded call


def format_user_traceback(exc: BaseException) -> list[str]:
    """The traceback of `exc` without k2nb's own frames, as nbformat-style lines."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename in _OWN_FILES:
        tb = tb.tb_next
    return traceback.format_exception(type(exc), exc, tb)
