"""A real IPython kernel driven over ZMQ, and a fake front end for the ``k2nb.cells`` comm.

Used by tests/test_kernel_*.py: they check what the kernel side of the cell channel sends, as
JupyterLab would receive it, without a browser (tests/test_lab_browser.py covers the browser).
"""

from __future__ import annotations

import os
import queue
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.manager import KernelManager


@dataclass
class Execution:
    msg_id: str
    reply: dict[str, Any] | None = None
    iopub: list[dict[str, Any]] = field(default_factory=list)  # messages whose parent is this request

    def outputs(self) -> list[dict[str, Any]]:
        kinds = ("stream", "display_data", "execute_result", "error", "update_display_data")
        return [m for m in self.iopub if m["msg_type"] in kinds]

    def text(self) -> str:
        parts = []
        for m in self.outputs():
            c = m["content"]
            if m["msg_type"] == "stream":
                parts.append(c["text"])
            elif m["msg_type"] == "error":
                parts.append("\n".join(c["traceback"]))
            else:
                parts.append(str(c.get("data", {}).get("text/plain", "")))
        return "".join(parts)


class KernelSession:
    """One kernel; `execute` sends an execute_request (optionally with JupyterLab's cellId) and
    collects its IOPub messages until idle; comm messages of any parent are kept in `comm_msgs`."""

    def __init__(
        self,
        kernel_name: str = "python3",
        extra_env: dict[str, str] | None = None,
        argv: list[str] | None = None,
    ):
        self.km = KernelManager(kernel_name=kernel_name)
        if argv is not None:
            self.km.kernel_spec.argv = argv
        self.km.start_kernel(env={**os.environ, **(extra_env or {})})
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self.comm_msgs: list[dict[str, Any]] = []  # comm_open / comm_msg / comm_close from the kernel
        self._stash: queue.Queue = queue.Queue()

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)

    def send_shell(
        self, msg_type: str, content: dict[str, Any], metadata: dict[str, Any] | None = None
    ) -> str:
        msg = self.kc.session.msg(msg_type, content)
        if metadata:
            msg["metadata"].update(metadata)
        self.kc.shell_channel.send(msg)
        return msg["header"]["msg_id"]

    def execute(
        self,
        code: str,
        *,
        cell_id: str | None = None,
        timeout: float = 60,
        on_iopub: Any = None,
        wait: bool = True,
    ) -> Execution:
        meta = {"cellId": cell_id} if cell_id else None
        msg_id = self.send_shell(
            "execute_request",
            {
                "code": code,
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            },
            meta,
        )
        ex = Execution(msg_id)
        if wait:
            self.collect(ex, timeout=timeout, on_iopub=on_iopub)
        return ex

    def collect(self, ex: Execution, timeout: float = 60, on_iopub: Any = None) -> Execution:
        deadline = time.monotonic() + timeout
        idle = False
        while not idle:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no idle for {ex.msg_id} within {timeout} s")
            try:
                msg = self.kc.get_iopub_msg(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            if msg["msg_type"].startswith("comm_"):
                self.comm_msgs.append(msg)
            if on_iopub is not None:
                on_iopub(msg)
            if msg["parent_header"].get("msg_id") != ex.msg_id:
                continue
            ex.iopub.append(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                idle = True
        while ex.reply is None:
            reply = self.kc.get_shell_msg(timeout=max(deadline - time.monotonic(), 1))
            if reply["parent_header"].get("msg_id") == ex.msg_id:
                ex.reply = reply
        return ex

    def wait_for_text(self, ex: Execution, text: str, timeout: float = 60) -> None:
        """Read IOPub until the (still running) execution's outputs contain `text`."""
        deadline = time.monotonic() + timeout
        while text not in ex.text():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} did not appear; got {ex.text()[-500:]!r}")
            try:
                msg = self.kc.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                continue
            if msg["msg_type"].startswith("comm_"):
                self.comm_msgs.append(msg)
            if msg["parent_header"].get("msg_id") == ex.msg_id:
                ex.iopub.append(msg)

    def drain(self, seconds: float = 0.3) -> None:
        """Collect comm messages that arrive outside an execution."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                msg = self.kc.get_iopub_msg(timeout=0.05)
            except queue.Empty:
                continue
            if msg["msg_type"].startswith("comm_"):
                self.comm_msgs.append(msg)


class FakeFrontend:
    """What the k2nb JupyterLab extension does on the wire: hello, then apply begin/insert/update
    to a list of cells."""

    def __init__(self, session: KernelSession, client: str | None = None):
        self.s = session
        self.client = client or uuid.uuid4().hex[:8]
        self.comm_id: str | None = None
        self.cells: list[dict[str, Any]] = []  # cells below the anchor, in notebook order
        self.ops: list[dict[str, Any]] = []

    def open(self) -> None:
        """Front-end-initiated hello (as on a kernel connection)."""
        self.comm_id = uuid.uuid4().hex
        self.s.send_shell(
            "comm_open",
            {
                "comm_id": self.comm_id,
                "target_name": "k2nb.cells",
                "data": {"op": "hello", "client": self.client, "version": "test"},
            },
        )

    def answer_kernel_hello(self) -> bool:
        """Answer a kernel-initiated hello (comm_open from the kernel), like the extension's target."""
        for m in self.s.comm_msgs:
            if m["msg_type"] == "comm_open" and m["content"]["target_name"] == "k2nb.cells":
                self.comm_id = m["content"]["comm_id"]
        if self.comm_id is None:
            return False
        self.s.send_shell(
            "comm_msg",
            {"comm_id": self.comm_id, "data": {"op": "hello", "client": self.client, "version": "test"}},
        )
        return True

    def apply(self) -> list[dict[str, Any]]:
        """Apply every op received so far on our comm; returns the cells."""
        for m in self.s.comm_msgs:
            if m["msg_type"] != "comm_msg" or m["content"]["comm_id"] != self.comm_id:
                continue
            data = m["content"]["data"]
            if data in self.ops:
                continue
            self.ops.append(data)
            if data["op"] == "insert":
                self.cells.append(dict(data["cell"]))
            elif data["op"] == "update":
                for c in self.cells:
                    if c["id"] == data["cell_id"]:
                        for k in ("outputs", "execution_count", "metadata"):
                            if k in data:
                                c[k] = data[k]
        return self.cells
