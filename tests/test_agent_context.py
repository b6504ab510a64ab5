"""The context budget: before each step the loop measures the prompt against the model's window and
answers while there is room; when not even a forced answer fits, the path ends with a note, not a
prompt the model refuses. Scripted backend with a small window, then the real engine."""

from __future__ import annotations

import json
from typing import Any

import pytest

from k2nb.agent import Conversation, Trajectory, think
from k2nb.backends.base import GenerationOptions, Prompt
from k2nb.backends.scripted import ScriptedBackend, Turn

Q = "Compute 348 times 27"


def py(code: str) -> tuple[str, dict[str, str]]:
    return ("python", {"code": code})


def stubborn(prompt: Prompt) -> Turn:
    """A model that calls a tool again and again (a cascade), and answers only when made to."""
    if prompt.forced_reasoning is not None:
        return Turn("", answer="The answer is 9396.")
    return Turn("Compute it again.", [py("print(348 * 27)")])


def prompt_tokens(backend: ScriptedBackend, messages: list[dict[str, Any]]) -> int:
    """What `messages` take in the backend's (fake) tokens, measured without a window."""
    probe = ScriptedBackend([], chunk_chars=backend.chunk_chars, context_window=10**9)
    from k2nb.agent.executor import LocalExecutor

    return probe.context(Prompt(messages, LocalExecutor().tool_schemas()))[0]  # type: ignore[index]


def test_the_loop_forces_the_answer_before_the_context_runs_out() -> None:
    sb = ScriptedBackend([stubborn] * 40)
    first = prompt_tokens(sb, [{"role": "user", "content": Q}])
    sb.context_window = first + 600  # a few tool rounds, far fewer than the tool-call budget allows
    r = think(Q, backend=sb, final_answer_tokens=32, max_rollbacks=0)
    assert r.end_reason == "budget:context" and r.answer == "The answer is 9396."
    assert 2 <= len(r.tool_calls) < 40
    note = "(I am running out of room in this conversation, so I answer now with what I have.)"
    assert note in sb.prompts[-1]
    # every prompt fitted the window (the backend refuses one that does not, as the engine does)
    assert not r.trajectory.find("error")
    back = Trajectory.from_json(r.trajectory.to_json())
    assert back.meta["end_reason"] == "budget:context" and back.answer == "The answer is 9396."


def test_a_step_is_capped_to_leave_the_forced_answer_its_room() -> None:
    """A thinking step that would run past the window is cut where a forced answer still fits; the
    answer keeps the partial reasoning."""
    long_thought = " ".join(f"step {i} of a long thought." for i in range(400))
    sb = ScriptedBackend([Turn(long_thought, answer="never reached"), Turn("", answer="The answer is 9396.")])
    first = prompt_tokens(sb, [{"role": "user", "content": Q}])
    sb.context_window = first + 400
    r = think(Q, backend=sb, final_answer_tokens=32, failed_checks="answer")
    assert r.end_reason == "budget:context" and r.answer == "The answer is 9396."
    thinking = [n for n in r.trajectory.find("thinking") if not n.data.get("forced")]
    assert thinking[0].text.startswith("step 0 of a long thought.") and "step 399" not in thinking[0].text
    assert "step 0 of a long thought." in sb.prompts[-1]  # the forced answer reads its reasoning
    assert not r.trajectory.find("error")


def test_a_full_context_ends_the_path_with_a_note_and_the_conversation_survives() -> None:
    sb = ScriptedBackend([stubborn] * 40)
    conv = Conversation(sb)
    first = conv.ask(Q, tool_calls=2, max_rollbacks=0)
    assert first.end_reason == "budget:tool_calls" and first.answer == "The answer is 9396."
    # the window now ends just past this conversation: no room for another answer
    used = prompt_tokens(sb, [*conv.messages, {"role": "user", "content": "And 349 times 27?"}])
    sb.context_window = used + 4
    before = list(conv.messages)
    second = conv.ask("And 349 times 27?", final_answer_tokens=16)
    assert second.end_reason == "context_full" and second.answer is None
    (note,) = second.trajectory.find("error")
    assert note.text.startswith("the context is full (") and note.text.endswith(
        f" of {sb.context_window:,} tokens); start a new conversation")
    assert "failed" not in note.text and "GenerationError" not in note.text
    # the conversation is as it was (the question it could not take is not kept to grow it); the
    # next turn says the same again
    assert conv.messages == before
    again = conv.ask("Still there?")
    assert again.end_reason == "context_full" and conv.messages == before
    assert json.loads(second.trajectory.to_json())["meta"]["end_reason"] == "context_full"
    assert second.to_dict()["verdict"]["text"] == "no checks ran"


def test_a_long_tool_result_is_cut_to_leave_the_answer_its_room() -> None:
    """One call that prints far more than the window holds: the model reads the result's head and
    tail around a note of what was cut, still answers, and the trajectory keeps the whole output."""
    printing = [py("for i in range(400):\n    print('row', i, i * 27)")]
    sb = ScriptedBackend([Turn("Print the table.", printing), Turn("", answer="The answer is 9396.")])
    first = prompt_tokens(sb, [{"role": "user", "content": Q}])
    sb.context_window = first + 300
    r = think(Q, backend=sb, final_answer_tokens=32, max_rollbacks=0, failed_checks="answer")
    assert r.answer == "The answer is 9396." and r.end_reason in ("answer", "budget:context")
    assert not r.trajectory.find("error")
    (obs,) = r.trajectory.find("observation")
    assert obs.text.startswith("row 0 0") and obs.text.endswith("row 399 10773")  # for the user
    read = [m for m in r.messages if m["role"] == "tool"]
    assert len(read) == 1 and "chars cut ...]" in read[0]["content"]
    assert len(read[0]["content"]) == obs.data["cut_to_context"] < len(obs.text) // 2
    assert read[0]["content"].startswith("row 0 0")
    # the forced answer's prompt fitted the window
    last = prompt_tokens(sb, r.messages[:-1])
    assert last <= sb.context_window


def test_a_backend_that_cannot_measure_runs_as_before() -> None:
    sb = ScriptedBackend([Turn("Multiply.", [py("print(348 * 27)")]), Turn("", answer="The answer is 9396.")])
    assert sb.context(Prompt([{"role": "user", "content": Q}])) is None
    r = think(Q, backend=sb)
    assert r.end_reason == "answer" and r.answer == "The answer is 9396."


def test_the_scripted_window_refuses_a_prompt_as_the_engine_does() -> None:
    from k2nb.engine.errors import GenerationError

    sb = ScriptedBackend([Turn("", answer="x")], context_window=5)
    with pytest.raises(GenerationError, match=r"the prompt is \d+ tokens, but the model's context is 5"):
        sb.stream(Prompt([{"role": "user", "content": Q}]), GenerationOptions())


# ---------------------------------------------------------------------------------------------
# the real engine, with a window a few steps long


@pytest.fixture(scope="module")
def small_window_model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    pytest.importorskip("torch")
    from conftest import make_hf_checkpoint, tiny_v3_config
    from test_tokenizer import write_kimi_tokenizer

    from k2nb.engine import load_model

    folder = tmp_path_factory.mktemp("tiny_k2_small_window")
    make_hf_checkpoint(folder, tiny_v3_config(max_position_embeddings=1024))
    write_kimi_tokenizer(folder)
    return load_model(folder)


def test_the_engine_answers_before_its_window_and_then_says_it_is_full(small_window_model: Any) -> None:
    """A random model never closes its thinking: each step is cut where a forced answer still fits,
    the answer is forced, and once the window is spent the next turn ends with the note."""
    from k2nb.backends.engine import EngineBackend

    backend = EngineBackend(small_window_model)
    window = small_window_model.config.max_position_embeddings
    conv = Conversation(backend)
    ends = []
    for _ in range(8):
        r = conv.ask("What is 2 + 2?", final_answer_tokens=24, think_tokens_per_step=None, think_tokens=None,
                     new_tokens_per_step=4096)
        ends.append(r.end_reason)
        errors = [n.text for n in r.trajectory.find("error")]
        assert not [e for e in errors if "GenerationError" in e or "failed" in e], errors
        if r.end_reason == "context_full":
            break
    assert len(ends) > 1 and set(ends[:-1]) == {"budget:context"} and ends[-1] == "context_full", ends
    # the note gives the size of the conversation with the question: too full for a forced answer
    asked = [*conv.messages, {"role": "user", "content": "What is 2 + 2?"}]
    used, size = backend.context(Prompt(asked, conv.executor.tool_schemas()))  # type: ignore[misc]
    assert size == window and used < window
    (note,) = r.trajectory.find("error")
    assert note.text == f"the context is full ({used:,} of {window:,} tokens); start a new conversation"
