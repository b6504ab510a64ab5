"""`ChatStreamParser`: K2 Thinking output text → `k2nb.events`, incrementally, never raising.

It follows the tolerances of vLLM/SGLang's K2 parsers: a leading ``<think>`` is optional, reasoning
also ends at the tool-calls section, the singular spelling ``<|tool_call_section_begin|>`` is
accepted, and ids without the ``functions.`` prefix are accepted (the name is what precedes the
last ``:``).
"""

from __future__ import annotations

import json
import re

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
from k2nb.formats.k2.markers import (
    IM_END,
    PARSER_MARKERS,
    THINK_BEGIN,
    THINK_END,
    TOOL_CALL_ARGUMENT_BEGIN,
    TOOL_CALL_BEGIN,
    TOOL_CALL_END,
    TOOL_CALL_SECTION_BEGIN_SINGULAR,
    TOOL_CALL_SECTION_END_SINGULAR,
    TOOL_CALLS_SECTION_BEGIN,
    TOOL_CALLS_SECTION_END,
    split_tool_call_id,
)

_SECTION_BEGINS = frozenset({TOOL_CALLS_SECTION_BEGIN, TOOL_CALL_SECTION_BEGIN_SINGULAR})
_SECTION_ENDS = frozenset({TOOL_CALLS_SECTION_END, TOOL_CALL_SECTION_END_SINGULAR})
_MARKER_RE = re.compile("|".join(re.escape(m) for m in sorted(PARSER_MARKERS, key=len, reverse=True)))
_PARSER_MARKER_SET = frozenset(PARSER_MARKERS)
_MARKER_PREFIXES = frozenset(m[:k] for m in PARSER_MARKERS for k in range(1, len(m)))
_LONGEST_MARKER = max(len(m) for m in PARSER_MARKERS)

# parser states
_THINK, _ANSWER, _SECTION, _CALL_ID, _CALL_ARGS, _AFTER_SECTION, _DONE = range(7)


# Deeper arguments are refused: no tool takes them, and every later reader (validation, the
# trajectory's JSON, the notebook export) would have to recurse that deep.
MAX_ARGUMENT_DEPTH = 64


def parse_arguments(arguments: str) -> tuple[dict | None, str | None]:
    """(the arguments as a JSON object, None) or (None, what is wrong with them)."""
    try:
        value = json.loads(arguments)
    except (ValueError, RecursionError) as e:
        detail = (
            f"{e.msg} at line {e.lineno} column {e.colno}" if isinstance(e, json.JSONDecodeError) else str(e)
        )
        return None, f"has arguments that are not valid JSON ({detail})"
    if not isinstance(value, dict):
        kind = {list: "list", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")
        return None, f"has arguments that are a JSON {kind}, not an object"
    if _depth(value) > MAX_ARGUMENT_DEPTH:
        return None, f"has arguments nested deeper than {MAX_ARGUMENT_DEPTH} levels"
    return value, None


def _depth(value: object) -> int:
    """Nesting depth of a JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        deepest = max(deepest, d)
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
    return deepest


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
        out.append(ToolCallStart(self._n_calls, call_id, split_tool_call_id(call_id)[0]))
        self._call_started = True

    def _close_call(self, out: list[Event], problem: str | None) -> None:
        """Emit ToolCallDone for the open call (and ToolCallStart if it never got that far)."""
        call_id = "".join(self._call_id)
        arguments = "".join(self._call_args)
        name, idx = split_tool_call_id(call_id)
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
            parsed, problem = parse_arguments(arguments)
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
