"""How the loop runs a tool call. The loop only knows the `Executor` protocol; `LocalExecutor` runs
calls in this process with a persistent namespace, and the notebook will bring an executor that runs
python calls as real IPython cells. Both resolve calls through `ToolRegistry`, so a wrong tool name
or bad arguments become the same observation, whatever runs the tool.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from k2nb.agent.guard import (
    DEFAULT_CAPTURE_CHARS,
    DEFAULT_TIMEOUT_S,
    CallOutcome,
    ToolInterrupted,
    call_guarded,
    cut_middle,
)
from k2nb.agent.python_tool import (
    DEFAULT_MODEL_CHARS,
    INTERRUPTED,
    PythonResult,
    PythonTool,
    format_user_traceback,
)
from k2nb.agent.tools import Tool, ToolDefinitionError, as_tool

ErrorKind = Literal[
    "unknown_tool", "invalid_json", "invalid_arguments", "tool_error", "timeout", "interrupted"
]


@dataclass(slots=True)
class ToolCallRequest:
    """One call as the model wrote it. `id` is the model's own (`functions.NAME:IDX`); the result
    goes back under it. `parsed` is the parser's JSON decoding of `arguments`, None if it failed."""

    id: str
    name: str
    arguments: str
    parsed: dict[str, Any] | None = None


@dataclass(slots=True)
class Observation:
    """The result of one call: `text` is what the model reads (capped), `data` the full record
    (for python: `PythonResult.to_dict()`; else the result, captured output, traceback)."""

    call_id: str
    name: str
    text: str
    ok: bool = True
    error_kind: ErrorKind | None = None
    error: str | None = None  # one sentence, for checks and views
    data: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "name": self.name,
            "text": self.text,
            "ok": self.ok,
            "error_kind": self.error_kind,
            "error": self.error,
            "data": self.data,
            "duration_s": self.duration_s,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Observation:
        return cls(**d)


@runtime_checkable
class Executor(Protocol):
    """Runs tool calls for one conversation. Calls arrive in the order the model wrote them."""

    def tool_schemas(self) -> list[dict[str, Any]]:
        """The OpenAI-style definitions rendered into the prompt."""
        ...

    def execute(self, call: ToolCallRequest) -> Observation:
        """Run one call. Never raises for anything the model or the tool did wrong; the stop button
        during the call sets the run's cancel event where the executor has it, else raises
        KeyboardInterrupt (`ToolInterrupted`, whose `observation` says what the call did)."""
        ...


def _error(call: ToolCallRequest, kind: ErrorKind, sentence: str) -> Observation:
    return Observation(call.id, call.name, f"error: {sentence}", ok=False, error_kind=kind, error=sentence)


class ToolRegistry:
    """Tools by name, and the checks every executor makes before running a call."""

    def __init__(self, tools: Iterable[Tool | Any] = ()):
        self.tools: dict[str, Tool] = {}
        for t in tools:
            self.add(t)

    def add(self, t: Tool | Any) -> Tool:
        tool = as_tool(t)
        if tool.name in self.tools and self.tools[tool.name] is not tool:
            raise ToolDefinitionError(f"two tools are named '{tool.name}'; give one of them another name")
        self.tools[tool.name] = tool
        return tool

    def schemas(self) -> list[dict[str, Any]]:
        return [t.schema for t in self.tools.values()]

    def resolve(self, call: ToolCallRequest) -> tuple[Tool, dict[str, Any]] | Observation:
        """(tool, arguments) ready to run, or the error observation telling the model what was wrong."""
        tool = self.tools.get(call.name)
        if tool is None:
            names = ", ".join(self.tools) or "none"
            return _error(
                call, "unknown_tool", f"there is no tool named '{call.name}'; the tools are: {names}"
            )
        args: Any = call.parsed
        if args is None:
            text = call.arguments.strip() or "{}"  # no arguments at all means an empty object
            try:
                args = json.loads(text)
            except json.JSONDecodeError as exc:
                return _error(
                    call,
                    "invalid_json",
                    f"the arguments of tool '{call.name}' are not valid JSON ({exc.msg} at char {exc.pos}); "
                    "send one JSON object",
                )
        why = tool.validate(args)
        if why is not None:
            return _error(call, "invalid_arguments", why)
        return tool, args


def render_result(value: Any) -> str:
    """A plain tool's return value as the text the model reads."""
    if isinstance(value, str):
        return value
    if value is None:
        return "(no output)"
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


class LocalExecutor:
    """Runs calls in this process: the `python` tool in a namespace that persists across calls,
    other tools as plain function calls, each with a timeout and captured output.

    `namespace` defaults to a fresh dict; pass the user's own (e.g. IPython's `user_ns`) to let the
    model work on their variables. `python=False` leaves the built-in python tool out.

    `cancel` is the run's cancel event (`ThinkOptions.cancel`): the stop button during a call sets
    it and the call's observation says it was interrupted, so the loop keeps it and ends the run as
    "cancelled". Without one the interrupt is raised (`ToolInterrupted`, carrying the observation).
    """

    def __init__(
        self,
        tools: Iterable[Tool | Any] = (),
        *,
        python: bool = True,
        namespace: dict[str, Any] | None = None,
        timeout_s: float | None = DEFAULT_TIMEOUT_S,
        model_chars: int = DEFAULT_MODEL_CHARS,
        capture_chars: int = DEFAULT_CAPTURE_CHARS,
        python_style: dict[str, Any] | None = None,
        cancel: threading.Event | None = None,
    ):
        self.python_style = dict(python_style or {})  # error_detail / empty_text of the python tool
        self.cancel = cancel
        self.timeout_s = timeout_s
        self.model_chars = model_chars
        self.capture_chars = capture_chars
        self.namespace: dict[str, Any] = namespace if namespace is not None else {"__name__": "__main__"}
        self._user_tools = list(tools)
        self._python = python
        self.registry = ToolRegistry()
        if python:
            self.registry.add(
                PythonTool(
                    self.namespace,
                    timeout_s=timeout_s,
                    capture_chars=capture_chars,
                    model_chars=model_chars,
                    **self.python_style,
                )
            )
        for t in self._user_tools:
            self.registry.add(t)

    def tool_schemas(self) -> list[dict[str, Any]]:
        return self.registry.schemas()

    def fork(self) -> LocalExecutor:
        """An executor for a parallel path: same tools, a shallow copy of the namespace, so a path
        rebinding a variable does not change what another path sees (mutating a shared object still
        does; copying user data deeply is neither cheap nor always possible)."""
        return LocalExecutor(
            self._user_tools,
            python=self._python,
            namespace=dict(self.namespace),
            timeout_s=self.timeout_s,
            model_chars=self.model_chars,
            capture_chars=self.capture_chars,
            python_style=self.python_style,
            cancel=self.cancel,
        )

    def execute(self, call: ToolCallRequest) -> Observation:
        resolved = self.registry.resolve(call)
        if isinstance(resolved, Observation):
            return resolved
        tool, args = resolved
        try:
            if isinstance(tool, PythonTool):
                result = tool.run(args["code"])
                return python_observation(call, result, tool.model_text(result))
            out = call_guarded(
                lambda: tool.invoke(args),
                timeout_s=self.timeout_s,
                capture_chars=self.capture_chars,
                name=call.name,
            )
        except ToolInterrupted as stop:
            if isinstance(tool, PythonTool):
                stop.observation = python_observation(call, stop.result, tool.model_text(stop.result))
            else:
                stop.observation = self._observe(call, stop.outcome)
            return interrupted_observation(stop, self.cancel)
        return self._observe(call, out)

    def _observe(self, call: ToolCallRequest, out: CallOutcome) -> Observation:
        """The observation of a plain (not python) tool's guarded call."""
        data: dict[str, Any] = {"stdout": out.stdout, "stderr": out.stderr}
        if out.interrupted:
            obs = _error(call, "interrupted", INTERRUPTED)
        elif out.timed_out:
            sentence = f"tool '{call.name}' ran past the {self.timeout_s:g} s limit and was stopped"
            obs = _error(call, "timeout", sentence)
        elif out.exception is not None:
            exc = out.exception
            data["traceback"] = format_user_traceback(exc)
            sentence = f"tool '{call.name}' raised {type(exc).__name__}: {exc}"
            obs = _error(call, "tool_error", sentence)
            obs.text = cut_middle(obs.text, self.model_chars)
        else:
            text = render_result(out.value)
            data["result"] = text
            if out.stdout:  # what the tool printed is part of its answer
                text = out.stdout.rstrip("\n") + "\n" + text
            obs = Observation(call.id, call.name, cut_middle(text, self.model_chars))
        obs.data = data
        obs.duration_s = out.duration_s
        return obs


def interrupted_observation(stop: ToolInterrupted, cancel: threading.Event | None) -> Observation:
    """The observation of a call the stop button ended, to return once the run's `cancel` event is
    set (the loop then ends the run as "cancelled"); without an event the interrupt goes on up."""
    if cancel is None:
        raise stop
    cancel.set()
    return stop.observation


def python_observation(call: ToolCallRequest, result: PythonResult, text: str | None = None) -> Observation:
    """The observation of one python run (shared with executors that run code elsewhere); `text`
    is what the model reads, by default `result.to_model_text()`."""
    kind: ErrorKind | None = None
    sentence = None
    if result.interrupted:
        kind, sentence = "interrupted", INTERRUPTED
    elif result.timed_out:
        kind, sentence = "timeout", f"{result.ename}: {result.evalue}"
    elif not result.ok:
        kind, sentence = "tool_error", f"{result.ename}: {result.evalue}"
    return Observation(
        call.id,
        call.name,
        result.to_model_text() if text is None else text,
        ok=result.ok,
        error_kind=kind,
        error=sentence,
        data=result.to_dict(),
        duration_s=result.duration_s,
    )
