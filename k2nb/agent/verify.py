"""Verifying an attempt's answer and choosing what a rollback drops.

The built-in checks (`k2nb.agent.checks`) and the user's run on the attempt's calls and answer and
are recorded in the trajectory; a failed check in `rollback_on` makes the path retry from before
the step that holds the earliest failing node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from k2nb.agent.checks import (
    CallRecord,
    Source,
    args_check,
    as_verdict,
    computation,
    grounded,
    numbers_used,
    quotes_in_question,
    self_verify,
)
from k2nb.agent.options import ThinkOptions
from k2nb.agent.sourced import numbers_sourced
from k2nb.agent.trajectory import Check, Node, Trajectory
from k2nb.agent.units import unit_asked

Message = dict[str, Any]

# What the model reads after a failed check, before its next attempt (k2-nano's rollback traces in
# k2nb.nano use the same words; tests/test_nano_curriculum.py ties the two).
ROLLBACK_MESSAGE = "A check of your answer failed. {reason}. Fix it and answer again."
_ROLLBACK_LEAD = ROLLBACK_MESSAGE.split("{", 1)[0]

_MISSING = object()


@dataclass(slots=True)
class Outcome:
    """How an attempt ended."""

    end_reason: str
    answer: str | None
    answer_node: Node | None


@dataclass(slots=True)
class Evidence:
    """What the checks of an attempt look at."""

    records: list[CallRecord]  # the path's calls the context still holds, in order
    messages: list[Message]  # the path's conversation
    said_before: str  # what the user said before this turn's question
    has_tools: bool
    earlier_results: str = ""  # the tool results of earlier turns
    attempt_from: int = 0  # records[attempt_from:] are this attempt's own calls


def user_texts(messages: Sequence[Message]) -> list[str]:
    """What the user (and the system prompt) said in a conversation. The loop's rollback messages
    are not the user's: they quote the very numbers a check rejected."""
    texts = (str(m.get("content") or "") for m in messages if m["role"] in ("user", "system"))
    return [text for text in texts if not text.startswith(_ROLLBACK_LEAD)]


def verify(t: Trajectory, opts: ThinkOptions, attempt: Node, out: Outcome, ev: Evidence) -> list[Check]:
    """Run the enabled built-in checks and the user's on an attempt; the checks, as recorded."""
    records, enabled = ev.records, opts.builtin_checks
    checks: list[Check] = []
    if "args" in enabled and records:
        status, evidence = args_check(records)
        checks.append(t.add_check("valid arguments", status, evidence, attempt, kind="args"))
    if out.answer_node is None:
        return checks
    answer, node = out.answer or "", out.answer_node
    said = user_texts(ev.messages)
    if "grounded" in enabled and ev.has_tools:
        sources = [Source(r.observation, f"result of {r.call_id}", r.node) for r in records if r.ok]
        sources += [Source(text, "user message") for text in said]
        status, evidence, data = grounded(answer, sources)
        checks.append(
            t.add_check("answer grounded in tool results", status, evidence, node, "grounded", **data)
        )
    if "used" in enabled and ev.has_tools:
        # a retry is judged on the calls its answer rests on, not on every call the context kept
        rests_on = computation(records, ev.attempt_from)
        status, evidence, data = numbers_used(t.question, rests_on, ev.said_before)
        checks.append(t.add_check("question numbers used", status, evidence, node, "used", **data))
    if "sourced" in enabled and ev.has_tools:
        # only this attempt's calls are judged: a rolled-back attempt's call stays in the context
        # (the message names it), and its results stay sources
        status, evidence, data, at = numbers_sourced(said, records, ev.earlier_results, ev.attempt_from)
        checks.append(t.add_check("numbers sourced", status, evidence, at or node, "sourced", **data))
    if "quoted" in enabled:
        reasoning = "\n".join(n.text for n in t.children(attempt, "thinking"))
        found = quotes_in_question(reasoning, said)
        if found is not None:
            status, evidence, data = found
            checks.append(t.add_check("quotes in the question", status, evidence, node, "quoted", **data))
    if "unit" in enabled:
        found = unit_asked(t.question, answer)
        if found is not None:
            status, evidence, data = found
            checks.append(t.add_check("answer in the unit asked", status, evidence, node, "unit", **data))
    if "self_verify" in enabled and ev.has_tools:
        status, evidence, at = self_verify(records)
        checks.append(t.add_check("model's own verification", status, evidence, at or node, "self_verify"))
    checks += [_user_check(t, fn, answer, node) for fn in opts.checks]
    return checks


def _user_check(t: Trajectory, fn: Any, answer: str, node: Node) -> Check:
    name = getattr(fn, "__name__", repr(fn))
    previous = t.meta.get("answer", _MISSING)
    t.meta["answer"] = answer  # what `trajectory.answer` shows the check
    try:
        verdict = as_verdict(fn(t.question, t))
        status, evidence = ("passed" if verdict.passed else "failed"), verdict.evidence
    except Exception as exc:  # noqa: BLE001 - a broken check is a failed check, not a crash
        status, evidence = "failed", f"the check raised {type(exc).__name__}: {exc}"
    finally:
        if previous is _MISSING:
            t.meta.pop("answer", None)
        else:
            t.meta["answer"] = previous
    return t.add_check(name, status, evidence, node, "user")


def rollback_cut(
    failed: Sequence[Check], records: Sequence[tuple[int, CallRecord]], msgs: list[Message]
) -> int:
    """Index of the first message to drop: the step that holds the earliest failing node."""
    cut = len(msgs)
    for check in failed:
        if check.kind == "self_verify":
            hit = next((i for i, r in records if r.node == check.node), None)
            if hit is not None:
                cut = min(cut, hit)
                continue
        # the answer (or the user's verdict on it) failed: drop the final message
        last = max((i for i, m in enumerate(msgs) if m["role"] == "assistant"), default=len(msgs))
        cut = min(cut, last)
    return cut
