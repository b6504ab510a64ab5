"""What one assistant turn is made of, whatever produced it: the events of a generated turn.

A chat format's stream parser (`k2nb.formats`) turns generated text into these; a served backend maps
the server's deltas (reasoning, content, tool calls) into the same ones. The agent loop reads only
these, so it knows no chat format. Any split of one output into chunks gives the same events once
adjacent deltas are merged; malformed output is a `ParseError`, never an exception.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AnswerDelta",
    "End",
    "Event",
    "ParseError",
    "ThinkingDelta",
    "ThinkingEnd",
    "ToolCallArgsDelta",
    "ToolCallDone",
    "ToolCallStart",
    "message_from_events",
]


@dataclass(slots=True)
class ThinkingDelta:
    text: str


@dataclass(slots=True)
class ThinkingEnd:
    """The reasoning part of the turn is over (its closing marker, or the start of tool calls)."""


@dataclass(slots=True)
class AnswerDelta:
    text: str


@dataclass(slots=True)
class ToolCallStart:
    index: int  # position of the call in this assistant message
    id: str  # verbatim, e.g. "functions.search:3"
    name: str


@dataclass(slots=True)
class ToolCallArgsDelta:
    index: int
    text: str


@dataclass(slots=True)
class ToolCallDone:
    index: int
    id: str
    name: str
    arguments: str  # the call's arguments verbatim, as generated (JSON text when well formed)
    parsed: dict | None  # None when the id, the JSON or the call's framing is malformed


@dataclass(slots=True)
class ParseError:
    message: str  # one sentence
    raw: str  # the offending output text


@dataclass(slots=True)
class End:
    reason: str  # "stop" (the turn ended itself) or "length" (the output was cut off)


Event = (
    ThinkingDelta
    | ThinkingEnd
    | AnswerDelta
    | ToolCallStart
    | ToolCallArgsDelta
    | ToolCallDone
    | ParseError
    | End
)


def message_from_events(events: Iterable[Event]) -> dict[str, Any]:
    """The assistant message a generation produced, ready to append to the conversation.

    Every ToolCallDone becomes a tool call with its verbatim id and arguments, malformed ones included:
    the model did generate them, the agent answers each (with an error for malformed ones), and
    re-rendering then reproduces the generated text, which keeps the session's cached prefix valid.
    """
    reasoning: list[str] = []
    answer: list[str] = []
    calls: list[dict[str, Any]] = []
    for event in events:
        if isinstance(event, ThinkingDelta):
            reasoning.append(event.text)
        elif isinstance(event, AnswerDelta):
            answer.append(event.text)
        elif isinstance(event, ToolCallDone):
            calls.append(
                {
                    "id": event.id,
                    "type": "function",
                    "function": {"name": event.name, "arguments": event.arguments},
                }
            )
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(answer),
        "reasoning_content": "".join(reasoning),
    }
    if calls:
        message["tool_calls"] = calls
    return message
