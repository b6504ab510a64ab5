"""Questions that cannot be answered: a number is missing, or nothing is asked to be computed.

The honest answer is to say so, without a tool call: "I can't tell what to compute from this
question." and the reason. The missing-number questions are the word problems of ``words`` with one
number replaced by "some" or left out, so that what tells them apart is exactly the missing number.
They are a small share of the mix (see ``families.TRAIN_MIX``): the model must not learn to give up.
"""

from __future__ import annotations

from k2nb.nano.curriculum.families.words import PEOPLE
from k2nb.nano.curriculum.grammar import Grammar
from k2nb.nano.curriculum.slots import ints
from k2nb.nano.curriculum.spec import Family, Kind

ABSTAIN = "I can't tell what to compute from this question."
NO_CALCULATION = "it does not ask for a number or a calculation"

# (question forms, the reason; both over the slots)
MISSING = [
    (
        [
            "{name} has some {boxes} with {a} {objs} each. How many {objs} are there in total?",
            "There are {boxes} of {objs}, {a} in every {box}. How many {objs} in all?",
        ],
        "it does not say how many {boxes} there are",
    ),
    (
        ["A shop sells {boxes} of {objs}. How many {objs} are there?", "How many {objs} are in the {boxes}?"],
        "it does not say how many {boxes} there are or how many {objs} are in each",
    ),
    (
        [
            "{name} had {a} {objs} and gave some away. How many are left?",
            "There were {a} {objs}. Some of them were sold. How many {objs} remain?",
        ],
        "it does not say how many {objs} were given away or sold",
    ),
    (
        ["{name} buys {a} {objs}. How much does {name} pay?", "What is the total cost of {a} {objs}?"],
        "it does not say what one {obj} costs",
    ),
    (
        [
            "{name} splits the {objs} evenly among {a} {group}. How many does each get?",
            "Some {objs} are shared equally by {a} {group}. What does each get?",
        ],
        "it does not say how many {objs} there are",
    ),
    (
        ["What is {a}% of the price?", "Find {a} percent of the total."],
        "it does not give the number to take the percent of",
    ),
    (
        ["How many seconds are in a few hours?", "How many minutes are in some days?"],
        "it does not say how many hours or days",
    ),
    (
        [
            "The price went up from {a} dollars. What is the percent change?",
            "Sales rose to {a}. By what percent did they increase?",
        ],
        "it gives only one of the two values",
    ),
    (
        [
            "{name} has more {objs} than {name2}. How many more?",
            "{name2} has fewer {objs} than {name}. What is the difference?",
        ],
        "it does not say how many {objs} either of them has",
    ),
    (
        ["A car drives for {a} hours. How far does it go?", "{name} runs for {a} minutes. How far is that?"],
        "it does not give the speed",
    ),
    (["What is the average of the numbers?", "Find the median of the list."], "it does not give the numbers"),
    (
        ["Divide {a} by the number of {group}.", "What is {a} times the number of {boxes}?"],
        "it does not say what the second number is",
    ),
    (
        [
            "{name} earns {a} dollars a week and spends part of it. How much is left?",
            "From a budget of {a} dollars some money is spent. What is left?",
        ],
        "it does not say how much is spent",
    ),
]
CHAT = [
    "Tell me a story about {objs}.",
    "What is your favourite {obj}?",
    "Why do people like {objs}?",
    "Write a poem about {objs}.",
    "Is {name} a nice name?",
    "What color are {objs}?",
    "Hello! How are you today?",
    "Can you recommend a good book?",
    "Who is {name}?",
    "Do you like {objs}?",
    "What should I cook tonight?",
    "Describe a {box} of {objs}.",
    "Say something nice about {name2}.",
]


def missing(i: int, forms: list[str], reason: str) -> Kind:
    return Kind(
        f"missing{i}",
        steps=(),
        grammar=Grammar("", whole=[(f, "") for f in forms], distract=False),
        slots=(("a", ints(2, 90)),),
        key=("a",),
        abstain=reason,
        numeric=(),
    )


FAMILY = Family(
    "abstain",
    n_heldout=1,
    people=PEOPLE,
    heldout_numbers=False,
    kinds=(
        *(missing(i, forms, reason) for i, (forms, reason) in enumerate(MISSING)),
        Kind(
            "chat",
            steps=(),
            grammar=Grammar("", whole=[(f, "") for f in CHAT], distract=False),
            slots=(),
            abstain=NO_CALCULATION,
            numeric=(),
        ),
    ),
)
