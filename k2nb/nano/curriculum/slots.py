"""How slots are drawn: the samplers a family table names, and the word pools they draw from.

Each sampler is ``(rng, values so far, split) -> value`` and consumes the random generator in a fixed
order: the data of a seed must never change (tests pin fingerprints of generated sets), so a
sampler's draws happen in the order its code reads.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Callable, Sequence
from typing import Any

from k2nb.nano.curriculum.spec import Draws, Sampler

NAMES = [
    "Ana", "Ben", "Cleo", "Dev", "Eva", "Finn", "Gus", "Hana", "Ivan", "Jade", "Kai", "Lena", "Milo",
    "Nora", "Omar", "Pia", "Quinn", "Rosa", "Sam", "Tara", "Uma", "Vik", "Wen", "Yara", "Zoe", "Leo",
]
ITEMS = [
    "apple", "book", "pencil", "marble", "card", "egg", "cookie", "sticker", "coin", "shell", "stamp",
    "ticket", "cup", "plate", "toy", "candle", "lemon", "brick", "bolt", "button",
]
WORDS = [
    "python", "kernel", "matrix", "banana", "rocket", "garden", "silver", "planet", "window", "orange",
    "tensor", "expert", "router", "notebook", "thunder", "river", "mountain", "pencil", "lantern",
    "harbor", "coffee", "yellow", "dragon", "winter", "summer", "bottle", "castle", "spider",
]
LETTERS = "abcdefghijklmnoprstuvwy"


def draw(draws: Draws, rng: random.Random, split: str, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` plus every slot of ``draws``, drawn in order (a None name merges a dict)."""
    for name, sampler in draws:
        value = sampler(rng, values, split)
        if name is None:
            values.update(value)
        else:
            values[name] = value
    return values


def rand_word(rng: random.Random, split: str = "heldout") -> str:
    """A known word or random letters. Training leans to random letters (copying them exactly is what
    small models get wrong); the held-out mix stays half and half, so evaluations stay comparable."""
    if rng.random() < (0.5 if split == "heldout" else 0.35):
        return rng.choice(WORDS)
    return "".join(rng.choice(LETTERS) for _ in range(rng.randint(4, 8)))


def ints(lo: int | Callable[[dict[str, Any]], int], hi: int) -> Sampler:
    """An integer in [lo, hi]; ``lo`` may be a function of the values drawn so far."""
    return lambda rng, v, split: str(rng.randint(lo(v) if callable(lo) else lo, hi))


def money(lo: int, hi: int) -> Sampler:
    """Dollars: half whole, half with cents (trailing zeros of the cents dropped)."""
    def sample(rng: random.Random, v: dict[str, Any], split: str) -> str:
        if rng.random() < 0.5:
            return str(rng.randint(lo, hi))
        return f"{rng.randint(lo, hi)}.{rng.randint(1, 99):02d}".rstrip("0")
    return sample


def dec(lo: int, hi: int, p_int: float = 0.5) -> Sampler:
    """An integer (probability ``p_int``) or a number with one decimal."""
    def sample(rng: random.Random, v: dict[str, Any], split: str) -> str:
        if rng.random() < p_int:
            return str(rng.randint(lo, hi))
        return f"{rng.randint(lo, hi)}.{rng.randint(1, 9)}"
    return sample


def int_list(n_lo: int = 4, n_hi: int = 7, lo: int = 1, hi: int = 99) -> Sampler:
    """A list literal of n_lo..n_hi integers in [lo, hi], e.g. "[3, 41, 7]"."""
    def sample(rng: random.Random, v: dict[str, Any], split: str) -> str:
        return "[" + ", ".join(str(rng.randint(lo, hi)) for _ in range(rng.randint(n_lo, n_hi))) + "]"
    return sample


def date(y_lo: int = 2019, y_hi: int = 2026) -> Sampler:
    """An ISO date in one of the years y_lo..y_hi."""
    def sample(rng: random.Random, v: dict[str, Any], split: str) -> str:
        day = datetime.date(rng.randint(y_lo, y_hi), 1, 1) + datetime.timedelta(days=rng.randint(0, 364))
        return day.isoformat()
    return sample


def days_after(slot: str, lo: int, hi: int) -> Sampler:
    """The ISO date lo..hi days after the date in ``slot``."""
    def sample(rng: random.Random, v: dict[str, Any], split: str) -> str:
        days = datetime.timedelta(days=rng.randint(lo, hi))
        return (datetime.date.fromisoformat(v[slot]) + days).isoformat()
    return sample


def word() -> Sampler:
    return lambda rng, v, split: rand_word(rng, split)


def letter_of(slot: str, p: float = 0.8, others: str = "aeiost") -> Sampler:
    """A letter of the word in ``slot`` (probability ``p``), else one of ``others`` (maybe absent)."""
    return lambda rng, v, split: rng.choice(v[slot]) if rng.random() < p else rng.choice(others)


def sentence(lo: int, hi: int) -> Sampler:
    """lo..hi words joined by spaces."""
    return lambda rng, v, split: " ".join(rand_word(rng, split) for _ in range(rng.randint(lo, hi)))


def const(value: Any) -> Sampler:
    return lambda rng, v, split: value


def derived(fn: Callable[[dict[str, Any]], Any]) -> Sampler:
    """A value computed from the values drawn so far (draws nothing)."""
    return lambda rng, v, split: fn(v)


def one_of(*options: Any) -> Sampler:
    """One of ``options``; options that are samplers are drawn first, in order, then one is chosen
    (as ``rng.choice([0, 0, rng.randint(1, 99)])`` does)."""
    def sample(rng: random.Random, v: dict[str, Any], split: str) -> Any:
        return rng.choice([o(rng, v, split) if callable(o) else o for o in options])
    return sample


def choice(options: Callable[[dict[str, Any]], Sequence[Any]]) -> Sampler:
    """One of the options computed from the values drawn so far."""
    return lambda rng, v, split: rng.choice(options(v))


def total(*parts: Sampler) -> Sampler:
    """The sum of the parts' integers, as text."""
    return lambda rng, v, split: str(sum(int(part(rng, v, split)) for part in parts))


def reworded(default: str, others: Sequence[str], p: float) -> Sampler:
    """``default`` or (training only, probability ``p``) one of ``others``, filled with the values."""
    def sample(rng: random.Random, v: dict[str, Any], split: str) -> str:
        template = default
        if split == "train" and rng.random() < p:
            template = rng.choice(others)
        return template.format(**v)
    return sample
