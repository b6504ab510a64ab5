"""Run code as a real IPython cell and keep what it produced as nbformat outputs.

A tool call runs through `shell.run_cell(code, store_history=True)`, so it gets an execution count,
`In`/`Out`/`_` history, IPython's input transformers (magics, `!cmd`), display hooks and tracebacks,
exactly like a cell the user ran. While it runs, the four ways a cell produces output are redirected
into an `OutputRecorder` instead of going to the `%%k2think` cell's output area:

* ``sys.stdout`` / ``sys.stderr``       -> ``stream`` outputs (consecutive writes merged)
* ``shell.display_pub``                  -> ``display_data`` (``display``, plots, widgets, clear_output)
* the display hook's publishing methods  -> ``execute_result`` (the hook itself still updates ``_``/Out)
* ``shell._showtraceback``               -> ``error`` (IPython's coloured traceback lines)

Why not `IPython.utils.capture.capture_output`: it flattens execute_result into display data and
drops the traceback; a notebook cell needs both.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from IPython.core.displaypub import DisplayPublisher

from k2nb.agent.guard import InterruptWatch, acquire_routers, release_routers
from k2nb.agent.python_tool import INTERRUPTED
from k2nb.magics.cells import Output


class OutputRecorder:
    """nbformat outputs of one cell, in order. Thread-safe: background threads may print too."""

    def __init__(self, on_change: Callable[[], None] | None = None, capture_chars: int = 200_000):
        self.outputs: list[Output] = []
        self._lock = threading.Lock()
        self.on_change = on_change
        self.capture_chars = capture_chars  # per stream; a cell printing 10 MB must not fill the notebook
        self._chars = {"stdout": 0, "stderr": 0}
        self._dropped = {"stdout": 0, "stderr": 0}

    def snapshot(self) -> list[Output]:
        with self._lock:
            return [dict(o) for o in self.outputs]

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:  # noqa: BLE001 - a failed live update must not fail the user's code
                pass

    def stream(self, name: str, text: str) -> None:
        if not text:
            return
        with self._lock:
            room = self.capture_chars - self._chars[name]
            if room <= 0:
                self._dropped[name] += len(text)
                return
            if len(text) > room:
                self._dropped[name] += len(text) - room
                text = text[:room]
            self._chars[name] += len(text)
            last = self.outputs[-1] if self.outputs else None
            if last is not None and last["output_type"] == "stream" and last["name"] == name:
                last["text"] += text
            else:
                self.outputs.append({"output_type": "stream", "name": name, "text": text})
        self._changed()

    def display(
        self,
        data: dict[str, Any],
        metadata: dict[str, Any] | None,
        transient: dict[str, Any] | None,
        update: bool,
    ) -> bool:
        """Record a display; False for an update of a display this cell does not hold (pass it on)."""
        display_id = (transient or {}).get("display_id")
        out: Output = {"output_type": "display_data", "data": dict(data), "metadata": dict(metadata or {})}
        with self._lock:
            held = [o for o in self.outputs if display_id is not None and o.get("_display_id") == display_id]
            if update and not held:
                return False
            for o in held:  # display(..., display_id=X) again, or an update: every copy shows the new data
                o["data"], o["metadata"] = out["data"], out["metadata"]
            if not update:
                if display_id is not None:
                    out["_display_id"] = display_id
                self.outputs.append(out)
        self._changed()
        return True

    def clear(self, wait: bool) -> None:
        # `wait=True` clears when the next output arrives; for a recorded cell both mean "start over".
        with self._lock:
            self.outputs.clear()
            self._chars = {"stdout": 0, "stderr": 0}
        self._changed()

    def result(self, data: dict[str, Any], metadata: dict[str, Any], execution_count: int | None) -> None:
        with self._lock:
            self.outputs.append(
                {
                    "output_type": "execute_result",
                    "data": dict(data),
                    "metadata": dict(metadata or {}),
                    "execution_count": execution_count,
                }
            )
        self._changed()

    def error(self, ename: str, evalue: str, traceback: list[str]) -> None:
        with self._lock:
            self.outputs.append(
                {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": list(traceback)}
            )
        self._changed()

    def final_outputs(self) -> list[Output]:
        """The outputs as nbformat wants them (private keys removed, a note on dropped text)."""
        with self._lock:
            outs = []
            for o in self.outputs:
                o = {k: v for k, v in o.items() if not k.startswith("_")}
                outs.append(o)
            for name, n in self._dropped.items():
                if n:
                    outs.append(
                        {
                            "output_type": "stream",
                            "name": "stderr",
                            "text": f"[k2nb: {n} more characters of {name} were not kept]\n",
                        }
                    )
            return outs


class _RecordingStream:
    """Where the tool cell's writes to sys.stdout / sys.stderr go, through k2nb's `StreamRouter`
    (which answers `encoding`, `fileno`, ... from the real stream)."""

    def __init__(self, name: str, recorder: OutputRecorder):
        self.name = name
        self.recorder = recorder

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        self.recorder.stream(self.name, s)
        return len(s)

    def flush(self) -> None:
        return None


class _RecordingPublisher(DisplayPublisher):
    """Takes the shell's display publisher's place while a tool cell runs."""

    def __init__(self, recorder: OutputRecorder, real: Any, shell: Any):
        super().__init__(shell=shell)
        self.recorder = recorder
        self.real = real

    def publish(
        self,
        data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        source: Any = None,
        *,
        transient: dict[str, Any] | None = None,
        update: bool = False,
        **kwargs: Any,
    ) -> None:
        if not self.recorder.display(data, metadata, transient, update):
            # an update of a display shown elsewhere (an earlier cell, the live view): let it through
            self.real.publish(data, metadata, transient=transient, update=update, **kwargs)

    def clear_output(self, wait: bool = False) -> None:
        self.recorder.clear(wait)

    def __getattr__(self, name: str) -> Any:  # register_hook, session, ... of the real publisher
        return getattr(self.real, name)


@dataclass(slots=True)
class CellRun:
    """What running one tool cell gave."""

    execution_count: int
    outputs: list[Output] = field(default_factory=list)
    ename: str | None = None
    evalue: str | None = None
    traceback: list[str] = field(default_factory=list)
    interrupted: bool = False  # KeyboardInterrupt (the stop button) hit the cell
    timed_out: bool = False
    duration_s: float = 0.0
    result: Any = None  # IPython's ExecutionResult

    @property
    def ok(self) -> bool:
        return self.ename is None


@contextmanager
def recording(shell: Any, recorder: OutputRecorder) -> Iterator[OutputRecorder]:
    """Redirect every output channel of `shell` into `recorder` for the duration."""
    hook = shell.displayhook
    saved_hook_sys = sys.displayhook
    saved_pub = shell.display_pub
    patched: list[str] = []

    def write_output_prompt() -> None:
        return None

    def write_format_data(format_dict: dict[str, Any], md_dict: dict[str, Any] | None = None) -> None:
        recorder.result(format_dict, md_dict or {}, getattr(hook, "prompt_count", shell.execution_count))

    def finish_displayhook() -> None:
        if hasattr(hook, "msg"):
            hook.msg = None

    def show_traceback(etype: type[BaseException], evalue: BaseException, stb: list[str]) -> None:
        recorder.error(getattr(etype, "__name__", str(etype)), str(evalue), stb)

    for name, fn in (
        ("write_output_prompt", write_output_prompt),
        ("write_format_data", write_format_data),
        ("finish_displayhook", finish_displayhook),
    ):
        setattr(hook, name, fn)
        patched.append(name)
    shell._showtraceback = show_traceback
    shell.display_pub = _RecordingPublisher(recorder, saved_pub, shell)
    # A nested run_cell keeps the outer cell's display trap, i.e. whatever sys.displayhook is now.
    sys.displayhook = hook
    try:
        with _routed_streams(recorder):
            yield recorder
    finally:
        sys.displayhook = saved_hook_sys
        shell.display_pub = saved_pub
        del shell._showtraceback  # back to the class's method
        for name in patched:
            try:
                delattr(hook, name)
            except AttributeError:
                pass


@contextmanager
def _routed_streams(recorder: OutputRecorder) -> Iterator[None]:
    """sys.stdout / sys.stderr writes of this thread, and of the threads it starts meanwhile, go to
    `recorder`. Threads already running (a user's progress printer, say) are not the cell's: their
    writes go where they went before. The streams are routed, never swapped: see `StreamRouter`."""
    me = threading.get_ident()
    before = frozenset(t.ident for t in threading.enumerate() if t.ident is not None) - {me}
    routers = acquire_routers()
    taken = []
    for router, name in zip(routers, ("stdout", "stderr"), strict=True):
        sink = _RecordingStream(name, recorder)
        entry = (before, sink)
        taken.append((router, router.sinks.get(me), entry))  # an outer tool cell's sink comes back after
        router.sinks[me] = sink
        router.spawned = (*router.spawned, entry)
    try:
        yield
    finally:
        for router, outer, entry in taken:
            if outer is None:
                router.sinks.pop(me, None)
            else:
                router.sinks[me] = outer
            router.spawned = tuple(e for e in router.spawned if e is not entry)
        release_routers()


class ToolCellTimeout(BaseException):
    """Raised inside a tool cell that ran past its time limit. A BaseException, so that the user's
    `except Exception:` does not swallow it; IPython shows it as the cell's traceback."""


@contextmanager
def time_limit(timeout_s: float | None) -> Iterator[list[bool]]:
    """Raise `ToolCellTimeout` in this (the kernel's main) thread after `timeout_s`.

    SIGALRM, not a watchdog thread: a signal also interrupts blocking calls such as `time.sleep`
    or a socket read, which an asynchronous exception injected from another thread cannot. Off the
    main thread (or where SIGALRM does not exist) the limit is not enforced. The yielded list holds
    one flag, set when the limit fired.
    """
    fired = [False]
    if not timeout_s or timeout_s <= 0:
        yield fired
        return
    import signal

    if not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        yield fired
        return
    armed = [True]

    def on_alarm(signum: int, frame: Any) -> None:
        if armed[0]:
            armed[0] = False
            fired[0] = True
            raise ToolCellTimeout(f"the cell ran past the {timeout_s:g} s limit of a tool call")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        yield fired
    finally:
        armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def running_cell_count(shell: Any) -> int:
    """The execution count of the cell running now (IPython's display hook knows it in every version)."""
    count = getattr(getattr(shell, "displayhook", None), "prompt_count", None)
    return count if isinstance(count, int) else shell.execution_count


def running_cell_input(shell: Any) -> tuple[str, str] | None:
    """(parsed, raw) input of the cell running now: the last one IPython stored (it stores a cell's
    input before running it)."""
    hm = getattr(shell, "history_manager", None)
    if hm is None or not hm.input_hist_parsed:
        return None
    return hm.input_hist_parsed[-1], hm.input_hist_raw[-1]


def close_tool_cells(shell: Any, outer_count: int | None, outer_input: tuple[str, str] | None) -> None:
    """After the tool cells of a run: record the outer cell's input (taken by `running_cell_input`
    before the first tool cell) again under the number its output takes, the one after its last tool
    cell, so In[n] / Out[n] pair up and IPython's display hook, which reads the *last* input (for a
    trailing ';'), reads the outer cell, not the last tool cell (whose code may be incomplete and
    would make the outer cell fail while displaying)."""
    hm = getattr(shell, "history_manager", None)
    if hm is None or outer_count is None or outer_input is None:
        return
    count = running_cell_count(shell)
    if count > outer_count:
        hm.store_inputs(count, *outer_input)


def run_tool_cell(
    shell: Any,
    code: str,
    *,
    timeout_s: float | None = None,
    on_change: Callable[[OutputRecorder], None] | None = None,
    capture_chars: int = 200_000,
    outer_count: int | None = None,
) -> CellRun:
    """Run `code` as a cell of `shell` with its own execution count; outputs recorded, never raised.

    `outer_count` is the execution count of the `%%k2think` cell this runs inside. The tool cell is
    numbered after it (and after earlier tool cells), and afterwards the outer cell's own output is
    numbered after the tool cell, so no two history entries share a number. IPython < 9.18 increments
    the count at the end of a cell and later versions at its start; both run a cell under the count
    found in `shell.execution_count` when it starts, which is what is set here.

    The stop button during the cell sets `interrupted`, even where the code dropped the
    KeyboardInterrupt (IPython's `!cmd` does, so may a user's `except KeyboardInterrupt:`).
    """
    offset = shell.execution_count - running_cell_count(shell)  # 0 (old IPython) or 1 (new)
    if outer_count is not None:
        # after the outer cell, or else in the slot the previous tool cell kept for the outer output
        shell.execution_count = max(outer_count + 1, shell.execution_count - offset)
    count = shell.execution_count
    recorder = OutputRecorder(capture_chars=capture_chars)
    if on_change is not None:
        recorder.on_change = lambda: on_change(recorder)
    run = CellRun(execution_count=count)
    started = time.monotonic()
    # A nested run_cell points the display hook at its own ExecutionResult and clears it at the end;
    # the outer %%k2think cell's result (its value, `_`) must survive that.
    outer_result = getattr(shell.displayhook, "exec_result", None)
    result = None
    fired = [False]
    stopped = False
    # Outermost, so that a stop while k2nb sets the cell up or tears it down is noted, not raised
    # into the middle of restoring the shell; it is raised only inside run_cell (armed).
    watch = InterruptWatch()
    try:
        with watch, _held_ui_poll_hooks(shell), recording(shell, recorder), time_limit(timeout_s) as fired:
            try:
                watch.arm()  # raises at once for a stop noted while setting up
                result = shell.run_cell(code, store_history=True)
            except ToolCellTimeout:  # fired between IPython's own handlers: still this cell's
                recorder.error("ToolCellTimeout", "the cell ran past its time limit and was stopped", [])
            finally:
                watch.disarm()
    except KeyboardInterrupt:  # the stop before the cell began, or (no watch) in k2nb's own code
        stopped = True
    finally:
        shell.displayhook.exec_result = outer_result
        if outer_count is not None:  # the outer cell's output (and kernel reply) numbered after this cell
            shell.execution_count = count + 1 + offset
    run.duration_s = time.monotonic() - started
    run.result = result
    run.timed_out = fired[0]
    _conclude(run, result, recorder, stopped or watch.hit)
    return run


def _conclude(run: CellRun, result: Any, recorder: OutputRecorder, stopped: bool) -> None:
    """The error, interruption and outputs of a finished tool cell, into `run`. `stopped`: the stop
    button was seen; a KeyboardInterrupt the cell ended with counts as one too."""
    err = None
    if result is not None:
        err = result.error_before_exec or result.error_in_exec
    run.interrupted = stopped or isinstance(err, KeyboardInterrupt)
    if err is not None:
        run.ename, run.evalue = type(err).__name__, str(err)
    elif run.interrupted:  # the code dropped the KeyboardInterrupt: the cell still shows the stop
        run.ename = "KeyboardInterrupt"
        recorder.error(run.ename, INTERRUPTED, [f"{run.ename}: {INTERRUPTED}"])
    elif result is None:
        run.ename, run.evalue = "ToolCellTimeout", "the cell ran past its time limit and was stopped"
    if run.interrupted and run.ename == "KeyboardInterrupt":
        run.evalue = INTERRUPTED
    run.outputs = recorder.final_outputs()
    for out in run.outputs:
        if out["output_type"] == "error" and run.ename is not None:
            run.traceback = list(out.get("traceback") or [])


@contextmanager
def _held_ui_poll_hooks(shell: Any) -> Iterator[None]:
    """jupyter-ui-poll replays the execute_requests it deferred on the next `post_run_cell` event,
    meant to be the end of the polling cell. A tool cell run inside that cell fires the event too, so
    its callbacks are taken off while the tool cell runs."""
    callbacks = shell.events.callbacks.get("post_run_cell", [])
    held = [
        cb
        for cb in callbacks
        if getattr(getattr(cb, "__self__", None), "__module__", "").startswith("jupyter_ui_poll")
    ]
    for cb in held:
        callbacks.remove(cb)
    try:
        yield
    finally:
        callbacks.extend(cb for cb in held if cb not in callbacks)
