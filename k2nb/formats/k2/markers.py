"""The K2 Thinking chat format's marker strings and tool-call ids: the one place they are named."""

from __future__ import annotations

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


def tool_call_id(name: str, idx: int) -> str:
    """The K2 tool-call id ``functions.NAME:IDX``; idx counts calls over the whole conversation.

    The id is the only place a call's function name reaches the model, so ids the model generated
    are kept verbatim and only new ones are made here.
    """
    return f"{TOOL_CALL_ID_PREFIX}{name}:{idx}"


def split_tool_call_id(call_id: str) -> tuple[str, int | None]:
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
    name, idx = split_tool_call_id(call_id)
    if idx is None:
        raise ValueError(f"Tool call id {call_id!r} is not of the form functions.NAME:IDX.")
    return name, idx
