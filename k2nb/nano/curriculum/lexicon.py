"""Open-vocabulary words for composed questions: thousands of nouns and adjectives.

The grammar's own pools (37 things, 16 containers, 16 tables) are what a model can memorise; a user
writes about cartons, invoices and warehouses. Drawing some of the things counted, the containers,
the DataFrames and their columns from a general English word list teaches that the numbers and the
key words carry the question, whatever the nouns around them are (most such nouns are several BPE
pieces the model never saw as a whole).

The lists are those of the ``wonderwords`` package (nouns and adjectives, profanity removed), read
once. Only training conversations use them: the held-out split's families do not.
"""

from __future__ import annotations

import builtins
import functools
import keyword
import random
import re
from importlib.resources import files

# Names a notebook already binds, or that the curriculum's code uses: never a DataFrame's name.
_TAKEN = set(dir(builtins)) | {"pd", "np", "math", "statistics", "date", "timedelta", "datetime", "v", "r",
                               "df", "data", "result", "total", "out"}


@functools.cache
def _words(name: str) -> tuple[str, ...]:
    try:
        assets = files("wonderwords") / "assets"
    except ModuleNotFoundError as e:  # a dependency of k2nb; only a broken install lacks it
        raise ModuleNotFoundError("k2-nano's curriculum needs the wonderwords package "
                                  "(pip install wonderwords)") from e
    bad = set((assets / "profanitylist.txt").read_text().split())
    words = (w.strip() for w in (assets / name).read_text().splitlines())
    return tuple(sorted({w for w in words if re.fullmatch(r"[a-z]{3,10}", w) and w not in bad}))


def nouns() -> tuple[str, ...]:
    """Lower-case nouns of 3-10 letters (about 6,000)."""
    return _words("nounlist.txt")


def adjectives() -> tuple[str, ...]:
    """Lower-case adjectives of 3-10 letters (about 800)."""
    return _words("adjectivelist.txt")


def plural(noun: str) -> str:
    """The regular English plural: box → boxes, city → cities, pen → pens (irregular ones stay regular:
    a question with "childs" in it still asks the same thing)."""
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def thing(rng: random.Random, p_adjective: float = 0.3) -> tuple[str, str]:
    """(singular, plural) of a random noun, sometimes with an adjective: ("red lantern", "red lanterns")."""
    noun = rng.choice(nouns())
    if rng.random() < p_adjective:
        adj = rng.choice(adjectives())
        return f"{adj} {noun}", f"{adj} {plural(noun)}"
    return noun, plural(noun)


def identifier(rng: random.Random, plural_form: bool = True) -> str:
    """A random noun as a Python name a user might give a table or a column (``lanterns``,
    ``harbor_fees``), never a keyword, a builtin or a name the curriculum's code uses."""
    while True:
        noun = rng.choice(nouns())
        name = plural(noun) if plural_form else noun
        if rng.random() < 0.2:
            name = f"{rng.choice(nouns())}_{name}"
        if name not in _TAKEN and not keyword.iskeyword(name):
            return name
