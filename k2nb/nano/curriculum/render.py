"""A recipe as an executed K2 tool-loop conversation: OpenAI-style message dicts (see
docs/architecture.md) whose tool results come from actually running the code:

    user question → assistant {plan, python call} → tool (real output)
                  → assistant {verification plan, second python call} → tool (real output)
                  → assistant {brief reasoning, final answer restating the tool result}

The model is a few M parameters, so the text is short and regular on purpose: numbers in code are
copied verbatim from the question, floats are always printed through ``round(..., 2)``, code uses
single quotes (no JSON escaping), a string result is the cell's trailing expression (so its repr,
quoted, is what the model reads and copies) and the answer sentence is
"The answer is {output}{unit}.". Phrasings vary a lot (templates × names × items × prefixes) so
that the model has to read the question rather than memorise it.
"""

from __future__ import annotations

import random
import re

from k2nb.nano.curriculum import recoveries
from k2nb.nano.curriculum.answers import answer_sentence
from k2nb.nano.curriculum.conversation import Conversation, agrees
from k2nb.nano.curriculum.families import roles_of
from k2nb.nano.curriculum.grammar import number_text
from k2nb.nano.curriculum.spec import CurriculumError, Recipe, fmt

# A share of conversations carries one of these; the rest get the template's default system prompt.
SYSTEM_PROMPTS = [
    "You are a careful assistant. Use the python tool and check your work.",
    "You are a helpful assistant with a Python tool.",
    "Solve the task with Python. Verify before you answer.",
    "You are k2-nano, a small model that thinks, runs Python and verifies.",
    "Answer briefly. Use Python for every calculation.",
]
SYSTEM_SHARE = 0.3
PREFIXES = ["", "", "", "Quick question: ", "Please help. ", "Hi! ", "Can you solve this? ", "Task: ",
            "Hello. ", "Question: ", "Hey there. ", "I need help with this. ", "Here is a problem. ",
            "Please solve: ", "Small task: ", "Could you help? "]
SUFFIXES = ["", "", "", " Use Python.", " Please check your answer.", " Show the result.", " Thanks!",
            " Thank you.", " Please be precise.", " Check it with code.", " Keep it short.",
            " Run the code.", " I need an exact answer.", " Verify the result.", " Use the python tool."]

# Literal values of a question, in the order they appear: lists, quoted strings, ISO dates, numbers
# (with thousands separators: "1,250" is one number, which the Given line writes as 1250).
LITERAL_RE = re.compile(r"\[[^\]]*\]|'[^']*'|\d{4}-\d{2}-\d{2}|\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")
_THOUSANDS_RE = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?")


def given_line(question: str, roles: dict[str, str] | None = None) -> str:
    """The first reasoning of every turn restates the question's literals in order ("Given: 772, 10.")
    before the plan binds them to roles. Copying in reading order, right after the question, is the
    easiest copy there is; the plan and the code then take their numbers from a short list instead of
    searching the question, which is where a small model mis-copies and invents numbers.

    With ``roles`` (see ``roles_of``) each literal carries its role word ("Given: years 3, rate 6,
    principal 5000."): the plan then copies the principal from right after the word "principal",
    not by its position in a bare list, where "Over 3 years at 6%, … 5000 dollars" became
    3000 * (1 + 6 / 100) ** 3."""
    def labelled(literal: str) -> str:
        if _THOUSANDS_RE.fullmatch(literal):  # as the code writes it
            literal = literal.replace(",", "")
        role = (roles or {}).get(literal.strip("'"))
        return f"{role} {literal}" if role else literal

    found = LITERAL_RE.findall(question)
    return f"Given: {', '.join(map(labelled, found))}." if found else ""


def open_conversation(recipe: Recipe, rng: random.Random, split: str = "heldout") -> tuple[Conversation, str]:
    """The user's data in the namespace, maybe a system prompt, and the question (with a prefix and
    a suffix); returns the conversation and the question as asked. In training, integers of 1000 and
    more are often written as people write them (``5,000``; the Given line and the code say 5000),
    in the template families as in the composed ones; the held-out split keeps its questions."""
    conv = Conversation(recipe.setup)
    if rng.random() < SYSTEM_SHARE:
        conv.messages.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
    shown = recipe.slots
    if split == "train":
        shown = {k: number_text(v, rng) if isinstance(v, str) else v for k, v in recipe.slots.items()}
    question = rng.choice(PREFIXES) + fmt(recipe.question, shown) + rng.choice(SUFFIXES)
    conv.messages.append({"role": "user", "content": question})
    conv.given = given_line(question, roles_of(recipe.kind, recipe.slots))
    return conv, question


def run_turn(conv: Conversation, recipe: Recipe, slots: dict[str, str], variant: str,
             rng: random.Random) -> str:
    """Run one user turn's tool loop; returns the main output (the answer). ``variant`` "typo" or
    "miscopy" puts that mistake (and its recovery) into the turn."""
    out = ""
    for i, step in enumerate(recipe.steps):
        if step.role == "inspect":
            # Half of the typo traces of a recipe that inspects first fail that first call (the eval's
            # injected failure hits whatever call comes first), then go on with the rest of the plan.
            if variant == "typo" and i == 0 and rng.random() < 0.5 \
                    and recoveries.misspelled_inspection(conv, step, slots, rng):
                variant = "plain"
            else:
                conv.call(fmt(step.think, slots), fmt(step.code, slots))
        elif step.role == "main":
            if variant == "miscopy":
                out = recoveries.miscopied_call(conv, recipe, i, slots, rng)
                break  # the recovery ran the check
            if variant == "typo":
                out = recoveries.misspelled_call(conv, step, slots, rng)
            else:
                out = conv.call(fmt(step.think, slots), fmt(step.code, slots))
        else:
            v_out = conv.call(fmt(step.think, slots, out), fmt(step.code, slots, out))
            if not agrees(out, v_out):
                raise CurriculumError(f"verification disagrees: {out!r} vs {v_out!r}")
    if out.startswith("Traceback") or out == "(no output)":
        raise CurriculumError(f"main step failed: {out!r}")
    return out


def final_think(out: str, conv: Conversation) -> str:
    """The reasoning of the final answer: what the last check said."""
    last = conv.messages[-1]["content"]
    if last == "True":
        return f"The check passed. The result is {out}."
    return f"Both calls give {out}."


def answer(conv: Conversation, recipe: Recipe, out: str) -> None:
    """The final assistant message of a turn, restating ``out``."""
    conv.answer(final_think(out, conv), answer_sentence(out, fmt(recipe.unit, recipe.slots)))
