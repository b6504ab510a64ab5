"""Helper threads for the CPU decode path.

A decode step reads every active weight once with one token: each product is a matrix-vector
product, which torch's CPU BLAS runs on one core whatever ``torch.get_num_threads()`` says. The
independent products of a step — the chosen experts, the shared expert, the two row halves of a
large linear — can run at once on the main thread and ``torch.get_num_threads() − 1`` helpers (torch
releases the GIL inside its kernels).

Each product is computed exactly as it would be alone and the results are combined in a fixed order,
so the numbers do not depend on which thread ran what, or on how many there are. Work is taken from
one shared list by whichever thread is free (the main thread included), so a helper that the OS is
slow to wake costs nothing but its share.

During such a step (`Workers.one_token_step`) torch's own thread pool is set to one thread: a
one-token step gives it little to split, and its barriers stall whenever another process holds a
core (on the shared 2-core development machine a step took ~10× longer with two torch threads than
with one). The helpers have no barrier. Attention is the exception (`torch_threads`): torch's CPU
attention splits the cached tokens over its threads, which changes the rounding, so it keeps the
caller's thread count and its results stay those of a plain forward.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

MAX_HELPERS = 7


class _Modes:
    """The caller's autograd / inference mode, re-entered on the helper (both are thread-local)."""

    def __init__(self) -> None:
        self.grad = torch.is_grad_enabled()
        self.inference = torch.is_inference_mode_enabled()

    def run(self, fn: Callable[[], Any]) -> Any:
        with torch.inference_mode(self.inference), torch.set_grad_enabled(self.grad):
            return fn()


class Workers:
    """A lazily started pool of daemon helper threads (one shared instance: `WORKERS`)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._start_lock = threading.Lock()
        self._steps = 0  # one-token steps under way (any thread), and torch's thread count before
        self._torch_threads = 1

    def helpers(self) -> int:
        """How many helpers a parallel call uses now: torch's thread count − 1, the count before a
        one-token step set it to one (called from a helper itself: none, so nothing nests)."""
        if getattr(_local, "helper", False):
            return 0
        n = getattr(_local, "step_threads", None) or torch.get_num_threads()
        return max(0, min(MAX_HELPERS, n - 1))

    @contextmanager
    def torch_threads(self) -> Iterator[None]:
        """Inside a one-token step: torch's thread count as it was before the step, for one op whose
        result depends on it (CPU attention splits the cached tokens over threads)."""
        n = getattr(_local, "step_threads", None)
        if not n or n == torch.get_num_threads():
            yield
            return
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(1)

    @contextmanager
    def one_token_step(self) -> Iterator[None]:
        """A CPU forward of one token: the helpers get torch's threads, torch keeps one."""
        with self._start_lock:
            if self._steps == 0:
                self._torch_threads = torch.get_num_threads()
            self._steps += 1
            n = self._torch_threads
            torch.set_num_threads(1)
        _local.step_threads = n
        try:
            yield
        finally:
            _local.step_threads = None
            with self._start_lock:
                self._steps -= 1
                if self._steps == 0:
                    torch.set_num_threads(self._torch_threads)

    def _ensure(self, n: int) -> None:
        with self._start_lock:
            while len(self._threads) < n:
                t = threading.Thread(target=self._loop, name=f"k2nb-cpu-{len(self._threads)}", daemon=True)
                t.start()
                self._threads.append(t)

    def _loop(self) -> None:
        _local.helper = True
        while True:
            self._jobs.get()()

    def map(self, thunks: Sequence[Callable[[], torch.Tensor]]) -> list[torch.Tensor]:
        """``[f() for f in thunks]``, the calls spread over the main thread and the helpers."""
        n = min(self.helpers(), len(thunks) - 1)
        if n <= 0:
            return [f() for f in thunks]
        self._ensure(n)
        results: list[Any] = [None] * len(thunks)
        errors: list[BaseException] = []
        cond = threading.Condition()
        state = {"next": 0, "running": 0}  # next unclaimed thunk; thunks claimed by helpers, unfinished

        def claim(helper: bool) -> int | None:
            with cond:
                i = state["next"]
                if i >= len(thunks) or errors:
                    return None
                state["next"] = i + 1
                if helper:
                    state["running"] += 1
                return i

        def work(helper: bool) -> None:
            while (i := claim(helper)) is not None:
                try:
                    results[i] = thunks[i]()
                except BaseException as e:  # re-raised on the main thread
                    errors.append(e)
                finally:
                    if helper:
                        with cond:
                            state["running"] -= 1
                            cond.notify_all()

        modes = _Modes()
        for _ in range(n):
            self._jobs.put(lambda: modes.run(lambda: work(True)))
        work(False)
        with cond:  # wait only for what helpers took; a helper that wakes later finds nothing left
            cond.wait_for(lambda: state["running"] == 0)
        if errors:
            raise errors[0]
        return results

    def start(self, fn: Callable[..., torch.Tensor], *args: Any) -> Pending:
        """Begin ``fn(*args)`` on a helper; `Pending.result` waits for it (or runs it itself if no
        helper has begun it yet)."""
        pending = Pending(fn, args)
        if self.helpers() > 0:
            self._ensure(1)
            modes = _Modes()
            self._jobs.put(lambda: modes.run(pending._run_if_unclaimed))
        return pending


class Pending:
    """One call handed to `Workers.start`."""

    def __init__(self, fn: Callable[..., torch.Tensor], args: tuple[Any, ...]):
        self._fn, self._args = fn, args
        self._lock, self._done = threading.Lock(), threading.Event()
        self._claimed = False
        self._value: Any = None
        self._error: BaseException | None = None

    def _claim(self) -> bool:
        with self._lock:
            if self._claimed:
                return False
            self._claimed = True
            return True

    def _run(self) -> None:
        try:
            self._value = self._fn(*self._args)
        except BaseException as e:
            self._error = e
        finally:
            self._done.set()

    def _run_if_unclaimed(self) -> None:
        if self._claim():
            self._run()

    def result(self) -> torch.Tensor:
        if self._claim():
            self._run()
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value


_local = threading.local()
WORKERS = Workers()
