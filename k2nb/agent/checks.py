"""Verification: the built-in checks and the helpers they share with voting.

- `args`: every tool call of the attempt had valid arguments (informative: the model already saw
  the error observation and usually recovered, so by default it does not trigger a rollback).
- `grounded`: every number the final answer states came from a tool result or from the user.
- `used`: every number the question brings is used by some successful call the answer rests on
  (after a rollback: the retry's calls and the kept calls they build on), unless the code reads
  the user's variables (a plan that copied 37.94 as 37 computes a neat, self-consistent, wrong
  answer: its check recomputes the same mistake).
- `sourced` (`k2nb.agent.sourced`): the converse of `used`, every number literal of the code comes
  from the question, an earlier tool result or a named constant (`348 + 2 * 27` for "348 times 27").
- `quoted`: every phrase the reasoning quotes as the question's words ("Key word "each"") is in the
  question (a plan that quotes a word the question does not have misread it).
- `unit` (`k2nb.agent.units`): the answer states the unit the question asks for ("in miles").
- `self_verify`: the model's own last verification step (an assert, a True/False check, or a call
  its reasoning announced as a check) ran without error, did not print False, and, when it
  recomputes, reproduces the result of an earlier call.
- `agreement`: the parallel paths agree on the normalised answer.
- user checks: `fn(question, trajectory)` → bool, (bool, evidence) or `Verdict`; while a check runs,
  `trajectory.answer` is the answer under test.
"""

from __future__ import annotations

import ast
import builtins
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

_NUMBER = re.compile(r"(?<![\w.])[-−]?\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?")
VERIFY_WORDS = re.compile(r"\b(verif\w*|check\w*|confirm\w*|double[- ]check\w*|sanity)\b", re.IGNORECASE)


@dataclass(slots=True)
class Verdict:
    """What a user check returns (a bool or `(bool, evidence)` works too)."""

    passed: bool
    evidence: str = ""


UserCheck = Callable[[str, Any], "Verdict | bool | tuple[bool, str]"]


def as_verdict(value: Any) -> Verdict:
    if isinstance(value, Verdict):
        return value
    if isinstance(value, tuple) and len(value) == 2:
        return Verdict(bool(value[0]), str(value[1]))
    return Verdict(bool(value))


@dataclass(slots=True)
class Number:
    text: str
    value: float

    @property
    def decimals(self) -> int:
        mantissa = self.text.split("e")[0].split("E")[0]
        return len(mantissa.split(".")[1]) if "." in mantissa else 0


def numbers_in(text: str) -> list[Number]:
    return [n for _, n in _number_matches(text)]


def _number_matches(text: str) -> list[tuple[re.Match[str], Number]]:
    out = []
    for m in _NUMBER.finditer(text):
        raw = m.group().replace("−", "-")
        try:
            out.append((m, Number(m.group(), float(raw.replace(",", "")))))
        except ValueError:
            continue
    return out


def _matches(stated: Number, seen: float) -> bool:
    """`stated` is `seen`, or `seen` rounded to the decimals the answer shows."""
    if math.isclose(stated.value, seen, rel_tol=1e-9, abs_tol=1e-12):
        return True
    return math.isclose(round(seen, stated.decimals), stated.value, rel_tol=1e-9, abs_tol=1e-12)


@dataclass(slots=True)
class Source:
    """Text the answer may quote numbers from: a tool result (with its node) or a user message."""

    text: str
    label: str
    node: str | None = None


def grounded(answer: str, sources: Sequence[Source]) -> tuple[str, str, dict[str, Any]]:
    """(status, evidence, data) of the grounded check."""
    stated = numbers_in(answer)
    if not stated:
        return "passed", "the answer states no numbers", {"numbers": []}
    index = [(src, [n.value for n in numbers_in(src.text)]) for src in sources]
    found: list[str] = []
    missing: list[str] = []
    for num in stated:
        hit = next((src for src, values in index if any(_matches(num, v) for v in values)), None)
        if hit is None:
            missing.append(num.text)
        else:
            found.append(f"{num.text} ({hit.label})")
    data = {"numbers": [n.text for n in stated], "missing": missing}
    if missing:
        where = "any tool result or user message" if sources else "any tool result (no tool was called)"
        evidence = f"{', '.join(missing)} {'does' if len(missing) == 1 else 'do'} not appear in {where}"
        if found:
            evidence += f"; found: {', '.join(found)}"
        return "failed", evidence, data
    return "passed", "every number comes from a source: " + ", ".join(found), data


@dataclass(slots=True)
class CallRecord:
    """One executed call as checks see it."""

    call_id: str
    name: str
    code: str | None  # python source, if a python call
    observation: str
    ok: bool
    node: str  # the tool_call node
    observation_node: str | None = None
    thinking_before: str = ""
    valid_args: bool = True
    error: str | None = None
    arguments: str = ""  # the call's raw JSON arguments (what non-python tools were given)


_PERCENT_AFTER = re.compile(r"\s*(%|percent\b)")


def numbers_used(
    question: str, records: Sequence[CallRecord], said_before: str = ""
) -> tuple[str, str, dict[str, Any]]:
    """(status, evidence, data) of the `used` check: every number the question brings occurs, by
    value, in the code (or the arguments) of a successful call; "15%" may also be used as 0.15.
    Numbers the user already said in earlier turns are not required (a follow-up's "45 instead of
    33"). Pending when no call succeeded (`grounded` covers answers made without tools)."""
    before = {n.value for n in numbers_in(said_before)}
    said = [(m, n) for m, n in _number_matches(question) if n.value not in before]
    calls = [r for r in records if r.ok]
    if not said:
        return "passed", "the question states no numbers", {"numbers": [], "missing": []}
    if not calls:
        return "pending", "no call succeeded", {"numbers": [n.text for _, n in said], "missing": []}
    values = [n.value for r in calls for n in numbers_in(r.code if r.code is not None else r.arguments)]
    outside = _names_from_outside([r.code for r in calls if r.code is not None])

    def used(match: re.Match[str], num: Number) -> bool:
        wanted = [num.value]
        if _PERCENT_AFTER.match(question, match.end()):
            wanted.append(num.value / 100)
        return any(math.isclose(abs(v), abs(w), rel_tol=1e-9, abs_tol=1e-12) for v in values for w in wanted)

    missing = list(dict.fromkeys(n.text for m, n in said if not used(m, n)))
    data = {"numbers": [n.text for _, n in said], "missing": missing}
    if missing and outside:
        # `What is {n} times 7?` in a notebook: the code reads n, where the number may be
        return "passed", (f"{', '.join(missing)} may come from {', '.join(outside)}, which the code reads "
                          "from the namespace"), data
    if missing:
        which = ", ".join(missing)
        verb = "is" if len(missing) == 1 else "are"
        return "failed", f"{which} from the question {verb} in no successful call", data
    return "passed", f"all {len(said)} numbers of the question are used", data


def computation(records: Sequence[CallRecord], attempt_from: int) -> list[CallRecord]:
    """The calls an attempt's answer rests on: its own calls, and the kept calls of rolled-back
    attempts that they build on (a kept call binds a name they read, or they copy a number of its
    result), transitively. A first attempt rests on all its calls. After a rollback the earlier
    calls stay in the context, so without this a retry computing `14 * 14` would count the 12 of
    the discarded `14 * 12` as used."""
    if attempt_from <= 0:
        return list(records)
    # per call: (names read, names bound), the numbers its code states, the numbers of its result
    facts = [(_names(r.code), {n.value for n in numbers_in(r.code if r.code is not None else r.arguments)},
              {n.value for n in numbers_in(r.observation)} if r.ok else set()) for r in records]
    rests_on = set(range(attempt_from, len(records)))
    todo = list(rests_on)
    while todo:
        (reads, _), copied, _ = facts[todo.pop()]
        for k in range(attempt_from):
            (_, bound), _, results = facts[k]
            if k not in rests_on and (bound & reads or results & copied):
                rests_on.add(k)
                todo.append(k)
    return [r for i, r in enumerate(records) if i in rests_on]


def _names(code: str | None) -> tuple[set[str], set[str]]:
    """(names read, names bound) of a cell; empty for code that does not parse."""
    try:
        tree = ast.parse(code or "")
    except SyntaxError:
        return set(), set()
    read = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    bound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
    return read, bound


def _names_from_outside(codes: Sequence[str]) -> list[str]:
    """Names these cells read that none of them binds and that are not builtins: the user's
    variables (a DataFrame, a number the prompt interpolated), whose values the check cannot see."""
    loaded: dict[str, None] = {}
    bound: set[str] = set(dir(builtins))
    for code in codes:
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                loaded.setdefault(node.id)
            elif isinstance(node, ast.Name):
                bound.add(node.id)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                bound.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                bound.add(node.name)
            elif isinstance(node, ast.arg):
                bound.add(node.arg)
    return [name for name in loaded if name not in bound]


def is_verification(rec: CallRecord) -> bool:
    """A call that checks rather than computes: an assert, a boolean result, or announced as a check."""
    if rec.code is not None and re.search(r"\bassert\b", rec.code):
        return True
    if rec.observation.strip() in ("True", "False"):
        return True
    last_sentence = rec.thinking_before.strip().split("\n")[-1][-200:]
    return bool(VERIFY_WORDS.search(last_sentence))


def self_verify(records: Sequence[CallRecord]) -> tuple[str, str, str | None]:
    """(status, evidence, node) of the model's last verification step; pending when there was none.
    A step that recomputes (announced as a check, no assert, no True/False) must reproduce the value
    of some earlier successful call: "Both calls give 56.0" after 57.12 and 56.0 is a failed check."""
    steps = [i for i, r in enumerate(records) if is_verification(r)]
    if not steps:
        return "pending", "the model ran no verification step", None
    last = records[steps[-1]]
    out = last.observation.strip()
    if not last.ok:
        return "failed", f"verification call {last.call_id} failed: {_short(last.error or out)}", last.node
    if out == "False" or out.endswith("\nFalse"):
        return "failed", f"verification call {last.call_id} printed False", last.node
    outputs = (r.observation.strip() for r in records[: steps[-1]] if r.ok)
    earlier = [o for o in outputs if o and o not in ("True", "False")]
    recomputes = not (last.code and re.search(r"\bassert\b", last.code)) and out not in ("True", "False")
    if recomputes and out and earlier and not any(_same_result(out, e) for e in earlier):
        return ("failed", f"verification call {last.call_id} gave {_short(out, 60)}, which no earlier "
                f"result reproduces (last: {_short(earlier[-1], 60)})", last.node)
    return "passed", f"verification call {last.call_id} passed: {_short(out) or '(no output)'}", last.node


def _same_result(a: str, b: str) -> bool:
    """Two outputs state the same result: their last numbers agree (up to the rounding either one
    shows), or, without numbers, the texts are equal."""
    na, nb = numbers_in(a), numbers_in(b)
    if na and nb:
        return _matches(na[-1], nb[-1].value) or _matches(nb[-1], na[-1].value)
    return not na and not nb and a == b


# Where reasoning says it quotes the question: `Key words "each" and "left"`, `the question asks
# "how much is left"`, `the word 'each'`. Quotes elsewhere (code strings, column names, a thought
# in quotes) make no claim about the question's wording and are not judged.
_QUOTE = r'"[^"\n]{1,80}"|\u201c[^\u201d\n]{1,80}\u201d|\'[^\'\n]{1,80}\''
_QUOTING = re.compile(
    r"\b(?:key\s+words?|the\s+(?:question|user|problem)\s+(?:says|said|asks|asked|writes|wrote|mentions)"
    r"|the\s+(?:words?|phrase))\s*:?\s*((?:(?:" + _QUOTE + r")(?:\s*(?:,|\band\b|\bor\b)\s*)?)+)",
    re.IGNORECASE,
)
_QUOTED = re.compile(_QUOTE)
_DIGIT_GROUP = re.compile(r"(?<=\d),(?=\d{3}\b)")


def _plain(text: str) -> str:
    """Text compared by its words: lower case, straight apostrophes, one space, no digit groups."""
    text = text.replace("\u2019", "'").replace("\u2018", "'").lower()
    return " ".join(_DIGIT_GROUP.sub("", text).split())


def quotes_in_question(reasoning: str, said: Sequence[str]) -> tuple[str, str, dict[str, Any]] | None:
    """(status, evidence, data) of the `quoted` check: every phrase the reasoning quotes as the
    question's own words (`Key word "each"`) occurs in what the user said. A model that plans
    "Key word "product": multiply" for "Divide 945 by 7" misread the question, whatever its code
    then computes consistently. None when the reasoning quotes nothing: there is nothing to judge."""
    quotes = (q for m in _QUOTING.finditer(reasoning) for q in _QUOTED.findall(m.group(1)))
    quoted = [q[1:-1].strip(" .,;:!?") for q in quotes]
    quoted = [q for q in dict.fromkeys(quoted) if q]
    if not quoted:
        return None
    text = _plain("\n".join(said))
    missing = [q for q in quoted if _plain(q) not in text]
    data = {"quoted": quoted, "missing": missing}
    if missing:
        listed = " and ".join(f'"{q}"' for q in missing)
        verb = "is" if len(missing) == 1 else "are"
        return "failed", f"{listed} {verb} not in the question", data
    listed = ", ".join(f'"{q}"' for q in quoted)
    return "passed", f"the question has every word the reasoning quotes: {listed}", data


def args_check(records: Sequence[CallRecord]) -> tuple[str, str]:
    bad = [r for r in records if not r.valid_args]
    if not records:
        return "passed", "no tool calls"
    if not bad:
        return "passed", f"all {len(records)} tool calls had valid arguments"
    listed = "; ".join(f"{r.call_id}: {_short(r.error or '', 120)}" for r in bad[:3])
    more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
    return "failed", f"{len(bad)} of {len(records)} tool calls had invalid arguments: {listed}{more}"


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_ANSWER_LEAD = re.compile(r"^(the\s+)?(final\s+)?answer\s+is\s*:?\s*", re.IGNORECASE)


def normalise_answer(answer: str) -> str:
    """The key paths vote on: the last number stated (canonical form), else the lowercased text
    without a leading 'the answer is', markup, extra spaces and final punctuation."""
    nums = numbers_in(answer)
    if nums:
        v = nums[-1].value
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
    text = re.sub(r"[*_`$\\]", "", answer).strip()
    text = _ANSWER_LEAD.sub("", text)
    return " ".join(text.lower().split()).rstrip(".!。 ")


@dataclass(slots=True)
class Vote:
    key: str
    weight: float
    paths: list[int]
    answer: str  # the answer text of the first path voting for it


def tally(candidates: Iterable[tuple[int, str | None, float]]) -> list[Vote]:
    """Votes per normalised answer, best first: (path index, answer or None, weight) in."""
    votes: dict[str, Vote] = {}
    for index, answer, weight in candidates:
        if not answer or not answer.strip():
            continue
        key = normalise_answer(answer)
        vote = votes.setdefault(key, Vote(key, 0.0, [], answer))
        vote.weight += weight
        vote.paths.append(index)
    # heavier first; on a tie more paths, then the earliest path
    return sorted(votes.values(), key=lambda v: (-v.weight, -len(v.paths), min(v.paths)))
