"""A guarded call: a function run in a worker thread with its own output capture, a time limit and
the stop button — what the python tool and the notebook's tool cells share.

Why a worker thread and not a subprocess: the namespace must be the caller's own dict (in Jupyter,
the user's variables), and a subprocess would have to pickle it both ways. The price is that a
thread cannot be killed: a timeout is delivered by injecting an exception into the worker with
`PyThreadState_SetAsyncExc`, which stops any code that executes Python bytecode within
milliseconds. Code blocked inside one C call only sees the exception when the call returns; after a
grace period the worker is abandoned (it is a daemon thread).

Output is captured per thread: a `StreamRouter` on sys.stdout/sys.stderr (installed once per stream
and kept for the life of the process, so a thread printing through it never sees it freed) sends
the worker's writes to its own buffer, everyone else's to the real stream. The stop button
(KeyboardInterrupt in the calling thread) stops the worker and raises `ToolInterrupted`.
"""

from __future__ import annotations

import ctypes
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_CAPTURE_CHARS = 200_000  # per stream per call, kept in the trajectory
STOP_GRACE_S = 0.5  # how long the stop button waits for a worker to stop before abandoning it


def cut_middle(text: str, limit: int) -> str:
    """`text` if it fits in `limit` chars, else its head and tail around a '[... N chars cut ...]' note."""
    if limit <= 0 or len(text) <= limit:
        return text
    keep = max(limit - 40, 2)  # room for the note itself
    head = keep * 2 // 3  # the head usually says what happened, the tail how it ended
    tail = keep - head
    cut = len(text) - head - tail
    return f"{text[:head]}\n[... {cut} chars cut ...]\n{text[len(text) - tail :]}"


class CappedText:
    """A text sink that keeps the first and last `limit // 2` chars and counts the rest."""

    def __init__(self, limit: int = DEFAULT_CAPTURE_CHARS):
        self.head_limit = limit // 2
        self.tail_limit = limit - self.head_limit
        self._head: list[str] = []
        self._head_len = 0
        self._tail: list[str] = []
        self._tail_len = 0
        self.total = 0  # chars written, including those dropped

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        n = len(s)
        self.total += n
        room = self.head_limit - self._head_len
        if room > 0:
            self._head.append(s[:room])
            self._head_len += min(room, n)
            s = s[room:]
        if s and self.tail_limit > 0:
            if len(s) >= self.tail_limit:
                self._tail, self._tail_len = [s[-self.tail_limit :]], self.tail_limit
            else:
                self._tail.append(s)
                self._tail_len += len(s)
                if self._tail_len > 2 * self.tail_limit:  # trim lazily: amortised O(1) per char
                    joined = "".join(self._tail)[-self.tail_limit :]
                    self._tail, self._tail_len = [joined], len(joined)
        return n

    @property
    def dropped(self) -> int:
        return self.total - self._head_len - min(self._tail_len, self.tail_limit)

    def getvalue(self) -> str:
        head = "".join(self._head)
        tail = "".join(self._tail)[-self.tail_limit :] if self._tail else ""
        if self.dropped > 0:
            return f"{head}\n[... {self.dropped} chars cut ...]\n{tail}"
        return head + tail


class StreamRouter:
    """Stands in for sys.stdout or sys.stderr while k2nb captures output. A write goes to the sink
    of the writing thread (`sinks`), else to the innermost capture taking the threads started under
    it (`spawned`: the threads running before it began, its sink), else to the stream replaced."""

    def __init__(self, base: TextIO):
        self.base = base
        self.sinks: dict[int, Any] = {}
        # A tuple, replaced whole: writers in other threads iterate it without a lock.
        self.spawned: tuple[tuple[frozenset[int], Any], ...] = ()

    def target(self) -> Any:
        ident = threading.get_ident()
        sink = self.sinks.get(ident)
        if sink is not None:
            return sink
        for before, sink in reversed(self.spawned):
            if ident not in before:
                return sink
        return self.base

    def idle(self) -> bool:
        return not self.sinks and not self.spawned

    def write(self, s: str) -> int:
        return self.target().write(s)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        flush = getattr(self.target(), "flush", None)
        if flush is not None:
            flush()

    def isatty(self) -> bool:
        target = self.target()
        return target.isatty() if target is self.base else False

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, ipykernel's set_parent, ...
        return getattr(self.base, name)


_router_lock = threading.Lock()
_router_users = 0
# Every router made, by id of the stream it replaced; never emptied. CPython 3.11's print() holds a
# borrowed reference to sys.stdout while it writes, so a router (or stream) freed while another
# thread prints is written through after it was freed: a segfault. Kept here, a router taken off
# sys.stdout stays valid and passes late writes to its base; keyed by base, so it is reused.
KEPT_ROUTERS: dict[int, StreamRouter] = {}


def acquire_routers() -> tuple[StreamRouter, StreamRouter]:
    """Routers on sys.stdout and sys.stderr for one more user (see `release_routers`)."""
    global _router_users
    with _router_lock:
        out, err = _router_on("stdout"), _router_on("stderr")
        _router_users += 1
        return out, err


def _router_on(name: str) -> StreamRouter:
    stream = getattr(sys, name)
    if not isinstance(stream, StreamRouter):
        stream = KEPT_ROUTERS.setdefault(id(stream), StreamRouter(stream))
        setattr(sys, name, stream)
    return stream


def release_routers() -> None:
    """One user less; with none left, idle routers come off sys.stdout / sys.stderr (they stay alive)."""
    global _router_users
    with _router_lock:
        _router_users -= 1
        if _router_users > 0:
            return
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            while isinstance(stream, StreamRouter) and stream.idle():
                stream = stream.base
            setattr(sys, name, stream)


class InterruptWatch:
    """Notes each SIGINT (the stop button, Ctrl-C) the main thread gets while active, and raises
    KeyboardInterrupt for it only while `armed` (where k2nb waits for a tool; raised while it sets
    up or tears down, it would leave the streams half restored). `hit` says one came, even if the
    code it hit dropped the KeyboardInterrupt (IPython's `!cmd` does). Inactive off the main thread
    or where SIGINT has another handler than Python's default: that one is the user's."""

    def __init__(self) -> None:
        self.hit = False
        self.armed = False
        self.active = False
        self._previous: Any = None

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.hit = True
        if self.armed:
            self._previous(signum, frame)  # Python's default handler: raises KeyboardInterrupt

    def arm(self) -> None:
        """From now on raise for a SIGINT; at once for one noted while disarmed."""
        if self.hit:
            raise KeyboardInterrupt
        self.armed = True

    def disarm(self) -> None:
        self.armed = False

    def __enter__(self) -> InterruptWatch:
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if previous is signal.default_int_handler:
                self._previous = previous
                signal.signal(signal.SIGINT, self._on_sigint)
                self.active = True
        return self

    def __exit__(self, *exc: Any) -> None:
        # A handler the code set meanwhile stays: the watch only takes back its own. `active` stays
        # as it was, saying afterwards whether `hit` can be trusted.
        if self.active and signal.getsignal(signal.SIGINT) == self._on_sigint:
            signal.signal(signal.SIGINT, self._previous)
        self.armed = False


class ToolInterrupted(KeyboardInterrupt):
    """The stop button during a tool call, raised once the call was stopped; code that does not know
    it stops as for any KeyboardInterrupt. Each layer adds what the call gave: `outcome`
    (`call_guarded`), `result` (the python tool), `observation` (an executor)."""

    def __init__(self, outcome: Any = None, *, result: Any = None, observation: Any = None):
        super().__init__("the run was stopped while a tool call ran")
        self.outcome = outcome
        self.result = result
        self.observation = observation


class CodeTimeout(BaseException):
    """Injected into a worker whose call ran past its timeout. A BaseException, so that a tool's
    `except Exception:` does not swallow it."""


def _async_raise(thread_id: int, exc_type: type[BaseException]) -> bool:
    n = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc_type))
    if n > 1:  # cannot happen for a real thread id; undo rather than hit several threads
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)
        return False
    return n == 1


@dataclass(slots=True)
class CallOutcome:
    """What a guarded call produced. `exception` keeps its traceback for formatting."""

    value: Any = None
    exception: BaseException | None = None
    stdout: str = ""
    stderr: str = ""
    stdout_chars: int = 0  # written in total, including what the capture dropped
    stderr_chars: int = 0
    timed_out: bool = False
    abandoned: bool = False  # the worker did not stop after the timeout and was left running
    interrupted: bool = False  # the caller's KeyboardInterrupt stopped it (see ToolInterrupted)
    duration_s: float = 0.0


def call_guarded(
    fn: Callable[[], Any],
    *,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    capture_chars: int = DEFAULT_CAPTURE_CHARS,
    grace_s: float = 2.0,
    name: str = "k2nb-tool",
) -> CallOutcome:
    """Run `fn()` in a worker thread with captured output and a timeout; never raises from `fn`.

    Every BaseException of `fn` (SystemExit, KeyboardInterrupt included) is returned in the outcome.
    A KeyboardInterrupt of the *calling* thread (the user pressing stop) stops the worker and is
    re-raised as `ToolInterrupted` holding the outcome, because that one is meant for the run, not
    for the tool.
    """
    out, err = CappedText(capture_chars), CappedText(capture_chars)
    routers = acquire_routers()
    w = _Worker(fn, name)
    start = time.perf_counter()
    timed_out = abandoned = interrupted = False
    with InterruptWatch() as watch:
        try:
            w.thread.start()
            for router, sink in zip(routers, (out, err), strict=True):
                router.sinks[w.ident] = sink
            w.go.set()
            # Wait on an event, not on join(): a KeyboardInterrupt inside Thread.join() leaves
            # CPython 3.11 taking the still running worker for stopped (is_alive() False).
            watch.arm()
            w.ended.wait(timeout_s)
            watch.disarm()
            if w.ended.is_set():
                w.thread.join()  # its last lines
            else:
                timed_out = w.stop(grace_s)
                abandoned = w.thread.is_alive()
        except KeyboardInterrupt:
            watch.disarm()
            interrupted = True
            w.stop(min(grace_s, STOP_GRACE_S))  # briefly: the user is waiting on the stop button
            abandoned = w.thread.is_alive()
        finally:
            _drop_sinks(w.thread, *routers)
        interrupted = interrupted or watch.hit
    exc = w.box.get("exception")
    if (timed_out or interrupted) and isinstance(exc, CodeTimeout):
        exc = None  # reported through `timed_out` / `interrupted`, with its own sentence
    outcome = CallOutcome(
        value=w.box.get("value"),
        exception=exc,
        stdout=out.getvalue(),
        stderr=err.getvalue(),
        stdout_chars=out.total,
        stderr_chars=err.total,
        timed_out=timed_out,
        abandoned=abandoned,
        interrupted=interrupted,
        duration_s=time.perf_counter() - start,
    )
    if interrupted:
        raise ToolInterrupted(outcome)
    return outcome


class _Worker:
    """The daemon thread of one guarded call; `box` gets `fn`'s value or exception. Its sinks must
    be registered before it runs a line, and its ident is only known once it has started, so it
    waits on `go` until they are in place."""

    def __init__(self, fn: Callable[[], Any], name: str):
        self.fn = fn
        self.box: dict[str, Any] = {}
        self.done = threading.Lock()  # held by whoever decides how the call ended
        self.finished = False
        self.go, self.ended = threading.Event(), threading.Event()
        self.run_it = True
        self.thread = threading.Thread(target=self._gated, name=name, daemon=True)

    @property
    def ident(self) -> int:
        assert self.thread.ident is not None
        return self.thread.ident

    def _gated(self) -> None:
        try:
            self.go.wait()
            if self.run_it:
                self._target()
        finally:
            self.ended.set()

    def _target(self) -> None:
        try:
            try:
                self.box["value"] = self.fn()
            except BaseException as exc:  # noqa: BLE001 - everything the tool does becomes an observation
                self.box["exception"] = exc
            with self.done:
                self.finished = True
        except BaseException:  # noqa: BLE001 - a timeout injected just after fn returned
            pass

    def stop(self, grace_s: float) -> bool:
        """Inject CodeTimeout until the worker ends or `grace_s` passes; True if it was running."""
        if not self.go.is_set():  # stopped before it began: it never runs `fn`
            self.run_it = False
            self.go.set()
            return False
        if self.thread.ident is None:
            return False
        deadline = time.perf_counter() + grace_s
        injected = False
        while self.thread.is_alive() and time.perf_counter() < deadline:
            with self.done:
                if self.finished:
                    break  # it finished on its own between the wait and now
                _async_raise(self.ident, CodeTimeout)
                injected = True
            # Re-inject now and then: a bare `except:` in the tool may have swallowed the first one.
            self.thread.join(0.05)
        return injected


def _drop_sinks(worker: threading.Thread, *routers: StreamRouter) -> None:
    """The call is over: its sinks come off the routers, at once or when its worker ends. An
    abandoned worker keeps its (bounded) sinks until then, so its output never lands in the real
    stream in the middle of someone else's text."""
    ident = worker.ident

    def drop() -> None:
        for r in routers:
            r.sinks.pop(ident, None)  # type: ignore[arg-type]
        release_routers()

    if not worker.is_alive():
        drop()
        return

    def reaper() -> None:
        worker.join()
        drop()

    threading.Thread(target=reaper, name="k2nb-reaper", daemon=True).start()


