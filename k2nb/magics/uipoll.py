"""Processing the kernel's incoming comm messages while a cell is busy.

While `%%k2think` runs, the kernel does not read its shell channel, so widget clicks and comm
replies wait until the cell ends. k2nb needs them mid-cell for the Run / Skip buttons of
`--approve ask` and for the front-end handshake.

* ipykernel 7 (a shell channel thread forwards the main shell's messages over an inproc socket):
  `_InprocDrain` reads that socket from inside the cell, handles comm messages at once and hands
  every other message (an execute_request of the next cell, ...) back to the kernel's event loop in
  arrival order, where it waits for the running cell like it would have anyway. jupyter-ui-poll
  1.1 does not work here: it calls `kernel.do_one_iteration()`, which ipykernel 7 no longer has.
* ipykernel 6 (`do_one_iteration` exists): jupyter-ui-poll.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_COMM_TYPES = ("comm_open", "comm_msg", "comm_close")


class _InprocDrain:
    """Reads the main shell's inproc socket of ipykernel >= 7 (main thread only)."""

    def __init__(self, kernel: Any):
        import zmq

        self.zmq = zmq
        self.kernel = kernel
        pair = kernel.shell_channel_thread.manager.get_shell_channel_to_subshell_pair(None)
        self.socket = pair.to_socket
        self.io_loop = kernel.io_loop

    def poll(self, n: int = 10) -> int:
        """Handle up to `n` waiting messages; returns how many were read."""
        kernel, session = self.kernel, self.kernel.session
        done = 0
        while done < n:
            try:
                frames = self.socket.recv_multipart(self.zmq.NOBLOCK, copy=False)
            except self.zmq.Again:
                break
            done += 1
            # Peek at the header without Session.deserialize: that records the signature, and the
            # kernel would then reject a deferred message as a replay ("Duplicate Signature").
            try:
                idents, rest = session.feed_identities(frames, copy=False)
                msg_type = json.loads(rest[1].bytes).get("msg_type")
            except Exception:  # noqa: BLE001 - let the kernel itself report a malformed message
                msg_type = None
            handler = kernel.shell_handlers.get(msg_type) if msg_type in _COMM_TYPES else None
            if handler is None:
                self._defer(frames)
                continue
            try:
                msg = session.deserialize(rest, content=True, copy=False)
            except Exception:  # noqa: BLE001 - a bad signature: drop it, as the kernel would
                continue
            parent = kernel.get_parent("shell")
            ident = kernel._get_shell_context_var(kernel._shell_parent_ident)
            kernel.set_parent(idents, msg, channel="shell")
            try:
                handler(kernel.shell_stream, idents, msg)
            except Exception:  # noqa: BLE001 - a failing comm handler must not fail the run
                kernel.log.error("k2nb: comm handler failed", exc_info=True)
            finally:
                kernel.set_parent(ident, parent, channel="shell")
        return done

    def _defer(self, frames: list[Any]) -> None:
        # shell_main waits for the lock the running cell holds, so these run after it, in order.
        self.io_loop.add_callback(self.kernel.shell_main, None, frames)


def _kernel(shell: Any) -> Any:
    return getattr(shell, "kernel", None)


def available(shell: Any) -> bool:
    """True in an IPython kernel whose incoming messages can be processed from a busy cell."""
    kernel = _kernel(shell)
    if kernel is None or threading.current_thread() is not threading.main_thread():
        return False
    if getattr(kernel, "shell_channel_thread", None) is not None:
        return True
    if hasattr(kernel, "do_one_iteration"):
        try:
            import jupyter_ui_poll  # noqa: F401
        except ImportError:
            return False
        return True
    return False


def poll_until(
    shell: Any, ready: Callable[[], T | None], timeout_s: float | None = None, interval_s: float = 0.02
) -> T | None:
    """Process comm messages until `ready()` returns something other than None, or `timeout_s`
    passes (None: wait for ever; the stop button still raises KeyboardInterrupt here). Without a
    kernel that allows it only `ready()` is checked, once."""
    value = ready()
    if value is not None or not available(shell):
        return value
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    kernel = _kernel(shell)
    if getattr(kernel, "shell_channel_thread", None) is not None:
        drain = _InprocDrain(kernel)
        while True:
            drain.poll(10)
            value = ready()
            if value is not None:
                return value
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(interval_s)
    from jupyter_ui_poll import ui_events

    with ui_events() as poll:
        while True:
            poll(10)
            value = ready()
            if value is not None:
                return value
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(interval_s)
