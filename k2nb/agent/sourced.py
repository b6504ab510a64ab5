"""The `sourced` check: every number the computation uses has a source.

`used` asks whether every number of the question reached the code; `sourced` asks the converse:
whether every number literal in the code of the path's successful python calls comes from

- the user: a number of a user (or system) message in the conversation — `1,250`, `7.5`, `-3`;
  a percent also as its fraction and its growth / discount factors (`15%`: 0.15, 1.15, 0.85); a
  fraction `3/4` as 0.75; the few number words in `NUMBER_WORDS` ("half" is 0.5 and 2, "March" is 3);
- a tool result: a number printed by a successful call that ran before the one using it (or by a
  call of an earlier turn);
- a named constant: `CONSTANTS`, the unit, time and percent factors that no question spells out,
  when the question names what the factor converts (100 with "%", "cents" or "cm"; 60 with hours,
  minutes or seconds), or a product of two such (1200 = 12 months × 100 percent).

"Compute 348 times 27" computed as `348 + 2 * 27` fails: 2 has no source. Literals are read with
`ast` (strings, comments and names are not numbers), and these positions are exempt, each because
the literal there is not a quantity of the problem:

- 0 and 1 (and -1): identities and the starts of counts (`t = 0`, `1 + r / 100`, `count + 1`);
- subscripts and slices (`xs[-1]`, `s[n // 2]`, `w[::-1]`): positions;
- the digit count of `round(x, 2)`: a display choice;
- tolerances: keywords ending in `tol` (`math.isclose(a, b, abs_tol=0.01)`) and the bound a
  difference is compared with (`abs(a - b) < 0.05`, `abs(a * b - c) < b / 100`);
- the exponents 2, 3, 0.5, 1/2 and 1/3: square, cube and their roots (`** 2` in a variance);
- `% 2` (a parity test) and `len(s) // 2` (the middle of a sequence);
- a mean's divisor that counts its terms: `(a + b) / 2`, `sum([a, b, c]) / 3`;
- a `range` bound one past a sourced number (`range(1, 11)` for "1 to 10": range stops before it).

What it cannot see: a number inside a string that the code converts (`float("2.5")`), and a
misreading into a number that happens to have a source (`348 + 12 * 27` for "348 times 27 months"
passes: 12 is months per year there). Code that does not parse is skipped (it did not run
successfully anyway).
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from k2nb.agent.checks import CallRecord, Number, numbers_in


@dataclass(frozen=True, slots=True)
class Constant:
    """A factor a question may rely on without stating it, when it mentions what the factor converts
    (`words`): 100 is a named constant in "15% of 80" or "dollars to cents", not in "14 boxes of 12
    pens" (where `14 * (1 - 12 / 100)` is a misreading)."""

    value: float
    reason: str
    words: re.Pattern[str]


def _constant(value: float, reason: str, words: str) -> Constant:
    return Constant(value, reason, re.compile(words, re.IGNORECASE))


_TIME = r"\b(?:hours?|minutes?|seconds?|days?|hrs?|mins?|secs?)\b|hourly|daily"
_MASS = r"\b(?:pounds?|lbs?|kg|kilograms?)\b"
_TEMPERATURE = r"fahrenheit|celsius|°"
# Keep it short: every entry lets its number pass wherever the question names its words.
CONSTANTS: tuple[Constant, ...] = (
    _constant(100, "percent, cents per dollar, cm per m",
              r"%|percent|\bcents?\b|\bcm\b|centimet|\bmet(?:er|re)s?\b"),
    _constant(60, "seconds per minute, minutes per hour", _TIME + r"|\bmph\b|km/h"),
    _constant(24, "hours per day", r"\b(?:days?|hours?)\b|daily|hourly"),
    _constant(7, "days per week", r"\bweeks?\b|weekly"),
    _constant(12, "months per year, inches per foot, a dozen",
              r"\b(?:months?|years?|inch(?:es)?|foot|feet|ft)\b|monthly|yearly|annual|dozen"),
    _constant(52, "weeks per year", r"\b(?:weeks?|years?)\b|weekly|yearly|annual"),
    _constant(365, "days per year", r"\b(?:days?|years?)\b|daily|yearly|annual"),
    _constant(1000, "metric prefixes (g per kg, m per km, ml per l)",
              r"kilo|\b(?:km|kg|grams?|ml|l)\b|met(?:er|re)|lit(?:er|re)|milli|thousand"),
    _constant(3600, "seconds per hour", _TIME),
    _constant(1440, "minutes per day", _TIME),
    _constant(86400, "seconds per day", _TIME),
    _constant(2.54, "cm per inch", r"\binch(?:es)?\b|\bcm\b|centimet"),
    _constant(1.609344, "km per mile", r"\b(?:miles?|km|mph)\b|kilomet"),
    _constant(2.20462, "pounds per kg", _MASS),
    _constant(0.453592, "kg per pound", _MASS),
    _constant(3.78541, "litres per US gallon", r"gallon|lit(?:er|re)"),
    _constant(32, "the Fahrenheit offset", _TEMPERATURE),
    _constant(1.8, "the Fahrenheit scale (9/5)", _TEMPERATURE),
    _constant(math.pi, "pi", r"\bpi\b|π|circle|radius|diameter|circumference|sphere|cylinder"),
)
# 9 and 5 are too common to be constants on their own; written beside 32, they are °F = °C × 9/5 + 32.
_FAHRENHEIT = (9, 5)
# A written-out non-integer constant may be rounded (3.785 litres per gallon, 3.14 for pi).
_CONSTANT_REL_TOL = 0.005

NUMBER_WORDS: dict[str, tuple[float, ...]] = {
    "two": (2,), "three": (3,), "four": (4,), "five": (5,), "six": (6,), "seven": (7,), "eight": (8,),
    "nine": (9,), "ten": (10,), "eleven": (11,), "twelve": (12,), "twenty": (20,), "thirty": (30,),
    "fifty": (50,), "hundred": (100,), "thousand": (1000,), "million": (1e6,), "dozen": (12,),
    "twice": (2,), "double": (2,), "doubled": (2,), "triple": (3,), "tripled": (3,),
    "half": (0.5, 2), "halve": (0.5, 2), "halved": (0.5, 2), "quarter": (0.25, 4), "third": (1 / 3, 3),
    # a date's month, for `date(2024, 3, 5)` from "March 5, 2024"
    **{m: (i,) for i, m in enumerate(("january", "february", "march", "april", "may", "june", "july",
                                      "august", "september", "october", "november", "december"), 1)},
}
_WORD = re.compile(r"[a-z]+")
_PERCENT = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*(?:%|percent\b)", re.IGNORECASE)
_FRACTION = re.compile(r"(?<![\w./])(\d+)\s*/\s*(\d+)(?![\w./])")
_EXPONENTS = (2, 3, 0.5)


@dataclass(slots=True)
class Literal:
    """One number literal of a call's code (its absolute value: `-3` is 3 under a minus)."""

    text: str
    value: float
    line: str  # the source line it is on, for the message that names it
    call: CallRecord


def question_values(texts: Iterable[str]) -> list[float]:
    """The numbers the user gave, with the forms a computation uses them in."""
    values: list[float] = []
    for text in texts:
        values += [abs(n.value) for n in numbers_in(text)]
        for m in _PERCENT.finditer(text):
            p = float(m.group(1)) / 100
            values += [p, 1 + p, 1 - p]
        for m in _FRACTION.finditer(text):
            if int(m.group(2)):
                values.append(int(m.group(1)) / int(m.group(2)))
        for word in _WORD.findall(text.lower()):
            values += NUMBER_WORDS.get(word, ())
    return values


def literals(rec: CallRecord) -> list[Literal] | None:
    """The number literals of a python call that need a source; None if the code does not parse."""
    if rec.code is None:
        return []
    tree = _parse(rec.code)
    if tree is None:
        return None
    lines = rec.code.splitlines()
    exempt = _exempt(tree)
    out: list[Literal] = []
    found = (n for n in ast.walk(tree) if _is_number(n) and id(n) not in exempt)
    for node in sorted(found, key=lambda n: (n.lineno, n.col_offset)):  # in reading order
        value = abs(float(node.value.real))  # type: ignore[union-attr]
        if value in (0.0, 1.0):
            continue
        text = ast.get_source_segment(rec.code, node) or repr(node.value)  # type: ignore[union-attr]
        line = lines[node.lineno - 1].strip() if 0 < node.lineno <= len(lines) else ""
        out.append(Literal(text, value, line, rec))
    return out


def _parse(code: str) -> ast.Module | None:
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError):
        pass
    # a notebook cell may hold IPython's %magic and !shell lines: read the python around them
    lines = [line[: len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!")) else line
             for line in code.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except (SyntaxError, ValueError):
        return None


def _is_number(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
        and math.isfinite(node.value)
    )


def _literal_value(node: ast.AST) -> float | None:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        node = node.operand
    return float(node.value) if _is_number(node) else None  # type: ignore[attr-defined]


def _exempt(tree: ast.AST) -> set[int]:
    """ids of the literal nodes in the exempt positions of the module docstring (range bounds aside:
    whether `11` is one past a sourced number depends on the sources, see `_range_bounds`)."""
    out: set[int] = set()

    def mark(node: ast.AST, every: bool = True) -> None:
        targets = ast.walk(node) if every else [node.operand if isinstance(node, ast.UnaryOp) else node]
        out.update(id(n) for n in targets if _is_number(n))

    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript):
            mark(node.slice)
        elif isinstance(node, ast.Call):
            name = _called(node)
            if name == "round" and len(node.args) == 2:
                mark(node.args[1], every=False)
            elif name == "pow" and len(node.args) == 2 and _exponent(node.args[1]):
                mark(node.args[1])
            for kw in node.keywords:
                digits = name == "round" and kw.arg == "ndigits"
                if kw.arg is not None and (kw.arg.endswith("tol") or digits):
                    mark(kw.value)
        elif isinstance(node, ast.BinOp):
            right = _literal_value(node.right)
            if isinstance(node.op, ast.Pow) and _exponent(node.right):
                mark(node.right)
            elif isinstance(node.op, ast.Mod) and right == 2:
                mark(node.right, every=False)
            elif isinstance(node.op, ast.FloorDiv) and right == 2 and _is_len(node.left):
                mark(node.right, every=False)
            elif isinstance(node.op, ast.Div) and right is not None and right == _terms(node.left):
                mark(node.right, every=False)
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_is_abs(side) for side in sides):  # the bound of a closeness test: a tolerance
                for side in sides:
                    if not _is_abs(side):
                        mark(side)
    return out


def _exponent(node: ast.AST) -> bool:
    """A square, cube, square root or cube root: `2`, `3`, `0.5`, `1 / 2`, `1 / 3`."""
    if _literal_value(node) in _EXPONENTS:
        return True
    return (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and _literal_value(node.left) == 1
            and _literal_value(node.right) in (2, 3))


def _is_abs(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and _called(node) == "abs"


def _is_len(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and _called(node) == "len"


def _called(call: ast.Call) -> str:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def _terms(node: ast.AST) -> int | None:
    """How many values `node` adds up: `a + b + c` is 3, `sum([a, b])` is 2; None for anything else."""
    if isinstance(node, ast.Call) and _called(node) == "sum" and len(node.args) == 1:
        arg = node.args[0]
        return len(arg.elts) if isinstance(arg, ast.List | ast.Tuple) and len(arg.elts) > 1 else None
    if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add)):
        return None
    n, stack = 0, [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, ast.BinOp) and isinstance(cur.op, ast.Add):
            stack += [cur.left, cur.right]
        else:
            n += 1
    return n


def _range_bounds(code: str) -> list[float]:
    """The literal arguments of `range(...)` calls in `code`."""
    tree = _parse(code)
    if tree is None:
        return []
    return [
        v
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and _called(node) == "range"
        for arg in node.args
        if (v := _literal_value(arg)) is not None
    ]


def _same(literal: float, text: str, seen: float) -> bool:
    """`literal` is `seen`, or `seen` rounded to the decimals the literal shows (a result printed
    as 12.345 may be typed as 12.35)."""
    if math.isclose(literal, seen, rel_tol=1e-9, abs_tol=1e-12):
        return True
    decimals = Number(text, literal).decimals if "e" not in text.lower() else 0
    return "." in text and math.isclose(round(seen, decimals), literal, rel_tol=1e-9, abs_tol=1e-12)


def constant_of(value: float) -> Constant | None:
    """The named constant `value` is (a written-out one may be rounded), None if none."""
    for c in CONSTANTS:
        if float(c.value).is_integer():
            if value == c.value:
                return c
        elif not value.is_integer() and math.isclose(value, c.value, rel_tol=_CONSTANT_REL_TOL):
            return c
    return None


def constant_reason(value: float, said: str) -> str | None:
    """Why `value` is a named constant the question `said` calls for, or a product of two of them
    (1200 = 12 × 100: a yearly percent rate per month); None if it is not."""
    c = constant_of(value)
    if c is not None:
        return c.reason if c.words.search(said) else None
    if value.is_integer():
        whole = [c for c in CONSTANTS if float(c.value).is_integer() and c.words.search(said)]
        for a in whole:
            for b in whole:
                if a.value <= b.value and a.value * b.value == value:
                    return f"{a.value:g} × {b.value:g}"
    return None


def numbers_sourced(
    user_texts: Sequence[str], records: Sequence[CallRecord], earlier_results: str = "", judge_from: int = 0
) -> tuple[str, str, dict[str, Any], str | None]:
    """(status, evidence, data, node of the first call with an unsourced number) of `sourced`.

    `user_texts`: what the user said in the conversation (not the loop's rollback messages, which
    quote the numbers a check rejected); `records`: the path's calls in order, of which those from
    `judge_from` on are judged (the current attempt's; the results of all are sources);
    `earlier_results`: the tool results of earlier turns. Pending when no successful python call of
    the attempt could be read."""
    given = question_values(user_texts)
    said = "\n".join(user_texts)
    seen = [abs(n.value) for n in numbers_in(earlier_results)]
    checked = unparsed = 0
    found: dict[str, str] = {}
    missing: list[Literal] = []
    for i, rec in enumerate(records):
        if rec.ok and rec.code is not None and i >= judge_from:
            lits = literals(rec)
            if lits is None:
                unparsed += 1
            else:
                checked += 1
                cell = [lit.value for lit in lits]
                bounds = _range_bounds(rec.code)
                for lit in lits:
                    where = _source(lit, given, seen, cell, bounds, said)
                    if where is None:
                        missing.append(lit)
                    else:
                        found.setdefault(lit.text, where)
        if rec.ok:  # its output is a source for the calls after it
            seen += [abs(n.value) for n in numbers_in(rec.observation)]
    data: dict[str, Any] = {"numbers": list(found) + [m.text for m in missing],
                            "unsourced": list(dict.fromkeys(m.text for m in missing))}
    if not checked:
        why = "no python call that succeeded could be read" if unparsed else "no python call succeeded"
        return "pending", why, data, None
    if missing:
        return "failed", _missing_sentence(missing, user_texts), data, missing[0].call.node
    if not found:
        return "passed", "the code states no numbers that need a source", data, None
    listed = ", ".join(f"{text} ({where})" for text, where in list(found.items())[:8])
    more = f" and {len(found) - 8} more" if len(found) > 8 else ""
    return "passed", f"every number in the code has a source: {listed}{more}", data, None


def _source(lit: Literal, given: list[float], seen: list[float], cell: list[float],
            bounds: list[float], said: str) -> str | None:
    if any(_same(lit.value, lit.text, v) for v in given):
        return "question"
    if any(_same(lit.value, lit.text, v) for v in seen):
        return "tool result"
    reason = constant_reason(lit.value, said)
    if reason is not None:
        return reason
    fahrenheit = 32 in cell and all(f in cell for f in _FAHRENHEIT) and constant_reason(32.0, said)
    if lit.value in _FAHRENHEIT and fahrenheit:
        return "the Fahrenheit ratio 9/5"
    if lit.value in bounds and any(math.isclose(lit.value - 1, v) for v in given + seen):
        return "a range bound one past a given number"
    return None


def _missing_sentence(missing: Sequence[Literal], user_texts: Sequence[str]) -> str:
    """The failure, as the model reads it before it retries: which number, where, and what the
    question does give (and, for a constant the question does not call for, what it would be)."""
    first = missing[0]
    names = list(dict.fromkeys(m.text for m in missing))
    which = ", ".join(names[:4]) + (f" (+{len(names) - 4} more)" if len(names) > 4 else "")
    line = first.line if len(first.line) <= 80 else first.line[:79] + "…"
    given = list(dict.fromkeys(n.text for text in user_texts for n in numbers_in(text)))
    numbers = f" ({', '.join(given[:8])})" if given else ""
    verb = "is" if len(names) == 1 else "are"
    sentence = f"{which} in `{line}` {verb} not a number of the question{numbers}, of a tool result or a "
    unasked = [(m.text, c) for m in missing if (c := constant_of(m.value)) is not None]
    if not unasked:
        return sentence + "named constant"
    text, c = unasked[0]
    return sentence + f"named constant the question calls for ({text} is {c.reason}; the question names none)"
