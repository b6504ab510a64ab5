"""The `unit` check: an answer states the unit the question asks for.

"42 kilometres, please express that in miles" answered "The answer is 67.59 km." converted the
wrong way: the number is consistent with the model's code and its check, but the unit it names is the
question's own starting unit. The question asks for a unit by "in / into / to <unit>" ("in miles",
"to Celsius") or "how many <unit>"; the answer states one right after its last number ("67.59 km",
"12 °C", "5 degrees Fahrenheit"). Units are compared by what they name (`km`, `kilometres` and
`kilometer` are one unit). There is nothing to judge, and no check, when the answer states no unit
of the table below or the question asks for none ("What is 14 times 12?").
"""

from __future__ import annotations

import re
from typing import Any

# unit → the words that name it (lower case; "C" and "F" only as capitals or with a degree sign)
_NAMES: dict[str, tuple[str, ...]] = {
    "km": ("km", "kilometre", "kilometres", "kilometer", "kilometers"),
    "miles": ("mi", "mile", "miles"),
    "metres": ("m", "metre", "metres", "meter", "meters"),
    "cm": ("cm", "centimetre", "centimetres", "centimeter", "centimeters"),
    "mm": ("mm", "millimetre", "millimetres", "millimeter", "millimeters"),
    "feet": ("ft", "foot", "feet"),
    "inches": ("inch", "inches"),
    "yards": ("yd", "yard", "yards"),
    "kg": ("kg", "kilogram", "kilograms", "kilo", "kilos"),
    "grams": ("g", "gram", "grams"),
    "pounds": ("lb", "lbs", "pound", "pounds"),
    "ounces": ("oz", "ounce", "ounces"),
    "litres": ("l", "litre", "litres", "liter", "liters"),
    "ml": ("ml", "millilitre", "millilitres", "milliliter", "milliliters"),
    "gallons": ("gallon", "gallons"),
    "Celsius": ("celsius", "°c", "c"),
    "Fahrenheit": ("fahrenheit", "°f", "f"),
    "kelvin": ("kelvin",),
    "seconds": ("s", "sec", "secs", "second", "seconds"),
    "minutes": ("min", "mins", "minute", "minutes"),
    "hours": ("h", "hr", "hrs", "hour", "hours"),
    "days": ("day", "days"),
    "weeks": ("week", "weeks"),
    "mph": ("mph",),
    "km/h": ("km/h", "kmh", "kph"),
}
_UNIT_OF = {name: unit for unit, names in _NAMES.items() for name in names}
_CAPITAL_ONLY = {"c", "f"}  # "c" and "f" are letters too: only "C" / "F" name a temperature scale
_WORD = r"°?\s?[A-Za-z][A-Za-z/]*"
_NUMBER = r"-?\d[\d,]*(?:\.\d+)?"
_ASKED = re.compile(rf"\b(?:in|into|to)\s+(?:the\s+)?(?:degrees\s+)?({_WORD})|\bhow\s+many\s+({_WORD})",
                    re.IGNORECASE)
_AND = re.compile(rf"\s*(?:,|and|or)\s+({_WORD})", re.IGNORECASE)  # "in hours and minutes"
_STATED = re.compile(rf"({_NUMBER})\s*(?:degrees\s+)?({_WORD})")


def _unit(word: str) -> str | None:
    """The unit a word names, or None ("boxes", "the", a lower-case "c")."""
    w = word.replace(" ", "")
    key = w.lower()
    if key in _CAPITAL_ONLY and w != w.upper():
        return None
    return _UNIT_OF.get(key)


def asked_units(question: str) -> set[str]:
    """The units the question asks the answer in ("in miles", "to Celsius", "how many km")."""
    asked: set[str] = set()
    for m in _ASKED.finditer(question):
        unit, end = _unit(m.group(1) or m.group(2)), m.end()
        while unit is not None:
            asked.add(unit)
            more = _AND.match(question, end)
            unit, end = (_unit(more.group(1)), more.end()) if more else (None, end)
    return asked


def stated_unit(answer: str) -> str | None:
    """The unit named right after the answer's last number, if the table knows it."""
    last = None
    for m in _STATED.finditer(answer):
        last = m
    return _unit(last.group(2)) if last is not None else None


def unit_asked(question: str, answer: str) -> tuple[str, str, dict[str, Any]] | None:
    """(status, evidence, data) of the `unit` check; None when the answer states no known unit or
    the question asks for none."""
    stated, asked = stated_unit(answer), asked_units(question)
    if stated is None or not asked:
        return None
    data = {"stated": stated, "asked": sorted(asked)}
    wanted = " or ".join(sorted(asked))
    if stated in asked:
        return "passed", f"the answer is in {stated}, as the question asks", data
    return "failed", f"the answer is in {stated}, but the question asks for {wanted}", data
