"""Unit conversion: length, weight, temperature, volume and time, one kind per (from, to) pair."""

from __future__ import annotations

from k2nb.nano.curriculum.slots import NAMES, const, dec, one_of
from k2nb.nano.curriculum.spec import Clauses, Family, Kind, checked

# (from unit, to unit, code expression over {x}, inverse check over {out})
CONVERSIONS = [
    ("km", "miles", "{x} / 1.609344", "{out} * 1.609344"),
    ("miles", "km", "{x} * 1.609344", "{out} / 1.609344"),
    ("kg", "pounds", "{x} * 2.20462", "{out} / 2.20462"),
    ("pounds", "kg", "{x} / 2.20462", "{out} * 2.20462"),
    ("Celsius", "Fahrenheit", "{x} * 9 / 5 + 32", "({out} - 32) * 5 / 9"),
    ("Fahrenheit", "Celsius", "({x} - 32) * 5 / 9", "{out} * 9 / 5 + 32"),
    ("inches", "cm", "{x} * 2.54", "{out} / 2.54"),
    ("cm", "inches", "{x} / 2.54", "{out} * 2.54"),
    ("liters", "gallons", "{x} / 3.78541", "{out} * 3.78541"),
    ("gallons", "liters", "{x} * 3.78541", "{out} / 3.78541"),
    ("hours", "minutes", "{x} * 60", "{out} / 60"),
    ("minutes", "seconds", "{x} * 60", "{out} / 60"),
]
QUESTIONS = [
    "Convert {x} {src} to {dst}.",
    "How many {dst} is {x} {src}?",
    "What is {x} {src} in {dst}?",
    "{name} has {x} {src}. How much is that in {dst}?",
    "Change {x} {src} into {dst}.",
    "Express {x} {src} in {dst}.",
    "Turn {x} {src} into {dst}.",
    "{x} {src} to {dst}, please.",
    "Compute {x} {src} as {dst}.",
    "Tell me how many {dst} there are in {x} {src}.",
    "Work out the value of {x} {src} in {dst}.",
    "A recipe says {x} {src}. {name} wants it in {dst}. What number is that?",
    "I have a reading of {x} {src}; please give it in {dst}.",
    "Convert from {src} to {dst}: {x} {src}.",
    "What do {x} {src} come to in {dst}?",
    "On a trip, {name} notes {x} {src}. How many {dst} is that?",
    "{name} needs {x} {src} written in {dst}. What is the value?",
    "Rewrite {x} {src} using {dst}.",
    "If something is {x} {src}, how much is that in {dst}?",
    "{x} {src} equals how many {dst}?",
    "I measured {x} {src}. What is it in {dst}?",
]
CLAUSES = Clauses(
    facts=[["{name} has {x} {src}", "the measurement is {x} {src}", "a value of {x} {src} is given",
            "the label says {x} {src}", "the reading is {x} {src}"],
           ["the answer must be in {dst}", "{name} needs it in {dst}", "the target unit is {dst}",
            "we want {dst}", "the form asks for {dst}"]],
    asks=["What is the value?", "Convert it.", "What number is that?", "Give the converted value.",
          "How much is that?"],
)


def conversion(src: str, dst: str, expr: str, inverse: str) -> Kind:
    """The kind that converts ``src`` to ``dst`` and checks by converting back."""
    return Kind(f"{src}-{dst}", tag=(src, dst), key=("x",), after=(("src", const(src)), ("dst", const(dst))),
                steps=checked(f"{dst.capitalize()} = {expr}.", f"print(round({expr}, 2))",
                              "Check by converting back.", f"print(abs({inverse} - {{x}}) < 0.05)"))


FAMILY = Family(
    "units",
    n_heldout=2,
    questions=QUESTIONS,
    clauses=CLAUSES,
    slots=(("x", dec(1, 400, 0.6)),),
    people=(("name", one_of(*NAMES)),),
    unit=" {dst}",
    numeric=("x",),
    kinds=tuple(conversion(*c) for c in CONVERSIONS),
)
