"""The Kimi K2 Thinking chat format: rendering conversations and parsing generated output.

This package is the only place that knows the marker strings. The engine backend renders prompts and parses
its output through `K2_FORMAT`; the k2-nano curriculum, tokenizer trainer and eval import the markers
from here, so the format has one source of truth. The agent loop never sees a marker: it reads the
events of `k2nb.events`.

Rendering follows the semantics of ``moonshotai/Kimi-K2-Thinking``'s ``chat_template.jinja`` together
with ``tokenization_kimi.py`` (which sorts the keys of ``tools`` recursively before rendering).
With M = ``<|im_middle|>`` and E = ``<|im_end|>``, a rendered conversation is, with no whitespace or
newlines between parts::

    <|im_system|>tool_declare M {tools as compact JSON, keys sorted} E     only when tools are given
    <|im_system|>system M You are Kimi, an AI assistant created by Moonshot AI. E
                                          only when the conversation does not start with a system message
    per message:  <|im_user|> | <|im_assistant|> | <|im_system|> (system, tool, any other role)
                  {name or role} M {body} E
        user / system body:  content
        tool body:           "## Return of {tool_call_id}\\n" + content
        assistant body:      <think>{reasoning or ""}</think>{content}
                             [<|tool_calls_section_begin|>
                                (<|tool_call_begin|>{id}<|tool_call_argument_begin|>{arguments}<|tool_call_end|>)+
                              <|tool_calls_section_end|>]
    generation prompt:   <|im_assistant|>assistant M

The think block is part of the assistant body, directly after ``<|im_middle|>``; the template adds no
newline anywhere except the one after "## Return of {id}". Reasoning retention: assistant messages up
to and including the last assistant message *without* tool calls render an empty ``<think></think>``;
later ones (the ongoing tool loop) keep their ``reasoning_content``.

Choices where the template could not be followed literally or was ambiguous:

* Tool declarations use compact separators ``(",", ":")`` and ``ensure_ascii=False``, as in the
  published K2 Thinking/K2.5 templates and K2_REFERENCE. One stored copy of the K2 Thinking template
  (llama.cpp's ``moonshotai-Kimi-K2-Thinking.jinja``) calls ``tojson()`` without separators, which in
  transformers yields ``", "``/``": "``; if a checkpoint's template differs, this line is the one.
* Non-string ``arguments`` are rendered like transformers' ``tojson`` (``json.dumps`` defaults,
  ``ensure_ascii=False``, keys in given order); strings are rendered verbatim.
* ``reasoning_content: None`` renders as empty (Jinja would print "None"); ``content: None`` renders
  as empty, as in the template.
* List content may hold text parts only (``{"type": "text", "text": ...}``); k2nb has no vision
  tower, so image parts raise ValueError instead of rendering media placeholders.
* A tool call without an ``id`` raises ValueError (the template would render an empty id, which the
  model could never refer to). Use :func:`tool_call_id` to make one.

Parsing is :class:`ChatStreamParser` (``parser.py``); the markers are named in ``markers.py`` only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from k2nb.formats.base import Piece
from k2nb.formats.k2.markers import (
    DEFAULT_SYSTEM_PROMPT,
    IM_ASSISTANT,
    IM_END,
    IM_MIDDLE,
    IM_SYSTEM,
    IM_USER,
    PARSER_MARKERS,
    SPECIAL_MARKERS,
    THINK_BEGIN,
    THINK_END,
    TOOL_CALL_ARGUMENT_BEGIN,
    TOOL_CALL_BEGIN,
    TOOL_CALL_END,
    TOOL_CALL_ID_PREFIX,
    TOOL_CALL_SECTION_BEGIN_SINGULAR,
    TOOL_CALL_SECTION_END_SINGULAR,
    TOOL_CALLS_SECTION_BEGIN,
    TOOL_CALLS_SECTION_END,
    parse_tool_call_id,
    split_tool_call_id,
    tool_call_id,
)
from k2nb.formats.k2.parser import ChatStreamParser, parse_complete
from k2nb.formats.k2.render import (
    GENERATION_PROMPT_PIECES,
    Message,
    encode_conversation,
    encode_pieces,
    keeps_reasoning,
    render_message_pieces,
    render_pieces,
    render_preamble_pieces,
    render_text,
)

if TYPE_CHECKING:
    from k2nb.formats.base import TokenizerLike as Tokenizer

# The same format as a Jinja chat template (what a checkpoint's tokenizer_config.json carries for
# vLLM, SGLang and transformers); tests/test_chat_template.py holds it equal to `render_text`.
CHAT_TEMPLATE_PATH = Path(__file__).with_name("chat_template.jinja")


def chat_template() -> str:
    """The K2 chat format as a Jinja template (for `tokenizer_config.json`'s `chat_template`)."""
    return CHAT_TEMPLATE_PATH.read_text(encoding="utf-8")

__all__ = [
    "CHAT_TEMPLATE_PATH",
    "DEFAULT_SYSTEM_PROMPT",
    "GENERATION_PROMPT_PIECES",
    "IM_ASSISTANT",
    "IM_END",
    "IM_MIDDLE",
    "IM_SYSTEM",
    "IM_USER",
    "K2_FORMAT",
    "PARSER_MARKERS",
    "SPECIAL_MARKERS",
    "THINK_BEGIN",
    "THINK_END",
    "TOOL_CALLS_SECTION_BEGIN",
    "TOOL_CALLS_SECTION_END",
    "TOOL_CALL_ARGUMENT_BEGIN",
    "TOOL_CALL_BEGIN",
    "TOOL_CALL_END",
    "TOOL_CALL_ID_PREFIX",
    "TOOL_CALL_SECTION_BEGIN_SINGULAR",
    "TOOL_CALL_SECTION_END_SINGULAR",
    "ChatStreamParser",
    "K2Format",
    "chat_template",
    "encode_conversation",
    "encode_pieces",
    "keeps_reasoning",
    "parse_complete",
    "parse_tool_call_id",
    "render_message_pieces",
    "render_pieces",
    "render_preamble_pieces",
    "render_text",
    "split_tool_call_id",
    "tool_call_id",
]


class K2Format:
    """The K2 Thinking chat format as the object a backend is given (see `k2nb.formats.base`)."""

    name = "k2"
    special_markers = SPECIAL_MARKERS
    stop_marker = IM_END
    generation_prompt = GENERATION_PROMPT_PIECES

    def render_preamble(self, messages: Sequence[Message], tools: Sequence[Mapping] | None) -> list[Piece]:
        return render_preamble_pieces(messages, tools)

    def render_message(self, message: Message, keep_reasoning: bool) -> list[Piece]:
        return render_message_pieces(message, keep_reasoning)

    def keeps_reasoning(self, messages: Sequence[Message]) -> list[bool]:
        return keeps_reasoning(messages)

    def forced_answer(self, reasoning: str) -> list[Piece]:
        return [(THINK_BEGIN, True), (reasoning, False), (THINK_END, True)]

    def parser(self) -> ChatStreamParser:
        return ChatStreamParser()

    def encode(self, tokenizer: Tokenizer, pieces: Sequence[Piece]) -> list[int]:
        return encode_pieces(tokenizer, pieces)

    def render_text(
        self,
        messages: Sequence[Message],
        tools: Sequence[Mapping] | None = None,
        add_generation_prompt: bool = True,
    ) -> str:
        return render_text(messages, tools, add_generation_prompt)

    def __repr__(self) -> str:
        return "K2Format()"


K2_FORMAT = K2Format()
