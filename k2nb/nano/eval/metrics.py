"""What one run measures: correctness, its tool calls (valid or not), whether and how it verified,
recovery after the injected failure, and the votes of the first k sampled paths.

Definitions (the report states them too):

- correct: ``curriculum.answer_matches`` — the first number after "The answer is" within 0.01
  absolute or 1e-4 relative of the answer Python computed (outputs are printed with round(..., 2));
  strings (dates, words) must match exactly, quotes around them aside ('trepxe' = trepxe).
- valid tool call: parsed by the chat parser without error, names a declared tool, and its
  arguments are a JSON object with a string ``code`` (the python tool's schema).
- verification step: a python call of the chosen path that ran without error after an earlier
  successful call, and (i) checks — an ``assert`` or an output of True/False — or (ii) recomputes —
  different code whose output's last number (or whole text) equals an earlier successful output's,
  or (iii) is announced as a check by the reasoning just before it (the loop's ``is_verification``
  word rule). The report counts which rule fired.
- recovery: among runs whose first python call was failed by the injection, the share that called
  python again afterwards, got a successful result and reached the correct answer.
- abstention: the final answer says ``ABSTENTION`` ("I can't tell what to compute from this
  question."), recognised by its opening words "I can't tell what to compute", in any letter case,
  with either apostrophe. On a question that cannot be answered
  (``answerable`` False: the paraphrase split has some) abstaining is the correct outcome.
- confident wrong: the run states a final answer that is neither correct nor an abstention (a run
  that ends with no answer at all is neither). An answerable question has four outcomes: correct,
  abstained, confident wrong, no answer.
- withheld: the loop withheld the model's answer because its checks failed
  (``ThinkOptions.failed_checks``, on by default); it counts as neither correct nor confident wrong,
  and the report says how many of the withheld answers were right.
- looked like: which family the run's first python call resembles (``confusion.looked_like``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from k2nb.nano import curriculum
from k2nb.nano.eval.paraphrase import Question

if TYPE_CHECKING:
    from k2nb.agent import ThinkResult
    from k2nb.agent.trajectory import Node, Trajectory

# What the eval runs: a generated problem or a hand-written paraphrase question (the same attributes:
# family, kind, question, setup, answer, prompt_messages; a Question adds id and answerable).
EvalProblem = curriculum.Problem | Question

CONDITIONS = ("tools", "injected", "no_tools", "paths")
# What the model is to say when it cannot read a question, instead of imitating one it knows. Stated
# once here: the eval recognises it, and a curriculum that teaches abstention should write it.
ABSTENTION = "I can't tell what to compute from this question."
# Recognised by its opening words, so that "I can't tell what to compute: the price is missing." counts.
_ABSTENTION_KEY = " ".join(ABSTENTION.lower().split()[:6])  # "i can't tell what to compute"
TOLERANCE = (
    f"numbers: within {curriculum.ABS_TOL} absolute or {curriculum.REL_TOL} relative of the answer "
    "(first number after 'The answer is'); strings: exact, surrounding quotes ignored"
)
VERIFICATION_RULES = ("check", "recompute", "announced")
_LAST_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")


@dataclass(slots=True)
class CallView:
    """One tool call of the chosen path, as the metrics see it."""

    name: str
    code: str | None
    valid: bool
    ran: bool  # an observation exists (calls cut by a budget never ran)
    ok: bool
    output: str
    thinking_before: str
    injected: bool


def chosen_calls(result: ThinkResult) -> list[CallView]:
    """The chosen path's tool calls in order (all its attempts), with the reasoning just before each."""
    t = result.trajectory
    path = result.paths[result.chosen].node
    calls: list[CallView] = []
    for attempt in t.children(path, "attempt"):
        thinking = ""
        for node in t.children(attempt):
            if node.kind == "thinking":
                thinking = node.text
            elif node.kind == "tool_call":
                calls.append(_call_view(t, node, thinking))
    return calls


def _call_view(t: Trajectory, node: Node, thinking: str) -> CallView:
    parsed = node.data.get("parsed")
    name = node.data.get("name") or ""
    code = parsed.get("code") if isinstance(parsed, dict) else None
    declared = name in t.meta.get("eval_tools", ("python",))
    valid = not node.data.get("parse_error") and declared and isinstance(code, str)
    obs = next(iter(t.children(node, "observation")), None)
    return CallView(
        name, code if isinstance(code, str) else None, bool(valid), obs is not None,
        bool(obs is not None and obs.data.get("ok")), (obs.text if obs is not None else "").strip(), thinking,
        bool(obs is not None and obs.data.get("data", {}).get("injected")),
    )


def _same_value(a: str, b: str) -> bool:
    if a == b:
        return True
    na, nb = _LAST_NUMBER.findall(a.replace(",", "")), _LAST_NUMBER.findall(b.replace(",", ""))
    if not na or not nb:
        return False
    return math.isclose(float(na[-1]), float(nb[-1]), rel_tol=curriculum.REL_TOL, abs_tol=curriculum.ABS_TOL)


def verification_rule(calls: Sequence[CallView]) -> str | None:
    """"check", "recompute" or "announced" for the first verification step (module docstring), or None."""
    from k2nb.agent.checks import VERIFY_WORDS

    earlier: list[CallView] = []
    for c in calls:
        if not (c.name == "python" and c.ran and c.ok):
            continue
        if earlier:
            if (c.code and re.search(r"\bassert\b", c.code)) or c.output in ("True", "False"):
                return "check"
            if c.output and any(c.code != e.code and _same_value(c.output, e.output) for e in earlier):
                return "recompute"
            last_sentence = c.thinking_before.strip().split("\n")[-1][-200:]
            if VERIFY_WORDS.search(last_sentence):
                return "announced"
        earlier.append(c)
    return None


def is_abstention(answer: str | None) -> bool:
    """Whether ``answer`` says ``ABSTENTION``: its opening words, case and the apostrophe's form aside."""
    if not answer:
        return False
    text = " ".join(answer.replace("\u2019", "'").lower().split())
    return _ABSTENTION_KEY in text


def is_answerable(problem: EvalProblem) -> bool:
    """Generated problems always are; a paraphrase question says so."""
    return bool(getattr(problem, "answerable", True))


def is_correct(problem: EvalProblem, answer: str | None) -> bool:
    """Answerable: the answer matches (``curriculum.answer_matches``) and is not an abstention.
    Not answerable: the answer abstains."""
    if not is_answerable(problem):
        return is_abstention(answer)
    if not answer or is_abstention(answer):
        return False
    return curriculum.answer_matches(problem.answer, answer)


def is_confident_wrong(problem: EvalProblem, answer: str | None) -> bool:
    """A stated final answer that is neither correct nor an abstention."""
    return bool(answer and answer.strip()) and not is_abstention(answer) and not is_correct(problem, answer)


def vote_prefix(result: ThinkResult, k: int) -> str | None:
    """The answer ``paths=k`` would return: the loop's tally over the first k paths."""
    from k2nb.agent.checks import tally

    votes = tally((r.index, r.answer, r.weight) for r in result.paths[:k])
    if not votes:
        return None
    first = votes[0].paths[0]
    return next(r.answer for r in result.paths if r.index == first)


@dataclass(slots=True)
class RunRecord:
    """One (problem, condition) run, as kept in the report."""

    problem: int
    family: str
    condition: str
    answer: str | None
    expected: Any
    correct: bool
    end_reason: str
    tool_calls: int
    valid_tool_calls: int
    verification: str | None
    injected: bool = False
    recovered: bool = False
    retried: bool = False
    path_answers: list[str | None] = field(default_factory=list)
    path_correct: list[bool] = field(default_factory=list)
    vote_correct: dict[int, bool] = field(default_factory=dict)
    wall_s: float = 0.0
    kind: str = ""  # the sub-family, e.g. "percent.discount"
    id: str = ""  # the paraphrase question's id ("" for generated problems)
    answerable: bool = True
    abstained: bool = False
    confident_wrong: bool = False
    looked_like: str = ""  # the family the run's first call resembles (confusion.looked_like)
    withheld: bool = False  # the run withheld the model's answer: its checks failed
    withheld_correct: bool = False  # ... and that answer was right


def record_of(i: int, problem: EvalProblem, condition: str, result: ThinkResult, wall_s: float,
              ks: Sequence[int] = ()) -> RunRecord:
    """The metrics of one run (problem ``i`` under ``condition``; ``ks``: path counts to vote)."""
    from k2nb.nano.eval.confusion import looked_like

    calls = chosen_calls(result)
    abstained = is_abstention(result.answer)
    withheld = getattr(result, "withheld", None)
    stated = None if withheld else result.answer  # a withheld answer states nothing
    rec = RunRecord(i, problem.family, condition, result.answer, problem.answer,
                    is_correct(problem, stated), result.end_reason, len(calls),
                    sum(c.valid for c in calls), verification_rule(calls), wall_s=round(wall_s, 3),
                    kind=problem.kind, id=getattr(problem, "id", ""), answerable=is_answerable(problem),
                    abstained=abstained, confident_wrong=is_confident_wrong(problem, stated),
                    looked_like=looked_like(calls, abstained, problem.setup),
                    withheld=withheld is not None,
                    withheld_correct=withheld is not None and is_correct(problem, withheld))
    if condition == "injected":
        failed_at = next((j for j, c in enumerate(calls) if c.injected), None)
        rec.injected = failed_at is not None
        after = calls[failed_at + 1:] if failed_at is not None else []
        rec.retried = any(c.name == "python" for c in after)
        rec.recovered = rec.retried and any(c.ok for c in after) and rec.correct
    if condition == "paths":
        rec.path_answers = [r.answer for r in result.paths]
        rec.path_correct = [is_correct(problem, r.answer) for r in result.paths]
        rec.vote_correct = {k: is_correct(problem, vote_prefix(result, k)) for k in ks}
    return rec
