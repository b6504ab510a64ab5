"""Arithmetic read from words: the operation is told by the question's own words, not by a template.

Every kind is a ``Grammar`` (roles → clause alternatives, asks in three forms, distractors, numbers
as people write them) and one operation. The plan quotes the key words and writes the expression
from the question's numbers ('Key word "each": multiply. 14 * 12.'); the code is that expression;
the check undoes it or recomputes it another way. Numbers in code come from the question or from
named constants (60, 100, 3600, ...), never invented.
"""

from __future__ import annotations

import random
from typing import Any

from k2nb.nano.curriculum import lexicon
from k2nb.nano.curriculum.families.stats import STATISTICS
from k2nb.nano.curriculum.grammar import Grammar
from k2nb.nano.curriculum.slots import NAMES, dec, derived, int_list, ints, money, one_of
from k2nb.nano.curriculum.spec import Draws, Family, Kind, Sampler, checked

# (singular, plural): things counted, containers, groups of people
OBJECTS = [
    ("apple", "apples"),
    ("pen", "pens"),
    ("pencil", "pencils"),
    ("book", "books"),
    ("card", "cards"),
    ("cookie", "cookies"),
    ("sticker", "stickers"),
    ("coin", "coins"),
    ("marble", "marbles"),
    ("ticket", "tickets"),
    ("cup", "cups"),
    ("plate", "plates"),
    ("toy", "toys"),
    ("candle", "candles"),
    ("lemon", "lemons"),
    ("egg", "eggs"),
    ("bottle", "bottles"),
    ("chair", "chairs"),
    ("flower", "flowers"),
    ("balloon", "balloons"),
    ("orange", "oranges"),
    ("crayon", "crayons"),
    ("muffin", "muffins"),
    ("bead", "beads"),
    ("nail", "nails"),
    ("seed", "seeds"),
    ("shirt", "shirts"),
    ("sock", "socks"),
    ("hat", "hats"),
    ("cupcake", "cupcakes"),
    ("brick", "bricks"),
    ("button", "buttons"),
    ("stamp", "stamps"),
    ("potato", "potatoes"),
    ("tomato", "tomatoes"),
    ("glass", "glasses"),
    ("peach", "peaches"),
]
CONTAINERS = [
    ("box", "boxes"),
    ("bag", "bags"),
    ("crate", "crates"),
    ("pack", "packs"),
    ("carton", "cartons"),
    ("jar", "jars"),
    ("tray", "trays"),
    ("shelf", "shelves"),
    ("row", "rows"),
    ("basket", "baskets"),
    ("bundle", "bundles"),
    ("case", "cases"),
    ("bin", "bins"),
    ("packet", "packets"),
    ("drawer", "drawers"),
    ("bucket", "buckets"),
]
GROUPS = [
    "friends",
    "students",
    "kids",
    "children",
    "players",
    "guests",
    "workers",
    "families",
    "teams",
    "people",
    "classes",
    "neighbors",
]


# Shares of things and containers drawn from the open word list instead of the pools above.
OPEN_THINGS = 0.4
OPEN_CONTAINERS = 0.25


def people(rng: random.Random, v: dict[str, Any], split: str) -> dict[str, str]:
    """Two different names, a thing, a container and a group."""
    name, name2 = rng.sample(NAMES, 2)
    obj, objs = rng.choice(OBJECTS) if rng.random() >= OPEN_THINGS else lexicon.thing(rng)
    box, boxes = rng.choice(CONTAINERS) if rng.random() >= OPEN_CONTAINERS else lexicon.thing(rng, 0.0)
    return {
        "name": name,
        "name2": name2,
        "obj": obj,
        "objs": objs,
        "box": box,
        "boxes": boxes,
        "group": rng.choice(GROUPS),
    }


PEOPLE: Draws = ((None, people),)


def below(slot: str, lo: int = 1) -> Sampler:
    """An integer in [lo, value of ``slot`` - 1]."""
    return lambda rng, v, split: str(rng.randint(lo, int(float(v[slot])) - 1))


def multiple_of(slot: str, lo: int, hi: int) -> Sampler:
    """``slot`` times an integer in [lo, hi]: a split that comes out even."""
    return lambda rng, v, split: str(int(v[slot]) * rng.randint(lo, hi))


def below_product(rng: random.Random, v: dict[str, Any], split: str) -> str:
    """An integer below a * b: what is given away of a * b things."""
    return str(rng.randint(1, int(v["a"]) * int(v["b"]) - 1))


ANY_INT = one_of(ints(2, 99), ints(100, 999), ints(1000, 9999), dec(1, 99, 0.0))
SMALL = ints(2, 60)

# --- the grammars -----------------------------------------------------------------------------

EACH = Grammar(
    "multiply",
    facts=[
        [
            ("{name} has {a} {boxes}", ""),
            ("there are {a} {boxes}", ""),
            ("a shop sells {a} {boxes}", ""),
            ("I have {a} {boxes}", ""),
            ("I buy {a} {boxes}", ""),
            ("{name} buys {a} {boxes}", ""),
            ("{a} {boxes} arrive", ""),
            ("the store gets {a} {boxes}", ""),
            ("{name} fills {a} {boxes}", ""),
        ],
        [
            ("each {box} holds {b} {objs}", "each"),
            ("every {box} has {b} {objs}", "every"),
            ("there are {b} {objs} in each {box}", "each"),
            ("each {box} contains {b} {objs}", "each"),
            ("one {box} holds {b} {objs}", "one"),
            ("{b} {objs} fit in every {box}", "every"),
            ("a {box} has {b} {objs} in it", "a {box} has"),
        ],
    ],
    joined=[
        ("{name} buys {a} {boxes} with {b} {objs} each", "each"),
        ("a shop sells {a} {boxes} of {b} {objs}", "of"),
        ("{a} {boxes} hold {b} {objs} apiece", "apiece"),
        ("there are {a} {boxes} with {b} {objs} in every {box}", "every"),
        ("{name} has {a} {boxes} and each has {b} {objs}", "each"),
        ("{b} {objs} are packed in each of {a} {boxes}", "each"),
        ("{name} sets out {a} {boxes} of {b} {objs}", "of"),
    ],
    asks=[
        ("How many {objs} are there in total?", "in total"),
        ("How many {objs} are there?", ""),
        ("How many {objs} is that altogether?", "altogether"),
        ("What is the total number of {objs}?", "total"),
        ("How many {objs} does {name} have?", ""),
        ("How many {objs} in all?", "in all"),
    ],
    commands=[
        ("Find the total number of {objs}.", "total"),
        ("Work out how many {objs} there are.", ""),
        ("Compute the number of {objs}.", ""),
    ],
    statements=[
        ("I want to know how many {objs} there are in all.", "in all"),
        ("I need the total number of {objs}.", "total"),
    ],
    numbers=("a", "b"),
)

PRICE = Grammar(
    "multiply",
    facts=[
        [
            ("{name} buys {a} {objs}", ""),
            ("{name} wants {a} {objs}", ""),
            ("a class needs {a} {objs}", ""),
            ("{name} orders {a} {objs}", ""),
        ],
        [
            ("each {obj} costs {b} dollars", "each"),
            ("one {obj} costs {b} dollars", "one"),
            ("the price is {b} dollars per {obj}", "per"),
            ("{objs} are {b} dollars each", "each"),
            ("a single {obj} is {b} dollars", "single"),
        ],
    ],
    joined=[
        ("{name} buys {a} {objs} at {b} dollars each", "each"),
        ("{a} {objs} cost {b} dollars each", "each"),
        ("{name} pays {b} dollars for each of {a} {objs}", "each"),
        ("a shop sells {a} {objs} for {b} dollars apiece", "apiece"),
    ],
    asks=[
        ("How much does {name} pay?", ""),
        ("What is the total cost?", "total"),
        ("How many dollars is that in total?", "in total"),
        ("How much do they cost altogether?", "altogether"),
        ("How much money is needed?", ""),
    ],
    commands=[
        ("Find the total cost.", "total"),
        ("Work out the bill.", ""),
        ("Compute the total price.", "total"),
    ],
    statements=[("I need to know the total price.", "total")],
    numbers=("a",),
)

TIMES = Grammar(
    "multiply",
    whole=[
        ("What is {a} times {b}?", "times"),
        ("Compute {a} times {b}.", "times"),
        ("Multiply {a} by {b}.", "multiply"),
        ("What is {a} multiplied by {b}?", "multiplied"),
        ("What is the product of {a} and {b}?", "product"),
        ("Find the product of {a} and {b}.", "product"),
        ("How much is {a} times {b}?", "times"),
        ("{a} times {b} is what?", "times"),
        ("Calculate {a} multiplied by {b}.", "multiplied"),
        ("What do you get when you multiply {a} by {b}?", "multiply"),
        ("I need {a} times {b}.", "times"),
        ("Tell me the product of {a} and {b}.", "product"),
        ("What is {a} * {b}?", "*"),
        ("Work out {a} times {b}.", "times"),
        ("Multiply {a} and {b} together.", "multiply"),
        ("What is {a} × {b}?", "×"),
        ("What is {a} x {b}?", "x"),
        ("Calculate {a} * {b}.", "*"),
    ],
    numbers=("a", "b"),
)

DIVIDE = Grammar(
    "divide",
    whole=[
        ("What is {a} divided by {b}?", "divided by"),
        ("Divide {a} by {b}.", "divide"),
        ("Compute {a} divided by {b}.", "divided by"),
        ("What is the quotient of {a} and {b}?", "quotient"),
        ("Find the quotient when {a} is divided by {b}.", "quotient"),
        ("How much is {a} divided by {b}?", "divided by"),
        ("What is {a} / {b}?", "/"),
        ("What do you get if you divide {a} by {b}?", "divide"),
        ("Calculate {a} over {b}.", "over"),
        ("I need {a} divided by {b}.", "divided by"),
        ("Work out {a} divided by {b}.", "divided by"),
        ("Tell me the quotient of {a} and {b}.", "quotient"),
        ("What is {a} ÷ {b}?", "÷"),
        ("Calculate {a} / {b}.", "/"),
    ],
    numbers=("a", "b"),
)

SPLIT = Grammar(
    "divide",
    facts=[
        [
            ("{name} has {a} {objs}", ""),
            ("there are {a} {objs}", ""),
            ("a {box} holds {a} {objs}", ""),
            ("{name} bakes {a} {objs}", ""),
        ],
        [
            ("{name} shares them equally among {b} {group}", "equally"),
            ("they are split evenly between {b} {group}", "evenly"),
            ("{b} {group} share them equally", "equally"),
            ("{name} divides them among {b} {group}", "divides"),
            ("they go to {b} {group} in equal parts", "equal"),
        ],
    ],
    joined=[
        ("{name} splits {a} {objs} evenly among {b} {group}", "evenly"),
        ("{a} {objs} are shared equally by {b} {group}", "equally"),
        ("{b} {group} divide {a} {objs} equally", "equally"),
        ("{name} hands out {a} {objs} to {b} {group}, the same number to each", "same number"),
    ],
    asks=[
        ("How many {objs} does each get?", "each"),
        ("How many does each one get?", "each"),
        ("How many {objs} are in each share?", "each"),
        ("What does each get?", "each"),
    ],
    commands=[("Find how many {objs} each gets.", "each"), ("Work out each share.", "each")],
    statements=[("I want to know how many {objs} each of them gets.", "each")],
    ordered=True,
    numbers=("a",),
)

BILL = Grammar(
    "divide",
    facts=[
        [
            ("the bill is {a} dollars", ""),
            ("dinner costs {a} dollars", ""),
            ("a trip costs {a} dollars", ""),
            ("the rent is {a} dollars", ""),
        ],
        [
            ("{b} {group} split it evenly", "evenly"),
            ("it is shared equally by {b} {group}", "equally"),
            ("{b} {group} pay equal parts", "equal"),
        ],
    ],
    joined=[
        ("{b} {group} split a bill of {a} dollars evenly", "evenly"),
        ("a {a} dollar bill is shared equally by {b} {group}", "equally"),
    ],
    asks=[
        ("How much does each one pay?", "each"),
        ("How much is each share?", "each"),
        ("How many dollars does each pay?", "each"),
    ],
    commands=[("Find what each pays.", "each")],
    statements=[("I want to know each share.", "each")],
    ordered=True,
    numbers=("a",),
)

LEFT = Grammar(
    "subtract",
    facts=[
        [
            ("{name} has {a} {objs}", ""),
            ("{name} had {a} {objs}", ""),
            ("there were {a} {objs} in a {box}", ""),
            ("a shop had {a} {objs}", ""),
            ("{name} starts with {a} {objs}", ""),
            ("I have {a} {objs}", ""),
            ("I had {a} {objs}", ""),
        ],
        [
            ("{name} gives away {b}", "gives away"),
            ("{name} gave {b} to {name2}", "gave"),
            ("{b} of them were sold", "sold"),
            ("{name} ate {b} of them", "ate"),
            ("{b} are lost", "lost"),
            ("{name} uses {b} of them", "uses"),
            ("{b} {objs} break", "break"),
            ("{name2} takes {b}", "takes"),
            ("then {b} are taken away", "taken away"),
            ("I give away {b}", "give away"),
            ("I ate {b}", "ate"),
        ],
    ],
    joined=[
        ("{name} had {a} {objs} and gave away {b}", "gave away"),
        ("{b} of the {a} {objs} were sold", "sold"),
        ("out of {a} {objs}, {b} are used", "used"),
    ],
    asks=[
        ("How many {objs} are left?", "left"),
        ("How many {objs} does {name} have left?", "left"),
        ("How many are left?", "left"),
        ("How many {objs} remain?", "remain"),
        ("How many do I have left?", "left"),
        ("How many {objs} does {name} have now?", "now"),
        ("What is left?", "left"),
    ],
    commands=[("Find how many {objs} are left.", "left"), ("Work out how many remain.", "remain")],
    statements=[("I want to know how many {objs} are left.", "left")],
    ordered=True,
    numbers=("a", "b"),
)

MONEY_LEFT = Grammar(
    "subtract",
    facts=[
        [
            ("{name} has {a} dollars", ""),
            ("{name} had {a} dollars", ""),
            ("a wallet holds {a} dollars", ""),
            ("the budget is {a} dollars", ""),
            ("I have {a} dollars", ""),
            ("I had {a} dollars", ""),
        ],
        [
            ("I spend {b} dollars", "spend"),
            ("I spent {b} on {objs}", "spent"),
            ("{name} spends {b} dollars", "spends"),
            ("{name} pays {b} dollars for a {obj}", "pays"),
            ("{b} dollars go on {objs}", "go on"),
            ("{name} spent {b} on {objs}", "spent"),
        ],
    ],
    joined=[("{name} had {a} dollars and spent {b}", "spent"), ("from {a} dollars, {name} pays {b}", "pays")],
    asks=[
        ("How much money is left?", "left"),
        ("How much does {name} have left?", "left"),
        ("How many dollars remain?", "remain"),
        ("What is left?", "left"),
        ("How much is left?", "left"),
        ("How much do I have left?", "left"),
    ],
    commands=[("Find how much is left.", "left")],
    statements=[("I want to know how much money is left.", "left")],
    ordered=True,
    numbers=("a",),
)

MORE = Grammar(
    "subtract",
    facts=[
        [("{name} has {a} {objs}", ""), ("{name} collected {a} {objs}", "")],
        [("{name2} has {b} {objs}", ""), ("{name2} collected {b}", "")],
    ],
    asks=[
        ("How many more {objs} does {name} have than {name2}?", "how many more"),
        ("How many fewer {objs} does {name2} have?", "fewer"),
        ("What is the difference between their {objs}?", "difference"),
        ("By how many {objs} does {name} lead?", "by how many"),
        ("How many more does {name} have?", "more"),
    ],
    commands=[("Find how many more {objs} {name} has.", "more")],
    statements=[("I want to know how many more {objs} {name} has.", "more")],
    whole=[
        ("How much more is {a} than {b}?", "more"),
        ("What is the difference between {a} and {b}?", "difference"),
        ("What is the difference between {b} and {a}?", "difference"),
        ("What is {a} minus {b}?", "minus"),
        ("Subtract {b} from {a}.", "subtract"),
        ("What is {a} take away {b}?", "take away"),
        ("How much bigger is {a} than {b}?", "bigger"),
        ("Compute {a} minus {b}.", "minus"),
        ("What is {a} - {b}?", "-"),
    ],
    p_whole=0.45,
    numbers=("a", "b"),
)

TOTAL = Grammar(
    "add",
    facts=[
        [("{name} has {a} {objs}", ""), ("{name} picked {a} {objs}", "")],
        [("{name2} has {b} {objs}", ""), ("{name2} picked {b}", "")],
    ],
    asks=[
        ("How many {objs} do they have in total?", "in total"),
        ("How many {objs} do they have together?", "together"),
        ("How many {objs} are there altogether?", "altogether"),
        ("What is the combined number of {objs}?", "combined"),
        ("How many {objs} in all?", "in all"),
    ],
    commands=[("Find the total number of {objs}.", "total")],
    statements=[("I want to know how many {objs} they have together.", "together")],
    whole=[
        ("What is {a} plus {b}?", "plus"),
        ("Add {a} and {b}.", "add"),
        ("What is the sum of {a} and {b}?", "sum"),
        ("Find the sum of {a} and {b}.", "sum"),
        ("What is {a} + {b}?", "+"),
        ("Add {b} to {a}.", "add"),
        ("Compute {a} plus {b}.", "plus"),
        ("What do {a} and {b} add up to?", "add up"),
    ],
    p_whole=0.45,
    numbers=("a", "b"),
)

GAIN = Grammar(
    "add",
    facts=[
        [
            ("{name} has {a} {objs}", ""),
            ("there are {a} {objs} in a {box}", ""),
            ("{name} had {a} {objs}", ""),
        ],
        [
            ("{name} gets {b} more", "more"),
            ("{name} buys {b} more", "more"),
            ("{name2} gives {name} {b} more", "more"),
            ("{b} more arrive", "more"),
            ("then {b} {objs} are added", "added"),
        ],
    ],
    asks=[
        ("How many {objs} does {name} have now?", "now"),
        ("How many are there now?", "now"),
        ("What is the new total?", "total"),
        ("How many {objs} are there in the end?", ""),
    ],
    commands=[("Find the new number of {objs}.", "")],
    statements=[("I want to know how many {objs} there are now.", "now")],
    ordered=True,
    numbers=("a", "b"),
)

PERCENT_OF = Grammar(
    "percent of means times the percent over 100",
    whole=[
        ("What is {p}% of {a}?", "% of"),
        ("What is {p} percent of {a}?", "percent of"),
        ("Find {p}% of {a}.", "% of"),
        ("Compute {p} percent of {a}.", "percent of"),
        ("How much is {p}% of {a}?", "% of"),
        ("Calculate {p}% of {a}.", "% of"),
        ("{p}% of {a} is how much?", "% of"),
        ("What number is {p} percent of {a}?", "percent of"),
        ("Take {p}% of {a}.", "% of"),
    ],
    numbers=("a",),
)

CHANGE = Grammar(
    "percent change is (new - old) / old * 100",
    facts=[
        [
            ("the price went from {a} to {b} dollars", "from"),
            ("sales rose from {a} to {b}", "rose"),
            ("a town grew from {a} to {b} people", "grew"),
            ("visitors went up from {a} to {b}", "went up"),
            ("{name}'s rent changed from {a} to {b} dollars", "changed"),
        ]
    ],
    asks=[
        ("What is the percent change?", "percent change"),
        ("By what percent did it increase?", "percent"),
        ("What is the percentage increase?", "percentage increase"),
        ("By what percent did it grow?", "percent"),
    ],
    commands=[
        ("Find the percent change.", "percent change"),
        ("Compute the percentage increase.", "percentage increase"),
    ],
    statements=[("I want the percent change.", "percent change")],
    whole=[
        ("What is the percent change from {a} to {b}?", "percent change"),
        ("What is the percentage increase from {a} to {b}?", "percentage increase"),
        ("By what percent did the price go up from {a} to {b} dollars?", "percent"),
        ("Find the percentage change from {a} to {b}.", "percentage change"),
        ("By what percent does {a} increase to become {b}?", "percent"),
    ],
    p_whole=0.3,
    numbers=("a", "b"),
)

DROP = Grammar(
    "percent decrease is (old - new) / old * 100",
    facts=[
        [
            ("the price fell from {a} to {b} dollars", "fell"),
            ("sales dropped from {a} to {b}", "dropped"),
            ("a town shrank from {a} to {b} people", "shrank"),
            ("the score went down from {a} to {b}", "went down"),
        ]
    ],
    asks=[
        ("By what percent did it decrease?", "percent"),
        ("What is the percentage decrease?", "percentage decrease"),
        ("By what percent did it drop?", "percent"),
    ],
    commands=[("Find the percent decrease.", "percent decrease")],
    statements=[("I want the percent decrease.", "percent decrease")],
    whole=[("What is the percent decrease from {a} to {b}?", "percent decrease")],
    p_whole=0.3,
    numbers=("a", "b"),
)

TWO_STEP = Grammar(
    "multiply, then subtract",
    facts=[
        [
            ("{name} buys {a} {boxes} with {b} {objs} each", "each"),
            ("{name} has {a} {boxes} of {b} {objs}", "of"),
            ("there are {a} {boxes} and each holds {b} {objs}", "each"),
        ],
        [
            ("{name} gives away {c} {objs}", "gives away"),
            ("{c} {objs} are sold", "sold"),
            ("{c} {objs} get lost", "lost"),
            ("{name2} takes {c} {objs}", "takes"),
        ],
    ],
    asks=[
        ("How many {objs} are left?", "left"),
        ("How many {objs} remain?", "remain"),
        ("How many {objs} does {name} have now?", "now"),
    ],
    commands=[("Find how many {objs} are left.", "left")],
    statements=[("I want to know how many {objs} are left.", "left")],
    ordered=True,
    numbers=("c",),
)

CHANGE_BACK = Grammar(
    "multiply, then subtract",
    facts=[
        [
            ("{name} buys {a} {objs} at {b} dollars each", "each"),
            ("{a} {objs} cost {b} dollars each", "each"),
        ],
        [("{name} pays with {c} dollars", "pays with"), ("{name} hands over {c} dollars", "hands over")],
    ],
    asks=[
        ("How much change does {name} get?", "change"),
        ("How much money comes back?", "comes back"),
        ("What is the change?", "change"),
    ],
    commands=[("Find the change.", "change")],
    statements=[("I want to know the change.", "change")],
    ordered=True,
    numbers=("c",),
)


EARN = Grammar(
    "multiply",
    facts=[
        [
            ("{name} earns {b} dollars per hour", "per"),
            ("the pay is {b} dollars an hour", "an hour"),
            ("{name} is paid {b} dollars for each hour", "each"),
            ("a worker makes {b} dollars every hour", "every"),
        ],
        [
            ("{name} works {a} hours", ""),
            ("the shift lasts {a} hours", ""),
            ("{name} worked for {a} hours", ""),
        ],
    ],
    asks=[
        ("How much does {name} earn?", ""),
        ("How many dollars is that in total?", "in total"),
        ("What is the total pay?", "total"),
        ("How much money is earned?", ""),
    ],
    commands=[("Find the total pay.", "total")],
    statements=[("I want to know how much {name} earns.", "")],
    numbers=("a",),
)

SPEED = Grammar(
    "divide",
    joined=[
        ("a train travels {a} km in {b} hours", "in"),
        ("{name} drives {a} km in {b} hours", "in"),
        ("a cyclist rides {a} km in {b} hours", "in"),
        ("it takes {b} hours to cover {a} km", "to cover"),
    ],
    facts=[
        [("the trip is {a} km long", ""), ("{name} covers {a} km", "")],
        [("it takes {b} hours", "takes"), ("the drive lasts {b} hours", "lasts")],
    ],
    asks=[
        ("What is the speed in km per hour?", "per"),
        ("How many km is that per hour?", "per"),
        ("What is the average speed?", "speed"),
        ("How fast is that, in km per hour?", "per"),
    ],
    commands=[("Find the speed in km per hour.", "per")],
    statements=[("I want to know the average speed.", "speed")],
    p_joined=0.6,
    numbers=("a",),
)


def stat_grammar(words: list[str]) -> Grammar:
    """A statistic of numbers written in the question (no brackets): "the median of 4, 8 and 15"."""
    return Grammar(
        "{stat_op}",
        whole=[
            (t, "{stat}")
            for t in (
                "What is the {stat} of {xs_text}?",
                "Find the {stat} of these numbers: {xs_text}.",
                "Here are some numbers: {xs_text}. What is the {stat}?",
                "Give me the {stat} of {xs_text}.",
                "{name} wrote down {xs_text}. What is the {stat}?",
                "What's the {stat} of {xs_text}?",
                "Compute the {stat} of {xs_text}.",
                "The values are {xs_text}. Find the {stat}.",
                "Tell me the {stat} of {xs_text}.",
                "I have the numbers {xs_text}. What is their {stat}?",
            )
        ],
        distract=False,
    )


def listed(rng: random.Random, v: dict[str, Any], split: str) -> str:
    """The list as a person writes it: "4, 8, 15 and 23", "4, 8, 15, 23" or "[4, 8, 15, 23]"."""
    xs = v["xs"].strip("[]").split(", ")
    if rng.random() < 0.2:
        return v["xs"]
    if rng.random() < 0.6:
        return ", ".join(xs[:-1]) + " and " + xs[-1]
    return ", ".join(xs)


STAT_WORDS = {
    "mean": (["mean", "average"], "mean"),
    "median": (["median", "middle value"], "median"),
    "sum": (["sum", "total"], "sum"),
    "max": (["largest", "biggest", "highest", "maximum", "largest number"], "max"),
    "min": (["smallest", "lowest", "minimum", "smallest number"], "min"),
    "range": (["range"], "max minus min"),
}
STAT_CODE = {
    **{k: (c, chk) for k, (_, c, chk) in STATISTICS.items()},
    "max": ("print(max(xs))", "print(sorted(xs)[-1])"),
    "min": ("print(min(xs))", "print(sorted(xs)[0])"),
}


def stat_kind(name: str) -> Kind:
    words, op = STAT_WORDS[name]
    code, check = STAT_CODE[name]
    imp = "import statistics\n" if "statistics" in code else ""
    return Kind(
        f"list_{name}",
        key=("xs",),
        tag=("list", name),
        grammar=stat_grammar(words),
        slots=(("xs", int_list(2, 7)),),
        after=(("stat", one_of(*words)), ("stat_op", derived(lambda v: op)), ("xs_text", listed)),
        numeric=(),
        steps=checked(
            "{how} xs = {xs}.",
            f"{imp}xs = {{xs}}\n{code}",
            "Check with plain Python.",
            f"xs = {{xs}}\n{check}",
        ),
    )


def op_kind(
    name: str,
    grammar: Grammar,
    slots: Draws,
    expr: str,
    check_plan: str,
    check: str,
    unit: str = "",
    numeric: tuple[str, ...] = ("a", "b"),
    rounded: bool = True,
    reject: Any = None,
) -> Kind:
    """A kind computing ``expr`` (over the slots) as the plan writes it, then checking it."""
    code = f"print(round({expr}, 2))" if rounded else f"print({expr})"
    return Kind(
        name,
        grammar=grammar,
        slots=slots,
        key=tuple(k for k, _ in slots),
        numeric=numeric,
        unit=unit,
        steps=checked("{how} " + expr + ".", code, check_plan, check),
        reject=reject,
    )


UNDO_MUL = ("Check: divide back.", "print(round({out} / {b}, 2) == {a})")
UNDO_DIV = ("Check: multiply back.", "print(abs({out} * {b} - {a}) < {b} / 100)")
UNDO_SUB = ("Check: add back.", "print(round({out} + {b}, 2) == {a})")
UNDO_ADD = ("Check: subtract back.", "print(round({out} - {b}, 2) == {a})")

# (from, to, factor as code, the sentence that names the constant, multiply or divide)
CONVERSIONS = [
    ("hours", "seconds", "3600", "An hour has 3600 seconds", "*"),
    ("hours", "minutes", "60", "An hour has 60 minutes", "*"),
    ("minutes", "seconds", "60", "A minute has 60 seconds", "*"),
    ("days", "hours", "24", "A day has 24 hours", "*"),
    ("weeks", "days", "7", "A week has 7 days", "*"),
    ("years", "months", "12", "A year has 12 months", "*"),
    ("days", "minutes", "24 * 60", "A day has 24 hours of 60 minutes", "*"),
    ("km", "meters", "1000", "A km has 1000 meters", "*"),
    ("meters", "cm", "100", "A meter has 100 cm", "*"),
    ("kg", "grams", "1000", "A kg has 1000 grams", "*"),
    ("dollars", "cents", "100", "A dollar has 100 cents", "*"),
    ("minutes", "hours", "60", "An hour has 60 minutes", "/"),
    ("seconds", "minutes", "60", "A minute has 60 seconds", "/"),
    ("hours", "days", "24", "A day has 24 hours", "/"),
    ("grams", "kg", "1000", "A kg has 1000 grams", "/"),
    ("cm", "meters", "100", "A meter has 100 cm", "/"),
    ("days", "weeks", "7", "A week has 7 days", "/"),
    ("seconds", "hours", "3600", "An hour has 3600 seconds", "/"),
]
CONVERT_WHOLE = [
    "How many {dst} are in {a} {src}?",
    "How many {dst} are there in {a} {src}?",
    "How many {dst} in {a} {src}?",
    "How many {dst} make up {a} {src}?",
    "I need {a} {src} in {dst}.",
    "What does {a} {src} come to in {dst}?",
    "Convert {a} {src} to {dst}.",
    "What is {a} {src} in {dst}?",
    "How many {dst} is {a} {src}?",
    "Express {a} {src} in {dst}.",
    "{a} {src} is how many {dst}?",
    "Change {a} {src} into {dst}.",
    "Turn {a} {src} into {dst}.",
]
TIME_UNITS = {"seconds", "minutes", "hours", "days", "weeks", "months", "years"}


def conversion(src: str, dst: str, factor: str, says: str, op: str) -> Kind:
    verb = "multiply" if op == "*" else "divide"
    forms = CONVERT_WHOLE + (
        ["{name} waited {a} {src}. How many {dst} is that?"] if src in TIME_UNITS else []
    )
    grammar = Grammar(f"{says}, so {verb}", whole=[(t, "") for t in forms], numbers=("a",))
    expr = f"{{a}} {op} {factor}"
    f = f"({factor})" if " " in factor else factor  # 24 * 60 undone as one number
    check = (
        f"print(round({{out}} / {f}, 2) == {{a}})"
        if op == "*"
        else f"print(abs({{out}} * {f} - {{a}}) < {f} / 100)"
    )
    lo, hi = (2, 500) if op == "*" else (30, 20000)
    return Kind(
        f"{src}-{dst}",
        tag=("convert", src, dst),
        grammar=grammar,
        key=("a",),
        numeric=("a",),
        slots=(("a", ints(lo, hi)),),
        after=(("src", derived(lambda v: src)), ("dst", derived(lambda v: dst))),
        unit=f" {dst}",
        steps=checked("{how} " + expr + ".", f"print(round({expr}, 2))", "Check by converting back.", check),
    )


FAMILY = Family(
    "words",
    n_heldout=1,
    people=PEOPLE,
    kinds=(
        op_kind(
            "each",
            EACH,
            (("a", ints(2, 80)), ("b", ints(2, 60))),
            "{a} * {b}",
            *UNDO_MUL,
            unit=" {objs}",
            rounded=False,
        ),
        op_kind(
            "price",
            PRICE,
            (("a", ints(2, 60)), ("b", money(1, 40))),
            "{a} * {b}",
            "Check: divide back.",
            "print(round({out} / {a}, 2) == {b})",
            unit=" dollars",
        ),
        op_kind("times", TIMES, (("a", ANY_INT), ("b", ints(2, 99))), "{a} * {b}", *UNDO_MUL),
        op_kind(
            "divide",
            DIVIDE,
            (("b", ints(2, 60)), ("a", one_of(multiple_of("b", 2, 99), ints(10, 9999)))),
            "{a} / {b}",
            *UNDO_DIV,
        ),
        op_kind(
            "split",
            SPLIT,
            (("b", ints(2, 12)), ("a", multiple_of("b", 2, 40))),
            "{a} / {b}",
            *UNDO_DIV,
            unit=" {objs}",
        ),
        op_kind(
            "bill", BILL, (("b", ints(2, 12)), ("a", money(20, 900))), "{a} / {b}", *UNDO_DIV, unit=" dollars"
        ),
        op_kind(
            "left",
            LEFT,
            (("a", ints(5, 2000)), ("b", below("a"))),
            "{a} - {b}",
            *UNDO_SUB,
            unit=" {objs}",
            rounded=False,
        ),
        op_kind(
            "money_left",
            MONEY_LEFT,
            (("a", ints(60, 3000)), ("b", money(1, 59))),
            "{a} - {b}",
            *UNDO_SUB,
            unit=" dollars",
        ),
        op_kind(
            "more", MORE, (("a", ints(10, 5000)), ("b", below("a", 2))), "{a} - {b}", *UNDO_SUB, rounded=False
        ),
        op_kind("total", TOTAL, (("a", ANY_INT), ("b", ints(2, 999))), "{a} + {b}", *UNDO_ADD),
        op_kind(
            "gain",
            GAIN,
            (("a", ints(2, 900)), ("b", ints(2, 300))),
            "{a} + {b}",
            *UNDO_ADD,
            unit=" {objs}",
            rounded=False,
        ),
        op_kind(
            "earn",
            EARN,
            (("a", ints(2, 60)), ("b", money(8, 60))),
            "{a} * {b}",
            "Check: divide back.",
            "print(round({out} / {a}, 2) == {b})",
            unit=" dollars",
        ),
        op_kind(
            "speed",
            SPEED,
            (("b", ints(2, 12)), ("a", one_of(multiple_of("b", 5, 120), ints(20, 2000)))),
            "{a} / {b}",
            *UNDO_DIV,
            unit=" km per hour",
        ),
        op_kind(
            "percent_of",
            PERCENT_OF,
            (("p", ints(1, 99)), ("a", ints(10, 9000))),
            "{a} * {p} / 100",
            "Check: recompute in another order.",
            "print(round({p} / 100 * {a}, 2))",
            numeric=("a", "p"),
        ),
        op_kind(
            "change",
            CHANGE,
            (("a", ints(10, 2000)), ("b", ints(lambda v: int(v["a"]) + 1, 4000))),
            "({b} - {a}) / {a} * 100",
            "Check: apply the change to the old value.",
            "print(round({a} + {a} * {out} / 100) == {b})",
        ),
        op_kind(
            "drop",
            DROP,
            (("a", ints(20, 4000)), ("b", below("a", 5))),
            "({a} - {b}) / {a} * 100",
            "Check: apply the decrease to the old value.",
            "print(round({a} - {a} * {out} / 100) == {b})",
        ),
        op_kind(
            "each_left",
            TWO_STEP,
            (("a", ints(2, 30)), ("b", ints(2, 40)), ("c", below_product)),
            "{a} * {b} - {c}",
            "Check step by step.",
            "total = {a} * {b}\nprint(total - {c})",
            unit=" {objs}",
            numeric=("a", "b", "c"),
            rounded=False,
        ),
        op_kind(
            "change_back",
            CHANGE_BACK,
            (("a", ints(2, 12)), ("b", money(1, 15)), ("c", one_of("50", "100", "200", "500"))),
            "{c} - {a} * {b}",
            "Check step by step.",
            "cost = {a} * {b}\nprint(round({c} - cost, 2))",
            unit=" dollars",
            numeric=("a", "b"),
            reject=lambda v: float(v["c"]) <= int(v["a"]) * float(v["b"]),
        ),
        *(conversion(*c) for c in CONVERSIONS),
        *(stat_kind(s) for s in STAT_WORDS),
    ),
)
