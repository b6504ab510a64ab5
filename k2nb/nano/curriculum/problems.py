"""Problems: a recipe of a family, drawn with a variant and run into a conversation, for a seed.

A problem is fully determined by (seed, split, family, variant); a set of ``n`` problems depends only
on (seed, split, i) per problem, so any prefix of a set is reproducible.
"""

from __future__ import annotations

import random

from k2nb.nano.curriculum.answers import parse_answer
from k2nb.nano.curriculum.families import BY_NAME, FAMILIES, TRAIN_MIX
from k2nb.nano.curriculum.families.abstain import ABSTAIN
from k2nb.nano.curriculum.generator import recipe
from k2nb.nano.curriculum.python_tool import TOOL_SETS
from k2nb.nano.curriculum.render import answer, open_conversation, run_turn
from k2nb.nano.curriculum.spec import CurriculumError, Problem, Recipe, fmt
from k2nb.nano.curriculum.split import SPLITS
from k2nb.nano.curriculum.variants import followup_turn, rollback_turns, wrong_column_turn

VARIANTS = ("plain", "typo", "miscopy", "followup", "wrong_column", "rollback")
# DataFrame questions have no number to change in a follow-up; they get wrong-column traces instead.
WEIGHTS = {"data": (46, 12, 10, 0, 20, 12), "tables": (46, 12, 10, 0, 20, 12),
           "abstain": (1, 0, 0, 0, 0, 0)}  # an abstention makes no call: nothing to misspell or roll back
DEFAULT_WEIGHTS = (46, 12, 10, 12, 0, 12)
ATTEMPTS, PLAIN_AFTER = 60, 40  # recipes tried per problem; after PLAIN_AFTER, a plain trace


def make_problem(seed: int | str, split: str = "train", family: str | None = None,
                 variant: str | None = None) -> Problem:
    """One problem, fully determined by (seed, split, family, variant). ``family`` None draws one:
    training by ``TRAIN_MIX``, the held-out split among the nine families. ``variant`` None draws one:
    plain 46 %, typo 12 %, miscopy 10 %, follow-up 12 %, rollback 12 % (DataFrame questions: wrong
    column 20 % instead of follow-ups; a wrong-column trace needs a column name that differs from the
    question's word, so about half of those become plain). A variant that a recipe cannot support is retried
    with a new recipe of the same family, so the family and variant mix stays as drawn."""
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'heldout', not {split!r}")
    rng = random.Random(f"k2nano:{seed}:{split}:{family}:{variant}")
    if family:
        fam = family
    elif split == "train":
        fam = rng.choices(list(TRAIN_MIX), list(TRAIN_MIX.values()))[0]
    else:  # the held-out draws of the nine families, as they always were
        fam = rng.choice(FAMILIES)
    var = variant or rng.choices(VARIANTS, WEIGHTS.get(fam, DEFAULT_WEIGHTS))[0]
    for attempt in range(ATTEMPTS):
        r = recipe(BY_NAME[fam], rng, split)
        v = var if attempt < PLAIN_AFTER else "plain"
        if v == "wrong_column" and "DataFrame" not in r.setup:
            if fam != "data" or attempt >= 20:
                v = "plain"
            else:
                continue
        try:
            return build(r, v, split, rng)
        except CurriculumError:
            continue
    raise CurriculumError(f"could not build a consistent problem for seed {seed!r}")


def build(r: Recipe, variant: str, split: str, rng: random.Random) -> Problem:
    """Run ``r`` as a ``variant`` conversation."""
    conv, question = open_conversation(r, rng, split)
    if r.abstain:
        reason = fmt(r.abstain, r.slots)
        conv.answer(f"{conv.given} Nothing to compute: {reason}.".strip(),
                    f"{ABSTAIN} {reason[:1].upper()}{reason[1:]}.")
        return Problem(r.family, r.kind, "plain", split, question, r.setup, conv.messages[-1]["content"],
                       conv.messages, conv.no_loss, rng.choice(TOOL_SETS))
    if variant == "wrong_column":
        out = wrong_column_turn(conv, r, rng)
    elif variant == "rollback":
        out = rollback_turns(conv, r, question, rng)
    else:
        out = run_turn(conv, r, r.slots, "plain" if variant == "followup" else variant, rng)
    answer(conv, r, out)
    if variant == "followup":
        question, out = followup_turn(conv, r, split, rng)
        answer(conv, r, out)
    return Problem(r.family, r.kind, variant, split, question, r.setup, parse_answer(out),
                   conv.messages, conv.no_loss, rng.choice(TOOL_SETS))


def generate(n: int, seed: int = 0, split: str = "train") -> list[Problem]:
    """``n`` problems; problem i depends only on (seed, split, i), so any prefix is reproducible."""
    return [make_problem(f"{seed}:{i}", split) for i in range(n)]


def heldout_problems(n: int, seed: int = 1234) -> list[Problem]:
    """The evaluation set: unseen phrasings, number tuples and combo pairs; plain traces (the eval injects
    its own failures) with families in round-robin so every family is represented."""
    return eval_problems(n, seed, "heldout")


def eval_problems(n: int, seed: int = 1234, split: str = "heldout") -> list[Problem]:
    """``n`` plain problems of ``split``, families in round-robin. ``split="train"`` gives questions in
    the training phrasings with fresh draws of numbers (other seeds than any training set): beside the
    held-out set it separates what the model cannot do from what it cannot yet do in new words."""
    return [make_problem(f"{seed}:{i}", split, FAMILIES[i % len(FAMILIES)], "plain") for i in range(n)]
