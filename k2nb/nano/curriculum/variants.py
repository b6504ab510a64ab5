"""Conversation variants beyond one plain turn: follow-up questions, rollbacks, a wrong column.

- follow-up: a second user turn ("What if it were 45 instead of 37?") changes one number (or the
  word) of the question, and the recipe is run again with it;
- rollback: a failed first attempt, the agent loop's rollback message, then the attempt again from
  the question (four kinds, as the loop makes them; see ``rollback_turns``);
- wrong column: the DataFrame column is guessed from the question's word (a real KeyError), then
  the columns are inspected.

The in-turn recoveries (a misspelled name, a mis-copied number) are in ``recoveries``.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

from k2nb.formats.k2 import tool_call_id
from k2nb.nano.curriculum.conversation import Conversation, agrees
from k2nb.nano.curriculum.families import roles_of
from k2nb.nano.curriculum.python_tool import run_python
from k2nb.nano.curriculum.recoveries import change_digit, copyable_slots, miscopy_slot
from k2nb.nano.curriculum.render import LITERAL_RE, given_line, run_turn
from k2nb.nano.curriculum.slots import rand_word
from k2nb.nano.curriculum.spec import CurriculumError, Recipe, fmt, main_index
from k2nb.nano.curriculum.split import phrasing

FOLLOWUP_QUESTIONS = [
    "What if it were {new} instead of {old}?",
    "Now use {new} instead of {old}.",
    "Same question with {new} in place of {old}.",
    "And with {new} instead of {old}?",
    "Redo it with {old} changed to {new}.",
    "Change {old} to {new} and solve it again.",
    "Suppose {old} were {new}. What then?",
    "Let's say {new} rather than {old}. What is the answer now?",
    "And if {old} becomes {new}?",
    "Recompute with {new} where you had {old}.",
    "Use {new} for {old} this time.",
    "One change: {new} in place of {old}.",
    "What happens with {new} rather than {old}?",
    "Swap {old} for {new}. New result?",
    "OK, now {new} instead of {old}, please.",
    "Run it again where {old} is now {new}.",
    "How does the answer change if {old} turns into {new}?",
    "Try again, but replace {old} by {new}.",
]
FOLLOWUP_WORD_QUESTIONS = [
    "Now do the same for '{new}'.",
    "And for '{new}'?",
    "Same thing with '{new}', please.",
    "What about '{new}'?",
    "Do it again with '{new}'.",
    "Now try '{new}'.",
    "How about the word '{new}'?",
    "Same task, but for '{new}'.",
    "Next word: '{new}'.",
    "Can you do '{new}' too?",
    "Apply the same to '{new}'.",
    "And the word '{new}'?",
    "Now '{new}', please.",
    "What do you get for '{new}'?",
    "Once more, this time with '{new}'.",
    "Let's switch to '{new}'. Same question.",
    "Repeat that for '{new}'.",
]


def new_number(rng: random.Random, old: str) -> str:
    """Another number near ``old`` (as a decimal when ``old`` has one)."""
    if "." in old:
        return f"{max(1, int(float(old)) + rng.randint(-9, 9))}.{rng.randint(1, 9)}"
    return str(max(2, int(old) + rng.choice([-1, 1]) * rng.randint(1, max(2, int(old) // 2))))


def followup(rng: random.Random, recipe: Recipe, split: str) -> tuple[str, dict[str, str]] | None:
    """A second user turn that changes one number (or the word) of the first question; returns the
    follow-up question and the slots to rerun the recipe with."""
    question = fmt(recipe.question, recipe.slots)

    def unique(text: str) -> bool:
        return len(re.findall(rf"(?<![\d.]){re.escape(text)}(?![\d.])", question)) == 1

    if "w" in recipe.slots and "{w}" in recipe.question:
        new = rand_word(rng, split)
        if new == recipe.slots["w"]:
            return None
        return phrasing(rng, split, FOLLOWUP_WORD_QUESTIONS).format(new=new), dict(recipe.slots, w=new)
    for key in rng.sample(list(recipe.numeric_slots), len(recipe.numeric_slots)):
        old = recipe.slots[key]
        if not old or not unique(old) or any(v == old for k, v in recipe.slots.items() if k != key):
            continue
        new = new_number(rng, old)
        if new != old:
            q = phrasing(rng, split, FOLLOWUP_QUESTIONS).format(old=old, new=new)
            return q, dict(recipe.slots, **{key: new})
    if "xs" in recipe.slots and "{xs}" in recipe.question:
        values = recipe.slots["xs"].strip("[]").split(", ")
        old = rng.choice(values)
        new = new_number(rng, old)
        if unique(old) and new != old and new not in values:
            xs = "[" + ", ".join(new if v == old else v for v in values) + "]"
            q = phrasing(rng, split, FOLLOWUP_QUESTIONS).format(old=old, new=new)
            return q, dict(recipe.slots, xs=xs)
    return None


def followup_turn(conv: Conversation, recipe: Recipe, split: str, rng: random.Random) -> tuple[str, str]:
    """The follow-up question and its turn; returns (question, output)."""
    follow = followup(rng, recipe, split)
    if follow is None:
        raise CurriculumError("no number to change in a follow-up")
    question, slots = follow
    conv.messages.append({"role": "user", "content": question})
    conv.given = given_line(question)
    return question, run_turn(conv, recipe, slots, "plain", rng)


# What the agent loop says when it rolls back (``k2nb.agent``'s ROLLBACK_MESSAGE; this package does
# not import the agent, and a test checks the two are equal), and what a user's check says in it.
ROLLBACK_MESSAGE = "A check of your answer failed. {reason}. Fix it and answer again."
ROLLBACK_REASONS = [
    ("reviewer", "first answers are never accepted here; recompute and answer again"),
    ("reviewer", "expected another value; the answer was 'The answer is {out}{unit}.'"),
    ("reviewer", "recompute this and answer again: {q}"),
    ("range check", "{out} is outside the expected range"),
    ("unit test", "the result {out} does not match the reference"),
    ("user check", "the answer {out} looks wrong; recompute it from the question"),
    ("check_answer", "please verify the numbers again"),
]
# The loop's built-in checks that roll back, as it names them (``k2nb.agent.checks``; a test runs the
# agent's own checks on these traces and compares the words).
USED_CHECK = "question numbers used"
SOURCED_CHECK = "numbers sourced"
SELF_VERIFY_CHECK = "model's own verification"
QUOTED_CHECK = "quotes in the question"
# How the retry after a `used` rollback opens, before its Given line.
RETRY_SAYS = "The question says {number}."
# ... and after a `quoted` rollback: the word the plan quoted is dropped before the question is read again.
RETRY_UNQUOTES = 'The question does not say "{word}".'
# Key words a misreading plan quotes (those of other operations); one the question lacks is drawn.
MISQUOTES = ("product", "each", "left", "total", "times", "per", "split", "share", "top", "average",
             "middle value", "sum", "difference", "percent of", "off", "remain", "double", "half",
             "largest", "smallest", "more than", "fewer", "altogether", "divided by", "minus", "plus")


def rollback_turns(conv: Conversation, recipe: Recipe, question: str, rng: random.Random) -> str:
    """A failed first attempt, the loop's rollback message, then the attempt again from the question,
    restating its Given line. Three kinds, as the loop makes them, and a fourth where the plan quotes
    key words (``Key word "each": multiply``):

    - a user's check (45 %): the first attempt is right or, half of the time, carries a mis-copied
      number in its plan and code that its check copies too; the loop drops the first answer message.
    - the built-in ``used`` check (35 %): the Given line itself mis-copies a number (one digit
      changed, or its decimals dropped: 37.94 as 37), so plan, code and check all agree on a wrong
      result and only "37.94 from the question is in no successful call" shows it.
    - the built-in ``self_verify`` check (20 %): the plan mis-copies a number, the check recomputes
      from the question and disagrees; the loop cuts at the check, so the context is the first call,
      its output and the message naming the check's result.
    - the built-in ``quoted`` check (15 % of plans with key words; the others' shares then 40 / 30 /
      15 %): the plan quotes a key word the question does not have; the retry opens with 'The question
      does not say "product".' and reads the question again.

    After a `used` rollback the retry opens by copying the number the message names ("The question
    says 37.94."), right after the message, so the Given line that follows has it close by: without
    that line a model rewrote `cost 37` after the message. The first attempt is context (no loss),
    shown with its reasoning as the engine shows it. Returns the output of the second attempt."""
    if _quoted_key_words(recipe):
        kind = rng.choices(["user", "used", "self_verify", "quoted"], [40, 30, 15, 15])[0]
    else:
        kind = rng.choices(["user", "used", "self_verify"], [45, 35, 20])[0]
    if kind == "used":
        literal, first, reason = _used_attempt(conv, recipe, question, rng)
    elif kind == "quoted":
        misquoted, reason = _quoted_attempt(conv, recipe, question, rng)
    elif kind == "self_verify":
        reason = _first_call_then_failed_check(conv, recipe, rng)
    else:
        reason = _user_checked_attempt(conv, recipe, rng)
    conv.messages.append({"role": "user", "content": ROLLBACK_MESSAGE.format(reason=reason)})
    conv.given = given_line(question, roles_of(recipe.kind, recipe.slots))
    if kind == "used":
        # the retry first copies the number the message names, right after it, then the Given line
        conv.given = f"{RETRY_SAYS.format(number=recipe.slots[literal])} {conv.given}"
    elif kind == "quoted":
        conv.given = f"{RETRY_UNQUOTES.format(word=misquoted)} {conv.given}"
    out = run_turn(conv, recipe, recipe.slots, "plain", rng)
    if kind == "used" and agrees(out, first):
        raise CurriculumError("the mis-copied number did not change the result")
    return out


def _user_checked_attempt(conv: Conversation, recipe: Recipe, rng: random.Random) -> str:
    """A first attempt (half of the time with a mis-copied number) that a user's check rejects;
    returns the rollback reason."""
    bad = miscopy_slot(recipe, recipe.slots, rng) if rng.random() < 0.5 else None
    first = run_turn(conv, recipe, bad or recipe.slots, "plain", rng)
    name, evidence = rng.choice(ROLLBACK_REASONS)
    unit = fmt(recipe.unit, recipe.slots)
    return f"{name}: " + evidence.format(out=first, unit=unit, q=fmt(recipe.question, recipe.slots))


def _used_attempt(conv: Conversation, recipe: Recipe, question: str,
                  rng: random.Random) -> tuple[str, str, str]:
    """A first attempt whose Given line mis-copies a number of the question; returns (the slot,
    the attempt's output, the rollback reason)."""
    literal, bad = _given_miscopy(recipe, rng)
    conv.given = given_line(_replace_literal(question, recipe.slots[literal], bad[literal]),
                            roles_of(recipe.kind, bad))
    start = len(conv.messages)
    first = run_turn(conv, recipe, bad, "plain", rng)
    if float(recipe.slots[literal]) in _numbers_of_calls(conv.messages[start:]):
        raise CurriculumError("the question's number is still used by a call")
    reason = f"{USED_CHECK}: {recipe.slots[literal]} from the question is in no successful call"
    unsourced = _sourced_failure(conv.messages[:start], conv.messages[start:])
    if unsourced is not None:  # the mis-copied number has no source either: the loop names both
        reason += f"; {SOURCED_CHECK}: {unsourced}"
    return literal, first, reason


def _quoted_key_words(recipe: Recipe) -> list[str]:
    """The key words the recipe's plan quotes (``Key words "sum" and "half": ...``), if any."""
    how = str(recipe.slots.get("how", ""))
    return re.findall(r'"([^"]+)"', how) if "Key word" in how else []


def _quoted_attempt(conv: Conversation, recipe: Recipe, question: str, rng: random.Random) -> tuple[str, str]:
    """A first attempt whose plan quotes a key word the question does not have (the computation is
    the right one: the message, and the retry that reads the question again, are what is taught);
    returns (the word, the rollback reason as the loop's `quoted` check words it)."""
    from k2nb.agent.checks import quotes_in_question

    how = str(recipe.slots["how"])
    right = rng.choice(_quoted_key_words(recipe))
    wrong = rng.choice([w for w in MISQUOTES if w not in question.lower()])
    start = len(conv.messages)
    run_turn(conv, recipe, dict(recipe.slots, how=how.replace(f'"{right}"', f'"{wrong}"', 1)), "plain", rng)
    said = [str(m["content"]) for m in conv.messages[:start] if m["role"] in ("system", "user")]
    reasoning = "\n".join(str(m.get("reasoning_content") or "") for m in conv.messages[start:])
    found = quotes_in_question(reasoning, said)
    if found is None or found[0] != "failed":
        raise CurriculumError("the mis-quoted key word is in the question")
    return wrong, f"{QUOTED_CHECK}: {found[1]}"


def _sourced_failure(before: list[dict[str, Any]], attempt: list[dict[str, Any]]) -> str | None:
    """What the loop's `sourced` check says of an attempt's calls when it fails (None when it
    passes). The check itself is run, so the training message is word for word the loop's."""
    from k2nb.agent.sourced import numbers_sourced

    said = [str(m["content"]) for m in before if m["role"] in ("system", "user")]
    status, evidence, _, _ = numbers_sourced(said, call_records(attempt))
    return evidence if status == "failed" else None


def call_records(messages: list[dict[str, Any]]) -> list:
    """The python calls of ``messages`` as the agent's checks see them (``CallRecord``s)."""
    from k2nb.agent.checks import CallRecord

    code = {tc["id"]: json.loads(tc["function"]["arguments"])["code"]
            for m in messages for tc in m.get("tool_calls") or []}
    return [CallRecord(m["tool_call_id"], "python", code[m["tool_call_id"]], m["content"],
                       not m["content"].startswith("Traceback"), m["tool_call_id"])
            for m in messages if m["role"] == "tool"]


def _numbers_of_calls(messages: list[dict[str, Any]]) -> set[float]:
    """The values of every number in the code of these messages' python calls."""
    calls = [tc for m in messages for tc in m.get("tool_calls") or []]
    codes = [json.loads(tc["function"]["arguments"])["code"] for tc in calls]
    return {float(n.group()) for code in codes for n in re.finditer(r"(?<![\w.])\d+(?:\.\d+)?", code)}


def _replace_literal(question: str, old: str, new: str) -> str:
    """``question`` with its first literal equal to ``old`` written as ``new``."""
    hits = [m for m in LITERAL_RE.finditer(question) if m.group() == old]
    if not hits:
        raise CurriculumError(f"{old} is not a literal of the question")
    return question[: hits[0].start()] + new + question[hits[0].end():]


def _given_miscopy(recipe: Recipe, rng: random.Random) -> tuple[str, dict[str, str]]:
    """(slot, slots) with that number slot mis-copied as a reader slips: its decimals dropped
    (37.94 → 37) or one digit changed. The mis-copy must not be a number the question also states."""
    keys = copyable_slots(recipe, recipe.slots)
    if not keys:
        raise CurriculumError("no number to mis-copy in the Given line")
    k = rng.choice(keys)
    value = str(recipe.slots[k])
    new = value.split(".")[0] if "." in value and rng.random() < 0.5 else change_digit(value, rng)
    others = {str(v) for key, v in recipe.slots.items() if key != k}
    if new in others or float(new) == 0:
        raise CurriculumError("the mis-copy equals another number of the question")
    return k, dict(recipe.slots, **{k: new})


def _first_call_then_failed_check(conv: Conversation, recipe: Recipe, rng: random.Random) -> str:
    """The first attempt of a self_verify rollback: the plan's mis-copied number in the main call
    (after any inspection), then a check that recomputes from the question and disagrees. As the loop
    does, the check's message is dropped from the context; returns the rollback reason."""
    bad = miscopy_slot(recipe, recipe.slots, rng)
    main_i = main_index(recipe.steps)
    verify = recipe.steps[main_i + 1] if main_i + 1 < len(recipe.steps) else None
    if bad is None or verify is None or verify.role != "verify":
        raise CurriculumError("no number to mis-copy before a recomputing check")
    for step in recipe.steps[:main_i]:
        conv.call(fmt(step.think, recipe.slots), fmt(step.code, recipe.slots))
    main = recipe.steps[main_i]
    bad_out = conv.call(fmt(main.think, bad), fmt(main.code, bad), train=False)
    v_code = fmt(verify.code, recipe.slots, bad_out)
    scratch = dict(conv.namespace)
    v_out = run_python(v_code, scratch, conv.n_calls)
    if bad_out.startswith("Traceback") or v_out.startswith("Traceback") or v_out in ("True", "False") \
            or agrees(bad_out, v_out) or not re.fullmatch(r"-?\d+(\.\d+)?", v_out):
        raise CurriculumError("the check does not recompute a different number")
    call_id = tool_call_id("python", conv.n_calls)  # dropped with its message; the next call reuses the id
    return (f"{SELF_VERIFY_CHECK}: verification call {call_id} gave {v_out}, which no earlier result "
            f"reproduces (last: {bad_out})")


def wrong_column_turn(conv: Conversation, recipe: Recipe, rng: random.Random) -> str:
    """Skip the inspection, guess the column name from the question (KeyError when it differs), then
    inspect and compute. When the guess happens to be right, this is a plain two-call trace."""
    slots = recipe.slots
    if "col" not in slots or "real" not in slots:
        raise CurriculumError("no column to guess")
    guessed = dict(slots, real=slots["col"])
    main = next(s for s in recipe.steps if s.role == "main")
    if slots["real"] == slots["col"]:
        raise CurriculumError("column guess would be right")
    bad_out = conv.call(f"Use the '{slots['col']}' column.", fmt(main.code, guessed), train=False)
    error = bad_out.splitlines()[-1]
    if not error.startswith("KeyError"):
        raise CurriculumError(f"expected a KeyError, got {bad_out!r}")
    inspect = next(s for s in recipe.steps if s.role == "inspect")
    conv.call(f"{error}. No such column. Look at the columns of {{var}}.".format(**slots),
              fmt(inspect.code, slots))
    out = conv.call(fmt(main.think, slots), fmt(main.code, slots))
    verify = next(s for s in recipe.steps if s.role == "verify")
    v_out = conv.call(fmt(verify.think, slots, out), fmt(verify.code, slots, out))
    if not agrees(out, v_out):
        raise CurriculumError("verification disagrees")
    return out
