"""The backend protocol: where the turns of a reasoning path come from.

A backend streams one assistant turn for a conversation as `StreamChunk`s: the events
(`k2nb.events`) that a generated token completed, with the token's id, position and routing when the
backend has them. Everything else a backend may offer is written into `Backend` with a default in
`BackendBase`: a prefill of a prompt that parallel paths share, the routing of the prompt tokens it
read, how much of the model's context a prompt takes, and a fork for a parallel path. The agent
loop knows backends only through this module.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from k2nb.events import Event
from k2nb.routing import Routing


@dataclass(slots=True)
class StreamChunk:
    """One step of a streamed turn: the events it completed (may be none: a marker held back, an
    incomplete UTF-8 character) and, for a generated token, its id, absolute position and routing
    ``[n_moe_layers, top_k]`` (None where the backend does not report them)."""

    events: list[Event]
    token_id: int | None = None
    position: int | None = None
    experts: np.ndarray | None = None
    weights: np.ndarray | None = None


@dataclass(slots=True)
class GenerationOptions:
    """How one turn is sampled (the per-step part of `k2nb.agent.options.ThinkOptions`)."""

    max_new_tokens: int = 4096
    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None


@dataclass(slots=True)
class Prompt:
    """A conversation to continue. With `forced_reasoning`, the assistant turn starts with its
    thinking already closed, holding that text, so the model answers (a budget ran out)."""

    messages: Sequence[Mapping[str, Any]]
    tools: Sequence[Mapping[str, Any]] | None = None
    forced_reasoning: str | None = None


class TurnStream:
    """One assistant turn as it streams. Iterate for `StreamChunk`s; `close()` (always call it, also
    after an early stop) ends the generation and returns the events that the output so far still
    completes: held-back text, a call that was cut off, and `End`."""

    def __init__(self, chunks: Iterator[StreamChunk], finish: Callable[[], list[Event]]):
        self._chunks = chunks
        self._finish: Callable[[], list[Event]] | None = finish

    def __iter__(self) -> TurnStream:
        return self

    def __next__(self) -> StreamChunk:
        return next(self._chunks)

    def close(self) -> list[Event]:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
        finish, self._finish = self._finish, None
        return finish() if finish is not None else []


@runtime_checkable
class Backend(Protocol):
    """Streams the assistant turns of one reasoning path."""

    def stream(
        self, prompt: Prompt, options: GenerationOptions, cancel: threading.Event | None = None
    ) -> TurnStream:
        """The next assistant turn. Generation stops at the turn's end, at `options.max_new_tokens`,
        when `cancel` is set, or when the stream is closed."""
        ...

    def prefill(self, prompt: Prompt) -> None:
        """Read `prompt` once so that forks share it (parallel paths); may do nothing."""
        ...

    def read_routing(self) -> Routing | None:
        """The routing of the prompt tokens the last `stream` or `prefill` read (None if unknown)."""
        ...

    def generated_routing(self) -> Routing | None:
        """The routing of the tokens the last `stream` generated, where the backend reports it only
        when the turn ends (a server); None where it comes with each chunk, or not at all."""
        ...

    def context(self, prompt: Prompt) -> tuple[int, int] | None:
        """(tokens `prompt` takes, tokens the model's context holds), or None where the backend
        cannot tell (a served model: the server's error then ends the run). The loop reads it before
        each step, to answer while there is room."""
        ...

    def fork(self) -> Backend:
        """A backend for a parallel path, sharing what was computed so far."""
        ...


class BackendBase:
    """Defaults for what a backend need not offer: no shared prefill, no routing of what it read
    (a subclass that has it sets `read` after each stream), no measure of the context."""

    read: Routing | None = None

    def prefill(self, prompt: Prompt) -> None:
        return None

    def read_routing(self) -> Routing | None:
        return self.read

    def generated_routing(self) -> Routing | None:
        return None

    def context(self, prompt: Prompt) -> tuple[int, int] | None:
        return None
