"""What a backend that runs a chat format itself shares (the local engine, the scripted test double).

`IncrementalPrompt` keeps the encoded conversation between steps and re-renders only the messages
that changed, so a 300-call run does not re-encode its conversation from the start at every step.
`parse_turn` feeds the generated tokens' text through the format's stream parser and hands the loop
events, so no layer above a backend ever sees a marker.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from k2nb.backends.base import Prompt, StreamChunk, TurnStream
from k2nb.formats.base import ChatFormat, Piece


@dataclass(slots=True)
class TextToken:
    """A generated token as text: `special` is the tokenizer's flag (None: unknown, scan the text)."""

    text: str
    special: bool | None = None
    token_id: int | None = None
    position: int | None = None
    experts: np.ndarray | None = None
    weights: np.ndarray | None = None


def prompt_tail(fmt: ChatFormat, prompt: Prompt) -> list[Piece]:
    """What follows the conversation: the generation prompt, and a closed think block when forced."""
    tail = list(fmt.generation_prompt)
    if prompt.forced_reasoning is not None:
        tail += fmt.forced_answer(prompt.forced_reasoning)
    return tail


def parse_turn(fmt: ChatFormat, prompt: Prompt, tokens: Iterator[TextToken]) -> TurnStream:
    """The turn that `tokens` generate, as events. A forced start is fed to the parser first (its
    events are the loop's own: it knows what it forced)."""
    parser = fmt.parser()
    if prompt.forced_reasoning is not None:
        for text, special in fmt.forced_answer(prompt.forced_reasoning):
            parser.feed(text, special)

    def chunks() -> Iterator[StreamChunk]:
        try:
            for tok in tokens:
                events = parser.feed(tok.text, tok.special) if tok.text else []
                yield StreamChunk(events, tok.token_id, tok.position, tok.experts, tok.weights)
        finally:
            close = getattr(tokens, "close", None)
            if close is not None:
                close()

    return TurnStream(chunks(), parser.finish)


T = TypeVar("T")


class IncrementalPrompt(Generic[T]):
    """The encoded conversation (preamble + messages, no generation prompt), kept between calls.

    `encode` turns rendered pieces into tokens (ids for the engine, text pieces for the scripted
    backend). Only messages from the first one that changed — by identity, then by value, or by the
    format's reasoning-retention rule — are rendered and encoded again.
    """

    def __init__(self, fmt: ChatFormat, encode: Callable[[list[Piece]], list[T]]):
        self.format = fmt
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
            self.tokens = self.encode(self.format.render_preamble(messages, tools))
            self._messages, self._keep, self._offsets = [], [], []
            self._tools_key, self._first_role = tools_key, first_role
            start, keep = 0, self.format.keeps_reasoning(messages)
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
            keep = self.format.keeps_reasoning(messages)
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
            self.tokens.extend(self.encode(self.format.render_message(messages[i], keep[i])))
            self._messages.append(messages[i])
            self._keep.append(keep[i])
        self.rendered_messages = len(messages) - start
        return self.tokens

    def fork(self) -> IncrementalPrompt[T]:
        other: IncrementalPrompt[T] = IncrementalPrompt(self.format, self.encode)
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
