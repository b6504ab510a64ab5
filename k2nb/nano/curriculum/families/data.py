"""Questions about the user's data already in the namespace: a DataFrame's column or a list.

The model first inspects the data, then computes on the column it found, then verifies: three tool
calls. The question names the column by its plain word; the real column name (sometimes
"units_total" or "n_units") is found by inspecting.
"""

from __future__ import annotations

import random
from typing import Any

from k2nb.nano.curriculum.slots import choice, derived, int_list, ints, one_of
from k2nb.nano.curriculum.spec import Family, Kind, Step

# (variable name, [key column, number column, number column], keys)
TABLES = [
    ("sales", ["region", "units", "price"], ["north", "south", "east", "west"]),
    ("orders", ["customer", "qty", "amount"], ["ana", "ben", "cleo", "dev", "eva"]),
    ("trips", ["city", "km", "cost"], ["paris", "rome", "oslo", "lima", "kyiv"]),
    ("scores", ["student", "math", "art"], ["kai", "lena", "milo", "nora", "omar", "pia"]),
    ("stock", ["shop", "apples", "pears"], ["a1", "b2", "c3", "d4"]),
]

SUM_QUESTIONS = [
    "What is the total {col} in {var}?",
    "Sum the {col} column of {var}.",
    "Add up all {col} values in {var}.",
    "How much {col} is there in {var} overall?",
    "{var}: total {col}?",
    "Compute the sum of the {col} column in {var}.",
    "Tell me the total of {col} across all rows of {var}.",
    "I loaded {var}. What does the {col} column add up to?",
    "Work out the grand total of {col} in {var}.",
    "The table {var} has a {col} column. What is its sum?",
    "Find the {col} summed over every row in {var}.",
    "Give me the overall {col} in {var}.",
    "In {var}, add the {col} values together. What is the result?",
    "Total up {col} for {var}.",
    "What do the {col} values in {var} sum to?",
    "From the data in {var}, how much {col} is there in total?",
    "Using the DataFrame {var}, what is the sum of {col}?",
]

MEAN_QUESTIONS = [
    "What is the average {col} in {var}?",
    "Give the mean of {col} in {var}.",
    "Compute the average {col} across {var}.",
    "In {var}, what is the mean {col}?",
    "{var}: mean {col}?",
    "Compute the mean of the {col} column in {var}.",
    "Tell me the average {col} over all rows of {var}.",
    "I loaded {var}. Give me the mean of its {col} column.",
    "Work out the average of {col} in {var}.",
    "The table {var} has a {col} column. What is its mean?",
    "Find the arithmetic mean of {col} in {var}.",
    "What is the mean {col} per row in {var}?",
    "Average the {col} values of {var}.",
    "From the data in {var}, give the average {col}.",
    "On average, how much {col} does a row of {var} have?",
    "Calculate mean {col} for {var}.",
    "Using the DataFrame {var}, what is the average {col}?",
]

MAX_QUESTIONS = [
    "What is the largest {col} in {var}?",
    "Find the maximum {col} in {var}.",
    "Which value is the highest {col} in {var}?",
    "In {var}, what is the top {col}?",
    "{var}: highest {col}?",
    "Compute the maximum of the {col} column in {var}.",
    "Tell me the biggest {col} value in {var}.",
    "I loaded {var}. Give me the largest value in its {col} column.",
    "Work out the peak {col} in {var}.",
    "The table {var} has a {col} column. What is its maximum?",
    "Find the greatest {col} among the rows of {var}.",
    "What is the highest {col} that appears in {var}?",
    "Which {col} value in {var} is the biggest?",
    "From the data in {var}, give the maximum {col}.",
    "Look at {var} and report the largest {col}.",
    "Get the max {col} for {var}.",
    "Using the DataFrame {var}, what is the max of {col}?",
]

ARGMAX_QUESTIONS = [
    "Which {key} has the highest {col} in {var}?",
    "In {var}, which {key} has the most {col}?",
    "Find the {key} with the largest {col} in {var}.",
    "Who or what leads {var} in {col}?",
    "{var}: {key} with the most {col}?",
    "Compute which {key} in {var} has the maximum {col}.",
    "Tell me the {key} whose {col} is highest in {var}.",
    "I loaded {var}. Name the {key} with the biggest {col}.",
    "Work out which {key} tops {var} for {col}.",
    "The table {var} lists {key} and {col}. Which {key} is highest on {col}?",
    "Find the {key} of the row in {var} with the greatest {col}.",
    "In {var}, the largest {col} belongs to which {key}?",
    "Which {key} in {var} scores the highest {col}?",
    "From the data in {var}, give the {key} with maximum {col}.",
    "Look at {var}: which {key} is number one in {col}?",
    "For {var}, what {key} has the largest {col} value?",
    "Using the DataFrame {var}, which {key} has the top {col}?",
]

COUNT_QUESTIONS = [
    "How many rows of {var} have {col} above {k}?",
    "Count the rows in {var} where {col} > {k}.",
    "In {var}, how many {col} values are greater than {k}?",
    "How many entries of {var} exceed {k} in {col}?",
    "{var}: rows where {col} > {k}?",
    "Compute how many rows of {var} have a {col} greater than {k}.",
    "Tell me the number of rows in {var} whose {col} exceeds {k}.",
    "I loaded {var}. In how many rows is {col} bigger than {k}?",
    "Work out the count of {var} rows where {col} is above {k}.",
    "The table {var} has a {col} column. How many of its values are more than {k}?",
    "Find how many entries in {var} have {col} strictly greater than {k}.",
    "How many {col} values in {var} are larger than {k}?",
    "Count the {var} records whose {col} is above {k}.",
    "From the data in {var}, how many rows show {col} over {k}?",
    "Filter {var} to {col} > {k}. How many rows remain?",
    "In {var}, for how many rows is {col} higher than {k}?",
    "Using the DataFrame {var}, count rows with {col} over {k}.",
]

LIST_MEAN_QUESTIONS = [
    "What is the average of the list {var}?",
    "Give the mean of {var}.",
    "Compute the average value in {var}.",
    "The list {var} is loaded. What is its mean?",
    "{var}: mean?",
    "Compute the mean of the numbers in {var}.",
    "Tell me the average of {var}.",
    "I loaded a list called {var}. Find its average value.",
    "Work out the arithmetic mean of {var}.",
    "The variable {var} holds numbers. Find their mean.",
    "Average the values stored in {var}.",
    "What is the mean value of the list {var}?",
    "From {var}, compute the average.",
    "Give the mean of all numbers in {var}.",
    "{var} is in memory. Calculate its average.",
    "Find the average of the entries in {var}.",
    "Using the list {var}, what is the average?",
]

# per kind: (plan, code, check plan, check code) over the real column name {real}
COMPUTE = {
    "sum": ("Sum the '{real}' column.", "print({var}['{real}'].sum())",
            "Check with a plain loop.", "print(sum(v for v in {var}['{real}'].tolist()))"),
    "mean": ("Mean of the '{real}' column.", "print(round({var}['{real}'].mean(), 2))",
             "Check with sum / len.", "c = {var}['{real}'].tolist()\nprint(round(sum(c) / len(c), 2))"),
    "max": ("Max of the '{real}' column.", "print({var}['{real}'].max())",
            "Check by sorting.", "print(sorted({var}['{real}'].tolist())[-1])"),
    "argmax": ("Row with the largest '{real}', then its '{key}'.",
               "print({var}.loc[{var}['{real}'].idxmax(), '{key}'])",
               "Check by sorting the rows.", "print({var}.sort_values('{real}').iloc[-1]['{key}'])"),
    "count": ("Count rows where '{real}' > {k}.", "print(int(({var}['{real}'] > {k}).sum()))",
              "Check with a filter and len.", "print(len({var}[{var}['{real}'] > {k}]))"),
}
QUESTIONS = {"sum": SUM_QUESTIONS, "mean": MEAN_QUESTIONS, "max": MAX_QUESTIONS, "argmax": ARGMAX_QUESTIONS,
             "count": COUNT_QUESTIONS}


def rows(rng: random.Random, v: dict[str, Any], split: str) -> dict[str, Any]:
    """The variable's name and 3+ rows of the table in ``_table``: keys and two number columns."""
    name, _cols, keys = v["_table"]
    var = rng.choice([name, "df", f"{name}_df"])
    n = rng.randint(3, len(keys))
    picked = rng.sample(keys, n)
    a = [rng.randint(1, 99) for _ in range(n)]
    b = [rng.randint(1, 99) for _ in range(n)]
    return {"var": var, "_picked": picked, "_a": a, "_b": b}


def frame(v: dict[str, Any]) -> str:
    """The DataFrame's dict literal: the asked column (index ``_col``) under its real name."""
    cols = list(v["_table"][1])
    cols[v["_col"]] = v["real"]
    return f"{{'{cols[0]}': {v['_picked']!r}, '{cols[1]}': {v['_a']}, '{cols[2]}': {v['_b']}}}"


def column(kind: str) -> Kind:
    """A question about one column of a DataFrame: inspect its columns, compute, check."""
    plan, code, check_plan, check_code = COMPUTE[kind]
    word = derived(lambda v: v["_table"][1][v["_col"]])
    # argmax names the column as asked: a renamed column would make "which row" read a guess
    real = derived(lambda v: v["col"]) if kind == "argmax" else \
        choice(lambda v: [v["col"], v["col"], f"{v['col']}_total", f"n_{v['col']}"])
    return Kind(
        kind, questions=QUESTIONS[kind], key=("_a", "_b", "k"),
        slots=((None, rows), ("k", ints(10, 80))),
        after=(("_col", one_of(1, 2)), ("col", word), ("real", real),
               ("key", derived(lambda v: v["_table"][1][0])), ("_frame", derived(frame))),
        setup="import pandas as pd\n{var} = pd.DataFrame({_frame})",
        steps=(Step("{var} is a DataFrame in the namespace. Check its columns first.",
                    "print({var}.columns.tolist())", "inspect"),
               Step(plan, code), Step(check_plan, check_code, "verify")),
        # ties make "which row" ambiguous
        reject=(lambda v: len(set(v["_a"] if v["_col"] == 1 else v["_b"])) < len(v["_picked"]))
        if kind == "argmax" else None,
        lead="The DataFrame {var} is loaded. ",  # so that the word "DataFrame" is known
        roles={"k": "over"} if kind == "count" else None,
    )


LIST_MEAN = Kind(
    "list_mean", questions=LIST_MEAN_QUESTIONS, before=(), key=("var", "xs"),
    slots=(("var", one_of("temps", "values", "readings", "prices", "heights", "ages")),
           ("xs", int_list(5, 9))),
    setup="{var} = {xs}",
    steps=(Step("{var} is in the namespace. Look at it first.", "print(len({var}), {var}[:5])", "inspect"),
           Step("Average = sum / len.", "print(round(sum({var}) / len({var}), 2))"),
           Step("Check with statistics.mean.", "import statistics\nprint(round(statistics.mean({var}), 2))",
                "verify")),
)

FAMILY = Family(
    "data",
    n_heldout=1,
    before=(("_table", one_of(*TABLES)),),
    kinds=(*(column(k) for k in COMPUTE), LIST_MEAN),
)
