"""Wiring one run to the notebook: choose where its tool cells go, build its executor.

`open_sink` decides between real cells (the JupyterLab extension answered the handshake and the
running cell has an id) and the inline rendering (nbclient, VS Code, classic Notebook, terminal).
`run_tool_calls` runs code strings through that same path without a model: it is what the browser
test drives, and a way to check a setup ("do cells appear below this one?").
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from k2nb.agent.executor import Observation, ToolCallRequest
from k2nb.magics import uipoll
from k2nb.magics.approval import Approval, ApprovalMode
from k2nb.magics.capture import running_cell_count
from k2nb.magics.cells import CellSink, FrontendCells, InlineCells, channel, current_cell_id
from k2nb.magics.executor import NotebookExecutor

HANDSHAKE_WAIT_S = 1.5
_waited_for_frontend = False  # wait once per kernel; after that a silent front end is known


def publisher(shell: Any):  # noqa: ANN201 - a (data, metadata) -> None callable
    """Displays into the running cell's own output area."""

    def publish(data: dict[str, Any], metadata: dict[str, Any]) -> None:
        shell.display_pub.publish(data=data, metadata=metadata)

    return publish


def open_sink(
    shell: Any, *, cells: bool = True, replace: bool = True, wait_s: float = HANDSHAKE_WAIT_S
) -> CellSink:
    """Real cells below the running cell when a front end with the extension listens, else inline."""
    global _waited_for_frontend
    anchor = current_cell_id(shell)
    chan = channel()
    if cells and anchor is not None and chan.registered:
        if not chan.connected and not _waited_for_frontend:
            # The extension's hello may be queued behind this very execute_request (Run All right
            # after %load_ext): process the kernel's incoming messages for a moment.
            _waited_for_frontend = True
            chan.register()  # greet again in case the first hello went out before the page loaded
            uipoll.poll_until(shell, lambda: True if chan.connected else None, timeout_s=wait_s)
        if chan.connected:
            return FrontendCells(chan, anchor, replace=replace)
    return InlineCells(publisher(shell))


def notebook_executor(
    shell: Any,
    *,
    tools: Sequence[Any] = (),
    approve: ApprovalMode = "auto",
    cells: bool = True,
    cancel: threading.Event | None = None,
    timeout_s: float | None = None,
    **kwargs: Any,
) -> NotebookExecutor:
    """The executor of one `%%k2think` run in this cell."""
    sink = open_sink(shell, cells=cells)
    meta = {"anchor": current_cell_id(shell)}
    if isinstance(sink, FrontendCells):
        meta["run"] = sink.run
    extra = {} if timeout_s is None else {"timeout_s": timeout_s}
    return NotebookExecutor(
        shell,
        tools,
        sink=sink,
        approval=Approval(approve, shell),
        outer_count=running_cell_count(shell),
        cancel=cancel,
        run_meta=meta,
        **extra,
        **kwargs,
    )


def run_tool_calls(
    codes: Sequence[str],
    *,
    shell: Any = None,
    approve: ApprovalMode = "auto",
    cells: bool = True,
    timeout_s: float | None = None,
) -> list[Observation]:
    """Run each code string as if the model had called `python` with it: as real cells below this
    cell (or inline), in order; returns the observations the model would read."""
    if shell is None:
        from IPython import get_ipython

        shell = get_ipython()
    ex = notebook_executor(shell, approve=approve, cells=cells, timeout_s=timeout_s)
    out = []
    try:
        for i, code in enumerate(codes):
            out.append(ex.execute(ToolCallRequest(f"functions.python:{i}", "python", "", {"code": code})))
    finally:
        ex.close()
    return out
