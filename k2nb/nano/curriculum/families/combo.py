"""Combinations: a statistic of a list followed by an operation ("the mean times 4").

Some (statistic, operation) pairs are held out entirely, to test whether the model composes parts it
has only seen separately.
"""

from __future__ import annotations

from k2nb.nano.curriculum.slots import NAMES, int_list, one_of, reworded, total
from k2nb.nano.curriculum.spec import Clauses, Family, Kind, Step

STATISTICS = {"sum": "sum(xs)", "mean": "sum(xs) / len(xs)", "max": "max(xs)", "min": "min(xs)"}
# operation: (what is asked, code over s, check code over s)
OPERATIONS = {
    "percent": ("{p}% of the {stat}", "round(s * {p} / 100, 2)", "round({p} / 100 * s, 2)"),
    "times": ("the {stat} times {p}", "round(s * {p}, 2)", "round({p} * s, 2)"),
    "plus": ("the {stat} plus {p}", "round(s + {p}, 2)", "round({p} + s, 2)"),
    "minus": ("the {stat} minus {p}", "round(s - {p}, 2)", "round(-{p} + s, 2)"),
}
# Other words for each operation, training only, so that the operation is read from its words.
OPERATION_WORDS = {
    "percent": ["{p} percent of the {stat}", "the {stat} scaled to {p}%"],
    "times": ["the {stat} multiplied by {p}", "{p} times the {stat}"],
    "plus": ["the {stat} increased by {p}", "{p} more than the {stat}"],
    "minus": ["the {stat} decreased by {p}", "{p} less than the {stat}"],
}
HELDOUT_COMBOS = {("max", "percent"), ("mean", "times"), ("min", "plus"), ("sum", "minus")}
QUESTIONS = [
    "What is {what} of {xs}?",
    "For {xs}, compute {what}.",
    "Take {xs}. What is {what}?",
    "{name} has the numbers {xs}. Find {what}.",
    "{xs}: what is {what}?",
    "Compute {what} for the list {xs}.",
    "Tell me {what}, where the numbers are {xs}.",
    "I have {xs}. Can you work out {what}?",
    "Work out {what} of the list {xs}.",
    "Using the numbers {xs}, calculate {what}.",
    "{name} wrote down {xs}. What is {what}?",
    "Find {what} of these values: {xs}.",
    "With xs = {xs}, what is {what}?",
    "Here is a list: {xs}. Determine {what}.",
    "The list is {xs}. I need {what}.",
    "Please calculate {what} where the data is {xs}.",
    "Given the list {xs}, give {what}.",
]
CLAUSES = Clauses(
    facts=[["the list is {xs}", "{name} has the numbers {xs}", "the data are {xs}", "xs is {xs}",
            "the values are {xs}"]],
    asks=["I need {what}.", "Find {what}.", "What is {what}?", "Compute {what}.", "Give {what}."],
)


def combination(stat: str, op: str) -> Kind:
    """The kind "stat of xs, then op p", held out when the pair is in HELDOUT_COMBOS."""
    asked, expr, check_expr = OPERATIONS[op]
    sexpr = STATISTICS[stat]
    others = [w.replace("{stat}", stat) for w in OPERATION_WORDS[op]]
    what = reworded(asked.replace("{stat}", stat), others, 0.4)
    # The check names the operation and its operand: with one plan for every operation ("Check in one
    # line."), a held-out pair got the check of another operation (mean times 51 checked as 51 %).
    check = "Check in one line: " + asked.replace("{stat}", stat) + "."
    check_code = f"print({check_expr.replace('s', '(' + sexpr + ')', 1)})".replace("xs", "{xs}")
    return Kind(
        f"{stat}-{op}", tag=(stat, op), key=("xs", "p"), after=(("what", what),),
        split="heldout" if (stat, op) in HELDOUT_COMBOS else "train",
        steps=(Step(f"First s = {stat} of xs, then {op} {{p}}.", f"xs = {{xs}}\ns = {sexpr}\nprint({expr})"),
               Step(check, check_code, "verify")),
    )


FAMILY = Family(
    "combo",
    n_heldout=1,  # held-out questions always use unseen pairs, and the last phrasing is held out too
    questions=QUESTIONS,
    clauses=CLAUSES,
    slots=(("xs", int_list(3, 6)), ("p", total(one_of(2, 3, 4, 5, 10, 15, 20, 25, 50), one_of(0, 0, 1)))),
    people=(("name", one_of(*NAMES)),),
    numeric=("p",),
    roles={"xs": "list", "p": "operand"},
    heldout_numbers=False,
    kinds=tuple(combination(s, o) for s in STATISTICS for o in OPERATIONS),
)
