"""Which family a run looked like, for the confusion of families.

A model that misreads a question usually computes a confident imitation of another family ("14 boxes
with 12 pens each" as a discount). The run's family is read from the code of its first python call
(how the model read the question; the later calls verify or repair that reading) by the first rule of
``RULES`` that matches, in this order:

- ``data``: the code names a variable the problem's setup defines, or uses pandas (``.columns``,
  ``.loc``, ``.groupby``, ``col['name'].sum()``, …);
- ``dates``: ``date``/``datetime``/``timedelta``/``strftime``, or hours × 60 + minutes;
- ``interest``: a growth factor raised to a power, ``(1 + r / 100) ** n``, or compounded in a loop;
- ``units``: a conversion constant (1.609344, 2.20462, 0.45359237, 2.54, 3.78541, 0.3048, 9 / 5, 5 / 9)
  or a whole computation that is one number times (or over) 60 or 3600;
- ``strings``: ``[::-1]``, ``.count(``, ``.upper(``, ``.lower(``, ``sorted(``, ``.split(``, vowels,
  ``len('…')``;
- ``combo``: a list literal, a statistic of it, then an operation on the statistic;
- ``stats``: ``statistics.``, or a statistic (``sum``/``max``/``min``/``len``) of a list literal;
- ``percent``: ``/ 100`` or ``* 100``;
- ``arithmetic``: any other arithmetic on numbers;
- ``other``: code that matches none of these.

A run without a python call is ``abstained`` when its answer abstains, else ``no_call``. It is a
heuristic over the code the curriculum teaches (a test checks it names the family of every generated
kind's first call); a hand-written question can look like two families at once (a fuel rate per 100 km
reads as ``percent``), so read the table as where runs went, not as a verdict on each run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from k2nb.nano.eval.metrics import CallView, RunRecord

_LIST = r"\[\s*-?[\d.]+(?:\s*,\s*-?[\d.]+)+\s*\]"
_STAT = r"\b(?:sum|max|min|len|mean|median|pstdev|stdev)\("
RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("data", re.compile(r"\.(?:columns|loc\[|iloc\[|groupby\(|idxmax\(|idxmin\(|value_counts\(|shape\b"
                        r"|head\()"
                        r"|\bpd\.|\w\[\s*['\"]\w+['\"]\s*\]\s*\.\s*(?:sum|mean|median|max|min|count|tolist)\(")),
    ("dates", re.compile(r"\bdate(?:time)?\b|timedelta|strftime|fromisoformat|\d\s*\*\s*60\s*\+\s*\d")),
    ("interest", re.compile(r"\)\s*\*\*\s*\(?\s*[\w.]|\*=\s*\(?\s*1\s*\+")),
    ("units", re.compile(r"1\.609|2\.2046|0\.4535|\b2\.54\b|3\.785|0\.3048|\b9\s*/\s*5\b|\b5\s*/\s*9\b"
                         r"|(?:^|[(=,])\s*[\d.]+\s*[*/]\s*(?:60|3600)\s*(?:[),]|$)", re.M)),
    ("strings", re.compile(r"\[::-1\]|\.count\(|\.upper\(|\.lower\(|\bsorted\(|\.sort\(|\.split\(|aeiou"
                           r"|\breversed\(|\blen\(\s*['\"]")),
    ("combo", re.compile(rf"(?=.*{_LIST})(?=.*{_STAT})(?=.*(?:\bs\s*[-+*/]|\)\s*[-+*/]\s*[\d(.]|"
                         r"[\d.]\s*[-+*]\s*\(?\s*(?:sum|max|min|statistics\.\w+)\())", re.S)),
    ("stats", re.compile(rf"statistics\.|(?=.*{_LIST})(?=.*{_STAT})", re.S)),
    ("percent", re.compile(r"/\s*100\b|\*\s*100\b")),
    ("arithmetic", re.compile(r"[\d)]\s*(?:\*\*|//|[-+*/%])\s*\(?\s*[\d(]")),
)
NO_CALL, ABSTAINED, OTHER = "no_call", "abstained", "other"
_ASSIGNED = re.compile(r"^([A-Za-z_]\w*)\s*=", re.MULTILINE)


def setup_names(setup: str) -> set[str]:
    """The variables a problem's setup code assigns at top level (the user's data)."""
    return set(_ASSIGNED.findall(setup))


def family_of_code(code: str, data_names: Iterable[str] = ()) -> str:
    """The family ``code`` resembles (module docstring), ``other`` when no rule matches."""
    if any(re.search(rf"\b{re.escape(n)}\b", code) for n in data_names):
        return "data"
    return next((family for family, rule in RULES if rule.search(code)), OTHER)


def looked_like(calls: Sequence[CallView], abstained: bool, setup: str = "") -> str:
    """The family of the run whose chosen path made ``calls`` (its first python call with code)."""
    first = next((c for c in calls if c.name == "python" and c.code), None)
    if first is None:
        return ABSTAINED if abstained else NO_CALL
    return family_of_code(first.code or "", setup_names(setup))


def confusion_table(records: Iterable[RunRecord]) -> dict[str, dict[str, int]]:
    """Expected family (``unanswerable`` for questions without an answer) → looked-like family → runs."""
    table: dict[str, dict[str, int]] = {}
    for r in records:
        row = table.setdefault(r.family if r.answerable else "unanswerable", {})
        row[r.looked_like] = row.get(r.looked_like, 0) + 1
    return {fam: dict(sorted(row.items(), key=lambda kv: (-kv[1], kv[0]))) for fam, row in table.items()}
