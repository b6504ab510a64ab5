"""What a chat format is, for the backends that use one: rendering and parsing behind one object.

A format turns a conversation (OpenAI-style messages and tool schemas) into `Piece`s — text, each
flagged as a special marker or not — and a model's generated text back into the events of
`k2nb.events`. The local engine backend is given a format; a served backend needs none (the server
renders and parses). Formats know no tokenizer class: `encode` takes anything `TokenizerLike`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from k2nb.events import Event

Piece = tuple[str, bool]  # (text, is_special_marker)
Message = Mapping[str, Any]


class TokenizerLike(Protocol):
    special_tokens: Mapping[str, int]

    def encode(self, text: str, allow_special: bool = False) -> list[int]: ...


class StreamParser(Protocol):
    def feed(self, text_chunk: str, special: bool | None = None) -> list[Event]: ...

    def finish(self) -> list[Event]: ...


class ChatFormat(Protocol):
    """A model family's chat format."""

    name: str
    special_markers: tuple[str, ...]  # every marker it renders (one special token each)
    stop_marker: str  # the marker that ends an assistant turn
    generation_prompt: tuple[Piece, ...]  # what opens the assistant turn to generate

    def render_preamble(self, messages: Sequence[Message], tools: Sequence[Mapping] | None) -> list[Piece]:
        """What precedes the first message (tool declarations, a default system prompt)."""
        ...

    def render_message(self, message: Message, keep_reasoning: bool) -> list[Piece]: ...

    def keeps_reasoning(self, messages: Sequence[Message]) -> list[bool]:
        """Per message, whether it renders its reasoning (the format's retention rule)."""
        ...

    def forced_answer(self, reasoning: str) -> list[Piece]:
        """The start of an assistant turn whose thinking is closed: `reasoning` as the whole think
        block, so what the model generates next is its answer (budget forcing)."""
        ...

    def parser(self) -> StreamParser: ...

    def encode(self, tokenizer: TokenizerLike, pieces: Sequence[Piece]) -> list[int]:
        """Token ids: markers as their special ids, all other text with special tokens disallowed."""
        ...
