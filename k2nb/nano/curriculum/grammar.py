"""Compositional questions: a small grammar of roles, clause choices and sentence forms.

Template lists teach a fixed set of sentences; a user writes others. A ``Grammar`` builds a question
from parts instead: one clause per role (each role a list of alternatives, synonyms included), in
shuffled order, joined in one of several ways, with an ask in question, imperative or statement
form, sometimes a distractor clause whose number the trace ignores, and numbers written as people
write them (``1,250``; decimals come from the samplers). A clause or an ask may carry a *key word*
("each", "left", "times"): the word of the question that tells the operation. The trace's plan
quotes it before it writes the expression (``Key word "each": multiply. 14 * 12.``), so the
operation is read from the question's own words, not from which template it was.

The grammar returns the question text and the slots it decided (``kw``, the key words; ``skip``,
the distractor's number); the generator merges them into the recipe's slots.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# A clause alternative: its template, and the key word it carries ("" for none).
Alt = tuple[str, str]

CASUAL_SHARE = 0.2  # of questions written casually: "What's", a lower-case start, no final mark
THOUSANDS_SHARE = 0.45  # of integers >= 1000 written with a thousands separator (1,250)
DISTRACTOR_SHARE = 0.25  # of questions with a distractor clause, when the grammar has distractors

# Clauses with a number that the question does not need; ``{d}`` is that number. They share the
# question's people and objects so that they cannot be told apart by their words alone.
DISTRACTORS: list[str] = [
    "{name} is {d} years old",
    "the shop is {d} km away",
    "it is {d} degrees outside",
    "the bus ride took {d} minutes",
    "there are {d} chairs in the room",
    "{name} has {d} cousins",
    "the store opened {d} years ago",
    "the street has {d} houses",
    "{name} lives at number {d}",
    "the class has {d} desks",
    "the box weighs {d} kg",
    "{name} sleeps {d} hours a night",
    "the park has {d} trees",
]


@dataclass(frozen=True)
class Grammar:
    """A question as roles → clause alternatives, asks in three forms, and the ways they join.

    ``facts``: per role, the alternatives (template, key word); ``asks``: questions ending in "?";
    ``commands``: imperative asks ("Find the total."); ``statements``: first-person asks ("I want to
    know how many are left."). ``whole``: complete one-sentence questions (the operation in one
    phrase, "What is {a} times {b}?"), used instead of facts + ask with probability ``p_whole``."""

    op: str  # what the key word means, as the plan says it: "multiply"
    facts: Sequence[Sequence[Alt]] = ()
    joined: Sequence[Alt] = ()  # one clause that carries every role ("14 boxes with 12 pens each")
    asks: Sequence[Alt] = ()
    commands: Sequence[Alt] = ()
    statements: Sequence[Alt] = ()
    whole: Sequence[Alt] = ()
    p_whole: float = 0.0
    p_joined: float = 0.4
    ordered: bool = False  # facts are events in time order ("had 40", "gave away 12"): never shuffled
    distract: bool = True
    numbers: Sequence[str] = field(default_factory=tuple)  # slots written as people write numbers

    def __call__(self, rng: random.Random, values: dict[str, Any], split: str) -> tuple[str, dict[str, str]]:
        shown = {k: v for k, v in values.items()}
        for k in self.numbers:
            shown[k] = number_text(str(values[k]), rng)
        if self.whole and (not self.facts or rng.random() < self.p_whole):
            text, kw = rng.choice(self.whole)
            # a variable's name opening the question keeps its case: `Sales` would be another name
            text = fill(text, shown) if text.startswith(("{var}", "{ref}")) else cap(fill(text, shown))
            return casual(rng, text), self._plan([fill(kw, shown)] if kw else [], "", shown)
        if self.joined and rng.random() < self.p_joined:
            parts = [rng.choice(self.joined)]
        else:
            parts = [rng.choice(f) for f in self.facts]
            if not self.ordered:
                rng.shuffle(parts)
        skip = ""
        if self.distract and rng.random() < DISTRACTOR_SHARE:
            skip = distractor_number(rng, values)
            shown["d"] = skip
            parts.insert(rng.randint(0, len(parts)), (rng.choice(DISTRACTORS), ""))
        ask = _pick_ask(rng, self)
        kws = [fill(kw, shown) for _, kw in [*parts, ask] if kw]
        text = join(rng, [fill(t, shown) for t, _ in parts], fill(ask[0], shown))
        return casual(rng, text), self._plan(kws, skip, shown)

    def _plan(self, kws: list[str], skip: str, values: dict[str, Any]) -> dict[str, str]:
        """The slots the plan opens with: ``how`` ('Not needed: 9. Key word "each": multiply.'),
        and ``skip`` (the distractor's number, or "")."""
        words = list(dict.fromkeys(kws))
        how = f"Not needed: {skip}. " if skip else ""
        if words:
            quoted = " and ".join(f'"{w}"' for w in words)
            how += f"Key word{'s' if len(words) > 1 else ''} {quoted}: "
            how += f"{fill(self.op, values)}."
        else:
            how += cap(fill(self.op, values)) + "."
        return {"how": how, "skip": skip}


def _pick_ask(rng: random.Random, g: Grammar) -> Alt:
    r = rng.random()
    if g.commands and r < 0.25:
        return rng.choice(g.commands)
    if g.statements and r < 0.4:
        return rng.choice(g.statements)
    return rng.choice(g.asks)


def fill(template: str, values: dict[str, Any]) -> str:
    return template.format(**values)


def cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def join(rng: random.Random, facts: list[str], ask: str) -> str:
    """Facts and the ask as one question, in one of four forms: sentences, one sentence with
    "and", a condition ("If ... and ..., how many ...?"), or the ask first ("How many ...? ...")."""
    style = rng.random()
    question = ask.endswith("?")
    if style < 0.4 or len(facts) == 1 and style < 0.6:
        return " ".join(cap(f) + "." for f in facts) + " " + ask
    if style < 0.65:
        return cap(", and ".join(facts)) + ". " + ask
    if style < 0.85 and question and not ask.startswith("I "):
        return "If " + " and ".join(facts) + ", " + ask[:1].lower() + ask[1:]
    if question:  # the ask first, then what it is about
        return ask + " " + " ".join(cap(f) + "." for f in facts)
    return cap("; ".join(facts)) + ". " + ask


def casual(rng: random.Random, text: str) -> str:
    """Sometimes the question as typed in a hurry: "What's", a lower-case first letter, no final
    question mark or full stop. None of it changes what is asked."""
    if rng.random() >= CASUAL_SHARE:
        return text
    r = rng.random()
    if r < 0.4 and "What is" in text:
        return text.replace("What is", "What's", 1)
    if r < 0.7 and text[:2] != "I ":
        return text[:1].lower() + text[1:]
    return text[:-1] if text[-1:] in "?." else text


def number_text(value: str, rng: random.Random) -> str:
    """``value`` as a person may write it: integers of 1000 and more often get a thousands separator.
    The Given line writes it back without one (``render.given_line``), and so does the code."""
    if re.fullmatch(r"\d{4,}", value) and rng.random() < THOUSANDS_SHARE:
        return f"{int(value):,}"
    return value


def distractor_number(rng: random.Random, values: dict[str, Any]) -> str:
    """A number for a distractor clause that equals no number of the question, and is not 2: the
    code's ``round(..., 2)`` would look as if it used it."""
    taken = {str(v) for v in values.values()}
    while True:
        d = str(rng.randint(3, 60))
        if d not in taken:
            return d
