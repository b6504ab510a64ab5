"""The model as the loop sees it: a `Backend` streams one assistant turn for a conversation, token by
token, each token with its decoded text (special tokens as their marker strings) and its routing.

`EngineBackend` adapts `k2nb.engine` (a `Session`, so a growing conversation is extended on its
cached prefix); `k2nb.agent.scripted.ScriptedBackend` is the test double. Both render prompts with
`IncrementalPrompt`, which re-renders only the messages that changed, so a 300-call run does not
re-encode its conversation from the start at every step.
"""

from __future__ import annotations

import json
import operator
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import numpy as np

from k2nb.engine.chat import (
    GENERATION_PROMPT_PIECES,
    Piece,
    encode_pieces,
    keeps_reasoning,
    render_message_pieces,
    render_preamble_pieces,
)


@dataclass(slots=True)
class TokenChunk:
    """One generated token: its text (may be "" while a UTF-8 character is incomplete), id,
    absolute position in the sequence, and routing `[n_moe_layers, top_k]` (None if not captured)."""

    text: str
    token_id: int | None = None
    position: int | None = None
    experts: np.ndarray | None = None
    weights: np.ndarray | None = None


@dataclass(slots=True)
class ContextRouting:
    """Routing of the prompt tokens a step prefilled (what the model read before generating): ids and
    absolute positions ``[T]``, experts and weights ``[T, n_moe_layers, top_k]``. A backend that has
    it sets `last_context` after each stream (and after `prefill`); the loop gives it to the node
    whose text those tokens were (the question, a tool result)."""

    positions: np.ndarray
    token_ids: np.ndarray
    experts: np.ndarray
    weights: np.ndarray

    def __len__(self) -> int:
        return len(self.token_ids)


@dataclass(slots=True)
class GenerationOptions:
    max_new_tokens: int = 4096
    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None


@dataclass(slots=True)
class Prompt:
    """A conversation to continue. `prefix` is the already decided start of the assistant message
    (after the generation prompt), e.g. a closed think block when a budget forces the answer."""

    messages: Sequence[Mapping[str, Any]]
    tools: Sequence[Mapping[str, Any]] | None = None
    prefix: list[Piece] = field(default_factory=list)

    @property
    def prefix_text(self) -> str:
        return "".join(text for text, _ in self.prefix)


@runtime_checkable
class Backend(Protocol):
    """Streams assistant turns for one reasoning path."""

    def stream(
        self, prompt: Prompt, options: GenerationOptions, cancel: threading.Event | None = None
    ) -> Iterator[TokenChunk]:
        """Tokens of the next assistant turn. Closing the iterator early stops generation."""
        ...

    def fork(self) -> Backend:
        """A backend for a parallel path, sharing what was computed so far (the prompt's prefill)."""
        ...


T = TypeVar("T")


class IncrementalPrompt(Generic[T]):
    """The encoded conversation (preamble + messages, no generation prompt), kept between calls.

    `encode` turns rendered pieces into tokens (ids for the engine, text pieces for the scripted
    backend). Only messages from the first one that changed — by identity, then by value, or by the
    K2 reasoning-retention rule — are rendered and encoded again.
    """

    def __init__(self, encode: Callable[[list[Piece]], list[T]]):
        self.encode = encode
        self.tokens: list[T] = []
        self._tools_key: str | None = None
        self._first_role: str | None = None
        self._messages: list[Mapping[str, Any]] = []
        self._keep: list[bool] = []
        self._offsets: list[int] = []  # token offset where message i starts
        self.rendered_messages = 0  # how many messages the last update encoded (for benches/tests)

    def update(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None
    ) -> list[T]:
        tools_key = json.dumps(list(tools or []), sort_keys=True, default=repr)
        first_role = messages[0].get("role") if messages else None
        n_old = len(self._messages)
        if tools_key != self._tools_key or first_role != self._first_role:
            self.tokens = self.encode(render_preamble_pieces(messages, tools))
            self._messages, self._keep, self._offsets = [], [], []
            self._tools_key, self._first_role = tools_key, first_role
            start, keep = 0, keeps_reasoning(messages)
        elif len(messages) >= n_old and all(map(operator.is_, self._messages, messages)):
            # The common case, a conversation that only grew: look at the new messages alone, so a
            # step costs the same at message 600 as at message 6. Retention changes only when a
            # new final answer (an assistant message without tool calls) appears.
            old_final = _last_final(self._keep)
            last_final = old_final
            for i in range(len(messages) - 1, n_old - 1, -1):
                m = messages[i]
                if m.get("role") == "assistant" and not m.get("tool_calls"):
                    last_final = i
                    break
            keep = self._keep + [i > last_final for i in range(n_old, len(messages))]
            start = n_old
            if last_final != old_final:
                for i in range(old_final + 1, n_old):
                    keep[i] = False
                start = old_final + 1
        else:
            keep = keeps_reasoning(messages)
            start, n = 0, min(n_old, len(messages))
            while start < n:
                old, new = self._messages[start], messages[start]
                if (old is not new and old != new) or self._keep[start] != keep[start]:
                    break
                start += 1
        if start < len(self._messages):
            del self.tokens[self._offsets[start] :]
            del self._messages[start:], self._keep[start:], self._offsets[start:]
        for i in range(start, len(messages)):
            self._offsets.append(len(self.tokens))
            self.tokens.extend(self.encode(render_message_pieces(messages[i], keep[i])))
            self._messages.append(messages[i])
            self._keep.append(keep[i])
        self.rendered_messages = len(messages) - start
        return self.tokens

    def fork(self) -> IncrementalPrompt[T]:
        other: IncrementalPrompt[T] = IncrementalPrompt(self.encode)
        other.tokens = list(self.tokens)
        other._tools_key, other._first_role = self._tools_key, self._first_role
        other._messages, other._keep, other._offsets = (
            list(self._messages),
            list(self._keep),
            list(self._offsets),
        )
        return other


def _last_final(keep: list[bool]) -> int:
    """Index of the last final answer: `keep` is False up to it and True after (binary search)."""
    lo, hi = 0, len(keep)
    while lo < hi:
        mid = (lo + hi) // 2
        if keep[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo - 1


class EngineBackend:
    """`k2nb.engine` as a Backend: one `Session` per path, so each step prefills only what is new.

    `model` is a loaded `K2Model` with a tokenizer (`model.tokenizer`, or pass `tokenizer=`).
    """

    def __init__(self, model: Any, *, tokenizer: Any = None, session: Any = None):
        self.model = model
        self.tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
        if self.tokenizer is None:
            from k2nb.engine.errors import TokenizerError

            raise TokenizerError(
                "the model has no tokenizer; put tiktoken.model or tokenizer.json in the checkpoint folder "
                "or pass tokenizer= to EngineBackend"
            )
        self.session = session if session is not None else model.session()
        self._prompt: IncrementalPrompt[int] = IncrementalPrompt(self._encode)
        self.last_result: Any = None  # the engine's GenerationResult of the last stream
        self.last_context: ContextRouting | None = None  # routing of the prompt tokens it prefilled

    def _encode(self, pieces: list[Piece]) -> list[int]:
        return encode_pieces(self.tokenizer, pieces)

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        base = self._prompt.update(prompt.messages, prompt.tools)
        return base + self._encode([*GENERATION_PROMPT_PIECES, *prompt.prefix])

    def prefill(self, prompt: Prompt) -> None:
        """Run the prompt through the session once, so forks share its cache (paths=N)."""
        stream = self.session.generate_stream(self.prompt_ids(prompt), max_new_tokens=1)
        for _ in stream:
            pass
        self.last_context = _context_of(stream.result)

    def stream(
        self, prompt: Prompt, options: GenerationOptions, cancel: threading.Event | None = None
    ) -> Iterator[TokenChunk]:
        ids = self.prompt_ids(prompt)
        stream = self.session.generate_stream(
            ids,
            max_new_tokens=options.max_new_tokens,
            temperature=options.temperature,
            top_k=options.top_k,
            top_p=options.top_p,
            seed=options.seed,
            cancel=cancel,
        )
        decoder = self.tokenizer.stream_decoder()
        try:
            for step in stream:
                experts = weights = None
                if step.experts is not None:
                    experts = step.experts.detach().to("cpu").numpy()
                    weights = step.weights.detach().to("cpu", dtype=_float32()).numpy()
                yield TokenChunk(decoder.feed(step.token_id), step.token_id, step.position, experts, weights)
            result = stream.result
            stopped = result is not None and result.finish_reason == "cancelled"
            if stopped and not (cancel is not None and cancel.is_set()):
                # The engine caught Ctrl-C / the stop button inside a forward and ended cleanly (its
                # cache stays consistent); pass the interrupt on so the loop ends the run as cancelled
                # instead of taking the stop for the end of a step.
                raise KeyboardInterrupt
            tail = decoder.flush()
            if tail:
                yield TokenChunk(tail)
        finally:
            stream.close()  # a consumer that stops early (a budget) ends the engine's loop too
            self.last_result = stream.result
            self.last_context = _context_of(stream.result)

    def fork(self) -> EngineBackend:
        other = EngineBackend.__new__(EngineBackend)
        other.model, other.tokenizer = self.model, self.tokenizer
        other.session = self.session.fork()
        other._prompt = self._prompt.fork()
        other.last_result = other.last_context = None
        return other


def _context_of(result: Any) -> ContextRouting | None:
    """The prompt part of an engine GenerationResult's routing trace (None if not captured)."""
    trace = getattr(result, "routing", None)
    if trace is None or not trace.n_prompt or len(trace.tokens) < trace.n_prompt:
        return None
    n = trace.n_prompt
    experts, weights = trace.numpy()
    return ContextRouting(
        np.arange(trace.start, trace.start + n, dtype=np.int64),
        np.asarray(trace.tokens[:n], dtype=np.int64),
        experts[:n],
        weights[:n],
    )


def _float32() -> Any:
    import torch

    return torch.float32
