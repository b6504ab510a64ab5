"""Where a run's tool calls appear: as real cells inserted by the k2nb JupyterLab extension, or inline.

The kernel is busy for the whole `%%k2think` run, so it cannot ask the front end anything mid-run; but
comm messages from the kernel travel on IOPub and are applied at once. `CellChannel` is the kernel
side of the comm target ``k2nb.cells`` (front end in ``labextension/src/index.js``):

* handshake — the extension opens the comm with ``{op: "hello", client}`` whenever a notebook
  connects to a kernel; when k2nb is loaded after that, the kernel opens the comm itself with
  ``{op: "hello"}`` and the extension answers. A front end without the extension (nbclient, VS Code,
  classic Notebook) never answers, and the run falls back to inline rendering.
* ``begin`` / ``insert`` / ``update`` — a run names its anchor (the id of the running `%%k2think` cell,
  which JupyterLab sends as ``cellId`` in the execute_request metadata) and every cell it inserts,
  so inserts land in order below the right cell wherever the user is meanwhile.
"""

from __future__ import annotations

import html
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol

TARGET = "k2nb.cells"
PROTOCOL_VERSION = 1

Output = dict[str, Any]  # one nbformat v4 output


def parent_header(shell: Any) -> dict[str, Any]:
    """The execute_request being run (empty outside a kernel)."""
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return {}
    try:
        parent = kernel.get_parent("shell") if hasattr(kernel, "get_parent") else kernel._parent_header
    except TypeError:  # ipykernel < 6.? takes no channel
        parent = kernel.get_parent()
    return parent or {}


def current_cell_id(shell: Any) -> str | None:
    """Id of the running cell, as JupyterLab / Notebook 7 send it (`metadata.cellId`); else None."""
    meta = parent_header(shell).get("metadata") or {}
    cell_id = meta.get("cellId")
    return cell_id if isinstance(cell_id, str) and cell_id else None


class CellChannel:
    """Kernel side of the ``k2nb.cells`` comm: which front ends can insert cells, and sending to them.

    One per kernel (see `channel()`). Comm handlers may run on a polling thread (jupyter-ui-poll), so
    the client table is guarded by a lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}  # client id -> comm that front end listens on
        self._info: dict[str, dict[str, Any]] = {}  # client id -> its hello (version, app)
        self._registered = False
        self._hello_sent_at: float | None = None
        self.acks: dict[int, dict[str, Any]] = {}
        self._seq = itertools.count(1)
        self.changed = threading.Event()  # set whenever a front end says hello

    # -- handshake ------------------------------------------------------------------------------

    def register(self) -> bool:
        """Register the comm target and greet any front end already connected. False outside a kernel."""
        if not _in_kernel():
            return False
        from comm import create_comm, get_comm_manager

        manager = get_comm_manager()
        if not self._registered:
            manager.register_target(TARGET, self._on_open)
            self._registered = True
        try:
            comm = create_comm(target_name=TARGET, data={"op": "hello", "protocol": PROTOCOL_VERSION})
        except Exception:  # noqa: BLE001 - no front end to talk to is the normal case outside Jupyter
            return self._registered
        comm.on_msg(lambda msg, c=comm: self._on_msg(c, msg))
        self._hello_sent_at = time.monotonic()
        return True

    @property
    def registered(self) -> bool:
        return self._registered

    def _on_open(self, comm: Any, msg: dict[str, Any]) -> None:
        comm.on_msg(lambda m, c=comm: self._on_msg(c, m))
        self._on_data(comm, (msg.get("content") or {}).get("data") or {})

    def _on_msg(self, comm: Any, msg: dict[str, Any]) -> None:
        self._on_data(comm, (msg.get("content") or {}).get("data") or {})

    def _on_data(self, comm: Any, data: dict[str, Any]) -> None:
        op = data.get("op")
        if op == "hello" and isinstance(data.get("client"), str):
            client = data["client"]
            with self._lock:
                self._clients[client] = comm
                self._info[client] = {k: v for k, v in data.items() if k != "op"}
            comm.on_close(lambda _msg, c=client, cm=comm: self._forget(c, cm))
            self.changed.set()
        elif op == "ack" and isinstance(data.get("seq"), int):
            self.acks[data["seq"]] = data

    def _forget(self, client: str, comm: Any) -> None:
        with self._lock:
            if self._clients.get(client) is comm:
                del self._clients[client]
                self._info.pop(client, None)

    @property
    def connected(self) -> bool:
        """True when at least one front end with the extension listens."""
        with self._lock:
            return bool(self._clients)

    @property
    def clients(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self._info)

    def wait(self, timeout_s: float, poll: Callable[[], None] | None = None) -> bool:
        """Wait up to `timeout_s` for a front end's hello. The kernel is busy running a cell, so the
        answer only arrives if `poll` processes the kernel's incoming messages (jupyter-ui-poll)."""
        deadline = time.monotonic() + timeout_s
        while not self.connected and time.monotonic() < deadline:
            if poll is not None:
                poll()
            self.changed.wait(0.02)
        return self.connected

    # -- sending --------------------------------------------------------------------------------

    def send(self, data: dict[str, Any]) -> int:
        """Send to every listening front end (each applies only what concerns its notebooks)."""
        seq = next(self._seq)
        data = {**data, "seq": seq}
        with self._lock:
            comms = list({id(c): c for c in self._clients.values()}.values())
        for comm in comms:
            try:
                comm.send(data)
            except Exception:  # noqa: BLE001 - a closed front end must not stop the run
                pass
        return seq


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


_CHANNEL: CellChannel | None = None


def channel() -> CellChannel:
    """The kernel's one cell channel."""
    global _CHANNEL
    if _CHANNEL is None:
        _CHANNEL = CellChannel()
    return _CHANNEL


# ---------------------------------------------------------------------------------------------
# where a run's tool cells go


def new_cell_id() -> str:
    """An nbformat cell id (1-64 chars of [a-zA-Z0-9-_])."""
    return "k2nb-" + uuid.uuid4().hex[:16]


class CellSink(Protocol):
    """Receives a run's tool cells: `start` when a call begins (source known), `outputs` while it runs
    (may be throttled or ignored), `finish` with its final outputs and execution count."""

    def start(self, source: str, metadata: dict[str, Any]) -> str: ...

    def outputs(self, cell_id: str, outputs: Sequence[Output]) -> None: ...

    def finish(
        self, cell_id: str, outputs: Sequence[Output], execution_count: int | None, metadata: dict[str, Any]
    ) -> None: ...


class FrontendCells:
    """Inserts real cells below `anchor` through the extension, in call order, while the run goes on."""

    mode = "cells"

    def __init__(self, chan: CellChannel, anchor: str, *, replace: bool = True, min_interval_s: float = 0.25):
        self.chan = chan
        self.anchor = anchor
        self.run = uuid.uuid4().hex[:12]
        self.min_interval_s = min_interval_s
        self._last_update: dict[str, float] = {}
        self.cell_ids: list[str] = []
        chan.send({"op": "begin", "anchor": anchor, "run": self.run, "replace": replace})

    def start(self, source: str, metadata: dict[str, Any]) -> str:
        cell_id = new_cell_id()
        self.cell_ids.append(cell_id)
        cell = {"id": cell_id, "source": source, "metadata": metadata, "outputs": [], "execution_count": None}
        self.chan.send({"op": "insert", "anchor": self.anchor, "run": self.run, "cell": cell})
        return cell_id

    def outputs(self, cell_id: str, outputs: Sequence[Output]) -> None:
        now = time.monotonic()
        if now - self._last_update.get(cell_id, 0.0) < self.min_interval_s:
            return  # throttled: the final state always comes with finish()
        self._last_update[cell_id] = now
        self.chan.send({"op": "update", "cell_id": cell_id, "outputs": list(outputs)})

    def finish(
        self, cell_id: str, outputs: Sequence[Output], execution_count: int | None, metadata: dict[str, Any]
    ) -> None:
        self.chan.send(
            {
                "op": "update",
                "cell_id": cell_id,
                "outputs": list(outputs),
                "execution_count": execution_count,
                "metadata": {"k2nb": metadata.get("k2nb", {})},
            }
        )


_INLINE_NOTICE_SHOWN = False

INLINE_NOTICE = (
    "k2nb: this front end cannot insert cells (no JupyterLab / Notebook 7 with the k2nb extension "
    "answered), so tool calls are shown inline below; result.to_notebook() or --export FILE.ipynb "
    "writes them as real cells."
)


class InlineCells:
    """Renders each call inline in the `%%k2think` cell's output: its code, then its outputs."""

    mode = "inline"

    def __init__(self, publish: Callable[..., None], *, notice: bool = True):
        self._publish = publish  # (data, metadata) -> None, the run cell's display publisher
        self._sources: dict[str, str] = {}
        global _INLINE_NOTICE_SHOWN
        if notice and not _INLINE_NOTICE_SHOWN:
            _INLINE_NOTICE_SHOWN = True
            self._publish({"text/plain": INLINE_NOTICE}, {})

    def start(self, source: str, metadata: dict[str, Any]) -> str:
        cell_id = new_cell_id()
        self._sources[cell_id] = source
        return cell_id

    def outputs(self, cell_id: str, outputs: Sequence[Output]) -> None:
        return None  # inline, a call is shown once it has finished

    def finish(
        self, cell_id: str, outputs: Sequence[Output], execution_count: int | None, metadata: dict[str, Any]
    ) -> None:
        source = self._sources.pop(cell_id, "")
        prompt = f"[{execution_count}]" if execution_count is not None else "[ ]"
        self._publish(
            {
                "text/plain": f"tool cell In {prompt}:\n{source}",
                "text/html": (
                    '<div class="k2nb-inline-cell" style="border-left:3px solid #7c4dff;padding-left:6px">'
                    f'<div style="color:#7c4dff;font-size:85%">tool cell In {prompt}:</div>'
                    f"<pre style='margin:2px 0'>{html.escape(source)}</pre></div>"
                ),
            },
            {},
        )
        for out in outputs:
            data = output_as_display(out)
            if data:
                self._publish(data, out.get("metadata") or {})


def output_as_display(out: Output) -> dict[str, Any]:
    """An nbformat output as a display mime bundle (for showing it again somewhere else)."""
    kind = out.get("output_type")
    if kind == "stream":
        return {"text/plain": out.get("text", "")}
    if kind in ("display_data", "execute_result"):
        return dict(out.get("data") or {})
    if kind == "error":
        return {"text/plain": "\n".join(out.get("traceback") or [f"{out.get('ename')}: {out.get('evalue')}"])}
    return {}
