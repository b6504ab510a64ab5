"""The Kimi K2 Thinking chat format: rendering conversations and parsing generated output.

This is the only module that knows the marker strings. The engine backend renders prompts and parses
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

Parsing (:class:`ChatStreamParser`) follows the tolerances of vLLM/SGLang's K2 parsers: a leading
``<think>`` is optional, reasoning also ends at the tool-calls section, the singular spelling
``<|tool_call_section_begin|>``/``<|tool_call_section_end|>`` is accepted, and ids without the
``functions.`` prefix are accepted (the name is what precedes the last ``:``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from k2nb.events import (
    AnswerDelta,
    End,
    Event,
    ParseError,
    ThinkingDelta,
    ThinkingEnd,
    ToolCallArgsDelta,
    ToolCallDone,
    ToolCallStart,
)
from k2nb.formats.base import Piece

if TYPE_CHECKING:
    from k2nb.formats.base import TokenizerLike as Tokenizer

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "GENERATION_PROMPT_PIECES",
    "IM_ASSISTANT",
    "IM_END",
    "IM_MIDDLE",
    "IM_SYSTEM",
    "IM_USER",
    "PARSER_MARKERS",
    "SPECIAL_MARKERS",
    "THINK_BEGIN",
    "THINK_END",
    "TOOL_CALLS_SECTION_BEGIN",
    "TOOL_CALLS_SECTION_END",
    "TOOL_CALL_ARGUMENT_BEGIN",
    "TOOL_CALL_BEGIN",
    "TOOL_CALL_END",
    "TOOL_CALL_SECTION_BEGIN_SINGULAR",
    "TOOL_CALL_SECTION_END_SINGULAR",
    "ChatStreamParser",
    "K2_FORMAT",
    "K2Format",
    "encode_conversation",
    "encode_pieces",
    "keeps_reasoning",
    "parse_complete",
    "parse_tool_call_id",
    "render_message_pieces",
    "render_pieces",
    "render_preamble_pieces",
    "render_text",
    "tool_call_id",
]

# --- markers --------------------------------------------------------------------------------------

IM_SYSTEM = "<|im_system|>"
IM_USER = "<|im_user|>"
IM_ASSISTANT = "<|im_assistant|>"
IM_MIDDLE = "<|im_middle|>"  # ends the role name
IM_END = "<|im_end|>"  # ends a message; the generation stop token
THINK_BEGIN = "<think>"
THINK_END = "</think>"
TOOL_CALLS_SECTION_BEGIN = "<|tool_calls_section_begin|>"
TOOL_CALLS_SECTION_END = "<|tool_calls_section_end|>"
TOOL_CALL_BEGIN = "<|tool_call_begin|>"
TOOL_CALL_ARGUMENT_BEGIN = "<|tool_call_argument_begin|>"
TOOL_CALL_END = "<|tool_call_end|>"

# Every marker the renderer emits; a tokenizer trainer must make each of them one special token.
SPECIAL_MARKERS: tuple[str, ...] = (
    IM_SYSTEM,
    IM_USER,
    IM_ASSISTANT,
    IM_MIDDLE,
    IM_END,
    THINK_BEGIN,
    THINK_END,
    TOOL_CALLS_SECTION_BEGIN,
    TOOL_CALLS_SECTION_END,
    TOOL_CALL_BEGIN,
    TOOL_CALL_ARGUMENT_BEGIN,
    TOOL_CALL_END,
)

# Spellings some K2 outputs use; parsed like the plural ones, never rendered.
TOOL_CALL_SECTION_BEGIN_SINGULAR = "<|tool_call_section_begin|>"
TOOL_CALL_SECTION_END_SINGULAR = "<|tool_call_section_end|>"
PARSER_MARKERS: tuple[str, ...] = (
    *SPECIAL_MARKERS,
    TOOL_CALL_SECTION_BEGIN_SINGULAR,
    TOOL_CALL_SECTION_END_SINGULAR,
)

DEFAULT_SYSTEM_PROMPT = "You are Kimi, an AI assistant created by Moonshot AI."
TOOL_DECLARE_NAME = "tool_declare"
TOOL_CALL_ID_PREFIX = "functions."

# --- rendering ------------------------------------------------------------------------------------

Message = Mapping[str, Any]

GENERATION_PROMPT_PIECES: tuple[Piece, ...] = ((IM_ASSISTANT, True), ("assistant", False), (IM_MIDDLE, True))


def tool_call_id(name: str, idx: int) -> str:
    """The K2 tool-call id ``functions.NAME:IDX``; idx counts calls over the whole conversation.

    The id is the only place a call's function name reaches the model, so ids the model generated
    are kept verbatim and only new ones are made here.
    """
    return f"{TOOL_CALL_ID_PREFIX}{name}:{idx}"


def _split_tool_call_id(call_id: str) -> tuple[str, int | None]:
    """(name, idx) of an id, tolerant: idx is None when the id is not ``[functions.]NAME:IDX``.

    The name is always the best guess (what precedes the last ``:``, without the prefix), so a
    malformed call can still be reported by name.
    """
    body = call_id.strip()
    if body.startswith(TOOL_CALL_ID_PREFIX):
        body = body[len(TOOL_CALL_ID_PREFIX) :]
    name, sep, idx = body.rpartition(":")
    if not sep:
        return body, None
    # 18 digits at most: an index is a call count, and int() refuses strings past 4,300 digits
    if not name or any(c.isspace() for c in name) or not (idx.isascii() and idx.isdigit()) or len(idx) > 18:
        return name, None
    return name, int(idx)


def parse_tool_call_id(call_id: str) -> tuple[str, int]:
    """(name, idx) of ``functions.NAME:IDX`` (the prefix may be missing, as vLLM's parser allows).

    Raises ValueError for anything else.
    """
    name, idx = _split_tool_call_id(call_id)
    if idx is None:
        raise ValueError(f"Tool call id {call_id!r} is not of the form functions.NAME:IDX.")
    return name, idx


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
        if not call_id:
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


# --- parsing --------------------------------------------------------------------------------------


_SECTION_BEGINS = frozenset({TOOL_CALLS_SECTION_BEGIN, TOOL_CALL_SECTION_BEGIN_SINGULAR})
_SECTION_ENDS = frozenset({TOOL_CALLS_SECTION_END, TOOL_CALL_SECTION_END_SINGULAR})
_MARKER_RE = re.compile("|".join(re.escape(m) for m in sorted(PARSER_MARKERS, key=len, reverse=True)))
_PARSER_MARKER_SET = frozenset(PARSER_MARKERS)
_MARKER_PREFIXES = frozenset(m[:k] for m in PARSER_MARKERS for k in range(1, len(m)))
_LONGEST_MARKER = max(len(m) for m in PARSER_MARKERS)

# parser states
_THINK, _ANSWER, _SECTION, _CALL_ID, _CALL_ARGS, _AFTER_SECTION, _DONE = range(7)


def _partial_marker_start(text: str) -> int:
    """Index where a possible unfinished marker begins at the end of `text` (len(text) if none)."""
    start = max(0, len(text) - _LONGEST_MARKER + 1)
    i = text.find("<", start)
    while i != -1:
        if text[i:] in _MARKER_PREFIXES:
            return i
        i = text.find("<", i + 1)
    return len(text)


def _preview(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


class ChatStreamParser:
    """Generated text (special tokens decoded as their marker strings) → events, incrementally.

    The output is what follows the generation prompt: ``[<think>] reasoning [</think> answer]
    [tool-calls section] <|im_end|>``. Text that could be the start of a marker is held back until the
    next chunk decides, so any split of an output into chunks gives the same events once adjacent
    deltas are merged. Malformed output becomes :class:`ParseError` events; nothing here raises.
    Inside a call's arguments only the call-framing markers count; any other marker string is
    argument text (a JSON string may legitimately contain ``"<think>"``).
    """

    def __init__(self) -> None:
        self._buf = ""  # unconsumed text: at most a possible partial marker between feeds
        self._state = _THINK
        self._at_start = True  # nothing consumed yet, so a `<think>` here is the optional opener
        self._finished = False
        self._n_calls = 0
        self._call_started = False
        self._call_id: list[str] = []
        self._call_args: list[str] = []
        self._junk: list[str] = []  # text inside the tool-calls section but outside any call
        self._trailing: list[str] = []  # text after <|im_end|>

    def feed(self, text_chunk: str, special: bool | None = None) -> list[Event]:
        """Events that `text_chunk` completes.

        `special` is the tokenizer's word on the chunk: True when it is one special token (a marker),
        False when it is ordinary text, which then never acts as a marker even if it spells one
        (``print("<|im_end|>")`` inside arguments). None (text from a source that cannot tell) scans
        the text for marker strings.
        """
        if self._finished:
            return []
        if not isinstance(text_chunk, str):
            return [ParseError(f"feed() takes text, got {type(text_chunk).__name__}.", repr(text_chunk))]
        out: list[Event] = []
        if special is None:
            self._buf += text_chunk
            self._drain(out, final=False)
            return out
        self._drain(out, final=True)  # held-back text cannot become a marker now: flags decide
        if special and text_chunk in _PARSER_MARKER_SET:
            self._marker(text_chunk, out)
        else:
            self._text(text_chunk, out)
        return out

    def finish(self) -> list[Event]:
        """Flush held-back text and close the message; End("length") unless <|im_end|> was seen."""
        if self._finished:
            return []
        out: list[Event] = []
        self._drain(out, final=True)
        self._finished = True
        if self._state in (_CALL_ID, _CALL_ARGS):
            self._close_call(out, "was cut off before <|tool_call_end|>")
        elif self._state in (_SECTION, _AFTER_SECTION):
            self._flush_junk(out)
        if self._state == _DONE:
            trailing = "".join(self._trailing)
            if trailing:
                out.append(ParseError(f"Text after <|im_end|> was ignored: {_preview(trailing)}.", trailing))
        else:
            out.append(End("length"))
        return out

    # -- scanning

    def _drain(self, out: list[Event], final: bool) -> None:
        while True:
            match = _MARKER_RE.search(self._buf)
            if match is None:
                cut = len(self._buf) if final else _partial_marker_start(self._buf)
                text, self._buf = self._buf[:cut], self._buf[cut:]
                self._text(text, out)
                return
            self._text(self._buf[: match.start()], out)
            self._buf = self._buf[match.end() :]
            self._marker(match.group(), out)

    def _text(self, text: str, out: list[Event]) -> None:
        if not text:
            return
        state = self._state
        if state == _THINK:
            self._at_start = False
            out.append(ThinkingDelta(text))
        elif state == _ANSWER:
            out.append(AnswerDelta(text))
        elif state == _CALL_ARGS:
            self._call_args.append(text)
            out.append(ToolCallArgsDelta(self._n_calls, text))
        elif state == _CALL_ID:
            self._call_id.append(text)
        elif state == _DONE:
            self._trailing.append(text)
        else:  # _SECTION, _AFTER_SECTION
            self._junk.append(text)

    def _marker(self, marker: str, out: list[Event]) -> None:
        state = self._state
        if state == _DONE:
            self._trailing.append(marker)
        elif state in (_THINK, _ANSWER):
            if state == _THINK and marker == THINK_BEGIN and self._at_start:
                self._at_start = False  # the optional opener
            elif state == _THINK and marker == THINK_END:
                out.append(ThinkingEnd())
                self._state = _ANSWER
            elif marker in _SECTION_BEGINS:
                if state == _THINK:
                    out.append(ThinkingEnd())  # reasoning may end at the tool calls, without </think>
                self._state = _SECTION
            elif marker == IM_END:
                self._stop(out)
            else:
                self._text(marker, out)  # out-of-place marker strings stay text of this part
        elif state in (_SECTION, _AFTER_SECTION):
            if marker == TOOL_CALL_BEGIN and state == _SECTION:
                self._flush_junk(out)
                self._state = _CALL_ID
            elif marker in _SECTION_ENDS and state == _SECTION:
                self._flush_junk(out)
                self._state = _AFTER_SECTION
            elif marker in _SECTION_BEGINS:
                self._flush_junk(out)
                self._state = _SECTION  # a repeated or second section: keep collecting calls
            elif marker == IM_END:
                self._flush_junk(out)
                self._stop(out)
            else:
                self._junk.append(marker)
        else:  # _CALL_ID, _CALL_ARGS
            if marker == TOOL_CALL_ARGUMENT_BEGIN and state == _CALL_ID:
                self._start_call(out)
                self._state = _CALL_ARGS
            elif marker == TOOL_CALL_END:
                if state == _CALL_ARGS:
                    self._close_call(out, None)
                else:
                    self._close_call(out, f"has no {TOOL_CALL_ARGUMENT_BEGIN} before {TOOL_CALL_END}")
                self._state = _SECTION
            elif marker == TOOL_CALL_BEGIN:
                self._close_call(out, f"was not closed by {TOOL_CALL_END} before the next call")
                self._state = _CALL_ID
            elif marker in _SECTION_ENDS:
                self._close_call(out, f"was not closed by {TOOL_CALL_END} before the section end")
                self._state = _AFTER_SECTION
            elif marker == IM_END:
                self._close_call(out, f"was not closed by {TOOL_CALL_END} before {IM_END}")
                self._stop(out)
            else:
                self._text(marker, out)

    def _stop(self, out: list[Event]) -> None:
        out.append(End("stop"))
        self._state = _DONE

    # -- tool calls

    def _start_call(self, out: list[Event]) -> None:
        call_id = "".join(self._call_id)
        out.append(ToolCallStart(self._n_calls, call_id, _split_tool_call_id(call_id)[0]))
        self._call_started = True

    def _close_call(self, out: list[Event], problem: str | None) -> None:
        """Emit ToolCallDone for the open call (and ToolCallStart if it never got that far)."""
        call_id = "".join(self._call_id)
        arguments = "".join(self._call_args)
        name, idx = _split_tool_call_id(call_id)
        raw = TOOL_CALL_BEGIN + call_id
        if self._call_started:
            raw += TOOL_CALL_ARGUMENT_BEGIN + arguments
        else:
            self._start_call(out)
        if problem is None:
            raw += TOOL_CALL_END
        parsed: dict | None = None
        if problem is None and idx is None:
            problem = "has an id that is not of the form functions.NAME:IDX"
        if problem is None:
            try:
                value = json.loads(arguments)
            except (ValueError, RecursionError) as e:
                detail = (
                    f"{e.msg} at line {e.lineno} column {e.colno}"
                    if isinstance(e, json.JSONDecodeError)
                    else str(e)
                )
                problem = f"has arguments that are not valid JSON ({detail})"
            else:
                if isinstance(value, dict):
                    parsed = value
                else:
                    kind = {list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
                        type(value), "number"
                    )
                    problem = f"has arguments that are a JSON {kind}, not an object"
        out.append(ToolCallDone(self._n_calls, call_id, name, arguments, parsed))
        if problem is not None:
            out.append(ParseError(f"Tool call {call_id!r} {problem}.", raw))
        self._n_calls += 1
        self._call_started = False
        self._call_id.clear()
        self._call_args.clear()

    def _flush_junk(self, out: list[Event]) -> None:
        junk = "".join(self._junk)
        self._junk.clear()
        if junk.strip():
            out.append(ParseError(f"Text outside any tool call was ignored: {_preview(junk)}.", junk))


def parse_complete(text: str) -> list[Event]:
    """Events for a whole generated output (``feed`` then ``finish``)."""
    parser = ChatStreamParser()
    return parser.feed(text) + parser.finish()


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
