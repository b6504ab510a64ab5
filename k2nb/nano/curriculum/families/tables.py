"""Questions people ask of a table or a list in the namespace, under any name, with any columns.

The ``data`` family asks about five fixed tables; a user's DataFrame is called ``sales``, ``people``
or ``orders`` and has columns nobody listed. Here the variable, the key column, the number columns
and their values are all drawn, and the asked column's real name may differ from the question's
word (``price`` → ``Price``, ``n_price``), so the trace inspects first — the columns for a column
question, ``head()`` when the rows' keys matter — then computes, then checks another way.
Questions: rows, columns, sum, mean, median, largest, smallest, count where (above / below), the
total of one group, the group with the largest total, the row with the largest or smallest value;
for lists: sum, mean, median, largest, smallest, length, count above.
"""

from __future__ import annotations

import random
import re
from typing import Any

from k2nb.nano.curriculum import lexicon
from k2nb.nano.curriculum.families.words import PEOPLE
from k2nb.nano.curriculum.grammar import Grammar
from k2nb.nano.curriculum.slots import derived, int_list, ints, one_of
from k2nb.nano.curriculum.spec import Family, Kind, Step

TABLE_NAMES = [
    "sales",
    "people",
    "orders",
    "staff",
    "inventory",
    "students",
    "products",
    "expenses",
    "visits",
    "results",
    "shipments",
    "employees",
    "games",
    "books",
    "cities",
    "weather",
    "transactions",
    "members",
    "tasks",
    "accounts",
    "data",
    "records",
    "df",
    "info",
    "report",
    "items",
    "customers",
    "scores",
    "trips",
    "stock",
    "budget",
    "events",
    "teams",
    "shop",
    "survey",
    "sensors",
    "payroll",
    "rentals",
]
KEY_COLS = [
    "name",
    "city",
    "region",
    "product",
    "team",
    "store",
    "item",
    "country",
    "dept",
    "category",
    "month",
    "player",
    "customer",
    "student",
    "shop",
    "brand",
    "color",
    "day",
]
KEY_VALUES = [
    "north",
    "south",
    "east",
    "west",
    "ana",
    "ben",
    "cleo",
    "dev",
    "eva",
    "oslo",
    "rome",
    "lima",
    "paris",
    "kyiv",
    "red",
    "blue",
    "green",
    "tea",
    "milk",
    "bread",
    "jan",
    "feb",
    "mar",
    "apr",
    "alpha",
    "beta",
    "gamma",
    "delta",
    "mon",
    "tue",
    "wed",
    "fox",
    "owl",
    "bear",
    "lynx",
    "pine",
]
NUM_COLS = [
    "age",
    "salary",
    "price",
    "qty",
    "quantity",
    "units",
    "amount",
    "revenue",
    "score",
    "points",
    "height",
    "weight",
    "hours",
    "cost",
    "sales",
    "visits",
    "stock",
    "km",
    "rating",
    "profit",
    "votes",
    "goals",
    "minutes",
    "temp",
    "budget",
    "tax",
    "calls",
    "clicks",
    "wins",
    "pages",
    "sold",
    "views",
    "miles",
    "rent",
    "fee",
    "bonus",
]
LIST_NAMES = [
    "scores",
    "prices",
    "temps",
    "readings",
    "values",
    "nums",
    "data",
    "ages",
    "heights",
    "weights",
    "times",
    "marks",
    "costs",
    "sizes",
    "numbers",
    "my_list",
    "vals",
    "sales",
    "counts",
    "totals",
    "results",
    "x",
    "daily",
    "amounts",
    "speeds",
    "steps",
]

# statistic: (adjective forms, noun forms, code over {c} (a column or a list), check over {c})
STATS = {
    "sum": (
        ["total", "combined", "overall"],
        ["sum", "total"],
        "print({c}.sum())",
        "print(sum({c}.tolist()))",
    ),
    "mean": (
        ["average", "mean"],
        ["mean", "average"],
        "print(round({c}.mean(), 2))",
        "v = {c}.tolist()\nprint(round(sum(v) / len(v), 2))",
    ),
    "median": (
        ["median"],
        ["median", "middle value"],
        "print({c}.median())",
        "import statistics\nprint(statistics.median({c}.tolist()))",
    ),
    "max": (
        ["largest", "highest", "biggest", "maximum", "top"],
        ["maximum", "max", "largest value"],
        "print({c}.max())",
        "print(sorted({c}.tolist())[-1])",
    ),
    "min": (
        ["smallest", "lowest", "minimum"],
        ["minimum", "min", "smallest value"],
        "print({c}.min())",
        "print(sorted({c}.tolist())[0])",
    ),
}
LIST_CODE = {
    "sum": ("print(sum({var}))", "t = 0\nfor v in {var}:\n    t += v\nprint(t)"),
    "mean": (
        "print(round(sum({var}) / len({var}), 2))",
        "import statistics\nprint(round(statistics.mean({var}), 2))",
    ),
    "median": (
        "import statistics\nprint(statistics.median({var}))",
        "s = sorted({var})\nn = len(s)\nprint(s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2)",
    ),
    "max": ("print(max({var}))", "print(sorted({var})[-1])"),
    "min": ("print(min({var}))", "print(sorted({var})[0])"),
}
ABOVE = ["above", "over", "greater than", "more than", "bigger than", "higher than"]
AT_LEAST = ["at least", "no less than", "greater than or equal to"]
# columns of two words: the question writes the words, the table joins them
TWO_WORD_COLS = [
    "unit price",
    "total sales",
    "hours worked",
    "order count",
    "items sold",
    "monthly rent",
    "page views",
    "test score",
    "units sold",
    "net profit",
]
BELOW = ["below", "under", "less than", "smaller than", "lower than"]

COLUMN_ASKS = [
    "What is the {adj} {col} in {var}?",
    "What is the {noun} of the {col} column in {var}?",
    "In {var}, what is the {adj} {col}?",
    "Find the {adj} {col} in {var}.",
    "Give me the {adj} {col} from {var}.",
    "{var}: what is the {adj} {col}?",
    "Using the DataFrame {var}, find the {noun} of {col}.",
    "I have a table called {var}. What is the {adj} {col}?",
    "What's the {adj} {col} across all rows of {var}?",
    "Tell me the {noun} of {col} in {var}.",
    "Compute the {noun} of {col} for {var}.",
    "Looking at {var}, what is the {adj} {col}?",
    "What is the {noun} of {col} in the {var} table?",
    "Get the {noun} of the {col} values in {var}.",
    "The DataFrame {var} has a {col} column. What is its {noun}?",
]
COUNT_ASKS = [
    "How many rows in {var} have {col} {cmp} {k}?",
    "How many rows of {var} have a {col} {cmp} {k}?",
    "Count the rows of {var} where {col} is {cmp} {k}.",
    "In {var}, how many {col} values are {cmp} {k}?",
    "How many entries in {var} have {col} {cmp} {k}?",
    "{var}: how many rows with {col} {cmp} {k}?",
    "Using {var}, count the records whose {col} is {cmp} {k}.",
    "For how many rows of {var} is {col} {cmp} {k}?",
]
GROUP_ASKS = [
    "What is the total {col} for {kv} in {var}?",
    "In {var}, how much {col} does {kv} have in total?",
    "Sum the {col} of the {kv} rows in {var}.",
    "What is the combined {col} of {kv} in {var}?",
    "Find the total {col} of {kv} in the {var} table.",
    "How much {col} in all for {kv} in {var}?",
    "{var}: total {col} for {kv}?",
    "Add up {col} for {kv} in {var}.",
]
GROUP_MAX_ASKS = [
    "Which {key} has the largest total {col} in {var}?",
    "In {var}, which {key} has the most {col} in total?",
    "Find the {key} with the highest total {col} in {var}.",
    "{var}: which {key} has the biggest total {col}?",
    "Which {key} in {var} adds up to the most {col}?",
]
ARG_ASKS = [
    "Which {key} has the {adj} {col} in {var}?",
    "In {var}, which {key} has the {adj} {col}?",
    "Find the {key} with the {adj} {col} in {var}.",
    "{var}: which {key} has the {adj} {col}?",
    "Name the {key} with the {adj} {col} in {var}.",
    "Who or what in {var} has the {adj} {col}?",
]
ROWS_ASKS = [
    ("How many rows does {var} have?", "rows"),
    ("How many rows are in {var}?", "rows"),
    ("How many records are there in {var}?", "records"),
    ("Count the rows of {var}.", "rows"),
    ("What is the number of rows in {var}?", "rows"),
    ("How many entries does the table {var} contain?", "entries"),
    ("How long is the DataFrame {var}?", "long"),
    ("{var}: how many rows?", "rows"),
    ("How many rows are there in {var}?", "rows"),
    ("What is the length of {var}?", "length"),
    ("How many records does {var} hold?", "records"),
]
COLS_ASKS = [
    ("How many columns does {var} have?", "columns"),
    ("How many columns are in {var}?", "columns"),
    ("Count the columns of {var}.", "columns"),
    ("What is the number of columns in the table {var}?", "columns"),
]
LIST_ASKS = [
    "What is the {adj} value in {var}?",
    "What is the {noun} of {var}?",
    "Find the {noun} of the list {var}.",
    "{var} holds some numbers. What is their {noun}?",
    "Give me the {noun} of the numbers in {var}.",
    "What's the {adj} number in the list {var}?",
    "Compute the {noun} of {var}.",
    "I have a list called {var}. What is its {noun}?",
    "Tell me the {noun} of the values in {var}.",
]
LIST_LEN_ASKS = [
    ("How many numbers are in {var}?", "how many"),
    ("How many items does {var} have?", "how many"),
    ("How long is the list {var}?", "long"),
    ("Count the values in {var}.", "count"),
    ("What is the length of {var}?", "length"),
]
LIST_ABOVE_ASKS = [
    "How many values in {var} are {cmp} {k}?",
    "Count the numbers in {var} that are {cmp} {k}.",
    "In the list {var}, how many numbers are {cmp} {k}?",
]


# Shares of DataFrame and list names, and of asked columns, drawn from the open word list.
OPEN_NAMES = 0.35
OPEN_COLUMNS = 0.25


def table(rng: random.Random, v: dict[str, Any], split: str) -> dict[str, Any]:
    """A DataFrame: its variable, a key column, 2-3 number columns (the first is asked), its rows.
    Group questions (``_groups``) get 2-3 keys repeated over the rows; others one key per row."""
    var = rng.choice(TABLE_NAMES) if rng.random() >= OPEN_NAMES else lexicon.identifier(rng)
    key = rng.choice(KEY_COLS)
    col, *others = rng.sample(NUM_COLS, rng.randint(2, 3))
    if rng.random() < 0.15:
        col = rng.choice(TWO_WORD_COLS)
    elif rng.random() < OPEN_COLUMNS:
        col = lexicon.identifier(rng, plural_form=False).replace("_", " ")
        if col.replace(" ", "_") in (key, *others):
            col = rng.choice(TWO_WORD_COLS)
    n = rng.randint(3, 8)
    if v.get("_groups"):
        names = rng.sample(KEY_VALUES, rng.randint(2, 3))
        keys = [names[i % len(names)] for i in range(n)]
        rng.shuffle(keys)
    else:
        keys = rng.sample(KEY_VALUES, n)
    if " " in col:
        real = rng.choice([col.replace(" ", "_"), col.title().replace(" ", "")])
    elif v.get("_rename"):
        real = rng.choice([col, col, col, f"{col}_total", f"n_{col}", col.capitalize()])
    else:
        real = col
    hi = rng.choice([20, 99, 500, 2000])
    columns = {
        key: keys,
        real: [rng.randint(1, hi) for _ in range(n)],
        **{o: [rng.randint(1, 99) for _ in range(n)] for o in others},
    }
    order = list(columns)
    rng.shuffle(order)
    frame = "{" + ", ".join(f"'{c}': {columns[c]!r}" for c in order) + "}"
    ref = rng.choice(
        [var, var, var, f"the {var} DataFrame", f"the {var} table", f"the DataFrame {var}", f"`{var}`"]
    )
    return {
        "var": var,
        "key": key,
        "col": col,
        "real": real,
        "_vals": columns[real],
        "_keys": keys,
        "_frame": frame,
        "kv": rng.choice(keys),
        "k": str(rng.randint(1, hi)),
        "ref": ref,
    }


def asks(templates: list[str], kw: str = "") -> Grammar:
    """Whole-question forms; the key word is the statistic's word the form uses (adjective or noun).
    After "in", "of", "from" and "for" the variable is named as people name it (``{ref}``: sales,
    the sales DataFrame, the sales table, `sales`)."""

    def word(t: str) -> str:
        return kw or ("{noun}" if "{noun}" in t else "{adj}" if "{adj}" in t else "")

    forms = [re.sub(r"\b(in|of|from|for) \{var\}", r"\1 {ref}", t) for t in templates]
    return Grammar("{op}", whole=[(t, word(t)) for t in forms], distract=False)


INSPECT_COLUMNS = Step(
    "{var} is a DataFrame in the namespace. Check its columns first.",
    "print({var}.columns.tolist())",
    "inspect",
)
INSPECT_HEAD = Step(
    "{var} is a DataFrame in the namespace. Look at its first rows.", "print({var}.head())", "inspect"
)
SETUP = "import pandas as pd\n{var} = pd.DataFrame({_frame})"


def frame_kind(
    name: str,
    grammar: Grammar,
    op: str,
    steps: tuple[Step, ...],
    *,
    groups: bool = False,
    rename: bool = True,
    words: tuple[tuple[str, Any], ...] = (),
    reject: Any = None,
) -> Kind:
    """A question about a drawn DataFrame; ``words`` draws the question's words (adj, noun, cmp)."""
    return Kind(
        name,
        grammar=grammar,
        key=("_frame",),
        tag=("tables", name),
        slots=(("_groups", derived(lambda v: groups)), ("_rename", derived(lambda v: rename)), (None, table)),
        after=(*words, ("op", derived(lambda v: op.format(**v)))),
        setup=SETUP,
        steps=steps,
        reject=reject,
        numeric=(),
    )


def stat_kind(stat: str) -> Kind:
    adjs, nouns, code, check = STATS[stat]
    c = "{var}['{real}']"
    return frame_kind(
        stat,
        asks(COLUMN_ASKS),
        f"the {stat} of one column",
        (
            INSPECT_COLUMNS,
            Step("{how} The column is '{real}'.", code.format(c=c)),
            Step("Check another way.", check.format(c=c), "verify"),
        ),
        words=(("adj", one_of(*adjs)), ("noun", one_of(*nouns))),
    )


def count_kind(name: str, words: list[str], sign: str) -> Kind:
    cond = f"{{var}}['{{real}}'] {sign} {{k}}"
    return frame_kind(
        name,
        asks(COUNT_ASKS, "{cmp}"),
        f"count the rows where the column is {sign} {{k}}",
        (
            INSPECT_COLUMNS,
            Step("{how} The column is '{real}'.", f"print(int(({cond}).sum()))"),
            Step("Check with a filter and len.", f"print(len({{var}}[{cond}]))", "verify"),
        ),
        words=(("cmp", one_of(*words)),),
    )


def arg_kind(name: str, adjs: list[str], fn: str) -> Kind:
    return frame_kind(
        name,
        asks(ARG_ASKS),
        f"the row with the {fn} value, then its key",
        (
            INSPECT_HEAD,
            Step(
                "{how} The column is '{real}', the key is '{key}'.",
                f"print({{var}}.loc[{{var}}['{{real}}'].idx{fn}(), '{{key}}'])",
            ),
            Step(
                "Check by sorting the rows.",
                f"print({{var}}.sort_values('{{real}}').iloc[{-1 if fn == 'max' else 0}]['{{key}}'])",
                "verify",
            ),
        ),
        rename=False,
        words=(("adj", one_of(*adjs)),),
        reject=lambda v: len(set(v["_vals"])) < len(v["_vals"]),
    )


def list_setup(rng: random.Random, v: dict[str, Any], split: str) -> dict[str, Any]:
    var = rng.choice(LIST_NAMES) if rng.random() >= OPEN_NAMES else lexicon.identifier(rng)
    ref = rng.choice([var, var, var, f"the list {var}", f"`{var}`"])
    return {"var": var, "ref": ref, "xs": int_list(4, 9, 1, rng.choice([20, 99, 500]))(rng, v, split)}


# the whole list (at most 9 numbers): a slice would put a number in the code that nobody gave
INSPECT_LIST = Step("{var} is in the namespace. Look at it first.", "print(len({var}), {var})", "inspect")


def list_kind(
    name: str, grammar: Grammar, op: str, steps: tuple[Step, ...], words: tuple[tuple[str, Any], ...] = ()
) -> Kind:
    return Kind(
        name,
        grammar=grammar,
        key=("xs",),
        tag=("tables", name),
        slots=((None, list_setup),),
        after=(*words, ("k", ints(10, 80)), ("op", derived(lambda v: op.format(**v)))),
        setup="{var} = {xs}",
        steps=steps,
        numeric=(),
    )


def list_stat(stat: str) -> Kind:
    adjs, nouns, _code, _check = STATS[stat]
    code, check = LIST_CODE[stat]
    return list_kind(
        f"list_{stat}",
        asks(LIST_ASKS),
        stat,
        (INSPECT_LIST, Step("{how}", code), Step("Check another way.", check, "verify")),
        words=(("adj", one_of(*adjs)), ("noun", one_of(*nouns))),
    )


def _tied_groups(v: dict[str, Any]) -> bool:
    """Two groups with the same total make "which group has the most" ambiguous."""
    totals: dict[str, int] = {}
    for k, x in zip(v["_keys"], v["_vals"], strict=True):
        totals[k] = totals.get(k, 0) + x
    return len(set(totals.values())) < len(totals)


FAMILY = Family(
    "tables",
    n_heldout=1,
    people=PEOPLE,
    kinds=(
        *(stat_kind(s) for s in STATS),
        count_kind("above", ABOVE, ">"),
        count_kind("below", BELOW, "<"),
        count_kind("at_least", AT_LEAST, ">="),
        frame_kind(
            "group_sum",
            asks(GROUP_ASKS),
            "the total of the {kv} rows",
            (
                INSPECT_HEAD,
                Step(
                    "{how} Rows where '{key}' is '{kv}', column '{real}'.",
                    "print({var}[{var}['{key}'] == '{kv}']['{real}'].sum())",
                ),
                Step(
                    "Check with groupby.", "print({var}.groupby('{key}')['{real}'].sum()['{kv}'])", "verify"
                ),
            ),
            groups=True,
            rename=False,
        ),
        frame_kind(
            "group_max",
            asks(GROUP_MAX_ASKS),
            "group by key, total the column, take the largest",
            (
                INSPECT_HEAD,
                Step(
                    "{how} Key '{key}', column '{real}'.",
                    "print({var}.groupby('{key}')['{real}'].sum().idxmax())",
                ),
                Step(
                    "Check by sorting the totals.",
                    "print({var}.groupby('{key}')['{real}'].sum().sort_values().index[-1])",
                    "verify",
                ),
            ),
            groups=True,
            rename=False,
            reject=_tied_groups,
        ),
        arg_kind("argmax", ["highest", "largest", "biggest", "most"], "max"),
        arg_kind("argmin", ["lowest", "smallest", "least"], "min"),
        frame_kind(
            "rows",
            Grammar("count the rows with len", whole=ROWS_ASKS, distract=False),
            "",
            (
                Step("{how}", "print(len({var}))"),
                Step("Check with shape.", "print({var}.shape[0])", "verify"),
            ),
        ),
        frame_kind(
            "columns",
            Grammar("count the columns", whole=COLS_ASKS, distract=False),
            "",
            (
                Step("{how}", "print(len({var}.columns))"),
                Step("Check with shape.", "print({var}.shape[1])", "verify"),
            ),
        ),
        *(list_stat(s) for s in STATS),
        list_kind(
            "list_len",
            Grammar("count the items with len", whole=LIST_LEN_ASKS, distract=False),
            "",
            (
                Step("{how}", "print(len({var}))"),
                Step("Check by counting in a loop.", "print(sum(1 for _ in {var}))", "verify"),
            ),
        ),
        list_kind(
            "list_above",
            asks(LIST_ABOVE_ASKS, "{cmp}"),
            "count the values > {k}",
            (
                INSPECT_LIST,
                Step("{how}", "print(sum(1 for v in {var} if v > {k}))"),
                Step("Check with a list.", "print(len([v for v in {var} if v > {k}]))", "verify"),
            ),
            words=(("cmp", one_of(*ABOVE)),),
        ),
    ),
)
