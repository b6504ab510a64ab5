"""Rendering a conversation in the K2 Thinking chat format (see the package docstring for the layout)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from k2nb.formats.base import Piece
from k2nb.formats.k2.markers import (
    DEFAULT_SYSTEM_PROMPT,
    IM_ASSISTANT,
    IM_END,
    IM_MIDDLE,
    IM_SYSTEM,
    IM_USER,
    THINK_BEGIN,
    THINK_END,
    TOOL_CALL_ARGUMENT_BEGIN,
    TOOL_CALL_BEGIN,
    TOOL_CALL_END,
    TOOL_CALLS_SECTION_BEGIN,
    TOOL_CALLS_SECTION_END,
    TOOL_DECLARE_NAME,
)

if TYPE_CHECKING:
    from k2nb.formats.base import TokenizerLike as Tokenizer


Message = Mapping[str, Any]

GENERATION_PROMPT_PIECES: tuple[Piece, ...] = ((IM_ASSISTANT, True), ("assistant", False), (IM_MIDDLE, True))


def keeps_reasoning(messages: Sequence[Message]) -> list[bool]:
    """Per message, whether an assistant message renders its reasoning (the retention rule).

    True only after the last assistant message without tool calls: that is the tool loop still in
    progress, whose reasoning the model needs; finished turns are shown with an empty think block.
    """
    last_final = -1
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") == "assistant" and not messages[i].get("tool_calls"):
            last_final = i
            break
    return [i > last_final for i in range(len(messages))]


def _content_text(message: Message) -> str:
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, Mapping) and part.get("type", "text") == "text" and "text" in part:
                parts.append(str(part["text"]))
            else:
                raise ValueError(
                    f"A {message.get('role')!r} message has a content part k2nb cannot render "
                    "(only text parts are supported; k2nb models have no vision input)."
                )
        return "".join(parts)
    raise ValueError(f"A {message.get('role')!r} message has content of type {type(content).__name__}.")


def _tool_call_pieces(message: Message) -> list[Piece]:
    pieces: list[Piece] = [(TOOL_CALLS_SECTION_BEGIN, True)]
    for call in message["tool_calls"]:
        call_id = call.get("id")
        function = call.get("function") or {}
        # "" is an id the model generated (malformed, answered with an error): rendered as it was,
        # so the prompt reproduces the output; a call with no id at all is the caller's mistake
        if call_id is None:
            raise ValueError(
                f"Tool call {function.get('name')!r} has no id; give it one with tool_call_id(name, idx)."
            )
        arguments = function.get("arguments", "")
        if not isinstance(arguments, str):  # transformers' tojson: json.dumps defaults, no ASCII escaping
            arguments = json.dumps(arguments, ensure_ascii=False)
        pieces += [
            (TOOL_CALL_BEGIN, True),
            (str(call_id), False),
            (TOOL_CALL_ARGUMENT_BEGIN, True),
            (arguments, False),
            (TOOL_CALL_END, True),
        ]
    pieces.append((TOOL_CALLS_SECTION_END, True))
    return pieces


def render_message_pieces(message: Message, keep_reasoning: bool) -> list[Piece]:
    """One message, framed ``<|im_ROLE|>{name or role}<|im_middle|>{body}<|im_end|>``.

    `keep_reasoning` is this message's entry of :func:`keeps_reasoning` (ignored unless assistant).
    A loop that appends messages can encode just the new ones, as long as the retention of earlier
    assistant messages does not change (it changes when an assistant message without tool calls is
    appended: then the earlier tool loop's reasoning is dropped and the prefix must be re-rendered).
    """
    role = message.get("role")
    if not isinstance(role, str) or not role:
        raise ValueError(f"A message needs a 'role' string, got {role!r}.")
    opener = IM_USER if role == "user" else IM_ASSISTANT if role == "assistant" else IM_SYSTEM
    pieces: list[Piece] = [(opener, True), (str(message.get("name") or role), False), (IM_MIDDLE, True)]
    if role == "assistant":
        reasoning = (message.get("reasoning_content") or "") if keep_reasoning else ""
        pieces += [(THINK_BEGIN, True), (str(reasoning), False), (THINK_END, True)]
        pieces.append((_content_text(message), False))
        if message.get("tool_calls"):
            pieces += _tool_call_pieces(message)
    elif role == "tool":
        call_id = message.get("tool_call_id") or ""
        pieces.append((f"## Return of {call_id}\n{_content_text(message)}", False))
    else:
        pieces.append((_content_text(message), False))
    pieces.append((IM_END, True))
    return _normalise(pieces)


def _sort_keys_deep(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _sort_keys_deep(value[k]) for k in sorted(value)}
    if isinstance(value, list | tuple):
        return [_sort_keys_deep(v) for v in value]
    return value


def render_preamble_pieces(
    messages: Sequence[Message], tools: Sequence[Mapping] | None = None
) -> list[Piece]:
    """What precedes the first message: the tool declaration and, if needed, the default system prompt."""
    pieces: list[Piece] = []
    if tools:
        # keys sorted recursively (tokenization_kimi.py), compact, non-ASCII kept as is
        declared = json.dumps(_sort_keys_deep(list(tools)), separators=(",", ":"), ensure_ascii=False)
        pieces += [(IM_SYSTEM, True), (TOOL_DECLARE_NAME, False), (IM_MIDDLE, True), (declared, False)]
        pieces.append((IM_END, True))
    if not messages or messages[0].get("role") != "system":
        pieces += [(IM_SYSTEM, True), ("system", False), (IM_MIDDLE, True), (DEFAULT_SYSTEM_PROMPT, False)]
        pieces.append((IM_END, True))
    return pieces


def _normalise(pieces: Iterable[Piece]) -> list[Piece]:
    """Drop empty text and merge adjacent text pieces, so each text run is encoded in one call."""
    out: list[Piece] = []
    for text, is_marker in pieces:
        if not text:
            continue
        if not is_marker and out and not out[-1][1]:
            out[-1] = (out[-1][0] + text, False)
        else:
            out.append((text, is_marker))
    return out


def render_pieces(
    messages: Sequence[Message],
    tools: Sequence[Mapping] | None = None,
    add_generation_prompt: bool = True,
) -> list[Piece]:
    """The conversation as (text, is_special_marker) pieces; joined, they are :func:`render_text`."""
    pieces = render_preamble_pieces(messages, tools)
    for message, keep in zip(messages, keeps_reasoning(messages), strict=True):
        pieces += render_message_pieces(message, keep)
    if add_generation_prompt:
        pieces += GENERATION_PROMPT_PIECES
    return _normalise(pieces)


def render_text(
    messages: Sequence[Message],
    tools: Sequence[Mapping] | None = None,
    add_generation_prompt: bool = True,
) -> str:
    """The prompt text, as K2 Thinking's HF template renders it (see the module docstring)."""
    return "".join(text for text, _ in render_pieces(messages, tools, add_generation_prompt))


def encode_pieces(tokenizer: Tokenizer, pieces: Iterable[Piece]) -> list[int]:
    """Token ids for rendered pieces: markers become their special ids, text is encoded with special
    tokens disallowed, so a marker string inside user or tool text can never act as a marker.

    A marker the tokenizer has no special id for is encoded as text with its neighbours, which is
    what the HF template plus that tokenizer would produce.
    """
    ids: list[int] = []
    pending: list[str] = []
    for text, is_marker in pieces:
        special_id = tokenizer.special_tokens.get(text) if is_marker else None
        if special_id is None:
            pending.append(text)
            continue
        if pending:
            ids += tokenizer.encode("".join(pending))
            pending.clear()
        ids.append(special_id)
    if pending:
        ids += tokenizer.encode("".join(pending))
    return ids


def encode_conversation(
    tokenizer: Tokenizer,
    messages: Sequence[Message],
    tools: Sequence[Mapping] | None = None,
    add_generation_prompt: bool = True,
) -> list[int]:
    """Prompt ids for a conversation (special ids only where the format puts markers)."""
    return encode_pieces(tokenizer, render_pieces(messages, tools, add_generation_prompt))
