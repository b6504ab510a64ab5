"""`ScriptedBackend`: a test double for the model. A model with random weights does not behave, so the
loop's logic is tested with turns written in advance, emitted as K2-format text through the real
K2 stream parser, token by token, with deterministic fake routing.

It renders every prompt with the real chat renderer (so a malformed conversation fails here as it
would with the engine) and keeps the rendered prompts in `.prompts` for tests to inspect.
"""

from __future__ import annotations

import json
import re
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from k2nb.backends.base import BackendBase, GenerationOptions, Prompt, TurnStream
from k2nb.backends.formatted import IncrementalPrompt, TextToken, parse_turn, prompt_tail
from k2nb.formats.base import Piece
from k2nb.formats.k2 import (
    IM_END,
    K2_FORMAT,
    PARSER_MARKERS,
    THINK_BEGIN,
    THINK_END,
    TOOL_CALL_ARGUMENT_BEGIN,
    TOOL_CALL_BEGIN,
    TOOL_CALL_END,
    TOOL_CALLS_SECTION_BEGIN,
    TOOL_CALLS_SECTION_END,
    parse_tool_call_id,
    tool_call_id,
)


@dataclass(slots=True)
class Turn:
    """One assistant turn: reasoning, tool calls `(name, arguments)` (a dict, or a str sent
    verbatim, malformed JSON included) and answer text. Call ids are numbered like K2's
    (`functions.NAME:IDX`, IDX counting calls over the conversation)."""

    think: str = ""
    calls: Sequence[tuple[str, dict[str, Any] | str]] = ()
    answer: str = ""

    def render(self, first_call_index: int, thinking_open: bool = False) -> str:
        """K2 text for this turn; `thinking_open=False` when a prefix already closed the think block."""
        out = [THINK_BEGIN, self.think, THINK_END] if thinking_open else []
        out.append(self.answer)
        if self.calls:
            out.append(TOOL_CALLS_SECTION_BEGIN)
            for i, (name, args) in enumerate(self.calls):
                text = args if isinstance(args, str) else json.dumps(args)
                out += [TOOL_CALL_BEGIN, tool_call_id(name, first_call_index + i), TOOL_CALL_ARGUMENT_BEGIN]
                out += [text, TOOL_CALL_END]
            out.append(TOOL_CALLS_SECTION_END)
        out.append(IM_END)
        return "".join(out)


ScriptItem = str | Turn | Callable[[Prompt], "str | Turn"]

_MARKER_SPLIT = re.compile(
    "(" + "|".join(re.escape(m) for m in sorted(PARSER_MARKERS, key=len, reverse=True)) + ")"
)


def fake_tokens(text: str, chunk_chars: int) -> list[str]:
    """Markers as single tokens, other text in chunks of `chunk_chars` characters."""
    out: list[str] = []
    for part in _MARKER_SPLIT.split(text):
        if not part:
            continue
        if part in PARSER_MARKERS:
            out.append(part)
        else:
            out += [part[i : i + chunk_chars] for i in range(0, len(part), chunk_chars)]
    return out


def _next_call_index(messages: Sequence[Any]) -> int:
    """IDX for the next call: one past the last id used (found from the end, so it is O(1) in a long
    tool loop), or the number of calls so far when that id is not of the K2 form."""
    for m in reversed(messages):
        calls = m.get("tool_calls") if m.get("role") == "assistant" else None
        if calls:
            try:
                return parse_tool_call_id(calls[-1]["id"])[1] + 1
            except (ValueError, KeyError, TypeError):
                break
    return sum(len(m.get("tool_calls") or []) for m in messages if m.get("role") == "assistant")


class ScriptExhausted(IndexError):
    """The loop asked for more turns than the script has."""


@dataclass
class ScriptedBackend(BackendBase):
    """Plays `script` one item per generation: a raw K2 output string, a `Turn`, or a function of
    the `Prompt` returning either (to react to observations). Token ids are CRC32s of the token text,
    routing is a deterministic function of the id, positions count fake tokens of the prompt."""

    script: Sequence[ScriptItem]
    chunk_chars: int = 4
    n_layers: int = 2
    top_k: int = 2
    n_experts: int = 8
    keep_prompts: bool = True
    prompts: list[str] = field(default_factory=list)  # every rendered prompt, in order
    calls: int = 0  # generations served
    _cursor: list[int] = field(default_factory=lambda: [0])  # shared with forks: one script, many paths
    _prompt: IncrementalPrompt[str] | None = None
    # A model context of this many fake tokens, as the engine's max_position_embeddings: a prompt
    # that fills it is refused, generation stops at its end. None: unbounded (and `context` unknown).
    context_window: int | None = None

    def __post_init__(self) -> None:
        if self._prompt is None:
            self._prompt = IncrementalPrompt(K2_FORMAT, self._encode)

    def _encode(self, pieces: list[Piece]) -> list[str]:
        out: list[str] = []
        for text, is_marker in pieces:
            out += [text] if is_marker else fake_tokens(text, self.chunk_chars)
        return out

    def routing_of(self, token_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Fake routing `[n_layers, top_k]`: distinct experts per layer derived from the token id."""
        experts = np.array(
            [
                [(token_id + 3 * layer + j) % self.n_experts for j in range(self.top_k)]
                for layer in range(self.n_layers)
            ],
            dtype=np.int32,
        )
        weights = np.full((self.n_layers, self.top_k), 1.0 / self.top_k, dtype=np.float32)
        return experts, weights

    def next_item(self, prompt: Prompt) -> str:
        i = self._cursor[0]
        if i >= len(self.script):
            raise ScriptExhausted(f"the script has {len(self.script)} turns and turn {i + 1} was requested")
        self._cursor[0] += 1
        item = self.script[i]
        if callable(item) and not isinstance(item, Turn):
            item = item(prompt)
        if isinstance(item, Turn):
            return item.render(
                _next_call_index(prompt.messages), thinking_open=prompt.forced_reasoning is None
            )
        return item

    def context(self, prompt: Prompt) -> tuple[int, int] | None:
        if self.context_window is None:
            return None
        assert self._prompt is not None
        tokens = self._prompt.update(prompt.messages, prompt.tools)
        return len(tokens) + len(self._encode(prompt_tail(K2_FORMAT, prompt))), self.context_window

    def stream(
        self, prompt: Prompt, options: GenerationOptions, cancel: threading.Event | None = None
    ) -> TurnStream:
        assert self._prompt is not None
        tokens = self._prompt.update(prompt.messages, prompt.tools)
        tail = self._encode(prompt_tail(K2_FORMAT, prompt))
        n_prompt = len(tokens) + len(tail)
        if self.context_window is not None and n_prompt >= self.context_window:
            from k2nb.engine.errors import GenerationError  # the engine's refusal, word for word

            raise GenerationError(f"the prompt is {n_prompt} tokens, but the model's context is "
                                  f"{self.context_window} (max_position_embeddings); start a new "
                                  "conversation or shorten it")
        if self.keep_prompts:
            self.prompts.append("".join(tokens) + "".join(tail))
        text = self.next_item(prompt)
        self.calls += 1
        return parse_turn(K2_FORMAT, prompt, self._tokens(text, len(tokens) + len(tail), options, cancel))

    def _tokens(
        self, text: str, position: int, options: GenerationOptions, cancel: threading.Event | None
    ) -> Iterator[TextToken]:
        # special=None: the parser scans the text for markers, as it does for any text source that
        # cannot flag special tokens
        end = self.context_window
        for n, piece in enumerate(fake_tokens(text, self.chunk_chars)):
            if n >= options.max_new_tokens or (cancel is not None and cancel.is_set()):
                return
            if end is not None and position >= end:  # the end of the context, as the engine stops
                return
            token_id = zlib.crc32(piece.encode()) % 50_000
            experts, weights = self.routing_of(token_id)
            yield TextToken(piece, None, token_id, position, experts, weights)
            position += 1

    def fork(self) -> ScriptedBackend:
        assert self._prompt is not None
        return ScriptedBackend(
            self.script,
            self.chunk_chars,
            self.n_layers,
            self.top_k,
            self.n_experts,
            self.keep_prompts,
            self.prompts,
            0,
            self._cursor,
            self._prompt.fork(),
            self.context_window,
        )
