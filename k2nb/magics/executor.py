"""`NotebookExecutor`: the agent's `Executor` for a notebook — `python` calls run as real IPython cells.

Each call runs through `shell.run_cell` in the user's namespace (see `capture.run_tool_cell`), gets
its own execution count, and its nbformat outputs go two ways: to a `CellSink` (a real cell inserted
below the `%%k2think` cell by the JupyterLab extension, or an inline rendering) and, as the same
`PythonResult` text the agent's own python tool produces, back to the model. Other tools run like
in `LocalExecutor`. A raising cell shows its traceback in its own cell and the run goes on; the stop
button in a tool cell ends the whole run (the `cancel` event, or else a KeyboardInterrupt raised on),
not just the cell, even where the cell's code swallowed the KeyboardInterrupt.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any

from k2nb.agent.executor import (
    LocalExecutor,
    Observation,
    ToolCallRequest,
    ToolRegistry,
    interrupted_observation,
    python_observation,
)
from k2nb.agent.guard import DEFAULT_CAPTURE_CHARS, DEFAULT_TIMEOUT_S, ToolInterrupted
from k2nb.agent.python_tool import DEFAULT_MODEL_CHARS, PythonResult, PythonTool
from k2nb.agent.tools import Tool
from k2nb.magics.approval import Approval
from k2nb.magics.capture import (
    CellRun,
    OutputRecorder,
    close_tool_cells,
    run_tool_cell,
    running_cell_count,
    running_cell_input,
)
from k2nb.magics.cells import CellSink, Output

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


class NotebookExecutor:
    """Runs a `%%k2think` run's tool calls in the notebook's kernel.

    `sink` receives each python call as a cell (None: run without showing cells). `outer_count`
    is the running `%%k2think` cell's execution count (tool cells are numbered after it).
    `node_of(call_id)` may map a call to its trajectory node id for the cell's metadata.
    """

    def __init__(
        self,
        shell: Any,
        tools: Iterable[Tool | Any] = (),
        *,
        sink: CellSink | None = None,
        approval: Approval | None = None,
        timeout_s: float | None = DEFAULT_TIMEOUT_S,
        model_chars: int = DEFAULT_MODEL_CHARS,
        capture_chars: int = DEFAULT_CAPTURE_CHARS,
        python_style: dict[str, Any] | None = None,
        outer_count: int | None = None,
        cancel: threading.Event | None = None,
        run_meta: dict[str, Any] | None = None,
    ):
        self.shell = shell
        self.sink = sink
        self.approval = approval or Approval("auto", shell)
        self.timeout_s = timeout_s
        # Built inside the running cell, so its count is the one tool cells must be numbered after.
        self.outer_count = outer_count if outer_count is not None else running_cell_count(shell)
        self.outer_input = running_cell_input(shell)  # re-recorded after the tool cells (close)
        self.cancel = cancel
        self.capture_chars = capture_chars
        self.run_meta = dict(run_meta or {})  # goes into every cell's metadata.k2nb (anchor, run, ...)
        self.cells: list[dict[str, Any]] = []  # every tool cell: id, source, outputs, count, call id
        self._user_tools = list(tools)
        # The python tool object gives the schema and the model-text style; its run() is not used.
        self.python = PythonTool(
            shell.user_ns,
            timeout_s=timeout_s,
            capture_chars=capture_chars,
            model_chars=model_chars,
            **(python_style or {}),
        )
        self.registry = ToolRegistry()
        if self.approval.tools_enabled:
            self.registry.add(self.python)
            for t in self._user_tools:
                self.registry.add(t)
        self._others = LocalExecutor(
            self._user_tools,
            python=False,
            namespace=shell.user_ns,
            timeout_s=timeout_s,
            model_chars=model_chars,
            capture_chars=capture_chars,
            cancel=cancel,
        )

    def tool_schemas(self) -> list[dict[str, Any]]:
        return self.registry.schemas()

    def execute(self, call: ToolCallRequest) -> Observation:
        if self.cancel is not None and self.cancel.is_set():
            return Observation(
                call.id,
                call.name,
                "error: the run was stopped",
                ok=False,
                error_kind="tool_error",
                error="the run was stopped before this call",
            )
        resolved = self.registry.resolve(call)
        if isinstance(resolved, Observation):
            return resolved
        tool, args = resolved
        code = args.get("code", "") if tool is self.python else None
        shown = code if code is not None else f"{call.name}({call.arguments})"
        try:
            decision = self.approval.decide(call.name, shown)
        except KeyboardInterrupt:  # the stop button while waiting for Run / Skip
            if self.cancel is None:
                raise
            self.cancel.set()
            decision = "skip"
        if decision == "skip":
            sentence = "the user chose not to run this call"
            return Observation(
                call.id,
                call.name,
                f"error: {sentence}",
                ok=False,
                error_kind="tool_error",
                error=sentence,
                data={"skipped": True},
            )
        if tool is not self.python:
            return self._others.execute(call)
        return self._run_python(call, code or "")

    # -- python calls as cells --------------------------------------------------------------------

    def close(self) -> None:
        """The run is over: the outer cell's input is recorded under its output's number (see
        `close_tool_cells`). Call once, after the last tool cell."""
        if self.cells:
            close_tool_cells(self.shell, self.outer_count, self.outer_input)

    def _metadata(self, call: ToolCallRequest) -> dict[str, Any]:
        return {"k2nb": {**self.run_meta, "call_id": call.id, "tool": call.name}}

    def _run_python(self, call: ToolCallRequest, code: str) -> Observation:
        meta = self._metadata(call)
        sink = self.sink
        cell_id = sink.start(code, meta) if sink is not None else None

        def live(recorder: OutputRecorder) -> None:
            if sink is not None and cell_id is not None:
                sink.outputs(cell_id, recorder.snapshot())

        run = run_tool_cell(
            self.shell,
            code,
            timeout_s=self.timeout_s,
            on_change=live,
            capture_chars=self.capture_chars,
            outer_count=self.outer_count,
        )
        meta["k2nb"]["execution_count"] = run.execution_count
        meta["k2nb"]["ok"] = run.ok
        if sink is not None and cell_id is not None:
            sink.finish(cell_id, run.outputs, run.execution_count, meta)
        self.cells.append(
            {
                "id": cell_id,
                "source": code,
                "outputs": run.outputs,
                "execution_count": run.execution_count,
                "metadata": meta,
            }
        )
        result = python_result(code, run)
        obs = python_observation(call, result, self.python.model_text(result))
        obs.data["cell_id"] = cell_id
        obs.data["outputs"] = run.outputs
        if run.interrupted:  # the stop button was meant for the run, not for this one cell
            return interrupted_observation(ToolInterrupted(result=result, observation=obs), self.cancel)
        return obs


def python_result(code: str, run: CellRun) -> PythonResult:
    """The agent's `PythonResult` of a cell run: text streams, the last value's text, the error."""
    stdout = "".join(o["text"] for o in run.outputs if o["output_type"] == "stream" and o["name"] == "stdout")
    stderr = "".join(o["text"] for o in run.outputs if o["output_type"] == "stream" and o["name"] == "stderr")
    value = None
    shown: list[str] = []
    for o in run.outputs:
        if o["output_type"] == "execute_result":
            value = _plain(o)
        elif o["output_type"] == "display_data":
            shown.append(_plain(o))
    if shown:  # displays (plots, tables) are part of what the model observes, as their text
        stdout += "".join(s if s.endswith("\n") else s + "\n" for s in shown)
    # IPython's coloured traceback, as plain lines; its rule of dashes is noise for the model
    plain = (strip_ansi(line) for line in run.traceback)
    traceback = [ln if ln.endswith("\n") else ln + "\n" for ln in plain if ln.strip("-\n ")]
    return PythonResult(
        code=code,
        stdout=stdout,
        stderr=stderr,
        value=value,
        ename=run.ename,
        evalue=run.evalue,
        traceback=traceback,
        timed_out=run.timed_out,
        interrupted=run.interrupted,
        stdout_chars=len(stdout),
        stderr_chars=len(stderr),
        duration_s=run.duration_s,
        execution_count=run.execution_count,
    )


def _plain(out: Output) -> str:
    data = out.get("data") or {}
    text = data.get("text/plain")
    if isinstance(text, list):
        text = "".join(text)
    if text is None:
        kinds = ", ".join(sorted(data)) or "nothing"
        return f"<display: {kinds}>"
    return str(text)
