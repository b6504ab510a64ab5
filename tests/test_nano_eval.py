"""`k2nb eval`'s metrics, checked against scripted models whose every number is known in advance.

The model is `ScriptedBackend` (the agent's test double); the loop, the chat parser, the python tool
and the checks are the real ones, so each trace goes through exactly what a k2-nano run goes through.
"""

from __future__ import annotations

import argparse
import ast
import json
import zlib

import numpy as np
import pytest

from k2nb.agent import LocalExecutor, ToolCallRequest
from k2nb.backends.scripted import ScriptedBackend, Turn, fake_tokens
from k2nb.nano import cli as nano_cli
from k2nb.nano import curriculum
from k2nb.nano import eval as E

# arithmetic 77, percent 491.3, interest 1394.11, units 1380: four numeric answers
PROBLEMS = curriculum.heldout_problems(4)


def call(code: str, think: str = "Compute it.") -> Turn:
    return Turn(think=think, calls=[("python", {"code": code})])


def answer(value: object) -> Turn:
    return Turn(think="Done.", answer=f"The answer is {value}.")


def wrong(p: curriculum.Problem, by: int = 1) -> float:
    return round(float(p.answer) + by, 2)


def computes(p: curriculum.Problem, by: int = 0, extra: str = "") -> str:
    """Code printing the answer (+ ``by``) from the question's numbers: the curriculum's own first
    call with `` + 1`` per unit of ``by`` (1 needs no source, so the loop's `sourced` check passes, as
    it does for a model whose every literal comes from the question)."""
    first = next(m for m in p.messages if m["role"] == "assistant" and m.get("tool_calls"))
    *prelude, last = ast.parse(json.loads(first["tool_calls"][0]["function"]["arguments"])["code"]).body
    assert isinstance(last, ast.Expr) and isinstance(last.value, ast.Call) and last.value.args  # print(x)
    head = "".join(ast.unparse(stmt) + "\n" for stmt in prelude)
    return f"{head}print(round({ast.unparse(last.value.args[0])}{' + 1' * by}{extra}, 2))"


def scripts(i: int, p: curriculum.Problem, condition: str) -> list:
    a, w = p.answer, wrong(p)
    right, off = computes(p), computes(p, 1)

    def uses(code: str, think: str = "Compute it.") -> Turn:
        # the code also names the question's numbers, as a model's code uses them (the `used` check)
        return call(f"{code}\ngiven = {curriculum.given_line(p.question)!r}", think)

    if condition == "tools":
        return [
            # correct, verified by a check (assert, prints True)
            [uses(right), uses(f"assert {a!r} == {a!r}\nprint(True)", "Now this."), answer(a)],
            # wrong, verified by a recomputation (other code, same value, no check words)
            [uses(off), uses(computes(p, 1, " + 0"), "Another way."), answer(w)],
            # correct, no verification
            [uses(right), answer(a)],
            # a malformed call (not JSON), then a valid one; correct, no verification
            [Turn(think="Compute.", calls=[("python", '{"code": print(1)}')]), uses(right), answer(a)],
        ][i]
    if condition == "injected":
        return [
            [uses(right), uses(right, "Run it again."), answer(a)],  # recovers
            [uses(right), Turn(answer="The answer is unknown.")],  # gives up
            [uses(right), uses(off), answer(w)],  # retries, answers wrong
            # no call, so the injection never fires; the ungrounded answer is rolled back twice,
            # then withheld (its `grounded` check still fails)
            [answer(a)] * 3,
        ][i]
    if condition == "no_tools":
        return [
            [answer(a)],
            [answer(a)],
            [answer(w)],
            [uses(right), answer(a)],  # calls an undeclared tool, then answers
        ][i]
    # paths: 8 paths of (call, answer); C correct, 1/2 wrong values
    plans = ["1CC2C1CC", "CCCCCCCC", "11111111", "C11222CC"]
    values = {"C": (a, right), "1": (w, off), "2": (wrong(p, 2), computes(p, 2))}
    out = []
    for ch in plans[i]:
        out += [uses(values[ch][1]), answer(values[ch][0])]
    return out


def backend_for(i: int, p: curriculum.Problem, condition: str) -> ScriptedBackend:
    return ScriptedBackend(scripts(i, p, condition), n_layers=2, top_k=2, n_experts=8)


class ScriptTokenizer:
    """``decode`` for ScriptedBackend's token ids (CRC32s of its fake tokens' texts): the texts of
    every turn of ``items``, rendered as the backend can render them."""

    def __init__(self, items: list) -> None:
        self.texts: dict[int, str] = {}
        for item in items:
            for first_call in range(12):
                for thinking_open in (True, False):
                    for piece in fake_tokens(item.render(first_call, thinking_open), 4):
                        self.texts[zlib.crc32(piece.encode()) % 50_000] = piece

    def decode(self, ids: list[int]) -> str:
        return "".join(self.texts[i] for i in ids)


@pytest.fixture(scope="module")
def report():
    every_turn = [t for i, p in enumerate(PROBLEMS) for c in E.CONDITIONS for t in scripts(i, p, c)]
    return E.evaluate(PROBLEMS, backend_for, paths=[1, 2, 4, 8], progress=False, model="scripted",
                      tokenizer=ScriptTokenizer(every_turn))




def test_accuracy_valid_calls_and_verification(report):
    assert report["accuracy"] == 0.75
    assert report["tool_calls"] == {"total": 7, "valid": 6, "per_run": 1.75, "runs_all_valid": 0.75}
    assert report["valid_tool_call_rate"] == round(6 / 7, 6)
    assert report["verification_rate"] == 0.5
    assert report["verification_rules"] == {"check": 1, "recompute": 1, "announced": 0}
    runs = [r for r in report["runs"] if r["condition"] == "tools"]
    assert [r["verification"] for r in runs] == ["check", "recompute", None, None]
    assert [r["correct"] for r in runs] == [True, False, True, True]
    assert report["misses_by_kind"]["tools"] == {PROBLEMS[1].kind: 1}
    assert report["end_reasons"]["tools"] == {"answer": 4}


def test_recovery_after_injected_failure(report):
    assert report["recovery"] == {"runs": 4, "injected": 3, "retried": 2, "recovered": 1, "accuracy": 0.25,
                                  "recovered_when_solved": 0.5}  # problems 0 and 2 solved and injected
    injected = [r for r in report["runs"] if r["condition"] == "injected"]
    assert [r["withheld"] for r in injected] == [False, False, False, True]
    assert injected[3]["withheld_correct"]
    assert report["recovery_rate"] == round(1 / 3, 6)


def test_accuracy_without_tools_and_vs_paths(report):
    assert report["accuracy_no_tools"] == 0.75
    s = report["scaling"]
    assert s["paths"] == [1, 2, 4, 8] and s["temperature"] == 1.0
    # per problem, voted correct at k = 1, 2, 4, 8: [0,0,1,1], [1,1,1,1], [0,0,0,0], [1,1,0,1]
    assert s["accuracy"] == [0.5, 0.5, 0.5, 0.75]
    assert s["pass_at_k"] == [0.5, 0.75, 0.75, 0.75]
    assert s["mean_path_accuracy"] == 0.5
    assert report["targets"]["voting_beats_one_path"]["met"]
    assert not report["targets"]["accuracy"]["met"]


def test_vote_prefix_is_what_fewer_paths_return():
    """The first k paths of an 8-path run vote like a k-path run of the same script."""
    p = PROBLEMS[0]
    eight = E.run_problem(p, backend_for(3, p, "paths"), condition="paths", paths=8, temperature=1.0)
    items = scripts(3, p, "paths")
    for k in (1, 2, 4):
        alone = E.run_problem(p, ScriptedBackend(items[: 2 * k]), condition="paths", paths=k, temperature=1.0)
        assert E.vote_prefix(eight, k) == alone.answer


def test_injected_failure_is_a_real_nameerror_and_leaves_the_namespace_alone():
    ns: dict = {"__name__": "__main__", "xs": [1, 2, 3]}
    ex = E.FailFirstCall(LocalExecutor(namespace=ns))
    first = ex.execute(ToolCallRequest("functions.python:0", "python", "", {"code": "s = sum(xs)\nprint(s)"}))
    assert not first.ok and first.data["injected"] == "nameerror"
    assert "NameError" in first.text and "'sum'" in first.text and "s = sum(xs)" in first.text
    assert set(ns) == {"__name__", "xs"}  # the failed run touched a scratch copy only
    second = ex.execute(
        ToolCallRequest("functions.python:1", "python", "", {"code": "s = sum(xs)\nprint(s)"}))
    assert second.ok and second.text == "6" and ns["s"] == 6
    assert E.first_loaded_name("import math\ny = 2\nprint(math.sqrt(y), df)") == "print"
    assert E.first_loaded_name("y = 2\nz = y + q") == "q"

    transient = E.FailFirstCall(LocalExecutor(), mode="transient")
    obs = transient.execute(ToolCallRequest("functions.python:0", "python", "", {"code": "print(1)"}))
    assert not obs.ok and "did not run" in obs.text
    assert transient.execute(ToolCallRequest("functions.python:1", "python", "", {"code": "print(1)"})).ok


def test_setup_code_runs_in_the_namespace_first():
    p = next(q for q in curriculum.heldout_problems(9) if q.family == "data")
    script = [call("print(df.columns.tolist())"), answer("x")]
    result = E.run_problem(p, ScriptedBackend(script))
    assert result.tool_calls[0]["ok"] and "region" in result.tool_calls[0]["observation"]


def test_token_classes_and_load_balance():
    assert E.classify_token("<|tool_call_begin|>", "tool_call") == "tool_marker"
    assert E.classify_token("<think>", "thinking") == "marker"
    assert E.classify_token("7", "tool_call") == "digit"
    assert E.classify_token(" 7", "answer") == "digit"
    assert E.classify_token("print", "tool_call") == "code"
    assert E.classify_token(" answer", "answer") == "word"
    assert E.classify_token(".", "answer") == "other"

    p = PROBLEMS[0]
    tokenizer = ScriptTokenizer(scripts(0, p, "tools"))
    result = E.run_problem(p, backend_for(0, p, "tools"))
    tally = E.RoutingTally(8, [1, 2])
    tally.add(result, lambda token_id: tokenizer.decode([token_id]))
    s = tally.summary()
    # two tool turns, each: section begin, call begin, argument begin, call end, section end
    assert s["classes"]["tool_marker"]["tokens"] == 10
    assert sum(c["tokens"] for c in s["classes"].values()) == len(result.routing)
    counts = result.routing.expert_counts()  # [L, E]
    for layer, b in zip([1, 2], s["load_balance"], strict=True):
        assert b["layer"] == layer
        assert b["max_over_mean"] == round(float(counts[layer - 1].max() / counts[layer - 1].mean()), 3)
    top = s["classes"]["code"]["layers"][0]["top"][0]
    assert 0 <= top["expert"] < 8 and 0 < top["share"] <= 1 and top["lift"] > 0
    # each class's counts are Routing.expert_counts of that class's tokens, and they add up to all
    classes = E.experts.token_classes(result.routing, lambda t: tokenizer.decode([t]))
    parts = E.experts.by_class(result.routing, classes)
    assert sum(len(r) for r in parts.values()) == len(result.routing)
    assert np.array_equal(sum(tally.counts.values()), counts)
    assert np.array_equal(tally.counts["tool_marker"], parts["tool_marker"].expert_counts())


def test_a_partial_utf8_byte_token_classifies_as_no_text():
    """The eval decodes each generated id alone; a byte token that is part of a UTF-8 character gives
    U+FFFD, where the stream used to give no text: both are the same class in every channel."""
    for channel in ("thinking", "answer", "tool_call", ""):
        assert E.classify_token("\ufffd", channel) == E.classify_token("", channel)
        assert E.classify_token(b"\xe2".decode(errors="replace"), channel) == E.classify_token("", channel)


def test_the_report_decodes_tokens_with_the_tokenizer():
    p = PROBLEMS[0]
    tokenizer = ScriptTokenizer(scripts(0, p, "tools"))
    with_texts = E.evaluate([p], backend_for, conditions=["tools"], progress=False, tokenizer=tokenizer)
    without = E.evaluate([p], backend_for, conditions=["tools"], progress=False)
    assert with_texts["experts"]["classes"]["tool_marker"]["tokens"] == 10
    assert "tool_marker" not in without["experts"]["classes"]  # no text: classes by channel only


def test_report_files_have_every_field(report, tmp_path):
    files = E.write_report(json.loads(json.dumps(report, default=str)), tmp_path / "eval")
    assert files["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(files["json"].read_text())
    for key in ("settings", "n_problems", "accuracy", "accuracy_by_family", "misses_by_kind",
                "valid_tool_call_rate",
                "tool_calls", "verification_rate", "verification_rules", "recovery_rate", "recovery",
                "accuracy_no_tools", "scaling", "end_reasons", "experts", "wall_s", "wall_s_by_condition",
                "definitions", "targets", "runs", "files"):
        assert key in data, key
    assert "0.01 absolute" in data["settings"]["tolerance"]
    assert set(data["experts"]["classes"]) >= {"digit", "word", "code", "tool_marker"}
    assert len(data["runs"]) == 16 and data["wall_s"] >= 0
    # misses by sub-family add up to the wrong runs of each condition, and name real kinds
    for cond, misses in data["misses_by_kind"].items():
        wrong = [r for r in data["runs"] if r["condition"] == cond and not r["correct"]]
        assert sum(misses.values()) == len(wrong)
        assert set(misses) == {r["kind"] for r in wrong} and all("." in k for k in misses)
    text = E.format_report(data)
    assert "recovery after injected failure  33.3%" in text and "wrote" in text


def test_report_without_scaling_runs_writes_json_and_no_plot(report, tmp_path):
    """`--no-scaling` skips the sampled paths: the report has no curve to draw (and a log-scaled
    empty plot used to raise after the whole eval had run, losing its results)."""
    data = json.loads(json.dumps(report, default=str))
    s = data["scaling"]
    s["accuracy"] = s["pass_at_k"] = [None] * len(s["paths"])
    files = E.write_report(data, tmp_path / "eval")
    assert set(files) == {"json"} and not (tmp_path / "eval" / "scaling.png").exists()
    assert json.loads(files["json"].read_text())["files"] == {"json": str(files["json"])}
    assert "(no scaling plot: no paths runs, --no-scaling or --conditions)" in E.format_report(data)


def test_report_names_its_problem_set(report):
    data = json.loads(json.dumps(report, default=str))
    assert data["settings"]["split"] == "heldout" and "4 held-out problems" in E.format_report(data)
    data["settings"]["split"] = "train"
    assert "4 training-phrasing problems" in E.format_report(data)


def test_cli_arguments():
    ap = argparse.ArgumentParser()
    nano_cli.register(ap.add_subparsers(dest="command"))
    args = ap.parse_args(["eval", "--paths", "8,1,2", "--limit", "5"])
    assert args.paths == [1, 2, 8] and args.limit == 5 and args.func is nano_cli.cmd_eval
    # no --limit: 27 generated problems; the paraphrase split's default (all) is in test_nano_eval_paraphrase
    assert len(nano_cli.eval_problems(ap.parse_args(["eval"]))) == E.DEFAULT_LIMIT
    assert ap.parse_args(["eval"]).split == "heldout"
    assert ap.parse_args(["eval", "--split", "train"]).split == "train"
    args = ap.parse_args(["train-nano", "--out", "x", "--steps", "3"])
    assert args.steps == 3 and args.func is nano_cli.cmd_train_nano
    args = ap.parse_args(["train-nano", "--out", "x", "--no-resume", "--init", "m", "--lr", "1e-3",
                          "--warmup-steps", "5"])
    assert (args.no_resume, args.init, args.lr, args.warmup_steps, args.seed) == (True, "m", 1e-3, 5, 0)
    with pytest.raises(SystemExit):  # only `python -m k2nb.nano.train` has --batch-size and --bench
        ap.parse_args(["train-nano", "--out", "x", "--batch-size", "4"])
    with pytest.raises(SystemExit):
        ap.parse_args(["eval", "--paths", "0,2"])
    from k2nb.engine.errors import CheckpointError

    with pytest.raises(CheckpointError, match="no model.safetensors"):
        nano_cli.model_path("/nonexistent/k2-nano")


def test_expert_summary_counts_every_selection():
    tally = E.RoutingTally(4, [1])
    tally.counts["digit"] = np.array([[3, 1, 0, 0]])
    tally.counts["word"] = np.array([[0, 1, 3, 0]])
    tally.tokens = {"digit": 2, "word": 2}
    s = tally.summary(top=1)
    assert s["classes"]["digit"]["layers"][0]["top"] == [{"expert": 0, "share": 0.75, "lift": 2.0}]
    assert s["load_balance"] == [{"layer": 1, "max_over_mean": 1.5, "unused_experts": 1}]


def test_extra_tool_is_declared_beside_python_except_without_tools():
    from k2nb.agent import tool

    p = curriculum.heldout_problems(1)[0]
    extra = [tool(E.lookup_price)]
    with_tools = ScriptedBackend([call("print(1)"), answer("x")])
    E.run_problem(p, with_tools, extra_tools=extra)
    assert "lookup_price" in with_tools.prompts[0] and '"python"' in with_tools.prompts[0]
    without = ScriptedBackend([answer("x")])
    E.run_problem(p, without, condition="no_tools", extra_tools=extra)
    assert "lookup_price" not in without.prompts[0]
    ap = argparse.ArgumentParser()
    nano_cli.register(ap.add_subparsers(dest="command"))
    assert ap.parse_args(["eval", "--extra-tool"]).extra_tool and not ap.parse_args(["eval"]).extra_tool
    report = E.evaluate([p], lambda i, q, c: ScriptedBackend([call("print(1)"), answer("x")]),
                        conditions=["tools"], progress=False, extra_tools=extra)
    assert report["settings"]["extra_tools"] == ["lookup_price"]
    text = E.format_report(json.loads(json.dumps(report, default=str)))
    assert "tool lookup_price declared beside python" in text
