"""The curriculum's vocabulary: a problem family as a table, the recipe it yields, the problem it becomes.

A ``Family`` is data: its sub-families (``Kind``) with their sentence forms, the slots they fill and
how each slot is drawn, the code that computes and checks the answer, the unit of the answer
sentence and the role words of the Given line. ``generator.recipe`` is the one interpreter of these
tables; ``render`` turns the recipe into a conversation by running its code.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from k2nb.nano.curriculum.python_tool import TOOLS

# (rng, values drawn so far, split) -> the slot's value. Values are strings (they are copied into
# text and code), except temporaries (names starting with "_") that feed other slots or the setup.
Sampler = Callable[[random.Random, dict[str, Any], str], Any]
# (slot name, sampler); a None name means the sampler returns a dict of several values.
Draws = Sequence[tuple[str | None, Sampler]]


@dataclass(frozen=True, slots=True)
class Step:
    """One tool call: a reasoning text and code, both ``str.format`` templates over the slots (and
    ``{out}``, the main step's output, in verification steps)."""

    think: str
    code: str
    role: str = "main"  # "inspect" | "main" | "verify"


@dataclass(frozen=True, slots=True)
class Clauses:
    """Composed phrasings (training only): one clause per role in ``facts`` (each a list of
    alternatives), shuffled, then one of ``asks``."""

    facts: Sequence[Sequence[str]]
    asks: Sequence[str]


@dataclass(frozen=True)
class Kind:
    """A sub-family. Fields left None take the family's value (see ``Family``)."""

    name: str
    steps: Sequence[Step]
    questions: Sequence[str] | None = None  # templates over the slots; the last n_heldout are held out
    n_heldout: int | None = None
    slots: Draws | None = None  # redrawn together until the number key is in the split
    key: Sequence[str] = ()  # the drawn values that decide the split, after `tag`
    tag: Sequence[str] | None = None  # constant head of the split key (default: the kind's name)
    before: Draws | None = None  # drawn once per kind choice, before the slots
    after: Draws = ()  # drawn once the slots are in the split
    people: Draws | None = None  # names and items, drawn last
    unit: str | None = None  # template appended to the answer: "The answer is {out}{unit}."
    numeric: Sequence[str] | None = None  # number slots a follow-up or a mis-copy may change
    roles: Mapping[str, str] | None = None  # slot -> role word of the Given line
    clauses: Clauses | None = None
    split: str | None = None  # "train" | "heldout": the kind exists in that split only
    setup: str = ""  # template over the values: code run in the namespace first (the user's data)
    reject: Callable[[dict[str, Any]], bool] | None = None  # True: draw another kind and slots
    lead: str = ""  # training only, 15 %: a sentence put before the question
    steps_if: tuple[Callable[[dict[str, str]], bool], Sequence[Step]] | None = None  # other steps
    # (rng, values, split) -> (question text, slots it decided): a composed question (``grammar``)
    # instead of the template lists; it runs after the names and items are drawn
    grammar: Callable[[random.Random, dict[str, Any], str], tuple[str, dict[str, str]]] | None = None
    abstain: str = ""  # template: the reason the question cannot be answered (a kind with no steps)


@dataclass(frozen=True)
class Family:
    """A problem family: its kinds and the defaults they share (a kind's None fields take them)."""

    name: str
    kinds: Sequence[Kind]
    n_heldout: int = 2  # held-out phrasings: the last n of each template list
    questions: Sequence[str] = ()
    slots: Draws = ()
    before: Draws = ()
    people: Draws = ()
    unit: str = ""
    numeric: Sequence[str] = ()
    roles: Mapping[str, str] = field(default_factory=dict)
    clauses: Clauses | None = None
    heldout_numbers: bool = True  # False: held-out kinds take any numbers (their kind is new)

    def __post_init__(self) -> None:
        shared = ({f.name for f in fields(Kind)} & {f.name for f in fields(Family)}) - {"name"}
        kinds = [replace(k, **{n: getattr(self, n) for n in shared if getattr(k, n) is None})
                 for k in self.kinds]
        object.__setattr__(self, "kinds", tuple(kinds))


@dataclass(slots=True)
class Recipe:
    """A problem before it is run: templates plus the values that fill them."""

    family: str
    kind: str  # sub-family, e.g. "arithmetic.buy"
    question: str  # template over slots
    slots: dict[str, str]
    steps: list[Step]
    unit: str = ""
    setup: str = ""  # code run in the namespace before the conversation (the user's data)
    numeric_slots: tuple[str, ...] = ()  # slots a follow-up may change
    abstain: str = ""  # why the question cannot be answered; "" for every answerable question


@dataclass(slots=True)
class Problem:
    """A generated problem: the full conversation and what evaluation needs."""

    family: str
    kind: str
    variant: str  # "plain" | "typo" | "miscopy" | "followup" | "wrong_column" | "rollback"
    split: str
    question: str  # the last user question (a rollback's retry answers the first one again)
    setup: str
    answer: float | int | str
    messages: list[dict[str, Any]]
    no_loss: list[int] = field(default_factory=list)  # message indices not to train on
    tools: list[dict[str, Any]] = field(default_factory=lambda: list(TOOLS))  # declared to the model

    @property
    def prompt_messages(self) -> list[dict[str, Any]]:
        """Everything up to and including the last user message: what a model is asked."""
        last_user = max(i for i, m in enumerate(self.messages) if m["role"] == "user")
        return self.messages[: last_user + 1]


class CurriculumError(RuntimeError):
    """A recipe produced an inconsistent trace (its verification disagrees); the sampler retries."""


def fmt(template: str, slots: Mapping[str, Any], out: str = "") -> str:
    """``template`` with the slots (and a step's ``{out}``) filled in."""
    return template.format(**slots, out=out)


def main_index(steps: Sequence[Step]) -> int:
    """Index of the step that computes the answer."""
    return next(i for i, s in enumerate(steps) if s.role == "main")


def checked(plan: str, code: str, check_plan: str, check_code: str) -> tuple[Step, Step]:
    """A computation and the call that verifies it."""
    return (Step(plan, code), Step(check_plan, check_code, "verify"))
