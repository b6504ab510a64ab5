"""The nine problem families, as tables (``Family``), in the order ``make_problem`` draws them from."""

from __future__ import annotations

from k2nb.nano.curriculum.families import (
    arithmetic,
    combo,
    data,
    dates,
    interest,
    percent,
    stats,
    strings,
    units,
)
from k2nb.nano.curriculum.spec import Family, Kind

TABLES: tuple[Family, ...] = tuple(m.FAMILY for m in (arithmetic, percent, interest, units, dates, stats,
                                                      strings, data, combo))
FAMILIES: tuple[str, ...] = tuple(f.name for f in TABLES)
BY_NAME: dict[str, Family] = {f.name: f for f in TABLES}
KINDS: dict[str, Kind] = {f"{f.name}.{k.name}": k for f in TABLES for k in f.kinds}
HELDOUT_COMBOS = combo.HELDOUT_COMBOS


def roles_of(kind: str, slots: dict[str, str]) -> dict[str, str]:
    """Literal text → role word for a recipe's slots ({"5000": "principal", ...}); empty for kinds
    without roles. Two slots with the same value keep the first role (either binding computes the same)."""
    roles: dict[str, str] = {}
    for key, role in (KINDS[kind].roles or {}).items():
        value = slots.get(key, "")
        if value:
            roles.setdefault(value, role)
    return roles
