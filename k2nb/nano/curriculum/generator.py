"""The one interpreter of the family tables: a family, a random generator and a split give a Recipe.

The draws happen in a fixed order, which is what makes a seed's data reproducible: the kind (among
the kinds of the split), the values drawn before the slots, the slots (all redrawn until their number
key falls in the split), the values drawn after them, a rejection test (which starts over from the
kind), the names and items, the question, and the lead sentence of some training questions.
"""

from __future__ import annotations

import random
from typing import Any

from k2nb.nano.curriculum.phrasing import question
from k2nb.nano.curriculum.slots import draw
from k2nb.nano.curriculum.spec import Family, Kind, Recipe
from k2nb.nano.curriculum.split import kinds_in, numbers_in_split

LEAD_SHARE = 0.15  # of training questions of a kind with a lead sentence


def recipe(family: Family, rng: random.Random, split: str) -> Recipe:
    """One recipe of ``family`` for ``split``."""
    pool = kinds_in(family, split)
    while True:
        kind = rng.choice(pool)
        values = _slots_in_split(family, kind, rng, split, draw(kind.before, rng, split, {}))
        values = draw(kind.after, rng, split, values)
        if kind.reject is not None and kind.reject(values):
            continue  # e.g. a tie makes "which row has the most" ambiguous
        values = draw(kind.people, rng, split, values)
        if kind.grammar is not None:
            text, decided = kind.grammar(rng, values, split)
            values.update(decided)
            text = text.replace("{", "{{").replace("}", "}}")  # a finished question, not a template
        else:
            text = question(rng, split, kind.questions, kind.n_heldout, kind.clauses)
        if kind.lead and split == "train" and rng.random() < LEAD_SHARE:
            text = kind.lead + text
        return _recipe(family, kind, text, values)


def _slots_in_split(family: Family, kind: Kind, rng: random.Random, split: str,
                    before: dict[str, Any]) -> dict[str, Any]:
    while True:
        values = draw(kind.slots, rng, split, dict(before))
        if split == "heldout" and not family.heldout_numbers:
            return values
        if numbers_in_split(split_key(kind, values), split):
            return values


def split_key(kind: Kind, values: dict[str, Any]) -> tuple[Any, ...]:
    """The tuple whose stable hash puts a draw in one split: the kind's tag, then its key values."""
    picked = (values[k] for k in kind.key)
    return (*(kind.tag or (kind.name,)), *(tuple(v) if isinstance(v, list) else v for v in picked))


def _recipe(family: Family, kind: Kind, text: str, values: dict[str, Any]) -> Recipe:
    slots = {k: v for k, v in values.items() if not k.startswith("_")}
    steps = kind.steps
    if kind.steps_if is not None and kind.steps_if[0](slots):
        steps = kind.steps_if[1]
    return Recipe(family.name, f"{family.name}.{kind.name}", text, slots, list(steps), kind.unit or "",
                  kind.setup.format(**values) if kind.setup else "", tuple(kind.numeric or ()),
                  kind.abstain.format(**values) if kind.abstain else "")
