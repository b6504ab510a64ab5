"""The train / held-out split.

Three rules keep the held-out problems unseen: the last phrasing templates of every template list are
held out (``phrasing``), one bucket in eight of number tuples is held out (``numbers_in_split``,
a stable hash, so the split of a tuple never depends on the seed), and kinds marked with a split
exist in that split only (``kinds_in``: the held-out (statistic, operation) pairs of "combo").
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from typing import Any

from k2nb.nano.curriculum.spec import Family, Kind

SPLITS = ("train", "heldout")


def stable_bucket(values: tuple[Any, ...]) -> int:
    """0..7 from the repr of ``values`` (blake2b, so it is the same in every process)."""
    digest = hashlib.blake2b(repr(values).encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % 8


def numbers_in_split(values: tuple[Any, ...], split: str) -> bool:
    """Bucket 0 is held out; training never sees those exact tuples."""
    return (stable_bucket(values) == 0) == (split == "heldout")


def phrasing(rng: random.Random, split: str, templates: Sequence[str], n_heldout: int = 1) -> str:
    """Pick a phrasing; the last ``n_heldout`` templates of each list are held-out only."""
    pool = templates[-n_heldout:] if split == "heldout" else templates[:-n_heldout]
    return rng.choice(pool)


def kinds_in(family: Family, split: str) -> list[Kind]:
    """The kinds ``family`` draws from in ``split``, in table order."""
    return [k for k in family.kinds if k.split in (None, split)]


def heldout_templates(families: Iterable[Family]) -> set[str]:
    """Every phrasing template reserved for the held-out split."""
    return {t for f in families for k in f.kinds for t in k.questions[-k.n_heldout:]}
