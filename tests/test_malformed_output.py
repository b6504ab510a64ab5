"""Whatever the model writes, nothing raises: the parser and the loop turn malformed output into
error events, error nodes and error observations the model reads, and the run goes on."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from k2nb.agent import think, tool
from k2nb.backends.base import Prompt
from k2nb.backends.engine import EngineBackend
from k2nb.backends.scripted import ScriptedBackend, Turn
from k2nb.events import ParseError, ToolCallDone
from k2nb.formats.k2 import (
    IM_END,
    PARSER_MARKERS,
    SPECIAL_MARKERS,
    TOOL_CALL_ARGUMENT_BEGIN,
    TOOL_CALL_BEGIN,
    TOOL_CALL_END,
    TOOL_CALLS_SECTION_BEGIN,
    TOOL_CALLS_SECTION_END,
    ChatStreamParser,
    parse_complete,
)
from k2nb.formats.k2.parser import MAX_ARGUMENT_DEPTH

SECTION = TOOL_CALLS_SECTION_BEGIN
END = TOOL_CALLS_SECTION_END + IM_END


def call(call_id: str, arguments: str) -> str:
    return f"{TOOL_CALL_BEGIN}{call_id}{TOOL_CALL_ARGUMENT_BEGIN}{arguments}{TOOL_CALL_END}"


@tool
def echo(text: str) -> str:
    """Return the text.

    Args:
        text: anything
    """
    return text


def errors_seen_by_model(result: Any) -> list[str]:
    return [m["content"] for m in result.paths[0].messages if m["role"] == "tool"]


def test_a_call_id_of_5000_digits_is_a_parse_error_not_an_exception() -> None:
    events = parse_complete("t</think>" + SECTION + call("functions.python:" + "9" * 5000, "{}") + END)
    done = next(e for e in events if isinstance(e, ToolCallDone))
    assert done.parsed is None
    assert any(isinstance(e, ParseError) and "functions.NAME:IDX" in e.message for e in events)


def test_an_empty_call_id_is_an_error_observation_and_the_run_goes_on() -> None:
    raw = "t</think>" + SECTION + call("", '{"text": "hi"}') + END
    r = think("q", backend=ScriptedBackend([raw, Turn(answer="done")]), tools=[echo], python=False)
    assert r.end_reason == "answer" and r.answer == "done"
    seen = errors_seen_by_model(r)
    assert len(seen) == 1 and seen[0].startswith("error:") and "functions.NAME:IDX" in seen[0]


def test_arguments_nested_100k_deep_are_refused_and_export_works() -> None:
    for depth in (100_000, 3_000, MAX_ARGUMENT_DEPTH + 1):
        deep = '{"text": ' + "[" * depth + "]" * depth + "}"
        raw = "t</think>" + SECTION + call("functions.echo:0", deep) + END
        r = think("q", backend=ScriptedBackend([raw, Turn(answer="done")]), tools=[echo], python=False)
        assert r.end_reason == "answer", depth
        assert errors_seen_by_model(r)[0].startswith("error:")
        assert r.trajectory.to_notebook().cells  # no RecursionError
        assert json.loads(r.trajectory.to_json())["nodes"]
    ok = '{"text": "x", "y": ' + "[" * (MAX_ARGUMENT_DEPTH - 1) + "]" * (MAX_ARGUMENT_DEPTH - 1) + "}"
    events = parse_complete(SECTION + call("functions.echo:0", ok) + END)
    done = next(e for e in events if isinstance(e, ToolCallDone))
    assert done.parsed is not None


# --- marker strings inside arguments: the tokenizer's special flag decides --------------------------


@dataclass
class _Step:
    token_id: int
    position: int
    experts: Any = None
    weights: Any = None


@dataclass
class _EngineStream:
    """What `Session.generate_stream` returns, for fixed token ids: steps, then `.result`."""

    ids: list[int]
    result: Any = None
    closed: bool = field(default=False)

    def __iter__(self):
        for i, t in enumerate(self.ids):
            yield _Step(t, i)

    def close(self) -> None:
        self.closed = True


@pytest.fixture(scope="module")
def nano_tokenizer():
    from k2nb.engine import load_tokenizer
    from k2nb.models import model_path

    return load_tokenizer(model_path())


@pytest.mark.parametrize("marker", SPECIAL_MARKERS)
def test_a_marker_written_as_text_inside_arguments_stays_text(nano_tokenizer, marker: str) -> None:
    from k2nb.backends.formatted import parse_turn
    from k2nb.formats.k2 import K2_FORMAT

    code = f'print("{marker}")'
    arguments = json.dumps({"code": code})
    pieces = [
        (TOOL_CALLS_SECTION_BEGIN, True),
        (TOOL_CALL_BEGIN, True),
        ("functions.python:0", False),
        (TOOL_CALL_ARGUMENT_BEGIN, True),
        (arguments, False),
        (TOOL_CALL_END, True),
        (TOOL_CALLS_SECTION_END, True),
        (IM_END, True),
    ]
    ids = K2_FORMAT.encode(nano_tokenizer, pieces)
    backend = EngineBackend.__new__(EngineBackend)
    backend.tokenizer, backend.format = nano_tokenizer, K2_FORMAT

    stream = parse_turn(K2_FORMAT, Prompt([]), backend._tokens(_EngineStream(ids), None))
    events = [e for chunk in stream for e in chunk.events] + stream.close()
    done = [e for e in events if isinstance(e, ToolCallDone)]
    assert len(done) == 1 and done[0].parsed == {"code": code}, events
    assert not [e for e in events if isinstance(e, ParseError)]


# --- fuzz: ≥ 2,000 malformed outputs through the parser and the loop ---------------------------------

_FRAGMENTS = [*PARSER_MARKERS, "functions.echo:0", "functions.python:", '{"text": "a"}', "{", "}", '"', "<"]
_OUTPUT = st.lists(st.one_of(st.sampled_from(_FRAGMENTS), st.text(max_size=6)), max_size=24).map("".join)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_OUTPUT, st.lists(st.integers(1, 7), min_size=1, max_size=8), st.sampled_from([None, False, True]))
def test_the_parser_never_raises(text: str, cuts: list[int], special: bool | None) -> None:
    parser = ChatStreamParser()
    i, k = 0, 0
    while i < len(text):
        n = cuts[k % len(cuts)]
        chunk = text[i : i + n]
        flag = special if special is None else chunk in PARSER_MARKERS
        parser.feed(chunk, flag)
        i, k = i + n, k + 1
    parser.finish()


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_OUTPUT, min_size=1, max_size=3))
def test_the_loop_survives_any_output(outputs: list[str]) -> None:
    backend = ScriptedBackend([*outputs, Turn(answer="done")], chunk_chars=3)
    r = think("What is 2+2?", backend=backend, tools=[echo], python=False, steps=len(outputs) + 1)
    assert r.end_reason != "error", [n.text for n in r.trajectory.walk() if n.kind == "error"]
    r.trajectory.to_notebook()
    json.loads(r.trajectory.to_json())


def test_a_lone_surrogate_is_named_in_a_prompt_and_replaced_in_a_tool_result() -> None:
    with pytest.raises(ValueError, match="lone surrogate"):
        think("what is \ud800?", backend=ScriptedBackend([Turn(answer="x")]))

    @tool
    def odd() -> str:
        """Return text with a lone surrogate."""
        return "a\udc80b"

    backend = ScriptedBackend([Turn("t", [("odd", {})]), Turn(answer="done")])
    r = think("q", backend=backend, tools=[odd], python=False)
    assert r.end_reason == "answer" and "a?b" in errors_seen_by_model(r)[0]
