"""Questions: a template phrasing of the split, or (training only) a composed one.

Composed phrasings build a question from one clause per role, in shuffled order, so that a number's
role is carried by its words ("out of", "each", "for ... hours") and not by where it stands: with
fixed templates only, "After paying 42 and 37.94 out of 874" was computed as 42 - 37.94 - 874.
Held-out questions never use them (tests check that no composed question equals a held-out template).
The clauses also carry every word a held-out phrasing uses ("owns", "flip", "hold ... completely"),
in other sentences: the held-out split tests new sentence forms and new numbers, not words training
never contained (a model without pretraining cannot know what "flip" means if no trace says it).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from k2nb.nano.curriculum.spec import Clauses
from k2nb.nano.curriculum.split import phrasing

COMPOSED_SHARE = 0.35  # of training questions whose kind has clauses


def cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def compose(rng: random.Random, clauses: Clauses) -> str:
    """One composed question: the role clauses in random order, then the ask."""
    parts = [rng.choice(f) for f in clauses.facts]
    rng.shuffle(parts)
    ask = rng.choice(clauses.asks)
    style = rng.random()
    if style < 0.45:
        return " ".join(cap(p) + "." for p in parts) + " " + ask
    if style < 0.75 or not ask.endswith("?") or ask.startswith("I "):
        return cap(", and ".join(parts)) + ". " + ask
    return "If " + " and ".join(parts) + ", " + ask[:1].lower() + ask[1:]


def question(rng: random.Random, split: str, templates: Sequence[str], n_heldout: int,
             clauses: Clauses | None) -> str:
    """A template phrasing, or (training only, 35 %) a composed one when the kind has clauses."""
    if split == "train" and clauses is not None and rng.random() < COMPOSED_SHARE:
        return compose(rng, clauses)
    return phrasing(rng, split, templates, n_heldout)
