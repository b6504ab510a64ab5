"""The `unit` check: the answer names the unit the question asks for."""

from __future__ import annotations

import pytest

from k2nb.agent import think
from k2nb.agent.units import asked_units, stated_unit, unit_asked
from k2nb.backends.scripted import ScriptedBackend, Turn


@pytest.mark.parametrize(
    ("question", "answer", "status"),
    [
        # converted the wrong way: the answer names the question's own starting unit
        ("42 kilometres, please express that in miles.", "The answer is 67.59 km.", "failed"),
        ("Bake at 350 F. What is that in Celsius?", "The answer is 662.0 Fahrenheit.", "failed"),
        ("The race is 5,000 meters. What is that in kilometers?", "The answer is 5000000 meters.", "failed"),
        ("Convert 5 ft to cm", "The answer is 152.4 cm.", "passed"),
        ("Convert 20 °C to °F", "The answer is 68.0 °F.", "passed"),
        ("A train moves at 84 km per hour. How many km in 7 hours?", "The answer is 588 km.", "passed"),
        ("How many hours and minutes is 135 minutes?", "The answer is 2 hours 15 minutes.", "passed"),
        ("What is the speed in km/h?", "The answer is 60 km/h.", "passed"),
        # nothing to judge: no unit asked for, or none stated
        ("How far in 3 hours at 60 km/h?", "The answer is 180 km.", None),
        ("What is 14 times 12?", "The answer is 168.", None),
        ("I measured 23 minutes. What is it in seconds?", "The answer is 1380.", None),
    ],
)
def test_what_the_unit_check_judges(question: str, answer: str, status: str | None) -> None:
    found = unit_asked(question, answer)
    assert (found[0] if found else None) == status, found


def test_units_are_compared_by_what_they_name() -> None:
    assert asked_units("What's that in kilometres, or in miles?") == {"km", "miles"}
    assert stated_unit("The answer is 3 kilometers.") == stated_unit("It is 3 km") == "km"
    assert stated_unit("about 12 degrees Celsius") == stated_unit("12 °C") == "Celsius"
    # a lower-case c or f is a letter, not a temperature scale
    assert stated_unit("The answer is 3 c.") is None and asked_units("Convert it to f") == set()
    _, evidence, data = unit_asked("My bike route is 26.2 miles long. What's the length in km?",
                                   "The answer is 16.28 miles.")
    assert evidence == "the answer is in miles, but the question asks for km"
    assert data == {"stated": "miles", "asked": ["km"]}


def test_an_answer_in_the_wrong_unit_rolls_back() -> None:
    q = "42 kilometres, please express that in miles."
    sb = ScriptedBackend(
        [
            Turn("Given: 42. Km = 42 * 1.609344.", [("python", {"code": "print(round(42 * 1.609344, 2))"})]),
            Turn("", answer="The answer is 67.59 km."),
            Turn("Given: 42. Miles = 42 / 1.609344.",
                 [("python", {"code": "print(round(42 / 1.609344, 2))"})]),
            Turn("", answer="The answer is 26.1 miles."),
        ]
    )
    r = think(q, backend=sb)
    unit = [c for c in r.checks if c.kind == "unit"]
    assert [c.status for c in unit] == ["failed", "passed"]
    assert "answer in the unit asked: the answer is in km, but the question asks for miles" in sb.prompts[2]
    assert r.answer == "The answer is 26.1 miles."
