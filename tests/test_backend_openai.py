"""The served-model backend (`k2nb.backends.openai`) against a fault-injecting fake server on loopback,
and the routing of recorded-response fixtures written by hand in vLLM's and SGLang's documented shapes.

No real server runs here: the fake plays scripted chat-completions streams (and faults) in the shape a
hosted API or vLLM streams them; the test against a real vLLM is not built yet (docs/served.md).
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

pytest.importorskip("openai")

from k2nb.agent import think  # noqa: E402
from k2nb.backends.base import GenerationOptions, Prompt  # noqa: E402
from k2nb.backends.openai import (  # noqa: E402
    OpenAIBackend,
    ServerError,
    routing_from_sglang,
    routing_from_vllm,
)
from k2nb.events import (  # noqa: E402
    AnswerDelta,
    End,
    ParseError,
    ThinkingDelta,
    ThinkingEnd,
    ToolCallArgsDelta,
    ToolCallDone,
    ToolCallStart,
)

MODEL = "k2-test"
KEY_VAR = "K2NB_TEST_SERVED_KEY"
KEY = "sk-k2nb-test-7f3a9c1e55"  # a made-up key: the tests check it never leaks
MEAN = "What is the mean of 1, 2, 3 and 10?"


# --------------------------------------------------------------------------------------------
# the fake server


@dataclass
class SSE:
    """A streamed answer: dicts are sent as `data: {json}` events, strings verbatim (garbage lines);
    `drop_after` items the socket is cut without ending the chunked body; `stall_after` items the
    server waits `stall_s` seconds."""

    items: Sequence[dict | str]
    drop_after: int | None = None
    stall_after: int | None = None
    stall_s: float = 0.0
    done: bool = True


@dataclass
class Status:
    code: int
    body: dict
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # before the status line: a server that takes too long to answer


Spec = SSE | Status | Callable[[dict], "SSE | Status"]


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that closed its stream early
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Plays the fake server's script (`self.server.fake`)."""

    protocol_version = "HTTP/1.1"

    @property
    def fake(self) -> FakeOpenAIServer:
        return self.server.fake  # type: ignore[attr-defined]

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            data = [{"id": m, "object": "model", "owned_by": self.fake.owned_by, **self.fake.listing}
                    for m in self.fake.models]
            self._json(200, {"object": "list", "data": data})
        else:
            self._json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.fake.requests.append(body)
        if self.fake.key is not None and self.headers.get("Authorization") != f"Bearer {self.fake.key}":
            sent = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
            # a server that echoes the key it was sent, as some do: the client must redact it
            self._json(401, {"error": {"message": f"Incorrect API key provided: {sent}"}})
            return
        if not body.get("stream"):  # `connect`'s capability probe: answered apart from the script
            spec = self.fake.probe
            if isinstance(spec, Status):
                self._json(spec.code, spec.body, spec.headers)
                return
            self.fake.probes += 1
            self._json(200, {"id": "chatcmpl-p", "object": "chat.completion", "model": body.get("model"),
                             "choices": [{"index": 0, "finish_reason": "stop", "message": spec}]})
            return
        spec = self.fake.script.pop(0) if self.fake.script else Status(500, {"error": {"message": "empty"}})
        if callable(spec):
            spec = spec(body)
        if isinstance(spec, Status):
            self.fake.stop.wait(spec.delay_s)
            self._json(spec.code, spec.body, spec.headers)
        else:
            self._sse(spec)

    def _json(self, code: int, body: dict, headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)

    def _sse(self, spec: SSE) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for i, item in enumerate(spec.items):
                if spec.drop_after == i:
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if spec.stall_after == i:
                    self.fake.stop.wait(spec.stall_s)
                self._chunk(item if isinstance(item, str) else f"data: {json.dumps(item)}\n\n")
            if spec.done:
                self._chunk("data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):  # the client closed the stream
            self.close_connection = True

    def _chunk(self, text: str) -> None:
        raw = text.encode()
        self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
        self.wfile.flush()


class FakeOpenAIServer:
    """A test double for a hosted API's / vLLM's OpenAI-compatible streaming format, on 127.0.0.1: each
    POST to /v1/chat/completions plays the next scripted response (an SSE stream over chunked transfer
    encoding, ending in `data: [DONE]`, or an HTTP error); GET /v1/models lists `models`. With `key`,
    a request without `Authorization: Bearer <key>` gets a 401. Request bodies are kept in
    `.requests`. A request that does not stream (the capability probe) gets `probe`: the assistant
    message to return, or a Status; `owned_by` and `listing` (extra fields per model, e.g. vLLM's
    `max_model_len`) shape the model list."""

    def __init__(self, script: Sequence[Spec] = (), models: Sequence[str] = (MODEL,), key: str | None = None,
                 probe: dict | Status | None = None, owned_by: str = "k2nb", listing: dict | None = None):
        self.script = list(script)
        self.models = list(models)
        self.key = key
        self.probe = probe or {"role": "assistant", "content": "5", "reasoning_content": "2 + 3 is 5."}
        self.probes = 0
        self.owned_by = owned_by
        self.listing = dict(listing or {})
        self.requests: list[dict] = []
        self.stop = threading.Event()
        self.httpd = _QuietServer(("127.0.0.1", 0), _Handler)
        self.httpd.fake = self  # type: ignore[attr-defined]
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    servers: list[FakeOpenAIServer] = []

    def make(*script: Spec, **kw: Any) -> FakeOpenAIServer:
        s = FakeOpenAIServer(script, **kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def chunk(delta: dict | None = None, finish: str | None = None, **extra: Any) -> dict:
    """One chat.completion.chunk as servers stream it."""
    choice = {"index": 0, "delta": delta or {}, "finish_reason": finish, **extra.pop("choice", {})}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": [choice],
        **extra,
    }


def usage(prompt: int, completion: int) -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def tool_delta(
    index: int, *, id: str | None = None, name: str | None = None, args: str | None = None
) -> dict:
    fn: dict[str, Any] = {}
    if name is not None:
        fn["name"] = name
    if args is not None:
        fn["arguments"] = args
    call: dict[str, Any] = {"index": index, "function": fn}
    if id is not None:
        call.update(id=id, type="function")
    return {"tool_calls": [call]}


def tool_turn(
    reasoning: str, code: str, field: str = "reasoning_content", call_id: str = "functions.python:0"
):
    """Reasoning in two pieces, then one python call whose arguments arrive in three fragments."""
    args = json.dumps({"code": code})
    a, b = len(args) // 3, 2 * len(args) // 3
    half = len(reasoning) // 2
    return SSE(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({field: reasoning[:half]}),
            chunk({field: reasoning[half:]}),
            chunk(tool_delta(0, id=call_id, name="python", args="")),
            chunk(tool_delta(0, args=args[:a])),
            chunk(tool_delta(0, args=args[a:b])),
            chunk(tool_delta(0, args=args[b:])),
            chunk(finish="tool_calls"),
            usage(20, 12),
        ]
    )


def answer_turn(reasoning: str, answer: str, finish: str = "stop", field: str = "reasoning_content") -> SSE:
    return SSE(
        [
            chunk({"role": "assistant", field: reasoning}),
            chunk({"content": answer[:5]}),
            chunk({"content": answer[5:]}),
            chunk(finish=finish),
            usage(30, 8),
        ]
    )


def run_turn(
    backend: OpenAIBackend,
    prompt: Prompt | None = None,
    options: GenerationOptions | None = None,
    cancel: threading.Event | None = None,
    stop_after: int | None = None,
) -> list:
    """Every event of one streamed turn, merged (adjacent deltas of one kind joined)."""
    stream = backend.stream(
        prompt or Prompt([{"role": "user", "content": "hi"}]),
        options or GenerationOptions(max_new_tokens=64),
        cancel,
    )
    events: list = []
    for n, c in enumerate(stream):
        assert c.position is None or c.token_id is not None  # a position only for a reported token
        events += c.events
        if stop_after is not None and n + 1 >= stop_after:
            break
    events += stream.close()
    return merge(events)


def merge(events: list) -> list:
    out: list = []
    for ev in events:
        kinds = (ThinkingDelta, AnswerDelta)
        if out and isinstance(ev, kinds) and type(out[-1]) is type(ev):
            out[-1] = type(ev)(out[-1].text + ev.text)
        elif out and isinstance(ev, ToolCallArgsDelta) and isinstance(out[-1], ToolCallArgsDelta):
            out[-1] = ToolCallArgsDelta(ev.index, out[-1].text + ev.text)
        else:
            out.append(ev)
    return out


def fails(backend: OpenAIBackend, **kw: Any) -> str:
    with pytest.raises(ServerError) as info:
        run_turn(backend, **kw)
    return str(info.value)


# --------------------------------------------------------------------------------------------
# deltas → events


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_then_a_tool_call_split_across_chunks(server, field: str) -> None:
    s = server(tool_turn("Sum, then divide.", "print(sum([1, 2, 3, 10]) / 4)", field))
    events = run_turn(OpenAIBackend(s.url, MODEL))
    args = json.dumps({"code": "print(sum([1, 2, 3, 10]) / 4)"})
    assert events == [
        ThinkingDelta("Sum, then divide."),
        ThinkingEnd(),
        ToolCallStart(0, "functions.python:0", "python"),
        ToolCallArgsDelta(0, args),
        ToolCallDone(0, "functions.python:0", "python", args, {"code": "print(sum([1, 2, 3, 10]) / 4)"}),
        End("stop"),
    ]


def test_content_only_answers_and_the_length_finish(server) -> None:
    s = server(
        SSE(
            [
                chunk({"role": "assistant", "content": "The mean"}),
                chunk({"content": " is 4."}),
                chunk(finish="stop"),
            ]
        ),
        answer_turn("thinking", "cut off her", finish="length"),
        answer_turn("a budget", "stops this"),
    )
    b = OpenAIBackend(s.url, MODEL)
    assert run_turn(b) == [ThinkingEnd(), AnswerDelta("The mean is 4."), End("stop")]
    assert run_turn(b) == [
        ThinkingDelta("thinking"),
        ThinkingEnd(),
        AnswerDelta("cut off her"),
        End("length"),
    ]
    assert run_turn(b, stop_after=1) == [ThinkingDelta("a budget"), End("length")]  # closed early


def test_malformed_calls_and_deltas_are_parse_errors_never_exceptions(server) -> None:
    s = server(
        SSE(
            [
                chunk({"reasoning_content": 7}),  # not text
                chunk({"unknown_field": {"x": 1}}),  # ignored
                {"id": "x", "choices": "garbage"},
                chunk(tool_delta(0, args='{"code": ')),  # arguments before the name, no id
                chunk(tool_delta(0, name="python")),
                chunk(tool_delta(1, id="call_9", args="[1, 2]")),  # never named
                chunk(finish="length"),
            ]
        )
    )
    events = run_turn(OpenAIBackend(s.url, MODEL))
    errors = [e.message for e in events if isinstance(e, ParseError)]
    assert "reasoning delta that is not text" in errors[0] and "choices are not a list" in errors[1]
    done = [e for e in events if isinstance(e, ToolCallDone)]
    assert done[0].id == "functions.python:0" and done[0].arguments == '{"code": ' and done[0].parsed is None
    assert done[1].name == "" and done[1].parsed is None and done[1].id == "call_9"
    assert any("not valid JSON" in m for m in errors) and any("has no function name" in m for m in errors)
    assert events[-1] == End("length")


def test_garbage_lines_are_ignored_and_a_line_that_is_not_json_ends_the_turn(server) -> None:
    s = server(
        SSE(
            [
                ": keep-alive comment\n\n",
                "garbage without a colon\n\n",
                'event: ping\ndata: {"choices": []}\n\n',
                chunk({"content": "Fine so far."}),
                "data: {this is not json\n\n",
                chunk({"content": "never read"}),
            ]
        )
    )
    events = run_turn(OpenAIBackend(s.url, MODEL))
    assert events[:2] == [ThinkingEnd(), AnswerDelta("Fine so far.")]
    assert isinstance(events[2], ParseError) and "not JSON" in events[2].message
    assert events[-1] == End("length")


def test_tool_markers_in_content_say_the_server_parses_no_tool_calls(server) -> None:
    s = server(
        SSE(
            [
                chunk({"content": "<|tool_calls_section_begin|><|tool_call_begin|>functions.python:0"}),
                chunk(finish="stop"),
            ]
        )
    )
    events = run_turn(OpenAIBackend(s.url, MODEL))
    assert any(isinstance(e, ParseError) and "--tool-call-parser kimi_k2" in e.message for e in events)


def test_the_request_carries_options_tools_and_each_messages_reasoning(server) -> None:
    s = server(answer_turn("r", "fine."))
    msgs = [
        {"role": "user", "content": MEAN},
        {
            "role": "assistant",
            "content": "",
            "reasoning_content": "Use python.",
            "tool_calls": [
                {
                    "id": "functions.python:0",
                    "type": "function",
                    "function": {"name": "python", "arguments": '{"code": "1"}'},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "functions.python:0",
            "name": "python",
            "content": "1",
            "k2nb_private": "not sent",
        },
    ]
    tools = [{"type": "function", "function": {"name": "python", "parameters": {"type": "object"}}}]
    opts = GenerationOptions(max_new_tokens=99, temperature=0.7, top_k=20, top_p=0.9, seed=5)
    run_turn(OpenAIBackend(s.url, MODEL), Prompt(msgs, tools), opts)
    body = s.requests[0]
    assert (
        body["messages"][1]["reasoning_content"] == "Use python."
        and "k2nb_private" not in body["messages"][2]
    )
    assert body["tools"] == tools and body["stream"] is True and body["model"] == MODEL
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["seed"], body["top_k"]) == (
        99,
        0.7,
        0.9,
        5,
        20,
    )


@pytest.mark.parametrize("continuation", ["vllm", "partial"])
def test_a_forced_answer_continues_the_reasoning(server, continuation: str) -> None:
    # with the thinking closed by the prompt, reasoning deltas are answer text
    s = server(
        SSE([chunk({"reasoning_content": "The mean "}), chunk({"content": "is 4."}), chunk(finish="stop")])
    )
    b = OpenAIBackend(s.url, MODEL, continuation=continuation)
    events = run_turn(b, Prompt([{"role": "user", "content": MEAN}], forced_reasoning="Sum is 16, so 4."))
    assert events == [AnswerDelta("The mean is 4."), End("stop")]
    body = s.requests[0]
    last = body["messages"][-1]
    assert last["role"] == "assistant" and last["reasoning_content"] == "Sum is 16, so 4."
    if continuation == "vllm":
        assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
        assert "partial" not in last
    else:
        assert last["partial"] is True and "continue_final_message" not in body
    assert OpenAIBackend("https://api.moonshot.ai/v1", "kimi-k2-thinking").continuation == "partial"


def test_cancel_stops_reading_and_closes_the_stream(server) -> None:
    items = [chunk({"content": f"{i} "}) for i in range(50)] + [chunk(finish="stop")]
    s = server(SSE(items, stall_after=3, stall_s=0.3))
    cancel = threading.Event()
    stream = OpenAIBackend(s.url, MODEL).stream(
        Prompt([{"role": "user", "content": "count"}]), GenerationOptions(), cancel
    )
    seen = []
    for c in stream:
        seen += c.events
        cancel.set()
    closing = stream.close()
    assert len([e for e in seen if isinstance(e, AnswerDelta)]) == 1 and closing == [End("length")]


# --------------------------------------------------------------------------------------------
# faults: one sentence each, the key never shown


def test_401_names_the_variable_never_the_key(server, monkeypatch) -> None:
    monkeypatch.setenv(KEY_VAR, KEY)
    s = server(key="the-right-key")
    b = OpenAIBackend(s.url, MODEL, KEY_VAR, max_retries=0)
    message = fails(b)
    assert KEY_VAR in message and "HTTP 401" in message and KEY not in message
    assert KEY not in repr(b) and KEY_VAR in repr(b)
    monkeypatch.delenv(KEY_VAR)
    assert f"{KEY_VAR} that should hold the API key" in fails(b)
    assert "asks for an API key" in fails(OpenAIBackend(s.url, MODEL, max_retries=0))


def test_404_lists_the_served_models(server) -> None:
    s = server(
        Status(404, {"error": {"message": "The model `nope` does not exist."}}), models=[MODEL, "k2-other"]
    )
    message = fails(OpenAIBackend(s.url, "nope", max_retries=0))
    assert (
        message
        == f"the server at {s.url}/v1 does not serve the model 'nope'; it serves 'k2-test', 'k2-other'"
    )


def test_429_then_success_is_retried_and_5xx_gives_up_after_the_retries(server) -> None:
    fast = {"retry-after-ms": "10"}
    s = server(Status(429, {"error": {"message": "slow down"}}, fast), answer_turn("r", "fine."))
    assert run_turn(OpenAIBackend(s.url, MODEL, max_retries=2))[-2:] == [AnswerDelta("fine."), End("stop")]
    assert len(s.requests) == 2
    s = server(*[Status(503, {"error": {"message": "overloaded"}}, fast)] * 3)
    message = fails(OpenAIBackend(s.url, MODEL, max_retries=2))
    assert "HTTP 503 after 2 retries" in message and "overloaded" in message and len(s.requests) == 3
    s = server(*[Status(429, {"error": {"message": "quota"}}, fast)] * 2)
    assert "rate limiting (HTTP 429)" in fails(OpenAIBackend(s.url, MODEL, max_retries=1))


def test_connection_refused_and_an_unknown_host() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    message = fails(OpenAIBackend(f"http://127.0.0.1:{port}", MODEL, max_retries=0))
    assert (
        message.startswith(f"could not connect to http://127.0.0.1:{port}/v1")
        and "refused" in message.lower()
    )
    message = fails(OpenAIBackend("http://k2nb-test.invalid:8000", MODEL, max_retries=0, timeout_s=5))
    assert message.startswith("could not resolve the host of http://k2nb-test.invalid:8000/v1") or (
        message.startswith("could not connect")
    )


def test_read_timeouts_and_a_connection_dropped_mid_stream(server) -> None:
    items = [chunk({"content": "a"}), chunk({"content": "b"}), chunk(finish="stop")]
    s = server(
        SSE(items, stall_after=1, stall_s=3),
        Status(200, {}, delay_s=3),
        SSE(items, drop_after=2),
        SSE(items[:2], done=False),
    )
    b = OpenAIBackend(s.url, MODEL, timeout_s=0.5, max_retries=0)
    assert "sent nothing for 0.5 s in the middle of the stream, after 1 chunks (read timeout)" in fails(b)
    assert "sent nothing for 0.5 s before answering, after 0 retries (read timeout)" in fails(b)
    assert "dropped mid-stream after 2 chunks" in fails(b)
    assert "without a finish reason" in fails(b)


def test_a_server_without_tool_support(server) -> None:
    vllm_says = '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'
    s = server(Status(400, {"object": "error", "message": vllm_says, "type": "BadRequestError", "code": 400}))
    tools = [{"type": "function", "function": {"name": "python", "parameters": {"type": "object"}}}]
    message = fails(OpenAIBackend(s.url, MODEL), prompt=Prompt([{"role": "user", "content": "hi"}], tools))
    assert "takes no tool calls for the model 'k2-test'" in message and "--tool-call-parser" in message


def test_an_error_event_inside_the_stream(server) -> None:
    s = server(SSE([chunk({"content": "a"}), {"error": {"message": "engine crashed", "code": 500}}]))
    assert "reported an error mid-stream: engine crashed" in fails(OpenAIBackend(s.url, MODEL))


# --------------------------------------------------------------------------------------------
# routing: recorded fixtures of the servers' documented formats


def vllm_recorded_final_chunk(prompt_len: int, gen_len: int, layers: int = 3, top_k: int = 2) -> dict:
    """A recorded-response fixture in vLLM's documented `--enable-return-routed-experts` shape:
    `prompt_routed_experts` at the response level, `routed_experts` per choice, int16 expert ids
    [tokens, moe_layers, top_k] as JSON lists, on the request's last chunk."""

    def ids(n: int, off: int) -> list:
        return [[[(t + off + 3 * m + j) % 16 for j in range(top_k)] for m in range(layers)] for t in range(n)]

    c = chunk(finish="stop", choice={"routed_experts": ids(gen_len, 100)})
    c["prompt_routed_experts"] = ids(prompt_len, 0)
    c["usage"] = {
        "prompt_tokens": prompt_len,
        "completion_tokens": gen_len,
        "total_tokens": prompt_len + gen_len,
    }
    return c


def sglang_recorded_response(n_prompt: int, n_gen: int, layers: int = 3, top_k: int = 2) -> dict:
    """A recorded-response fixture in SGLang's documented shape: `routed_experts` in `meta_info`,
    base64 of int32 ids [prompt + generated tokens, moe_layers, top_k]."""
    ids = (np.arange((n_prompt + n_gen) * layers * top_k) % 16).astype("<i4")
    return {
        "text": "ok",
        "meta_info": {"routed_experts": base64.b64encode(ids.tobytes()).decode(), "prompt_tokens": n_prompt},
        "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_gen},
    }


def test_routing_from_vllm_and_sglang_recorded_fixtures() -> None:
    prompt, gen = routing_from_vllm(vllm_recorded_final_chunk(5, 4))
    assert (len(prompt), prompt.n_prompt, prompt.n_layers, prompt.top_k) == (5, 5, 3, 2)
    assert list(gen.positions) == [5, 6, 7, 8] and gen.n_prompt == 0
    assert prompt.n_experts == gen.n_experts == 15  # unknown: the highest id seen + 1
    assert routing_from_vllm(vllm_recorded_final_chunk(5, 4), n_experts=384)[1].n_experts == 384
    assert np.all(gen.weights == 0.5) and np.all(gen.tokens == -1)
    assert gen.experts[0, 1].tolist() == [(100 + 3) % 16, (100 + 4) % 16]
    prompt, gen = routing_from_sglang(sglang_recorded_response(4, 2), n_layers=3, top_k=2)
    assert (len(prompt), len(gen), list(gen.positions)) == (4, 2, [4, 5])
    assert prompt.experts.reshape(-1)[:4].tolist() == [0, 1, 2, 3] and gen.experts.dtype == np.int32
    with pytest.raises(ValueError, match="not a multiple of 5"):
        routing_from_sglang(sglang_recorded_response(4, 2), n_layers=5, top_k=1)
    assert routing_from_vllm({"choices": [{"delta": {}}]}) == (None, None)


def test_the_backend_keeps_prompt_routing_for_read_and_the_generated_as_last_routing(server) -> None:
    def turn(prompt_len: int, gen_len: int) -> SSE:
        return SSE([chunk({"content": "x"}), vllm_recorded_final_chunk(prompt_len, gen_len)])

    def turn_then_usage(prompt_len: int, gen_len: int) -> SSE:  # include_usage: a chunk of its own
        last = vllm_recorded_final_chunk(prompt_len, gen_len)
        return SSE([chunk({"content": "x"}), {**last, "usage": None}, usage(prompt_len, gen_len)])

    s = server(turn(6, 3), turn_then_usage(12, 2), SSE([chunk({"content": "y"}), chunk(finish="stop")]))
    b = OpenAIBackend(s.url, MODEL)
    run_turn(b)
    assert (len(b.read_routing()), len(b.last_routing), b.last_routing.start) == (6, 3, 6)
    run_turn(b)  # the conversation grew: only the 3 tokens after the 9 reported before are new reading
    assert list(b.read_routing().positions) == [9, 10, 11] and b.last_routing.start == 12
    run_turn(b)  # a server that reports nothing
    assert b.read_routing() is None and b.last_routing is None


# --------------------------------------------------------------------------------------------
# the reasoning loop through the fake server


def second_turn(body: dict) -> SSE:
    """The server's second answer reacts to the tool result it was sent."""
    tool = [m for m in body["messages"] if m["role"] == "tool"]
    result = tool[-1]["content"].strip() if tool else "?"
    return answer_turn("The tool printed the mean.", f"The mean is {result}.")


def test_think_runs_a_two_turn_tool_loop_through_a_served_model(server, monkeypatch, caplog) -> None:
    monkeypatch.setenv(KEY_VAR, KEY)
    caplog.set_level(logging.DEBUG)
    s = server(tool_turn("Sum and divide.", "print(sum([1, 2, 3, 10]) / 4)"), second_turn, key=KEY)
    b = OpenAIBackend(s.url, MODEL, KEY_VAR)
    r = think(MEAN, backend=b)
    assert r.answer == "The mean is 4.0." and r.end_reason == "answer"
    assert [c["id"] for c in r.tool_calls] == ["functions.python:0"]
    second = s.requests[1]["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "tool"]
    assert second[1]["reasoning_content"] == "Sum and divide."
    assert second[1]["tool_calls"][0]["function"]["name"] == "python"
    assert second[2] == {
        "role": "tool",
        "tool_call_id": "functions.python:0",
        "name": "python",
        "content": "4.0",
    }
    assert s.requests[0]["tools"][0]["function"]["name"] == "python"
    assert KEY not in r.trajectory.to_json() and KEY not in caplog.text


def test_a_failed_run_keeps_the_trajectory_and_the_next_run_works(server, monkeypatch) -> None:
    monkeypatch.setenv(KEY_VAR, KEY)
    items = [
        chunk({"reasoning_content": "Let me"}),
        chunk({"reasoning_content": " think"}),
        chunk(finish="stop"),
    ]
    s = server(SSE(items, drop_after=2), answer_turn("ok", "The mean is 4.0."), key=KEY)
    b = OpenAIBackend(s.url, MODEL, KEY_VAR)
    r = think(MEAN, backend=b)
    assert r.end_reason == "error" and r.answer is None
    nodes = r.trajectory.to_dict()["nodes"]
    errors = [n["text"] for n in nodes if n["kind"] == "error"]
    assert errors and "the model backend failed: ServerError: the connection to" in errors[0]
    assert any(n["kind"] == "thinking" and "Let me think" in n["text"] for n in nodes)
    assert KEY not in r.trajectory.to_json()
    s.key = "another-key"  # the server now refuses the key: the error names the variable only
    r = think(MEAN, backend=b)
    assert KEY not in r.trajectory.to_json() and KEY_VAR in r.trajectory.to_json()
    s.key = KEY
    assert think(MEAN, backend=b, rollback_on=()).answer == "The mean is 4.0."


def test_fork_shares_the_client_and_importing_backends_needs_no_openai(server) -> None:
    s = server(answer_turn("a", "one."), answer_turn("b", "two."))
    b = OpenAIBackend(s.url, MODEL)
    run_turn(b)
    f = b.fork()
    assert f._client() is b._client() and f.read_routing() is None
    assert run_turn(f)[-2] == AnswerDelta("two.")
    code = "import sys, k2nb.backends; assert 'openai' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_sglang_routing_is_asked_for_and_decoded_with_the_models_shape(server) -> None:
    recorded = sglang_recorded_response(5, 2)
    final = chunk(finish="stop", choice={"meta_info": recorded["meta_info"]})
    s = server(SSE([chunk({"content": "x"}), final, usage(5, 2)]))
    b = OpenAIBackend(s.url, MODEL, request_routing=True, moe_shape=(3, 2))
    run_turn(b)
    assert s.requests[0]["return_routed_experts"] is True
    assert (len(b.read_routing()), list(b.last_routing.positions)) == (5, [5, 6])


# --------------------------------------------------------------------------------------------
# where a user meets it: think(endpoint=), k2nb think --endpoint, %k2model connect, %%k2think --endpoint


def test_think_endpoint_and_the_cli_pick_the_served_model(server, capsys) -> None:
    from k2nb.cli import main

    script = [tool_turn("Sum and divide.", "print(sum([1, 2, 3, 10]) / 4)"), second_turn]
    s = server(*script, *script)
    r = think(MEAN, endpoint=s.url)  # the model: the one the server lists
    assert r.answer == "The mean is 4.0." and s.requests[0]["model"] == MODEL
    assert main(["think", MEAN, "--endpoint", s.url, "--served-model", MODEL, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["answer"] == "The mean is 4.0." and out["end_reason"] == "answer"
    assert [c["name"] for c in out["tool_calls"]] == ["python"] and out["checks"]


def test_connect_names_what_is_wrong_in_one_sentence(server, capsys) -> None:
    from k2nb.backends.openai import connect
    from k2nb.cli import main

    s = server(models=("a", "b"))
    with pytest.raises(ServerError, match="serves a, b; say which one"):
        connect(s.url)
    with pytest.raises(ServerError, match="serves a, b, not 'c'"):
        connect(s.url, "c")
    assert connect(s.url, "b").model == "b"
    assert main(["think", MEAN, "--endpoint", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err.strip()
    assert "127.0.0.1:9" in err and "\n" not in err and "Traceback" not in err


def test_the_notebook_connects_runs_tool_cells_and_disconnects(server, ip, k2) -> None:
    from IPython.core.error import UsageError

    s = server(tool_turn("Compute.", "k2_served = 6 * 7\nprint(k2_served)"), second_turn)
    ip.run_line_magic("k2model", f"connect {s.url}")
    info = k2.model_info()
    assert "k2-test at" in info and "the server serves: k2-test" in info and s.probes == 1
    assert "tool calls: yes" in info and "reasoning:  separated" in info
    assert "routing:    not reported" in info
    res = ip.run_cell("%%k2think\nWhat is 6 times 7?", store_history=True)
    assert res.error_in_exec is None and res.result.answer == "The mean is 42."
    assert ip.user_ns["k2_served"] == 42 and len(res.result.cells) == 1  # the call ran as a cell
    from k2nb.widgets.dashboard import NO_ROUTING

    assert NO_ROUTING in res.result.dashboard().to_html()  # the server reported no routing: said so
    ip.run_line_magic("k2model", "disconnect")
    assert k2.backend is None
    res = ip.run_cell("%%k2think --endpoint http://127.0.0.1:9\nhello")
    assert isinstance(res.error_in_exec, UsageError) and "127.0.0.1:9" in str(res.error_in_exec)
