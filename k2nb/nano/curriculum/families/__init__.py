"""The problem families, as tables (``Family``).

``TABLES`` are the nine families of the held-out evaluation (``eval_problems`` takes them in
round-robin, so its problems do not depend on the others). ``EXTRA`` are the families that teach
reading questions in people's own words (``words``, ``tables``, ``chains``) and saying when a question cannot
be answered (``abstain``). Training draws a family by ``TRAIN_MIX``."""

from __future__ import annotations

from k2nb.nano.curriculum.families import (
    abstain,
    arithmetic,
    chains,
    combo,
    data,
    dates,
    interest,
    percent,
    stats,
    strings,
    tables,
    units,
    words,
)
from k2nb.nano.curriculum.spec import Family, Kind

TABLES: tuple[Family, ...] = tuple(m.FAMILY for m in (arithmetic, percent, interest, units, dates, stats,
                                                      strings, data, combo))
EXTRA: tuple[Family, ...] = (words.FAMILY, tables.FAMILY, chains.FAMILY, abstain.FAMILY)
FAMILIES: tuple[str, ...] = tuple(f.name for f in TABLES)
ALL_FAMILIES: tuple[str, ...] = FAMILIES + tuple(f.name for f in EXTRA)
BY_NAME: dict[str, Family] = {f.name: f for f in (*TABLES, *EXTRA)}
KINDS: dict[str, Kind] = {f"{f.name}.{k.name}": k for f in (*TABLES, *EXTRA) for k in f.kinds}
# Training's family weights. The nine families keep about half of the mix (their template phrasings
# are what the held-out split measures); words and tables, whose questions are composed, most of the
# rest; abstentions ~4 %, enough to say "I can't tell" when a number is missing, not enough to give up.
TRAIN_MIX: dict[str, float] = {**{name: 1.0 for name in FAMILIES},
                               "words": 5.0, "tables": 3.0, "chains": 1.5, "abstain": 0.7}
HELDOUT_COMBOS = combo.HELDOUT_COMBOS


def roles_of(kind: str, slots: dict[str, str]) -> dict[str, str]:
    """Literal text → role word for a recipe's slots ({"5000": "principal", ...}); empty for kinds
    without roles. Two slots with the same value keep the first role (either binding computes the same)."""
    roles: dict[str, str] = {}
    for key, role in (KINDS[kind].roles or {}).items():
        value = slots.get(key, "")
        if value:
            roles.setdefault(value, role.format(**slots))
    return roles
