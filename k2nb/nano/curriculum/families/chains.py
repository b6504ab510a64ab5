"""A statistic of numbers written in the question, then an operation, told in words.

The ``combo`` family asks "What is 21 times the max of [37, 6, 51]?" from templates; people write
"What is the largest of 14, 29, 8, 22, minus 5?" or "Add up 12, 18 and 25, then take 20% of the
total." Here the question is composed: a statistic phrase (its words: "largest", "highest",
"average", "total", "add up" …) over the numbers as a person lists them (no brackets, "and"
before the last), inside an operation form (its words: "minus", "subtract … from", "times",
"double", "half", "% of" …). The plan quotes both key words before the code:

    Key words "largest" and "minus": the max of xs, then subtract. xs = [14, 29, 8, 22].
"""

from __future__ import annotations

import random
from typing import Any

from k2nb.nano.curriculum.families.combo import STATISTICS
from k2nb.nano.curriculum.grammar import cap, casual
from k2nb.nano.curriculum.slots import NAMES, int_list, one_of, total
from k2nb.nano.curriculum.spec import Family, Kind, Step

# statistic → (the words people use for it, as "the {w} of …"; phrases that sum without "the … of")
STAT_PHRASES: dict[str, list[str]] = {
    "sum": ["sum", "total"],
    "mean": ["mean", "average"],
    "max": ["largest", "biggest", "highest", "maximum", "largest number", "greatest"],
    "min": ["smallest", "lowest", "minimum", "smallest number", "least"],
}
# operation → (code over s, check over s, forms over {S} (the statistic phrase) and {p}, key word of each)
OPS: dict[str, tuple[str, str, list[tuple[str, str]]]] = {
    "minus": ("round(s - {p}, 2)", "round(-{p} + s, 2)", [
        ("What is {S} minus {p}?", "minus"), ("Subtract {p} from {S}.", "subtract"),
        ("Take {S} and subtract {p}.", "subtract"), ("{S}, minus {p}?", "minus"),
        ("Find {S}, then subtract {p}.", "subtract"), ("What is {p} less than {S}?", "less than"),
        ("Compute {S} and take away {p}.", "take away"), ("{S} minus {p} is what?", "minus"),
    ]),
    "plus": ("round(s + {p}, 2)", "round({p} + s, 2)", [
        ("What is {S} plus {p}?", "plus"), ("Add {p} to {S}.", "add"),
        ("Take {S} and add {p}.", "add"), ("{S}, plus {p}?", "plus"),
        ("Find {S}, then add {p} to it.", "add"), ("What is {p} more than {S}?", "more than"),
        ("What do you get when {S} is increased by {p}?", "increased by"),
    ]),
    "times": ("round(s * {p}, 2)", "round({p} * s, 2)", [
        ("What is {S} times {p}?", "times"), ("Multiply {S} by {p}.", "multiply"),
        ("Take {S} and multiply it by {p}.", "multiply"), ("{S}, times {p}?", "times"),
        ("Find {S}, then multiply by {p}.", "multiply"), ("{S} multiplied by {p}?", "multiplied by"),
    ]),
    "percent": ("round(s * {p} / 100, 2)", "round({p} / 100 * s, 2)", [
        ("What is {p}% of {S}?", "% of"), ("Take {p} percent of {S}.", "percent of"),
        ("Find {S}, then take {p}% of it.", "% of"), ("{p}% of {S}?", "% of"),
        ("Work out {S}, and give {p} percent of that.", "percent of"),
    ]),
    "double": ("round(s * 2, 2)", "round(s + s, 2)", [
        ("What is double {S}?", "double"), ("Double {S}.", "double"),
        ("Find {S} and double it.", "double"), ("What is twice {S}?", "twice"),
    ]),
    "half": ("round(s / 2, 2)", "round(s * 0.5, 2)", [
        ("What is half of {S}?", "half"), ("Halve {S}.", "halve"),
        ("Find {S}, then take half of it.", "half"),
    ]),
}
# the statistic phrase: "the largest of 14, 29 and 8"; {w} the statistic's word, {xs_text} the numbers
STAT_FORMS = ["the {w} of {xs_text}", "the {w} of these numbers: {xs_text}",
              "the {w} of the numbers {xs_text}", "the {w} in {xs_text}", "the {w} of the list {xs}"]
# what the plan says the operation is; without its operand, which a follow-up may change
OP_SAYS = {"minus": "subtract", "plus": "add", "times": "multiply", "percent": "take the percent",
           "double": "double", "half": "halve"}
SUM_VERBS = ["Add up {xs_text}, then", "Sum {xs_text}, and"]  # "Add up 12, 18 and 25, then take 20% of it."


def listed(rng: random.Random, xs: list[Any]) -> str:
    """Numbers as a person lists them: "4, 8, 15 and 23" or "4, 8, 15, 23"."""
    items = [str(x) for x in xs]
    if rng.random() < 0.6:
        return ", ".join(items[:-1]) + " and " + items[-1]
    return ", ".join(items)


def chain_question(stat: str, op: str):
    """The grammar of one (statistic, operation) kind: a question, and the plan's opening."""
    def grammar(rng: random.Random, values: dict[str, Any], split: str) -> tuple[str, dict[str, str]]:
        xs = [int(x) for x in values["xs"].strip("[]").split(", ")]
        shown = {"xs": values["xs"], "xs_text": listed(rng, xs), "p": values["p"]}
        w = rng.choice(STAT_PHRASES[stat])
        form, op_word = rng.choice(OPS[op][2])
        if stat == "sum" and op in ("percent", "times", "minus") and rng.random() < 0.25:
            tail = {"percent": "take {p}% of the total.", "times": "multiply the total by {p}.",
                    "minus": "subtract {p}."}[op]
            text = rng.choice(SUM_VERBS).format(**shown) + " " + tail.format(**shown)
            w, op_word = "add up" if text.startswith("Add") else "sum", tail.split()[0]
        else:
            phrase = rng.choice(STAT_FORMS).format(w=w, **shown)
            text = form.format(S=phrase, p=shown["p"])
            text = cap(text) if not text.startswith("{") else text
        how = f'Key words "{w}" and "{op_word}": the {stat} of xs, then {OP_SAYS[op]}.'
        return casual(rng, text), {"how": how, "skip": ""}
    return grammar


def chain(stat: str, op: str) -> Kind:
    code, check, _ = OPS[op]
    sexpr = STATISTICS[stat]
    check_code = "print(" + check.replace("s", f"({sexpr})", 1) + ")" if op != "double" else (
        f"s = {sexpr}\nprint({check})")
    return Kind(
        f"{stat}-{op}",
        tag=("chain", stat, op),
        key=("xs", "p"),
        grammar=chain_question(stat, op),
        numeric=("p",) if "{p}" in code else (),
        steps=(Step("{how} xs = {xs}.", f"xs = {{xs}}\ns = {sexpr}\nprint({code})"),
               Step("Check in one line.", "xs = {xs}\n" + check_code, "verify")),
    )


FAMILY = Family(
    "chains",
    n_heldout=1,
    slots=(("xs", int_list(3, 6)), ("p", total(one_of(2, 3, 4, 5, 7, 10, 12, 15, 20, 25, 50, 100),
                                                one_of(0, 0, 1)))),
    people=(("name", one_of(*NAMES)),),
    heldout_numbers=False,
    kinds=tuple(chain(s, o) for s in STAT_PHRASES for o in OPS),
)
