"""The reasoning loop, driven by the ScriptedBackend (K2-format text through the real parser), plus one
end-to-end run through the real engine on a tiny random checkpoint."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import nbformat
import pytest

from k2nb.agent import (
    Budgets,
    Conversation,
    LocalExecutor,
    ThinkOptions,
    Trajectory,
    TrajectoryEvent,
    run_turn,
    think,
    tool,
)
from k2nb.agent.checks import Verdict, normalise_answer, numbers_in
from k2nb.backends.scripted import ScriptedBackend, Turn
from k2nb.formats.k2 import IM_END, THINK_BEGIN, THINK_END

MEAN = "What is the mean of 1, 2, 3 and 10?"


def py(code: str) -> tuple[str, dict[str, str]]:
    return ("python", {"code": code})


def returns(prompt: str) -> list[str]:
    """The tool results in a rendered prompt, in order: (id, content)."""
    parts = prompt.split("## Return of ")[1:]
    return [p.split(IM_END)[0] for p in parts]


# --------------------------------------------------------------------------------------------
# calls, observations, ids


def test_a_multi_call_section_runs_in_order_under_the_models_ids() -> None:
    sb = ScriptedBackend(
        [
            Turn("Two steps at once.", [py("xs = [1, 2, 3, 10]"), py("sum(xs) / len(xs)")]),
            Turn("Got it.", answer="The mean is 4.0."),
        ]
    )
    r = think(MEAN, backend=sb)
    assert r.answer == "The mean is 4.0." and r.end_reason == "answer"
    assert returns(sb.prompts[1]) == ["functions.python:0\n(no output)", "functions.python:1\n4.0"]
    assert [c["id"] for c in r.tool_calls] == ["functions.python:0", "functions.python:1"]
    assert [m["role"] for m in r.messages] == ["user", "assistant", "tool", "tool", "assistant"]
    assert r.messages[2]["tool_call_id"] == "functions.python:0" and r.messages[2]["name"] == "python"
    t = r.trajectory
    calls = t.find("tool_call")
    assert [t.children(c, "observation")[0].text for c in calls] == ["(no output)", "4.0"]
    assert {c.kind: c.status for c in r.checks} == {
        "args": "passed",
        "grounded": "passed",
        "used": "passed",
        "sourced": "passed",
        "self_verify": "pending",
    }


def test_ids_keep_counting_across_steps_and_user_tools_run() -> None:
    @tool
    def lookup(key: str) -> str:
        """Look up a constant.

        Args:
            key: Its name.
        """
        return {"g": "9.81"}[key]

    sb = ScriptedBackend(
        [
            Turn("Look it up.", [("lookup", {"key": "g"})]),
            Turn("Double it.", [py("2 * 9.81")]),
            Turn("", answer="2g is 19.62."),
        ]
    )
    r = think("What is 2g?", backend=sb, tools=[lookup])
    assert [c["id"] for c in r.tool_calls] == ["functions.lookup:0", "functions.python:1"]
    assert returns(sb.prompts[2]) == ["functions.lookup:0\n9.81", "functions.python:1\n19.62"]
    assert '"name":"lookup"' in sb.prompts[0]  # the schema was declared to the model
    assert r.answer == "2g is 19.62." and r.checks[1].status == "passed"


def test_tool_errors_and_timeouts_are_observations_the_model_sees() -> None:
    sb = ScriptedBackend(
        [
            Turn("Try.", [py("1 / 0")]),
            Turn("Loop.", [py("while True:\n    pass")]),
            Turn("Exit?", [py("import sys\nsys.exit(2)")]),
            Turn("Fine.", [py("6 * 7")]),
            Turn("", answer="It is 42."),
        ]
    )
    ex = LocalExecutor(timeout_s=0.3)
    t0 = time.perf_counter()
    r = think("6 times 7?", backend=sb, executor=ex)
    assert time.perf_counter() - t0 < 5
    seen = returns(sb.prompts[-1])
    assert seen[0].startswith("functions.python:0\nTraceback") and seen[0].endswith(
        "ZeroDivisionError: division by zero"
    )
    assert seen[1] == "functions.python:1\nTimeoutError: the code ran past the 0.3 s limit and was stopped"
    assert seen[2].endswith("SystemExit: 2")
    assert r.answer == "It is 42." and r.end_reason == "answer"
    obs = [n for n in r.trajectory.find("observation")]
    assert [o.status for o in obs] == ["failed", "failed", "failed", "done"]


def test_malformed_calls_become_error_observations() -> None:
    sb = ScriptedBackend(
        [
            Turn(
                "Several bad calls.",
                [
                    ("python", '{"code": "1 +'),  # JSON cut off
                    ("python", '["not", "an", "object"]'),
                    ("nope", {"x": 1}),  # unknown tool
                    ("python", {"source": "1"}),  # wrong argument name
                ],
            ),
            Turn("", answer="Sorry, no result."),
        ]
    )
    r = think("anything", backend=sb)
    seen = returns(sb.prompts[1])
    assert seen[0].startswith(
        "functions.python:0\nerror: Tool call 'functions.python:0' has arguments that are not valid JSON"
    )
    assert seen[1] == (
        "functions.python:1\nerror: Tool call 'functions.python:1' has arguments that are a JSON list, "
        "not an object."
    )
    assert seen[2] == "functions.nope:2\nerror: there is no tool named 'nope'; the tools are: python"
    assert seen[3] == "functions.python:3\nerror: tool 'python' is missing the required argument 'code'"
    args = next(c for c in r.checks if c.kind == "args")
    assert args.status == "failed" and args.evidence.startswith("4 of 4 tool calls had invalid arguments")
    assert r.end_reason == "answer"  # an informative check: no rollback
    failed = [n for n in r.trajectory.find("tool_call") if n.status == "failed"]
    assert len(failed) == 2 and "parse_error" in failed[0].data


@pytest.mark.parametrize(
    "raw",
    [
        "<think>cut off in the middle of thinking",
        "<think>a</think>answer<|tool_calls_section_begin|>junk<|tool_call_begin|>functions.python:0",
        "<think>x</think><|tool_calls_section_begin|><|tool_call_begin|>badid<|tool_call_argument_begin|>{}"
        "<|tool_call_end|><|tool_calls_section_end|><|im_end|>",
        "no think block at all<|im_end|>trailing text",
        "<|tool_call_end|><|im_end|><|im_end|><think></think>",
        "",
    ],
)
def test_malformed_output_never_raises(raw: str) -> None:
    sb = ScriptedBackend([raw, Turn("", answer="done")] * 3)
    r = think("q", backend=sb, steps=4)
    assert r.end_reason in ("answer", "length", "budget:steps", "budget:new_tokens")
    json.loads(r.trajectory.to_json())
    nbformat.validate(r.trajectory.to_notebook())


# --------------------------------------------------------------------------------------------
# budgets


def test_thinking_budget_per_step_forces_the_answer_with_the_partial_reasoning() -> None:
    sb = ScriptedBackend([Turn("word " * 200, [py("1")]), Turn(answer="My best guess is 7.")], chunk_chars=5)
    r = think("q", backend=sb, think_tokens_per_step=20, failed_checks="answer")
    assert r.end_reason == "budget:think_tokens_per_step" and r.answer == "My best guess is 7."
    forced = sb.prompts[1]
    assert forced.endswith(THINK_END) and "word word" in forced.split(THINK_BEGIN)[-1]
    assert "I have used my thinking budget for this step, so I answer now" in forced
    thinking = r.trajectory.find("thinking")
    assert thinking[0].n_tokens <= 21 and thinking[1].data == {"forced": True}
    assert r.tool_calls == []  # the cut-off step's call never existed


def test_total_thinking_budget_counts_across_steps() -> None:
    def model(prompt: Any) -> Turn:  # thinks 10 tokens a step until it is made to answer
        return Turn(answer="Stopped.") if prompt.forced_reasoning is not None else Turn("abcd" * 8, [py("1")])

    sb = ScriptedBackend([model] * 10, chunk_chars=4)
    r = think("q", backend=sb, think_tokens=25, think_tokens_per_step=None)
    assert r.end_reason == "budget:think_tokens" and r.answer == "Stopped."
    assert len(r.tool_calls) == 2  # 10 + 10 thinking tokens, then the third step was cut at 25
    assert sum(n.n_tokens for n in r.trajectory.find("thinking")) == 25


def test_tool_call_budget_answers_extra_calls_and_forces_the_answer() -> None:
    sb = ScriptedBackend(
        [
            Turn("One.", [py("1")]),
            Turn("Two more.", [py("2"), py("3")]),
            Turn(answer="Answer after the budget: 2."),
        ]
    )
    r = think("q", backend=sb, tool_calls=2, failed_checks="answer")
    assert r.end_reason == "budget:tool_calls" and r.answer == "Answer after the budget: 2."
    seen = returns(sb.prompts[2])
    assert seen[2] == "functions.python:2\nerror: not run: the tool-call budget (2 calls) is used up"
    assert "I have used my tool-call budget" in sb.prompts[2]


def test_wall_time_budget() -> None:
    def model(prompt: Any) -> Turn:
        return (
            Turn(answer="Out of time.")
            if prompt.forced_reasoning is not None
            else Turn("Slow tool.", [py("import time\ntime.sleep(0.3)")])
        )

    sb = ScriptedBackend([model] * 5)
    r = think("q", backend=sb, wall_s=0.5, failed_checks="answer")
    assert r.end_reason == "budget:wall_time" and r.answer == "Out of time."
    assert 1 <= len(r.tool_calls) <= 3


def test_step_budget_and_tool_calls_after_the_budget_are_not_run() -> None:
    sb = ScriptedBackend([Turn("again", [py("1")])] * 2 + [Turn(answer="fine", calls=[py("print('never')")])])
    r = think("q", backend=sb, steps=2)
    assert r.end_reason == "budget:steps" and r.answer == "fine"
    errors = [n.text for n in r.trajectory.find("error")]
    assert errors == ["the model called tools after its budget ended (1 calls); they were not run"]
    assert "tool_calls" not in r.messages[-1]  # the conversation stays renderable


# --------------------------------------------------------------------------------------------
# verification and rollback


def test_failed_grounding_rolls_back_and_the_retry_is_a_branch() -> None:
    sb = ScriptedBackend(
        [
            Turn("Compute.", [py("sum([1, 2, 3, 10]) / 4")]),
            Turn("", answer="The mean is 5."),  # not what the tool said
            Turn("Read it again.", answer="The mean is 4.0."),
        ]
    )
    r = think(MEAN, backend=sb)
    assert r.answer == "The mean is 4.0." and r.end_reason == "answer"
    t = r.trajectory
    a1, a2 = t.find("attempt")
    assert a1.status == "rolled_back" and a2.status == "done"
    assert a2.data["after"] == t.find("observation")[0].id and "5 does not appear" in a2.data["reason"]
    assert a2.data["temperature"] == 0.0  # a greedy path retries greedily unless retry_temperature is set
    feedback = sb.prompts[2].split("<|im_user|>user<|im_middle|>")[-1]
    assert feedback.startswith(
        "A check of your answer failed. answer grounded in tool results: 5 does not appear"
    )
    assert "The mean is 5." not in sb.prompts[2]  # the failed answer was rolled back
    statuses = [(c.kind, c.status) for c in r.checks if c.kind == "grounded"]
    assert statuses == [("grounded", "failed"), ("grounded", "passed")]
    assert [a.source for a in _cells(t.to_notebook(), "answer")] == [
        "## Answer\n\nThe mean is 5.",
        "## Answer\n\nThe mean is 4.0.",
    ]


@dataclass
class _Temperatures(ScriptedBackend):
    """The ScriptedBackend, noting the temperature each generation was asked for."""

    seen: list[float] = field(default_factory=list)

    def stream(self, prompt, options, cancel=None):  # type: ignore[no-untyped-def]
        self.seen.append(options.temperature)
        return super().stream(prompt, options, cancel)


@pytest.mark.parametrize("retry, expected", [(0.7, [0.0, 0.0, 0.7]), (None, [0.0, 0.0, 0.0])])
def test_retries_after_a_rollback_sample_when_told_to(
    retry: float | None, expected: list[float]
) -> None:
    sb = _Temperatures([Turn("Compute.", [py("sum([1, 2, 3, 10]) / 4")]), Turn("", answer="The mean is 5."),
                        Turn("Read it again.", answer="The mean is 4.0.")])
    r = think(MEAN, backend=sb, retry_temperature=retry)
    assert r.answer == "The mean is 4.0." and sb.seen == expected
    assert r.trajectory.find("attempt")[1].data["temperature"] == expected[-1]


def test_failed_self_verification_rolls_back_to_before_the_check() -> None:
    sb = ScriptedBackend(
        [
            Turn("Compute.", [py("x = 17 * 3")]),
            Turn("Verify it.", [py("assert x == 41, x")]),
            Turn("", answer="It is 51."),
            Turn("Verify properly.", [py("x == 51")]),
            Turn("", answer="It is 51."),
        ]
    )
    r = think("17 * 3?", backend=sb, max_rollbacks=1, failed_checks="answer")
    assert r.answer == "It is 51."
    sv = [c for c in r.checks if c.kind == "self_verify"]
    assert [c.status for c in sv] == ["failed", "passed"]
    assert "verification call functions.python:1 failed: AssertionError: 51" in sb.prompts[3]
    # the rollback dropped the failing verification step from the conversation
    assert "assert x == 41" not in sb.prompts[3].split("A check of your answer failed")[0]


def test_a_recompute_that_disagrees_is_a_failed_check() -> None:
    """An announced check that recomputes must reproduce an earlier result: 57.12 then 56.0 fails
    (the model wrote "Both calls give 56.0"), 57.12 then 57.123 passes (other rounding)."""
    sb = ScriptedBackend(
        [
            Turn("Part = 112 * 51 / 100.", [py("print(round(112 * 51 / 100, 2))")]),
            Turn("Check with the fraction first.", [py("print(round(50 / 100 * 112, 2))")]),
            Turn("Both calls give 56.0.", answer="The answer is 56.0."),
            Turn("Check again.", [py("print(round(0.51 * 112, 3))")]),
            Turn("", answer="The answer is 57.12."),
        ]
    )
    r = think("51% of 112?", backend=sb, max_rollbacks=1)
    sv = [c for c in r.checks if c.kind == "self_verify"]
    assert [c.status for c in sv] == ["failed", "passed"], [c.evidence for c in sv]
    assert "gave 56.0, which no earlier result reproduces (last: 57.12)" in sv[0].evidence
    assert r.answer == "The answer is 57.12."


def test_a_question_number_no_call_uses_fails_the_used_check_and_rolls_back() -> None:
    """37.94 copied as 37: plan, code and check agree on a wrong result; only the question's
    unused number shows it. The loop drops the answer, says which number, and the retry passes."""
    q = "After paying 42 and 37.94 out of 874 dollars, how many dollars remain?"
    sb = ScriptedBackend(
        [
            Turn("Given: cost 42, cost 37, budget 874.", [py("print(round(874 - 42 - 37, 2))")]),
            Turn("Check: subtract the sum.", [py("print(round(874 - (42 + 37), 2))")]),
            Turn("Both calls give 795.", answer="The answer is 795 dollars."),
            Turn("Given: cost 42, cost 37.94, budget 874.", [py("print(round(874 - 42 - 37.94, 2))")]),
            Turn("", answer="The answer is 794.06 dollars."),
        ]
    )
    r = think(q, backend=sb)
    used = [c for c in r.checks if c.kind == "used"]
    assert [c.status for c in used] == ["failed", "passed"]
    assert used[0].evidence == "37.94 from the question is in no successful call"
    assert used[0].data["missing"] == ["37.94"]
    # the code's 37 has no source either: both checks name what the retry must fix
    sourced = [c for c in r.checks if c.kind == "sourced"]
    assert [c.status for c in sourced] == ["failed", "passed"] and sourced[0].data["unsourced"] == ["37"]
    named = ("question numbers used: 37.94 from the question is in no successful call; numbers sourced: "
             "37 in `print(round(874 - 42 - 37, 2))` is not a number of the question (42, 37.94, 874)")
    assert named in sb.prompts[3]
    assert r.answer == "The answer is 794.06 dollars."
    assert [a.status for a in r.trajectory.find("attempt")] == ["rolled_back", "done"]


def test_what_the_used_check_counts_as_using_a_number() -> None:
    from k2nb.agent.checks import CallRecord, numbers_used

    def rec(code: str, ok: bool = True) -> CallRecord:
        return CallRecord("functions.python:0", "python", code, "1", ok, "n0")

    # a percentage may be used as a fraction; thousands separators and dates are read by value
    assert numbers_used("15% off 1,250 dollars?", [rec("print(1250 * (1 - 0.15))")])[0] == "passed"
    assert numbers_used("96 days past 2019-03-20?", [rec("date(2019, 3, 20) + timedelta(96)")])[0] == "passed"
    # a failed call does not count; with no successful call the check waits
    assert numbers_used("7 times 6?", [rec("print(7 * 6", ok=False)])[0] == "pending"
    status, evidence, data = numbers_used("7 times 6?", [rec("print(7 * 6", ok=False), rec("print(7 * 5)")])
    assert (status, data["missing"]) == ("failed", ["6"])
    assert evidence == "6 from the question is in no successful call"
    # a follow-up need not use the number it replaces, only the one it brings
    follow = "What if it were 45 instead of 33?"
    assert numbers_used(follow, [rec("print(45 * 2)")], said_before="33 times 2?")[0] == "passed"
    assert numbers_used(follow, [rec("print(45 * 2)")])[1] == "33 from the question is in no successful call"
    assert numbers_used("Reverse 'abc'.", [])[0] == "passed"  # no numbers: nothing to use
    # `What is {n} times 7?` in a notebook: the code reads the user's n, so 6 may be there
    status, evidence, _ = numbers_used("What is 6 times 7?", [rec("y = n * 7\nprint(y)")])
    assert (status, evidence) == ("passed", "6 may come from n, which the code reads from the namespace")
    assert numbers_used("What is 6 times 7?", [rec("n = 5\nprint(n * 7)")])[0] == "failed"
    # the check is one of the defaults and can be switched off
    sb = ScriptedBackend([Turn("", [py("print(7 * 5)")]), Turn("", answer="35")])
    r = think("7 times 6?", backend=sb, builtin_checks=("args", "grounded", "self_verify"))
    assert "used" not in {c.kind for c in r.checks} and r.answer == "35"


def test_a_retry_is_judged_on_the_calls_its_answer_rests_on() -> None:
    """After a self_verify rollback the discarded computation stays in the context; a retry that
    computes from other numbers (14 * 14 for 14 boxes of 12) must not count its 12 as used."""
    q = "14 boxes hold 12 pens each. How many pens?"
    sb = ScriptedBackend(
        [
            Turn("Given: 14, 12. Multiply.", [py("print(14 * 12)")]),
            Turn("Check: divide back.", [py("print(168 / 14 == 14)")]),
            Turn("", answer="The answer is 168."),
            Turn("Given: 14, 12. Multiply.", [py("print(14 * 14)")]),
            Turn("Check: divide back.", [py("print(196 / 14 == 14)")]),
            Turn("", answer="The answer is 196."),
        ]
    )
    r = think(q, backend=sb, max_rollbacks=1)
    used = [c for c in r.checks if c.kind == "used"]
    assert [c.status for c in used] == ["passed", "failed"], [c.evidence for c in used]
    assert used[1].evidence == "12 from the question is in no successful call"
    assert r.withheld == "The answer is 196." and r.answer.startswith("No checked answer")


def test_a_retry_builds_on_the_kept_calls_it_reads() -> None:
    from k2nb.agent.checks import CallRecord, computation

    def rec(code: str, out: str) -> CallRecord:
        return CallRecord("functions.python:0", "python", code, out, True, "n0")

    stat = rec("xs = [14, 29, 8]\nprint(max(xs))", "29")
    other = rec("print(14 * 12)", "168")
    # a name the retry reads, or a result it copies, keeps the earlier call; others drop out
    reads, copies = rec("print(max(xs) - 5)", "24"), rec("print(29 - 5)", "24")
    assert computation([stat, other, reads], 2) == [stat, reads]
    assert computation([other, stat, copies], 2) == [stat, copies]
    assert computation([other, stat], 0) == [other, stat]  # a first attempt rests on every call


def test_a_plan_that_quotes_words_the_question_lacks_misread_it() -> None:
    """"Divide 945 by 7" planned as `Key word "product": multiply`: code and check agree on 6615,
    every number is used and sourced; only the quote shows the misreading. The loop rolls back,
    names the word, and the retry that quotes the question passes."""
    q = "Divide 945 by 7 for me."
    sb = ScriptedBackend(
        [
            Turn('Given: 945, 7. Key word "product": multiply. 945 * 7.', [py("print(945 * 7)")]),
            Turn("Check: divide back.", [py("print(6615 / 7 == 945)")]),
            Turn("The check passed.", answer="The answer is 6615."),
            Turn('Given: 945, 7. Key word "divide": divide. 945 / 7.', [py("print(945 / 7)")]),
            Turn("Check: multiply back.", [py("print(135.0 * 7 == 945)")]),
            Turn("The check passed.", answer="The answer is 135."),
        ]
    )
    r = think(q, backend=sb)
    quoted = [c for c in r.checks if c.kind == "quoted"]
    assert [c.status for c in quoted] == ["failed", "passed"]
    assert quoted[0].evidence == '"product" is not in the question'
    assert 'quotes in the question: "product" is not in the question' in sb.prompts[3]
    assert r.answer == "The answer is 135." and r.verdict.headline == "6 of 6 checks passed"


def test_what_the_quoted_check_reads_as_a_quote_of_the_question() -> None:
    from k2nb.agent.checks import quotes_in_question as quotes

    q = ["It's 25% off. How many pens are LEFT from 1,250 each?"]
    # case, apostrophes, digit groups and a quote's own end punctuation do not matter
    assert quotes('Key words "it\u2019s" and "left": subtract.', q)[0] == "passed"
    assert quotes('The question asks "how many pens are left from 1250 each?"', q)[0] == "passed"
    assert quotes("the word 'each' means multiply", q)[0] == "passed"
    status, evidence, data = quotes('Key words "each", "remain" and "total": add.', q)
    assert (status, data["missing"]) == ("failed", ["remain", "total"])
    assert evidence == '"remain" and "total" are not in the question'
    assert quotes('Key word "percent of": times.', ["What percentage of 80 is 18?"])[0] == "failed"
    # quotes that make no claim about the question's words are not judged
    assert quotes("The column is 'revenue'. print(\"done\")", q) is None
    assert quotes("Given: 945, 7. Multiply.", q) is None
    # with nothing quoted there is no check; it is one of the defaults and can be switched off
    sb = ScriptedBackend([Turn('Key word "product".', [py("print(7 * 6)")]), Turn("", answer="42")])
    assert "quoted" not in {c.kind for c in think("7 times 6?", backend=ScriptedBackend(
        [Turn("Multiply.", [py("print(7 * 6)")]), Turn("", answer="42")])).checks}
    r = think("7 times 6?", backend=sb, builtin_checks=("args", "grounded", "used", "sourced"))
    assert "quoted" not in {c.kind for c in r.checks} and r.answer == "42"


def test_user_checks_and_the_rollback_limit() -> None:
    seen: list[str | None] = []

    def says_please(question: str, trajectory: Trajectory) -> Verdict:
        seen.append(trajectory.answer)
        return Verdict("please" in (trajectory.answer or ""), "the answer must say please")

    sb = ScriptedBackend([Turn(answer="No."), Turn(answer="Still no."), Turn(answer="Nope.")])
    r = think("Be polite.", backend=sb, checks=[says_please], max_rollbacks=2)
    assert seen == ["No.", "Still no.", "Nope."]
    assert len(r.trajectory.find("attempt")) == 3 and r.withheld == "Nope."  # gave up after 2 rollbacks
    assert [c.status for c in r.checks if c.kind == "user"] == ["failed"] * 3
    # the answer its check still fails is withheld, quoted, with the check named
    withheld = 'No checked answer: the answer "Nope." failed the check says_please.'
    assert r.answer == r.trajectory.answer == withheld
    assert r.trajectory.meta["withheld"] == "Nope." and r.to_dict()["withheld"] == "Nope."
    assert r.trajectory.find("answer")[-1].text == "Nope."  # the model's own words stay in the tree
    given = think("Be polite.", backend=ScriptedBackend([Turn(answer="No.")]), checks=[says_please],
                  max_rollbacks=0, failed_checks="answer")
    assert given.answer == "No." and given.withheld is None and "withheld" not in given.trajectory.meta
    polite = ScriptedBackend([Turn(answer="Yes, please.")])
    passing = think("Be polite.", backend=polite, checks=[says_please])
    assert passing.answer == "Yes, please." and passing.withheld is None
    with pytest.raises(ValueError, match="failed_checks must be one of withhold, answer, not 'maybe'"):
        think("q", backend=ScriptedBackend([Turn(answer="a")]), failed_checks="maybe")


def test_a_check_that_raises_is_a_failed_check() -> None:
    def broken(question: str, trajectory: Trajectory) -> bool:
        raise RuntimeError("bug in check")

    r = think("q", backend=ScriptedBackend([Turn(answer="a")]), checks=[broken], max_rollbacks=0)
    assert r.checks[-1].status == "failed" and "RuntimeError: bug in check" in r.checks[-1].evidence


# --------------------------------------------------------------------------------------------
# paths


def _answers(*texts: str) -> list[Any]:
    out: list[Any] = []
    for text in texts:
        n = numbers_in(text)[-1].text
        out += [Turn("Compute.", [py(f"print({n})")]), Turn("", answer=text)]
    return out


def test_paths_vote_by_normalised_answer() -> None:
    sb = ScriptedBackend(_answers("The answer is 42.", "It's 41", "**42**"))
    # `print(42)` for "q" has no source: every path fails `sourced` alike, and none may roll back
    r = think("q", backend=sb, paths=3, max_rollbacks=0, failed_checks="answer")
    assert r.answer == "The answer is 42." and [v.key for v in r.votes] == ["42", "41"]
    assert r.votes[0].paths == [0, 2]
    paths = r.trajectory.find("path")
    assert [p.data["seed"] for p in paths] == [0, 1000, 2000] and r.trajectory.meta["temperature"] == 0.7
    agree = next(c for c in r.checks if c.kind == "agreement")
    assert agree.status == "passed" and agree.evidence.startswith("2 of 3 paths answer '42'")


def test_votes_are_weighted_by_verification() -> None:
    # path 1 states a number no tool produced (grounding fails, no rollback allowed); paths 2 and 3 split
    sb = ScriptedBackend(
        [Turn("Guess.", answer="It is 7."), *_answers("It is 8."), Turn("Guess.", answer="It is 7.")]
    )
    r = think("Is it 8?", backend=sb, paths=3, max_rollbacks=0)
    assert r.answer == "It is 8."  # one verified vote beats two unverified ones
    weights = {v.key: v.weight for v in r.votes}
    assert weights["8"] > weights["7"]
    agree = next(c for c in r.checks if c.kind == "agreement")
    assert agree.status == "failed" and agree.evidence.startswith("1 of 3 paths answer '8'")


def test_normalise_answer() -> None:
    assert normalise_answer("The answer is 1,234.50.") == "1234.5"
    assert normalise_answer("**Paris**.") == "paris" == normalise_answer("The answer is: paris")


# --------------------------------------------------------------------------------------------
# conversation, observers, routing, failures


def test_conversation_keeps_messages_namespace_and_drops_old_reasoning() -> None:
    sb = ScriptedBackend(
        [
            Turn("Store it.", [py("total = 10 + 5\nprint(total)")]),
            Turn("Stored.", answer="Total is 15."),
            Turn("Reuse.", [py("total * 2")]),
            Turn("", answer="Double is 30."),
        ]
    )
    conv = Conversation(sb, system="You are terse.")
    assert conv.ask("Add 10 and 5.").answer == "Total is 15."
    r2 = conv.ask("Double it.")
    assert r2.answer == "Double is 30." and returns(sb.prompts[-1])[-1] == "functions.python:1\n30"
    turn2 = sb.prompts[2]
    assert "<|im_system|>system<|im_middle|>You are terse.<|im_end|>" in turn2
    assert "Store it." not in turn2  # finished turn: empty think block, as the K2 template renders
    assert "<think></think>" in turn2
    assert [m["role"] for m in conv.messages] == ["system", "user", "assistant", "tool", "assistant"] * 1 + [
        "user",
        "assistant",
        "tool",
        "assistant",
    ]


def test_observers_follow_the_run_live() -> None:
    events: list[tuple[str, str]] = []

    def view(e: TrajectoryEvent) -> None:
        if e.node is not None and e.type != "node_updated":
            events.append((e.type, e.node.kind))

    sb = ScriptedBackend([Turn("Go.", [py("1 + 1")]), Turn("", answer="2")])
    conv = Conversation(sb, observers=[view])
    conv.ask("1 + 1?")
    assert events[:6] == [
        ("node_added", "path"),
        ("node_added", "attempt"),
        ("node_added", "thinking"),
        ("node_finished", "thinking"),
        ("node_added", "tool_call"),
        ("node_finished", "tool_call"),
    ]
    assert ("node_added", "observation") in events and events[-1] == ("node_finished", "root")


def test_routing_lands_on_the_nodes_of_its_tokens() -> None:
    sb = ScriptedBackend([Turn("Think.", [py("1 + 1")]), Turn("Ok.", answer="It is 2.")], chunk_chars=2)
    r = think("q", backend=sb)
    t = r.trajectory
    for node in t.find("thinking") + t.find("tool_call") + t.find("answer"):
        assert node.routing is not None and node.routing.experts.shape[1:] == (2, 2)
        assert node.n_tokens == len(node.routing) and list(node.routing.positions) == list(range(*node.span))
        for tok, experts in zip(node.routing.tokens, node.routing.experts, strict=True):
            assert (experts == sb.routing_of(int(tok))[0]).all()
    total = sum(len(n.routing) for n in t.nodes.values() if n.routing is not None)
    assert len(r.routing) == total and r.routing.expert_counts().sum() == total * 2 * 2
    assert set(r.routing.kinds) == {"thinking", "tool_call", "answer"}


def test_json_round_trip_and_notebook_of_a_loop_run() -> None:
    sb = ScriptedBackend(
        [
            Turn("Compute.", [py("xs = [1, 2, 3, 10]\nprint(len(xs))\nsum(xs) / len(xs)")]),
            Turn("", answer="4.0"),
        ]
    )
    r = think(MEAN, backend=sb)
    text = r.trajectory.to_json()
    assert Trajectory.from_json(text).to_json() == text
    nb = r.trajectory.to_notebook()
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert len(code) == 1 and [o.output_type for o in code[0].outputs] == ["stream", "execute_result"]
    assert json.loads(json.dumps(r.to_dict()))["answer"] == "4.0"


def test_a_failing_backend_and_cancellation_keep_the_trajectory() -> None:
    def explode(prompt: Any) -> str:
        raise RuntimeError("device lost")

    r = think("q", backend=ScriptedBackend([Turn("Go.", [py("1")]), explode]))
    assert r.end_reason == "error" and r.answer is None
    assert r.trajectory.find("error")[0].text == "the model backend failed: RuntimeError: device lost"
    assert len(r.trajectory.find("observation")) == 1

    cancel = threading.Event()

    def cancel_then_answer(prompt: Any) -> Turn:
        cancel.set()
        return Turn("never finished " * 10, answer="x")

    r = run_turn(
        ScriptedBackend([Turn("Go.", [py("1")]), cancel_then_answer]),
        LocalExecutor(),
        [],
        "q",
        ThinkOptions(cancel=cancel),
    )
    assert r.end_reason == "cancelled" and len(r.trajectory.find("tool_call")) == 1


def test_unknown_options_are_refused() -> None:
    with pytest.raises(TypeError, match="unknown option"):
        think("q", backend=ScriptedBackend([]), max_tool_calls=3)
    assert Budgets().tool_calls == 64


def _cells(nb: Any, kind: str) -> list[Any]:
    return [c for c in nb.cells if c.metadata.get("k2nb", {}).get("kind") == kind]


# --------------------------------------------------------------------------------------------
# the real engine


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from conftest import make_hf_checkpoint, tiny_v3_config
    from test_tokenizer import write_kimi_tokenizer

    from k2nb.engine import load_model

    folder = tmp_path_factory.mktemp("tiny_k2")
    # A random model never answers, so a run goes on until a budget ends it; the context must hold that
    # (generation stops at max_position_embeddings, and a longer prompt is an error).
    make_hf_checkpoint(folder, tiny_v3_config(max_position_embeddings=4096))
    write_kimi_tokenizer(folder)
    return load_model(folder)


def test_end_to_end_through_the_engine(tiny_model: Any) -> None:
    from k2nb.backends.engine import EngineBackend

    backend = EngineBackend(tiny_model)
    events: list[str] = []
    r = think(
        "What is 2 + 2?",
        backend=backend,
        observers=[lambda e: events.append(e.type)],
        new_tokens_per_step=12,
        final_answer_tokens=6,
        think_tokens_per_step=8,
    )
    t = r.trajectory
    cfg = tiny_model.config
    n_moe = len(cfg.moe_layer_ids)
    routed = [n for n in t.nodes.values() if n.routing is not None]
    assert routed, "no token reached a node"
    for node in routed:
        assert node.routing.experts.shape[1:] == (n_moe, cfg.num_experts_per_tok)
        assert (node.routing.experts < cfg.n_routed_experts).all()
    assert len(r.routing) >= 8 and "node_updated" in events
    assert r.end_reason in ("answer", "length") or r.end_reason.startswith("budget:")
    # every generation after the first reused the cached prompt instead of prefilling it again
    assert backend.last_result is not None and backend.last_result.reused_tokens > 0
    json.loads(t.to_json())


def test_incremental_prompt_always_equals_a_full_render() -> None:
    from k2nb.backends.formatted import IncrementalPrompt
    from k2nb.formats.k2 import K2_FORMAT, render_text

    inc: IncrementalPrompt[str] = IncrementalPrompt(K2_FORMAT, lambda pieces: [text for text, _ in pieces])
    tools = [{"type": "function", "function": {"name": "python", "parameters": {}}}]

    def call(i: int) -> dict[str, Any]:
        fn = {"name": "python", "arguments": "{}"}
        return {
            "role": "assistant",
            "content": "",
            "reasoning_content": f"r{i}",
            "tool_calls": [{"id": f"functions.python:{i}", "type": "function", "function": fn}],
        }

    def result(i: int) -> dict[str, Any]:
        return {"role": "tool", "tool_call_id": f"functions.python:{i}", "content": str(i)}

    msgs: list[dict[str, Any]] = [{"role": "user", "content": "q"}]
    history = []
    for i in range(4):  # grow
        msgs += [call(i), result(i)]
        history.append(list(msgs))
    msgs.append({"role": "assistant", "content": "a", "reasoning_content": "final"})  # retention flips
    history.append(list(msgs))
    msgs += [{"role": "user", "content": "again"}, call(4), result(4)]
    history.append(list(msgs))
    history.append(msgs[:3] + [{"role": "user", "content": "rolled back"}])  # truncation + new tail
    history.append([{"role": "system", "content": "s"}, *msgs])  # a new first message
    for messages in history + history[::-1]:
        for t in (tools, None):
            got = "".join(inc.update(messages, t))
            assert got + "<|im_assistant|>assistant<|im_middle|>" == render_text(messages, t)
    inc.update(history[0], tools)
    inc.update(history[1], tools)
    assert inc.rendered_messages == 2  # only the two new messages were rendered
