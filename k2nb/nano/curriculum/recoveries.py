"""Mistakes inside a turn and their recovery: a misspelled name fails for real (NameError) and is
fixed; a mis-copied number or letter gives a wrong result that the check catches, then the
computation is done again. The failed call is context (``train=False``): training never teaches
the mistake itself, only what follows it.
"""

from __future__ import annotations

import random
import re
from typing import Any

from k2nb.nano.curriculum.conversation import Conversation, agrees
from k2nb.nano.curriculum.python_tool import run_python
from k2nb.nano.curriculum.slots import LETTERS
from k2nb.nano.curriculum.spec import CurriculumError, Recipe, Step, fmt

_NAME_RE = re.compile(r"(?<![\w'.])([A-Za-z_][A-Za-z_]{2,})(?![\w'])")
_KEYWORDS = {"for", "in", "if", "else", "and", "import", "from"}
NUM_RE = re.compile(r"(?<![\w.])\d+(\.\d+)?(?![\w.])")
# numbers a slip would not hide (or that are part of the code, not of the question)
_FIXED_NUMBERS = {"0", "1", "2", "100", "60", "12", "1200"}
FIX_TYPO = "{error}. I misspelled a name; fix it and run again."


def typo(code: str, rng: random.Random, namespace: dict[str, Any]) -> str | None:
    """A copy of ``code`` with one identifier misspelled that really fails when run (in a scratch
    copy of the namespace, so the failed call leaves nothing behind)."""
    code_wo_strings = re.sub(r"'[^']*'", lambda m: " " * len(m.group()), code)
    names = [m for m in _NAME_RE.finditer(code_wo_strings) if m.group(1) not in _KEYWORDS]
    rng.shuffle(names)
    for m in names:
        word = m.group(1)
        j = rng.randrange(1, len(word))
        bad_word = word[:j] + word[j + 1:] if rng.random() < 0.5 else word[:j] + word[j] + word[j:]
        bad = code[: m.start(1)] + bad_word + code[m.end(1):]
        scratch = dict(namespace)
        out = run_python(bad, scratch).splitlines()[-1]
        # Not ImportError: its message names the stdlib file path, which differs between machines.
        if out.startswith(("NameError", "AttributeError", "ModuleNotFoundError")):
            return bad
    return None


def change_digit(number: str, rng: random.Random) -> str:
    """``number`` with one of its digits replaced by another (1-9)."""
    i = rng.choice([j for j, ch in enumerate(number) if ch.isdigit()])
    return number[:i] + rng.choice([d for d in "123456789" if d != number[i]]) + number[i + 1:]


def copyable_slots(recipe: Recipe, slots: dict[str, str]) -> list[str]:
    """The number slots a mis-copy can change (not 0, 1, 2 or 100, which a slip would not hide)."""
    return [k for k in recipe.numeric_slots if re.fullmatch(r"\d+(\.\d+)?", str(slots.get(k, "")))
            and str(slots[k]) not in {"0", "1", "2", "100"}]


def miscopy_slot(recipe: Recipe, slots: dict[str, str], rng: random.Random) -> dict[str, str] | None:
    """``slots`` with one digit of one number slot changed (a mis-copy made while writing the plan)."""
    keys = copyable_slots(recipe, slots)
    if not keys:
        return None
    k = rng.choice(keys)
    return dict(slots, **{k: change_digit(str(slots[k]), rng)})


def miscopy(code: str, rng: random.Random) -> str | None:
    """A copy of ``code`` with one number literal mis-copied (one digit changed); code without such a
    number gets one letter of a quoted word of 3+ letters changed instead (the strings family)."""
    code_wo_strings = re.sub(r"'[^']*'", lambda m: " " * len(m.group()), code)
    nums = [m for m in NUM_RE.finditer(code_wo_strings) if m.group() not in _FIXED_NUMBERS]
    if not nums:
        words = list(re.finditer(r"'([a-z ]{3,})'", code))
        if not words:
            return None
        m = rng.choice(words)
        i = rng.choice([j for j in range(m.start(1), m.end(1)) if code[j] != " "])
        return code[:i] + rng.choice([ch for ch in LETTERS if ch != code[i]]) + code[i + 1:]
    m = rng.choice(nums)
    return code[: m.start()] + change_digit(m.group(), rng) + code[m.end():]


def misspelled_inspection(conv: Conversation, step: Step, slots: dict[str, str], rng: random.Random) -> bool:
    """The inspection call with a misspelled name, then fixed; False (nothing done) when no name
    can be misspelled so that it fails."""
    code = fmt(step.code, slots)
    bad = typo(code, rng, conv.namespace)
    if bad is None:
        return False
    error = conv.call(fmt(step.think, slots), bad, train=False).splitlines()[-1]
    conv.call(FIX_TYPO.format(error=error), code)
    return True


def misspelled_call(conv: Conversation, step: Step, slots: dict[str, str], rng: random.Random) -> str:
    """The main call with a misspelled name, then fixed; returns the fixed call's output."""
    code = fmt(step.code, slots)
    bad = typo(code, rng, conv.namespace)
    if bad is None:
        raise CurriculumError("no name to misspell")
    error = conv.call(fmt(step.think, slots), bad, train=False).splitlines()[-1]
    return conv.call(FIX_TYPO.format(error=error), code)


def miscopied_call(conv: Conversation, recipe: Recipe, i: int, slots: dict[str, str],
                   rng: random.Random) -> str:
    """The main call (step ``i``) with a mis-copied number, the check that catches it, and the
    recomputation; returns its output. Half of the time the plan itself carries the mis-copied number
    (the code follows the plan, the Given line stays right): the check, which copies from the
    question, is what catches it. Otherwise only the code is wrong."""
    main, verify = recipe.steps[i], recipe.steps[i + 1]
    main_code = fmt(main.code, slots)
    bad_slots = miscopy_slot(recipe, slots, rng) if rng.random() < 0.5 else None
    if bad_slots is not None:
        plan, bad_code = fmt(main.think, bad_slots), fmt(main.code, bad_slots)
    else:
        plan, bad_code = fmt(main.think, slots), miscopy(main_code, rng)
    if bad_code is None:
        raise CurriculumError("no number to mis-copy")
    bad_out = conv.call(plan, bad_code, train=False)
    if bad_out.startswith("Traceback"):
        raise CurriculumError("mis-copied literal made the code fail")
    v_out = conv.call(fmt(verify.think, slots, bad_out), fmt(verify.code, slots, bad_out))
    if v_out == bad_out or v_out == "True":
        raise CurriculumError("miscopied number did not change the result")
    seen = "The check failed" if v_out == "False" else f"The check gave {v_out}, not {bad_out}"
    what = "number" if NUM_RE.sub("", bad_code) == NUM_RE.sub("", main_code) else "letter"
    out = conv.call(f"{seen}. A {what} in my first code was copied wrong. Recompute carefully.", main_code)
    if not agrees(out, v_out):
        conv.call(f"Check {out} again.", fmt(verify.code, slots, out))
    return out
