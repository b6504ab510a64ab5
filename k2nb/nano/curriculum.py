"""The k2-nano curriculum: seeded problem families rendered as complete K2 tool-loop conversations.

Every problem is a *recipe* — a question template, number slots and code templates — that is turned
into OpenAI-style message dicts (see docs/architecture.md) by actually running the code:

    user question → assistant {plan, python call} → tool (real output)
                  → assistant {verification plan, second python call} → tool (real output)
                  → assistant {brief reasoning, final answer restating the tool result}

The model is a few M parameters, so the text is short and regular on purpose: numbers in code are
copied verbatim from the question, floats are always printed through ``round(..., 2)``, code uses
single quotes (no JSON escaping), a string result is the cell's trailing expression (so its repr,
quoted, is what the model reads and copies) and the answer sentence is
"The answer is {output}{unit}.". Phrasings vary a lot (templates × names × items × prefixes) so
that the model has to read the question rather than memorise it.

Held-out split (``split="heldout"``): the last phrasing templates of every sub-family are reserved for
it, number tuples are assigned to one split by a stable hash, and a few (statistic, operation) pairs of
the "combo" family never appear in training.

Variants teach recovery: a first call with a misspelled name (NameError, run for real) followed by the
fixed call; a first call with a mis-copied number whose verification disagrees, followed by a
recomputation; a DataFrame column guessed wrong (KeyError) followed by an inspection; and multi-turn
follow-ups ("What if it were 45 instead of 37?"). Assistant messages that contain a deliberate mistake
are listed in ``Problem.no_loss`` so that training never teaches the mistake itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import random
import re
from dataclasses import dataclass, field
from typing import Any

PYTHON_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "python",
        "description": "Run Python code in the notebook kernel and return what it prints.",
        "parameters": {
            "type": "object",
            "properties": {"code": {"type": "string", "description": "Python code to run."}},
            "required": ["code"],
        },
    },
}
# The same tool exactly as k2nb.agent's PythonTool declares it (its docstring, wrapped lines joined), which
# is what the eval, the examples and %%k2think send; a test checks the two are equal. Until session 10
# this copy kept the docstring's line break ("return\nits"), so no training trace had the declaration
# the model is run with. Training alternates between the two declarations so that the model does not
# depend on the exact wording of the tool description.
AGENT_PYTHON_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "python",
        "description": "Run Python code in a persistent namespace (variables survive between calls) and "
                       "return its printed output, the value of the last expression and any error.",
        "parameters": {
            "type": "object",
            "properties": {"code": {"type": "string", "description": "Python source to execute; the value "
                                                                     "of a final expression is shown."}},
            "required": ["code"],
        },
    },
}
TOOLS: list[dict[str, Any]] = [PYTHON_TOOL]
TOOL_SETS: list[list[dict[str, Any]]] = [[PYTHON_TOOL], [AGENT_PYTHON_TOOL]]

# A share of conversations carries one of these; the rest get the template's default system prompt.
SYSTEM_PROMPTS = [
    "You are a careful assistant. Use the python tool and check your work.",
    "You are a helpful assistant with a Python tool.",
    "Solve the task with Python. Verify before you answer.",
    "You are k2-nano, a small model that thinks, runs Python and verifies.",
    "Answer briefly. Use Python for every calculation.",
]

FAMILIES = (
    "arithmetic",
    "percent",
    "interest",
    "units",
    "dates",
    "stats",
    "strings",
    "data",
    "combo",
)

NAMES = [
    "Ana", "Ben", "Cleo", "Dev", "Eva", "Finn", "Gus", "Hana", "Ivan", "Jade", "Kai", "Lena", "Milo",
    "Nora", "Omar", "Pia", "Quinn", "Rosa", "Sam", "Tara", "Uma", "Vik", "Wen", "Yara", "Zoe", "Leo",
]
ITEMS = [
    "apple", "book", "pencil", "marble", "card", "egg", "cookie", "sticker", "coin", "shell", "stamp",
    "ticket", "cup", "plate", "toy", "candle", "lemon", "brick", "bolt", "button",
]
PREFIXES = ["", "", "", "Quick question: ", "Please help. ", "Hi! ", "Can you solve this? ", "Task: ",
            "Hello. ", "Question: ", "Hey there. ", "I need help with this. ", "Here is a problem. ",
            "Please solve: ", "Small task: ", "Could you help? "]
SUFFIXES = ["", "", "", " Use Python.", " Please check your answer.", " Show the result.", " Thanks!",
            " Thank you.", " Please be precise.", " Check it with code.", " Keep it short.",
            " Run the code.", " I need an exact answer.", " Verify the result.", " Use the python tool."]
WORDS = [
    "python", "kernel", "matrix", "banana", "rocket", "garden", "silver", "planet", "window", "orange",
    "tensor", "expert", "router", "notebook", "thunder", "river", "mountain", "pencil", "lantern",
    "harbor", "coffee", "yellow", "dragon", "winter", "summer", "bottle", "castle", "spider",
]


@dataclass(slots=True)
class Step:
    """One tool call: a reasoning text and code, both ``str.format`` templates over the slots (and
    ``{out}``, the main step's output, in verification steps)."""

    think: str
    code: str
    role: str = "main"  # "inspect" | "main" | "verify"


@dataclass(slots=True)
class Recipe:
    """A problem before it is run: templates plus the values that fill them."""

    family: str
    kind: str  # sub-family, e.g. "arithmetic.buy"
    question: str  # template over slots
    slots: dict[str, str]
    steps: list[Step]
    final_think: str
    unit: str = ""
    setup: str = ""  # code run in the namespace before the conversation (the user's data)
    numeric_slots: tuple[str, ...] = ()  # slots a follow-up may change


@dataclass(slots=True)
class Problem:
    """A generated problem: the full conversation and what evaluation needs."""

    family: str
    kind: str
    variant: str  # "plain" | "typo" | "miscopy" | "wrong_column" | "followup"
    split: str
    question: str  # the last user question (a rollback's retry answers the first one again)
    setup: str
    answer: float | int | str
    messages: list[dict[str, Any]]
    no_loss: list[int] = field(default_factory=list)  # message indices not to train on
    tools: list[dict[str, Any]] = field(default_factory=lambda: list(TOOLS))  # declared to the model

    @property
    def prompt_messages(self) -> list[dict[str, Any]]:
        """Everything up to and including the last user message: what a model is asked."""
        last_user = max(i for i, m in enumerate(self.messages) if m["role"] == "user")
        return self.messages[: last_user + 1]


# ---------------------------------------------------------------------------------------------
# Running code the way the ``python`` tool does.


def run_python(code: str, namespace: dict[str, Any], cell: int = 1) -> str:
    """Run ``code`` in ``namespace`` and return what the model reads, in the format of
    ``k2nb.agent``'s python tool (``PythonResult.to_model_text``): stdout, then the repr of a trailing
    expression, ``(no output)`` when there is neither; an exception becomes a traceback of the cell's
    own frames (``File "<k2nb-python-N>", line L`` + the line + carets + ``NameError: ...``). Library
    frames and chained exceptions are left out to keep observations short for a small model."""
    import ast
    import linecache
    import traceback

    filename = f"<k2nb-python-{cell}>"
    linecache.cache[filename] = (len(code), None, code.splitlines(keepends=True), filename)
    buf = io.StringIO()
    value_text = None
    try:
        tree = ast.parse(code, filename, mode="exec")
        last_expr = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last_expr = ast.Expression(tree.body.pop().value)
        with contextlib.redirect_stdout(buf):
            exec(compile(tree, filename, "exec"), namespace)
            if last_expr is not None:
                value = eval(compile(last_expr, filename, "eval"), namespace)
                if value is not None:
                    value_text = repr(value)
    except Exception as exc:  # noqa: BLE001 - any error is an observation, as in a notebook
        te = traceback.TracebackException.from_exception(exc)
        te.stack = traceback.StackSummary.from_list([f for f in te.stack if f.filename == filename])
        te.__cause__ = te.__context__ = None
        error = "".join(te.format()).rstrip("\n")
        body = buf.getvalue().rstrip("\n")
        return f"{body}\n{error}" if body else error
    finally:
        linecache.cache.pop(filename, None)
    parts = [t for t in (buf.getvalue().rstrip("\n"), value_text) if t]
    return "\n".join(parts) if parts else "(no output)"


# ---------------------------------------------------------------------------------------------
# Helpers for sampling.


def _stable_bucket(values: tuple[Any, ...]) -> int:
    digest = hashlib.blake2b(repr(values).encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % 8


def _numbers_in_split(values: tuple[Any, ...], split: str) -> bool:
    # One bucket in eight of number tuples is held out; training never sees those exact tuples.
    return (_stable_bucket(values) == 0) == (split == "heldout")


def _phrasing(rng: random.Random, split: str, templates: list[str], n_heldout: int = 1) -> str:
    """Pick a phrasing; the last ``n_heldout`` templates of each list are held-out only."""
    pool = templates[-n_heldout:] if split == "heldout" else templates[:-n_heldout]
    return rng.choice(pool)


# Composed phrasings (training only): a question built from one clause per role, in shuffled order, so
# that a number's role is carried by its words ("out of", "each", "for ... hours") and not by where it
# stands. The fixed template lists taught position: "After paying 42 and 37.94 out of 874" became
# 42 - 37.94 - 874. Held-out questions never use these; tests check that no composed question equals a
# held-out template.
# They also carry every word a held-out phrasing uses ("owns", "flip", "hold ... completely"), in other
# sentences: the held-out split tests new sentence forms and new numbers, not words the model never saw
# (tests/test_nano_curriculum.py checks this). Without them 5 of v6c's 11 misses on 81 held-out problems
# were on a word training never contained ("Flip the letters of 'banana'" became upper case).
_COMPOSED: dict[str, tuple[list[list[str]], list[str]]] = {
    "arithmetic.buy": (
        [["{name} has {a} {item}s", "there are {a} {item}s at first", "a shelf holds {a} {item}s",
          "the starting count is {a} {item}s", "{a} {item}s are already in the box",
          "{name} keeps {a} {item}s", "{name} owns {a} {item}s"],
         ["{b} packs of {c} {item}s are added", "{name} buys {b} bags with {c} {item}s each",
          "each of {b} new crates holds {c} {item}s", "{c} {item}s come in each of {b} new boxes",
          "{b} more boxes arrive, {c} {item}s in every box", "{name} adds {b} trays holding {c} each",
          "{name} is buying {b} sets of {c} {item}s"]],
        ["How many {item}s are there now?", "What is the total number of {item}s?", "How many in all?",
         "How many {item}s does that make?", "What is the new count?", "Find the total.",
         "How many will {name} own then?", "What does {name} own in all?"],
    ),
    "arithmetic.spend": (
        [["{name} has {a} dollars", "the budget is {a} dollars", "a wallet holds {a} dollars",
          "there are {a} dollars in the account", "{name} starts the week with {a} dollars",
          "the money available is {a} dollars", "the total to spend from is {a} dollars"],
         ["{name} spends {b} and {c}", "two costs are {b} and {c} dollars",
          "{b} dollars go to food and {c} dollars to rent", "the bills are {b} and {c}",
          "{name} pays {b} dollars, then {c} dollars", "purchases of {b} and {c} dollars are made",
          "a ticket costs {b} and a meal costs {c}", "{name} buys a {b} dollar ticket and a {c} dollar meal",
          "a {b} dollar bill and a {c} dollar bill are paid"]],
        ["How much is left?", "What remains?", "How many dollars are left?", "What is the balance now?",
         "How much money stays?", "Find what is left over."],
    ),
    "arithmetic.bags": (
        [["there are {a} {item}s", "{name} has {a} {item}s to pack", "a pile of {a} {item}s waits",
          "the count of {item}s is {a}"],
         ["each bag holds {b}", "a bag fits exactly {b} {item}s", "bags are filled {b} at a time",
          "one bag takes {b} {item}s", "the bag size is {b}", "every bag can hold {b}"]],
        ["How many full bags are there?", "How many bags can be filled?", "How many bags are full?",
         "Find the number of full bags.", "How many complete bags?", "How many bags are filled completely?",
         "If they are split into bags, how many bags are full?"],
    ),
    "arithmetic.rate": (
        [["the speed is {a} km per hour", "{name} moves at {a} km per hour", "it goes {a} km each hour",
          "a van keeps {a} km per hour", "the pace is {a} km an hour", "a bus goes {a} km per hour"],
         ["the trip lasts {b} hours", "{name} travels for {b} hours", "the drive takes {b} hours",
          "it keeps going for {b} hours", "the time is {b} hours",
          "a cyclist rides for {b} hours"]],
        ["How many km is that?", "What distance is covered?", "How far is it, in km?", "Find the distance.",
         "How many km are covered?"],
    ),
    "percent.discount": (
        [["a {item} costs {x} dollars", "the list price is {x} dollars", "the normal price is {x} dollars",
          "{name} picks a {item} priced at {x} dollars", "the tag says {x} dollars"],
         ["it is {p}% off", "there is a {p}% discount", "the store takes {p}% off",
          "a coupon gives {p}% off", "the sale cuts {p}%", "the shop sells it at {p}% off",
          "{p}% is taken off"]],
        ["What is the sale price?", "How much do you pay?", "What is the new price?",
         "What does it cost after the discount?", "Find the final price."],
    ),
    "percent.change": (
        [["it was {x} before", "the old value is {x}", "last year it was {x}", "the start value is {x}",
          "at first the count was {x}"],
         ["it is {y} now", "the new value is {y}", "this year it is {y}", "the end value is {y}",
          "later the count was {y}", "then it changes to {y}"]],
        ["What is the percent change?", "By what percent did it change?", "Find the change in percent.",
         "How many percent is the change?"],
    ),
    "units": (
        [["{name} has {x} {src}", "the measurement is {x} {src}", "a value of {x} {src} is given",
          "the label says {x} {src}", "the reading is {x} {src}"],
         ["the answer must be in {dst}", "{name} needs it in {dst}", "the target unit is {dst}",
          "we want {dst}", "the form asks for {dst}"]],
        ["What is the value?", "Convert it.", "What number is that?", "Give the converted value.",
         "How much is that?"],
    ),
}
for _kind in ("yearly", "monthly", "earned"):
    _rate = ("{r}% a year, compounded monthly" if _kind == "monthly" else "{r}% a year, compounded yearly")
    _COMPOSED[f"interest.{_kind}"] = (
        [["{name} deposits {p} dollars", "the principal is {p} dollars", "an account starts with {p} dollars",
          "the amount saved is {p} dollars", "{name} lends {p} dollars"],
         [f"the rate is {_rate}", f"interest is {_rate}", f"the bank pays {_rate}",
          f"it earns {_rate.replace('a year', 'yearly interest')}"],
         ["the money stays for {n} years", "the term is {n} years", "{n} years pass",
          "the time is {n} years", "it is left for {n} years"]],
        # The word "interest" is in asks of both kinds, so that the ask's meaning, not the word, tells
        # the kind (with it only in the earned asks, "yearly interest … Final balance?" became earned).
        ["How much interest is earned?", "What is the interest only?", "How much interest does it make?",
         "Find the interest, not the total.", "By how much does the balance grow?",
         "What is the gain over the starting amount?"] if _kind == "earned" else
        ["What is the final amount?", "How much is there at the end?", "What is the balance then?",
         "Find the total amount.", "What is the balance with the interest included?",
         "How much is there in all, interest and principal?"],
    )

_WORD_CLAUSES = ["the word is '{w}'", "{name} writes '{w}'", "the string is '{w}'", "the text is '{w}'",
                 "here is the word '{w}'", "the input is '{w}'"]
_COMPOSED.update({
    "strings.reverse": ([_WORD_CLAUSES], ["Reverse it.", "Spell it backwards.", "Write it from the end.",
                                          "What is it reversed?", "Give it in reverse order.",
                                          "Flip it end to end."]),
    "strings.upper": ([_WORD_CLAUSES], ["Make it upper case.", "Write it in capitals.", "Give it in caps.",
                                        "What is it in uppercase?", "Capitalize all of it."]),
    "strings.vowels": ([_WORD_CLAUSES], ["Count its vowels.", "How many vowels does it have?",
                                         "How many of its letters are vowels?", "Find its vowel count."]),
    "strings.count": (
        [_WORD_CLAUSES, ["the letter is '{c}'", "we look for '{c}'", "the character to count is '{c}'",
                         "the letter to find is '{c}'"]],
        ["How many times does the letter appear in the word?", "Count that letter in the word.",
         "How often does it occur?", "Find the count of the letter.",
         "How many such characters are in the word?"],
    ),
    "strings.words": (
        [["the sentence is '{s}'", "{name} writes '{s}'", "the text is '{s}'", "the line reads '{s}'"]],
        ["Count its words.", "How many words does it have?", "What is the word count?"],
    ),
    "strings.sort": (
        [["the list is {xs}", "{name} has {xs}", "the numbers are {xs}", "the data is {xs}"]],
        ["Sort it ascending.", "Put it in increasing order.", "Order it from low to high.",
         "What is it sorted?", "Arrange it from low to high."],
    ),
    "combo": (
        [["the list is {xs}", "{name} has the numbers {xs}", "the data are {xs}", "xs is {xs}",
          "the values are {xs}"]],
        ["I need {what}.", "Find {what}.", "What is {what}?", "Compute {what}.", "Give {what}."],
    ),
})


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _compose(rng: random.Random, kind: str) -> str:
    """One composed question for ``kind``: the role clauses in random order, then the ask."""
    facts, asks = _COMPOSED[kind]
    parts = [rng.choice(f) for f in facts]
    rng.shuffle(parts)
    ask = rng.choice(asks)
    style = rng.random()
    if style < 0.45:
        return " ".join(_cap(p) + "." for p in parts) + " " + ask
    if style < 0.75 or not ask.endswith("?") or ask.startswith("I "):
        return _cap(", and ".join(parts)) + ". " + ask
    return "If " + " and ".join(parts) + ", " + ask[:1].lower() + ask[1:]


def _question(rng: random.Random, split: str, templates: list[str], n_heldout: int, kind: str) -> str:
    """A template phrasing, or (training only, 35 %) a composed one when ``kind`` has clauses."""
    if split == "train" and kind in _COMPOSED and rng.random() < 0.35:
        return _compose(rng, kind)
    return _phrasing(rng, split, templates, n_heldout)


def _money(rng: random.Random, lo: int, hi: int) -> str:
    if rng.random() < 0.5:
        return str(rng.randint(lo, hi))
    return f"{rng.randint(lo, hi)}.{rng.randint(1, 99):02d}".rstrip("0")


def _dec(rng: random.Random, lo: int, hi: int, p_int: float = 0.5) -> str:
    if rng.random() < p_int:
        return str(rng.randint(lo, hi))
    return f"{rng.randint(lo, hi)}.{rng.randint(1, 9)}"


def _intlist(rng: random.Random, n_lo: int = 4, n_hi: int = 7, lo: int = 1, hi: int = 99) -> str:
    return "[" + ", ".join(str(rng.randint(lo, hi)) for _ in range(rng.randint(n_lo, n_hi))) + "]"


def _date(rng: random.Random, y_lo: int = 2019, y_hi: int = 2026) -> str:
    import datetime

    d = datetime.date(rng.randint(y_lo, y_hi), 1, 1) + datetime.timedelta(days=rng.randint(0, 364))
    return d.isoformat()


# ---------------------------------------------------------------------------------------------
# Families. Each returns a Recipe; ``split`` picks phrasings (and, in "combo", the allowed pairs).

_ARITH = {
    "buy": (
        [
            "{name} has {a} {item}s and buys {b} packs of {c}. How many {item}s does {name} have now?",
            "{name} starts with {a} {item}s, then gets {b} boxes with {c} {item}s each. How many in total?",
            "There are {a} {item}s. {b} more bags arrive, each with {c} {item}s. How many {item}s now?",
            "A shop has {a} {item}s and receives {b} crates of {c}. Total {item}s?",
            "Add {b} groups of {c} {item}s to {a} {item}s. How many {item}s is that?",
            "{a} {item}s in stock, plus {b} cartons of {c} each: how many {item}s altogether?",
            "Compute the total number of {item}s: {a} already there and {b} crates holding {c} apiece.",
            "I have {a} {item}s and I buy {b} packets with {c} in each. How many {item}s do I have now?",
            "Work out how many {item}s {name} ends up with: {a} to start, then {b} boxes of {c}.",
            "On Monday {name} kept {a} {item}s in a drawer. On Tuesday {name} bought {b} packs, each with "
            "{c} {item}s. How many {item}s are there now?",
            "{b} bundles of {c} {item}s are added to a pile of {a} {item}s. What is the new count?",
            "Tell me the total: {a} {item}s plus {b} bags with {c} {item}s in each.",
            "A teacher collects {a} {item}s, then the class brings {b} more boxes, each holding {c}. How "
            "many {item}s does the teacher have?",
            "{name} got {b} packs of {c} {item}s on top of {a} {item}s. How many {item}s in all?",
            "How many {item}s are there if a heap of {a} {item}s is joined by {b} trays of {c} {item}s?",
            "Starting count {a}; {b} deliveries of {c} {item}s each. Final count of {item}s?",
            "{name} collects {item}s. There are {a} already, and {b} new packs with {c} in each are added. "
            "How many {item}s does {name} have in total?",
            "{name} owns {a} {item}s. After buying {b} sets of {c}, how many does {name} own?",
            "If {name} had {a} {item}s and then got {b} packets holding {c} each, what is the total?",
        ],
        "Total = {a} + {b} * {c}.",
        "print({a} + {b} * {c})",
        "Check by adding the packs one at a time.",
        "t = {a}\nfor _ in range({b}):\n    t += {c}\nprint(t)",
        " {item}s",
    ),
    "spend": (
        [
            "{name} had {a} dollars, spent {b} on food and {c} on books. How much is left?",
            "A wallet holds {a} dollars. {name} pays {b} and then {c}. What remains?",
            "{name} earns {a} dollars and spends {b} and {c}. How much money is left?",
            "Start with {a} dollars, subtract {b} and {c}. What is left?",
            "From a budget of {a} dollars, {name} uses {b} for rent and {c} for travel. What is left?",
            "{a} dollars in the account, minus {b} for groceries and {c} for gas. What is left?",
            "I have {a} dollars. I spend {b} on lunch and {c} on a taxi. How many dollars do I have left?",
            "Compute what remains of {a} dollars after two purchases of {b} and {c} dollars.",
            "{name} gets paid {a} dollars, then buys shoes for {b} dollars and a hat for {c} dollars. How "
            "much money is left?",
            "On Friday {name} went shopping with {a} dollars and spent {b} at one store and {c} at another. "
            "How much is left?",
            "Work out the remaining money: {a} dollars minus {b} dollars minus {c} dollars.",
            "A club has {a} dollars. It pays {b} for snacks and {c} for prizes. What is the balance now?",
            "Two costs, {b} and {c} dollars, are taken from {a} dollars. What remains?",
            "{name} withdraws {b} dollars and later {c} dollars from {a} dollars in savings. How many "
            "dollars stay in savings?",
            "Tell me how much is left from {a} dollars once {b} and {c} are spent.",
            "Budget {a} dollars, costs {b} and {c}: money left?",
            "If a trip budget is {a} dollars and {name} spends {b} on a hotel and {c} on meals, how much is "
            "left over?",
            "{name} had {a} dollars. Two bills cost {b} and {c}. How much does {name} keep?",
            "After paying {b} and {c} out of {a} dollars, how many dollars remain?",
        ],
        "Left = {a} - {b} - {c}.",
        "print(round({a} - {b} - {c}, 2))",
        "Check: subtract the sum of both costs.",
        "print(round({a} - ({b} + {c}), 2))",
        " dollars",
    ),
    "bags": (
        [
            "{a} {item}s are packed into bags of {b}. How many full bags are there?",
            "{name} puts {a} {item}s into boxes of {b}. How many boxes are full?",
            "How many full packs of {b} can be made from {a} {item}s?",
            "A machine fills trays of {b} {item}s from {a} {item}s. How many full trays?",
            "{a} {item}s, bags of {b}: number of full bags?",
            "{name} has {a} {item}s and packs them {b} to a bag. How many bags are filled?",
            "Each carton takes {b} {item}s. How many cartons can be filled from {a} {item}s?",
            "Compute how many full boxes of {b} you get from {a} {item}s.",
            "I have {a} {item}s and want to put exactly {b} in each bag. How many bags will be full?",
            "A bakery packs {item}s in boxes of {b}. It has {a} {item}s today. How many full boxes can it "
            "pack?",
            "Work out the number of complete packets of {b} that {a} {item}s make.",
            "On Monday {name} sorted {a} {item}s into crates holding {b} each. How many crates were full?",
            "How many full bags of {b} {item}s does {name} get out of {a} {item}s?",
            "Tell me how many full sacks you get when {a} {item}s are shared out {b} per sack.",
            "{a} {item}s go into jars, {b} per jar. Leftovers stay out. How many full jars?",
            "If every tray holds {b} {item}s, how many trays does {name} fill with {a} {item}s?",
            "Split {a} {item}s into groups of {b}. How many complete groups?",
            "With {a} {item}s and bags that hold {b}, how many bags can {name} fill completely?",
        ],
        "Full bags = {a} // {b}.",
        "print({a} // {b})",
        "Check that {out} bags fit and one more does not.",
        "print({out} * {b} <= {a} < ({out} + 1) * {b})",
        " bags",
    ),
    "rate": (
        [
            "A car drives {a} km per hour for {b} hours. How far does it go?",
            "{name} walks {a} km each hour for {b} hours. What distance is covered?",
            "A train moves at {a} km per hour. How many km in {b} hours?",
            "At {a} km per hour, how far does {name} travel in {b} hours?",
            "{name} rides a bike for {b} hours at {a} km an hour. Total km?",
            "Speed {a} km/h, time {b} hours. Distance in km?",
            "Compute the distance covered in {b} hours at a steady speed of {a} km per hour.",
            "A boat sails for {b} hours at {a} km per hour. How far does it get?",
            "I drive {b} hours at {a} km per hour. What distance do I cover?",
            "Work out how far a runner gets in {b} hours when running {a} km each hour.",
            "On a holiday, {name} drove for {b} hours, always at {a} km per hour. What distance did {name} "
            "drive?",
            "What distance does a truck travel in {b} hours if it moves {a} km in each hour?",
            "Tell me the distance for {b} hours of travel at {a} km per hour.",
            "{a} km an hour over {b} hours: how far, in km?",
            "A model plane flies {a} km in each hour. After {b} hours, how many km has it flown?",
            "Moving at a constant {a} km per hour, how far does a horse go in {b} hours?",
            "A cyclist keeps {a} km per hour for {b} hours. Distance?",
            "Going {a} km every hour, how many km does a bus cover in {b} hours?",
        ],
        "Distance = {a} * {b}.",
        "print(round({a} * {b}, 2))",
        "Check by dividing the distance by the time.",
        "print(round({out} / {b}, 2) == {a})",
        " km",
    ),
}


def _arithmetic(rng: random.Random, split: str) -> Recipe:
    kind = rng.choice(list(_ARITH))
    templates, plan, code, vplan, vcode, unit = _ARITH[kind]
    while True:
        if kind == "buy":
            a, b, c = str(rng.randint(2, 500)), str(rng.randint(2, 12)), str(rng.randint(2, 60))
        elif kind == "spend":
            a = str(rng.randint(100, 2000))
            b, c = _money(rng, 5, 60), _money(rng, 5, 40)
        elif kind == "bags":
            b = str(rng.randint(3, 25))
            a = str(rng.randint(int(b) * 2, 999))
            c = ""
        else:
            a, b, c = _dec(rng, 3, 120), str(rng.randint(2, 9)), ""
        if _numbers_in_split((kind, a, b, c), split):
            break
    if kind == "rate" and "." in a:
        # round(a*b, 2)/b may not round-trip exactly for decimals; keep the check honest.
        vcode = "print(abs({out} / {b} - {a}) < 0.01)"
    slots = {"a": a, "b": b, "c": c, "name": rng.choice(NAMES), "item": rng.choice(ITEMS)}
    return Recipe(
        "arithmetic", f"arithmetic.{kind}", _question(rng, split, templates, 2, f"arithmetic.{kind}"),
        slots,
        [Step(plan, code), Step(vplan, vcode, "verify")], "", unit, numeric_slots=("a", "b"),
    )


_PERCENT = {
    "of": (
        [
            "What is {p}% of {x}?",
            "Compute {p} percent of {x}.",
            "How much is {p}% of {x}?",
            "Find {p}% of {x}.",
            "Calculate {p}% of {x}.",
            "{p}% of {x} is how much?",
            "Tell me {p} percent of {x}, please.",
            "I need {p}% of the number {x}.",
            "Work out {p} percent of the amount {x}.",
            "What number is {p}% of {x}?",
            "Of the value {x}, how much is {p}%?",
            "{name} gets {p}% of {x} points. How many points is that?",
            "A tax of {p}% is charged on {x}. How big is the tax?",
            "Determine {p} percent of {x}.",
            "If you take {p}% of {x}, which number results?",
            "{x} times {p}% equals what?",
            "{name} wants {p}% of {x}. What is it?",
            "Take {p} percent of {x}. What do you get?",
        ],
        "Part = {x} * {p} / 100.",
        "print(round({x} * {p} / 100, 2))",
        "Check with the fraction {p} / 100 first.",
        "f = {p} / 100\nprint(round(f * {x}, 2))",
        "",
    ),
    "discount": (
        [
            "A {item} costs {x} dollars and is {p}% off. What is the sale price?",
            "{name} buys a {item} priced {x} dollars with a {p}% discount. What does {name} pay?",
            "The price {x} dollars is cut by {p}%. New price?",
            "With {p}% off, how much is a {item} that normally costs {x} dollars?",
            "A {item} is marked {x} dollars. It is on sale at {p}% off. What does it cost now?",
            "{x} dollars, {p}% discount: sale price?",
            "Compute the price after a {p}% discount on {x} dollars.",
            "I want a {item} that costs {x} dollars, and there is {p}% off today. How much do I pay?",
            "The store cuts {p}% from the {x} dollars price of a {item}. How much does it cost after the "
            "cut?",
            "{name} finds a {item} for {x} dollars with a coupon for {p}% off. What is the price with the "
            "coupon?",
            "Work out the discounted price: {x} dollars less {p}%.",
            "During a sale, every {item} gets {p}% off. A {item} was {x} dollars. What is its sale price?",
            "Tell me the cost of a {item} listed at {x} dollars after taking off {p}%.",
            "How much is {x} dollars after a {p}% reduction?",
            "A {p}% discount applies to a {item} priced at {x} dollars. How many dollars is the new price?",
            "On Black Friday, {name} sees a {item} reduced by {p}% from {x} dollars. What does it sell for?",
            # "off" right before the price: the number after "off" is the price, the one before the
            # "%" is the discount (the session-8 model read "takes 15% off a 578 ..." as "off 57").
            "Take {p}% off {x} dollars. What is the new price?",
            "The shop knocks {p}% off the {x} dollars that a {item} costs. What does it cost now?",
            "{name} gets {p}% off {x} dollars of {item}s. How much does {name} pay?",
            "A shop takes {p}% off a {x} dollar {item}. What is the final price?",
            "What do you pay for a {x} dollar {item} at {p}% off?",
        ],
        "Price = {x} * (1 - {p} / 100).",
        "print(round({x} * (1 - {p} / 100), 2))",
        "Check: subtract the discount amount.",
        "print(round({x} - {x} * {p} / 100, 2))",
        " dollars",
    ),
    "change": (
        [
            "A price went from {x} to {y}. What is the percent change?",
            "Sales rose from {x} to {y}. By what percent did they change?",
            "{name}'s score moved from {x} to {y}. Percent change?",
            "What is the percent change from {x} to {y}?",
            "The price was {x} and is now {y}. Find the percent change.",
            "{x} became {y}. Percent change?",
            "Compute the percentage change when a number goes from {x} to {y}.",
            "Old value {x}, new value {y}: percent change?",
            "{name} had {x} followers last year and has {y} this year. By what percent did the count "
            "change?",
            "Work out the percent change of a stock that moved from {x} to {y}.",
            "Rent changed to {y} from {x}. Give the percent change.",
            "Tell me the relative change, in percent, from {x} to {y}.",
            "On Monday the count was {x}; on Friday it was {y}. Give the percent change from Monday to "
            "Friday.",
            "If a population of {x} becomes {y}, how big is the percent change?",
            "A website had {x} visits in May and {y} in June. Find the percent change.",
            "By how many percent does {x} change if it turns into {y}?",
            "A value changes from {x} to {y}. How many percent is that?",
            "Going from {x} to {y}, what is the change in percent?",
        ],
        "Change = ({y} - {x}) / {x} * 100.",
        "print(round(({y} - {x}) / {x} * 100, 2))",
        "Check with the ratio {y} / {x}.",
        "print(round(({y} / {x} - 1) * 100, 2))",
        "%",
    ),
}


def _percent(rng: random.Random, split: str) -> Recipe:
    kind = rng.choice(list(_PERCENT))
    templates, plan, code, vplan, vcode, unit = _PERCENT[kind]
    while True:
        p = str(rng.choice([5, 10, 12, 15, 20, 25, 30, 35, 40, 45, 50, 60, 75]) + rng.choice([0, 0, 0, 3]))
        x = _money(rng, 10, 900) if kind != "change" else str(rng.randint(20, 900))
        y = str(rng.randint(10, 1200)) if kind == "change" else ""
        if _numbers_in_split((kind, p, x, y), split):
            break
    slots = {"p": p, "x": x, "y": y, "name": rng.choice(NAMES), "item": rng.choice(ITEMS)}
    return Recipe(
        "percent", f"percent.{kind}", _question(rng, split, templates, 2, f"percent.{kind}"), slots,
        [Step(plan, code), Step(vplan, vcode, "verify")], "", unit, numeric_slots=("p", "x"),
    )


_INTEREST_Q = {
    "yearly": [
        "{name} invests {p} dollars at {r}% per year, compounded yearly, for {n} years. Final amount?",
        "How much do {p} dollars grow to in {n} years at {r}% yearly compound interest?",
        "A deposit of {p} dollars earns {r}% a year, compounded annually. Balance after {n} years?",
        "Compound {p} dollars at {r}% per year for {n} years. What is the total?",
        "What is {p} dollars worth after {n} years at {r}% interest compounded every year?",
        "{name} puts {p} dollars in a bank paying {r}% a year, compounded yearly. How much is there after "
        "{n} years?",
        "Principal {p} dollars, rate {r}% per year compounded annually, {n} years. Final amount?",
        "Compute the value of {p} dollars after {n} years of {r}% annual compound interest.",
        "I deposit {p} dollars at {r}% per year with yearly compounding. What will I have after {n} years?",
        "Work out the amount: {p} dollars growing at {r}% compounded once a year for {n} years.",
        "A bond of {p} dollars grows by {r}% every year, and the growth compounds. How much is it worth in "
        "{n} years?",
        "Tell me the final sum when {p} dollars earn {r}% annually, compounded each year, for {n} years.",
        "In {n} years, what will {p} dollars become at {r}% interest per year compounded yearly?",
        "{p} dollars at {r}% annual compound interest, {n} years: total?",
        "Back in school, {name} opened an account with {p} dollars at {r}% a year, compounded annually. "
        "What is the balance {n} years later?",
        "How many dollars does an account reach after {n} years if it starts at {p} dollars and compounds "
        "at {r}% per year?",
        "Find the future value of {p} dollars in {n} years at {r}% per year, compounded annually.",
        "{p} dollars are saved at {r}% yearly interest for {n} years. Final balance?",
    ],
    "monthly": [
        "{name} saves {p} dollars at {r}% a year, compounded monthly, for {n} years. Final amount?",
        "How much do {p} dollars become after {n} years at {r}% yearly rate compounded monthly?",
        "A loan of {p} dollars grows at {r}% per year, compounded each month, for {n} years. Amount owed?",
        "Compound {p} dollars monthly at {r}% annual rate for {n} years. Total?",
        "{name} deposits {p} dollars at {r}% per year, compounded every month. How much is there after {n} "
        "years?",
        "Principal {p} dollars, annual rate {r}%, monthly compounding, {n} years. Final amount?",
        "Compute the final amount for {p} dollars over {n} years with {r}% a year compounded monthly.",
        "I save {p} dollars in an account paying {r}% yearly, compounded monthly. What do I have in {n} "
        "years?",
        "Work out how much {p} dollars grow to in {n} years if interest is {r}% per year and compounds each "
        "month.",
        "A credit card debt of {p} dollars grows at an annual {r}%, compounded monthly. How much is owed "
        "after {n} years?",
        "Tell me the amount in {n} years for {p} dollars at {r}% yearly, compounded twelve times a year.",
        "{p} dollars, {r}% a year, compounded monthly, {n} years: total?",
        "For {n} years, {name} leaves {p} dollars in savings at {r}% annual interest with monthly "
        "compounding. Final amount?",
        "At an annual rate of {r}% compounded monthly, what do {p} dollars become in {n} years?",
        "How much money is in the account {n} years after depositing {p} dollars at {r}% a year, compounded "
        "monthly?",
        "Find the future value of {p} dollars in {n} years, rate {r}% per year, compounding monthly.",
        "What is the balance of {p} dollars after {n} years at {r}% compounded monthly?",
    ],
    "earned": [
        "{name} banks {p} dollars at {r}% yearly compound interest. How much interest after {n} years?",
        "How much interest do {p} dollars earn in {n} years at {r}% compounded yearly?",
        "Interest earned on {p} dollars at {r}% per year, compounded annually, over {n} years?",
        "What interest does a {p} dollar deposit make in {n} years at {r}% yearly compounding?",
        "{name} deposits {p} dollars at {r}% a year, compounded annually. How much interest is earned in "
        "{n} years?",
        "Principal {p} dollars, {r}% per year compounded yearly, {n} years. How much interest?",
        "Compute only the interest earned on {p} dollars in {n} years with {r}% annual compound interest.",
        "I put {p} dollars into savings at {r}% per year, compounded once a year. How much interest will I "
        "earn in {n} years?",
        "Work out the interest (not the total) on {p} dollars at {r}% a year, compounded yearly, for {n} "
        "years.",
        "A bank pays {r}% per year, compounded yearly. What interest does {name} get on {p} dollars in {n} "
        "years?",
        "Tell me the compound interest {p} dollars earn at {r}% per year, compounded annually, for {n} "
        "years.",
        "{p} dollars, {r}% yearly compound interest, {n} years: interest earned?",
        "How many dollars of interest does a {p} dollar deposit gain in {n} years with {r}% per year, "
        "compounded annually?",
        "After {n} years of {r}% annual compounding, how much interest have {name}'s {p} dollars earned?",
        "Find the interest part of the balance when {p} dollars compound at {r}% yearly for {n} years.",
        "Leaving out the original {p} dollars, by how much does the balance grow in {n} years with {r}% a "
        "year compounded annually?",
        "Over {n} years at {r}% compounded yearly, how much interest do {p} dollars earn?",
    ],
}


def _interest(rng: random.Random, split: str) -> Recipe:
    kind = rng.choice(list(_INTEREST_Q))
    while True:
        p = str(rng.choice([100, 200, 250, 500, 750, 800, 1000, 1200, 1500, 2000, 2500, 3000, 5000]))
        p = str(int(p) + rng.choice([0, 0, 0, rng.randint(1, 99)]))
        r, n = _dec(rng, 1, 12, 0.6), str(rng.randint(2, 15))
        if _numbers_in_split((kind, p, r, n), split):
            break
    if kind == "yearly":
        steps = [
            Step("Amount = {p} * (1 + {r} / 100) ** {n}.", "print(round({p} * (1 + {r} / 100) ** {n}, 2))"),
            Step("Check with a loop over the {n} years.",
                 "a = {p}\nfor _ in range({n}):\n    a *= 1 + {r} / 100\nprint(round(a, 2))", "verify"),
        ]
    elif kind == "monthly":
        steps = [
            Step("Amount = {p} * (1 + {r} / 100 / 12) ** (12 * {n}).",
                 "print(round({p} * (1 + {r} / 100 / 12) ** (12 * {n}), 2))"),
            Step("Check with a loop over the months.",
                 "a = {p}\nfor _ in range(12 * {n}):\n    a *= 1 + {r} / 1200\nprint(round(a, 2))", "verify"),
        ]
    else:
        steps = [
            Step("Interest = {p} * (1 + {r} / 100) ** {n} - {p}.",
                 "print(round({p} * (1 + {r} / 100) ** {n} - {p}, 2))"),
            Step("Check with a loop, then subtract {p}.",
                 "a = {p}\nfor _ in range({n}):\n    a *= 1 + {r} / 100\nprint(round(a - {p}, 2))", "verify"),
        ]
    slots = {"p": p, "r": r, "n": n, "name": rng.choice(NAMES)}
    question = _question(rng, split, _INTEREST_Q[kind], 1, f"interest.{kind}")
    return Recipe("interest", f"interest.{kind}", question, slots, steps,
                  "", " dollars", numeric_slots=("p", "r", "n"))


# (from unit, to unit, code expression over {x}, inverse check over {out})
_UNITS = [
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
_UNITS_Q = [
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


def _units(rng: random.Random, split: str) -> Recipe:
    src, dst, expr, inverse = rng.choice(_UNITS)
    while True:
        x = _dec(rng, 1, 400, 0.6)
        if _numbers_in_split((src, dst, x), split):
            break
    steps = [
        Step(f"{dst.capitalize()} = {expr}.", f"print(round({expr}, 2))"),
        Step("Check by converting back.", f"print(abs({inverse} - {{x}}) < 0.05)", "verify"),
    ]
    slots = {"x": x, "src": src, "dst": dst, "name": rng.choice(NAMES)}
    return Recipe("units", f"units.{src}-{dst}", _question(rng, split, _UNITS_Q, 2, "units"), slots, steps,
                  "", " {dst}", numeric_slots=("x",))


_DATES = {
    "between": (
        [
            "How many days are there from {d1} to {d2}?",
            "Count the days between {d1} and {d2}.",
            "{name} travels from {d1} until {d2}. How many days is that?",
            "What is the number of days from {d1} to {d2}?",
            "{d1} to {d2}: number of days?",
            "Compute the number of days between {d1} and {d2}.",
            "Tell me how many days pass from {d1} until {d2}.",
            "A lease starts on {d1} and ends on {d2}. Count the days it covers.",
            "{name} counts down the days between {d1} and {d2}. How long is the countdown in days?",
            "Work out the gap in days between {d1} and {d2}.",
            "If today is {d1}, how many days are left until {d2}?",
            "Between {d1} and {d2}, how much time passes in days?",
            "Starting on {d1}, how many days does it take to reach {d2}?",
            "On {d1} {name} planted a tree; on {d2} it bloomed. How many days passed?",
            "Find the day difference between {d1} and {d2}.",
            "A loan is taken on {d1} and repaid on {d2}. For how many days was it held?",
            "A course runs from {d1} to {d2}. The project needs all of it. How many days is that?",
            "A project runs from {d1} to {d2}. How many days long is it?",
            "How many days separate {d1} and {d2}?",
        ],
        [
            Step("Days = date {d2} minus date {d1}.",
                 "from datetime import date\n"
                 "print((date.fromisoformat('{d2}') - date.fromisoformat('{d1}')).days)"),
            Step("Check: {d1} plus {out} days should be {d2}.",
                 "from datetime import timedelta\n"
                 "print(date.fromisoformat('{d1}') + timedelta(days={out}) == date.fromisoformat('{d2}'))",
                 "verify"),
        ],
        " days",
    ),
    "after": (
        [
            "What date is {n} days after {d1}?",
            "Add {n} days to {d1}. Which date is it?",
            "{name} starts on {d1}. What is the date {n} days later?",
            "Which date comes {n} days after {d1}?",
            "{d1} plus {n} days: which date?",
            "Compute the date that is {n} days after {d1}.",
            "Tell me which date we reach by counting {n} days forward from {d1}.",
            "A parcel ships on {d1} and arrives {n} days later. What is the arrival date?",
            "{name} books a trip on {d1} that leaves in {n} days. On which date does it leave?",
            "Work out the calendar date {n} days on from {d1}.",
            "If a countdown of {n} days begins on {d1}, on which date does it reach zero?",
            "Starting from {d1}, move {n} days ahead. What date is that?",
            "{n} days after {d1} is which date?",
            "On {d1} {name} planted seeds that sprout {n} days later. On which date do they sprout?",
            "Find which date falls {n} days later than {d1}.",
            "What is {d1} shifted forward by {n} days?",
            "A free trial starts on {d1}. Which date is {n} days past that?",
            "A trial begins {d1} and lasts {n} days. On what date does it end?",
            "Give the date {n} days past {d1}.",
        ],
        [
            Step("Date = {d1} + {n} days.",
                 "from datetime import date, timedelta\n"
                 "print(date.fromisoformat('{d1}') + timedelta(days={n}))"),
            Step("Check: from {d1} to {out} should be {n} days.",
                 "print((date.fromisoformat('{out}') - date.fromisoformat('{d1}')).days == {n})", "verify"),
        ],
        "",
    ),
    "weekday": (
        [
            "What day of the week is {d1}?",
            "Which weekday was {d1}?",
            "{name} was born on {d1}. What day of the week was that?",
            "On which weekday does {d1} fall?",
            "{d1}: which day of the week?",
            "Compute the day of the week for {d1}.",
            "Work out what weekday {d1} is.",
            "{name}'s exam is on {d1}. Which day of the week is the exam?",
            "I need the name of the weekday for the date {d1}.",
            "Find the day name of {d1}.",
            "Which day of the week does {d1} land on?",
            "A concert is planned for {d1}. What weekday is that?",
            "Give the day of the week of the date {d1}.",
            "Name the day of the week that {d1} falls on.",
            "For the date {d1}, what day of the week is it?",
            "{name} got married on {d1}. Which weekday was the wedding?",
            "Is {d1} in the week or on the weekend? Name its day.",
            "Tell me the weekday of {d1}.",
            "Was {d1} a Monday, a Friday, or another day?",
        ],
        [
            Step("Use strftime('%A') on {d1}.",
                 "from datetime import date\nprint(date.fromisoformat('{d1}').strftime('%A'))"),
            Step("Check with weekday(): Monday is 0.",
                 "print(['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday']"
                 "[date.fromisoformat('{d1}').weekday()])", "verify"),
        ],
        "",
    ),
    "minutes": (
        [
            "How many minutes are in {h} hours and {m} minutes?",
            "Convert {h} h {m} min to minutes.",
            "{name} worked {h} hours and {m} minutes. How many minutes is that?",
            "A film lasts {h} hours {m} minutes. Length in minutes?",
            "{h} h {m} min: how many minutes in total?",
            "Compute the total minutes in {h} hours, {m} minutes.",
            "A flight takes {h} hours {m} minutes. How long is it in minutes?",
            "Tell me how many minutes make up {h} hours with {m} extra minutes.",
            "I slept for {h} hours {m} minutes. How many minutes did I sleep?",
            "Work out {h} hours {m} minutes in total minutes.",
            "{name} studied {h} hours, then {m} more minutes. How many minutes of study is that?",
            "Turn {h} h {m} min into minutes.",
            "A race took {name} {h} hours {m} minutes. What is the time in minutes only?",
            "How many minutes long is a meeting of {h} hours {m} minutes?",
            "On Sunday the drive lasted {h} hours {m} minutes. Give the total number of minutes.",
            "A video is {h} h {m} min long. Length in minutes?",
            "What is {h} hours plus {m} minutes in minutes?",
            "Express {h} hours and {m} minutes as minutes.",
        ],
        [
            Step("Minutes = {h} * 60 + {m}.", "print({h} * 60 + {m})"),
            Step("Check with timedelta.",
                 "from datetime import timedelta\n"
                 "print(int(timedelta(hours={h}, minutes={m}).total_seconds() // 60))",
                 "verify"),
        ],
        " minutes",
    ),
}


def _dates(rng: random.Random, split: str) -> Recipe:
    import datetime

    kind = rng.choice(list(_DATES))
    templates, steps, unit = _DATES[kind]
    while True:
        d1 = _date(rng)
        d2 = (datetime.date.fromisoformat(d1) + datetime.timedelta(days=rng.randint(3, 900))).isoformat()
        n, h, m = str(rng.randint(2, 400)), str(rng.randint(1, 23)), str(rng.randint(1, 59))
        key = {"between": (d1, d2), "after": (d1, n), "weekday": (d1,), "minutes": (h, m)}[kind]
        if _numbers_in_split((kind, *key), split):
            break
    slots = {"d1": d1, "d2": d2, "n": n, "h": h, "m": m, "name": rng.choice(NAMES)}
    numeric = {"after": ("n",), "minutes": ("h", "m")}.get(kind, ())
    return Recipe("dates", f"dates.{kind}", _phrasing(rng, split, templates, 2), slots, list(steps), "", unit,
                  numeric_slots=numeric)


_STATS = {
    # name: (phrase, main code, verification code)
    "mean": ("mean", "print(round(statistics.mean(xs), 2))", "print(round(sum(xs) / len(xs), 2))"),
    "median": ("median", "print(statistics.median(xs))", "s = sorted(xs)\nn = len(s)\n"
               "print(s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2)"),
    "range": ("range (max minus min)", "print(max(xs) - min(xs))", "s = sorted(xs)\nprint(s[-1] - s[0])"),
    "sum": ("sum", "print(sum(xs))", "t = 0\nfor v in xs:\n    t += v\nprint(t)"),
    "stdev": ("population standard deviation", "print(round(statistics.pstdev(xs), 2))",
              "m = sum(xs) / len(xs)\nprint(round((sum((v - m) ** 2 for v in xs) / len(xs)) ** 0.5, 2))"),
    "above": ("count of values above {k}", "print(sum(1 for v in xs if v > {k}))",
              "print(len([v for v in xs if v > {k}]))"),
}
_STATS_Q = [
    "What is the {stat} of {xs}?",
    "Find the {stat} of the list {xs}.",
    "Compute the {stat} of these numbers: {xs}.",
    "{name} recorded {xs}. What is the {stat}?",
    "Here are some scores: {xs}. Give the {stat}.",
    "Given {xs}, what is the {stat}?",
    "{xs}: give me the {stat}.",
    "Calculate the {stat} for {xs}.",
    "Tell me the {stat} of the numbers {xs}.",
    "Work out the {stat} of {xs}.",
    "I have the list {xs}. Can you get its {stat}?",
    "{name} wrote down these values: {xs}. Find their {stat}.",
    "Over a week a shop sold {xs} items per day. Compute the {stat}.",
    "Determine the {stat} of the sample {xs}.",
    "The numbers {xs} were measured on Monday. What's their {stat}?",
    "Using {xs}, calculate the {stat}.",
    "Need the {stat} of {xs}.",
    "Return the {stat} of this list: {xs}.",
    "The data is {xs}. Report the {stat}.",
    "For the values {xs}, what is the {stat}?",
]


def _stats(rng: random.Random, split: str) -> Recipe:
    kind = rng.choice(list(_STATS))
    phrase, code, vcode = _STATS[kind]
    while True:
        xs, k = _intlist(rng), str(rng.randint(10, 80))
        if _numbers_in_split((kind, xs, k), split):
            break
    stat = phrase.replace("{k}", k)
    imp = "import statistics\n" if "statistics" in code else ""
    steps = [
        Step(f"Store the list as xs and take the {stat}.", f"{imp}xs = {{xs}}\n{code}"),
        Step("Check with plain Python.", f"xs = {{xs}}\n{vcode}", "verify"),
    ]
    slots = {"xs": xs, "k": k, "stat": stat, "name": rng.choice(NAMES)}
    return Recipe("stats", f"stats.{kind}", _phrasing(rng, split, _STATS_Q, 2), slots, steps, "")


_STRINGS = {
    "reverse": (
        ["Reverse the word '{w}'.", "What is '{w}' spelled backwards?", "Write '{w}' in reverse order.",
         "{name} wants '{w}' reversed. What is it?",
         "Spell '{w}' backwards.",
         "'{w}' reversed is what?",
         "Tell me '{w}' read from right to left.",
         "Compute the reverse of the string '{w}'.",
         "I typed '{w}'. What do I get if I reverse it?",
         "Write each letter of '{w}' from last to first.",
         "Give the word '{w}' in reverse.",
         "Work out '{w}' backwards, letter by letter.",
         "{name} reads '{w}' from the end to the start. What does {name} read?",
         "What string do you get by reversing '{w}'?",
         "Print '{w}' in backward order.",
         "Reverse this word: '{w}'.",
         "Flip the letters of '{w}'."],
        "Use slicing with step -1.", "'{w}'[::-1]",
        "Check with reversed().", "print(''.join(reversed('{w}')) == {out})",
    ),
    "count": (
        ["How many times does '{c}' appear in '{w}'?", "Count the letter '{c}' in '{w}'.",
         "In the word '{w}', how many '{c}' are there?", "{name} asks: how often is '{c}' in '{w}'?",
         "'{w}': how many '{c}'?",
         "Tell me how many '{c}' letters are in '{w}'.",
         "Compute the number of times the letter '{c}' occurs in '{w}'.",
         "I wrote '{w}'. How often does '{c}' show up?",
         "Work out the count of '{c}' in the word '{w}'.",
         "In '{w}', count every '{c}'.",
         "How often does the letter '{c}' occur in '{w}'?",
         "Find how many '{c}' the string '{w}' contains.",
         "{name} spells '{w}'. How many times does {name} write '{c}'?",
         "Count occurrences of '{c}' inside '{w}'.",
         "What is the count of the character '{c}' in '{w}'?",
         "Look at '{w}' and count the '{c}' letters.",
         "Number of '{c}' characters in '{w}'?"],
        "Use str.count.", "print('{w}'.count('{c}'))",
        "Check with a loop over the letters.", "print(sum(1 for ch in '{w}' if ch == '{c}'))",
    ),
    "upper": (
        ["Write '{w}' in capital letters.", "Convert '{w}' to upper case.", "What is '{w}' in uppercase?",
         "{name} needs '{w}' in caps.",
         "Uppercase '{w}'.",
         "'{w}' in capitals?",
         "Tell me '{w}' written in upper case letters.",
         "Compute the uppercase form of '{w}'.",
         "I need the word '{w}' in block capitals.",
         "Work out '{w}' with every letter capitalized.",
         "Change '{w}' so every letter is a capital.",
         "{name} types '{w}' with caps lock on. What appears?",
         "Give '{w}' in all caps.",
         "What does '{w}' look like in capital letters?",
         "Capitalize every letter of '{w}'.",
         "Print the word '{w}' in uppercase.",
         "Make '{w}' all upper case."],
        "Use str.upper.", "'{w}'.upper()",
        "Check that lower() gives the word back.", "print({out}.lower() == '{w}')",
    ),
    "sort": (
        ["Sort the list {xs} from smallest to largest.", "Put {xs} in ascending order.",
         "What is {xs} sorted?", "{name} has {xs}. Sort it.",
         "Sort {xs} in ascending order.",
         "{xs} sorted from low to high?",
         "Tell me {xs} ordered from smallest to biggest.",
         "Compute the ascending sort of {xs}.",
         "I have the numbers {xs}. Put them in order, smallest first.",
         "Work out the sorted version of {xs}.",
         "Order these values from lowest to highest: {xs}.",
         "{name} wants {xs} ranked from the least to the greatest.",
         "Please give {xs} in sorted ascending order.",
         "Sort this list: {xs}.",
         "Rearrange {xs} so that each number is no larger than the next.",
         "What does {xs} look like after sorting it low to high?",
         "Arrange {xs} in increasing order."],
        # The check tests the result the first call kept in the namespace, not a copy of its output:
        # copied back from the output, a list of six numbers came out garbled ("r = [8, 27, …]" for
        # "[21, 27, …]"), printed False, and the model re-checked with the same copy until its calls broke.
        "Use sorted and keep the result in r.", "r = sorted({xs})\nprint(r)",
        "Check: r is ordered and has the same items.",
        "print(all(a <= b for a, b in zip(r, r[1:])) and sorted(r) == sorted({xs}))",
    ),
    "words": (
        ["How many words are in '{s}'?", "Count the words in the sentence '{s}'.",
         "Number of words in '{s}'?", "{name} wrote '{s}'. How many words is that?",
         "'{s}': how many words?",
         "Count how many words '{s}' has.",
         "Compute the number of words in the text '{s}'.",
         "I typed '{s}'. How many words did I type?",
         "Work out how many words the sentence '{s}' contains.",
         "How many separate words does '{s}' have?",
         "Find the number of words in the phrase '{s}'.",
         "{name} says '{s}'. Count the words.",
         "Split '{s}' into words. How many are there?",
         "What is the total number of words in '{s}'?",
         "Give the count of words in '{s}'.",
         "In the line '{s}', how many words appear?",
         "Tell me the word count of '{s}'."],
        "Split on spaces and count.", "print(len('{s}'.split()))",
        "Check: count spaces plus one.", "print('{s}'.count(' ') + 1)",
    ),
    "vowels": (
        ["How many vowels are in '{w}'?", "Count the vowels in '{w}'.", "Number of vowels in the word '{w}'?",
         "{name} asks how many vowels '{w}' has.",
         "'{w}': how many vowels?",
         "Tell me the number of vowels in '{w}'.",
         "Compute how many vowels the word '{w}' contains.",
         "I wrote '{w}'. How many vowels did I use?",
         "Work out the vowel count of '{w}'.",
         "Count a, e, i, o and u in '{w}'.",
         "Find how many vowels appear in '{w}'.",
         "{name} circles every vowel in '{w}'. How many circles are there?",
         "What is the number of vowels in the string '{w}'?",
         "In '{w}', how many letters are vowels?",
         "How many vowels does '{w}' have?",
         "Give the vowel count for the word '{w}'.",
         "How many of the letters in '{w}' are vowels?"],
        "Count letters in 'aeiou'.", "print(sum(1 for ch in '{w}' if ch in 'aeiou'))",
        "Check with str.count for each vowel.", "print(sum('{w}'.count(v) for v in 'aeiou'))",
    ),
}


def _rand_word(rng: random.Random, split: str = "heldout") -> str:
    # Training leans to random letters (copying them exactly is what small models get wrong); the
    # held-out mix stays half and half, so evaluations of every model version stay comparable.
    if rng.random() < (0.5 if split == "heldout" else 0.35):
        return rng.choice(WORDS)
    return "".join(rng.choice("abcdefghijklmnoprstuvwy") for _ in range(rng.randint(4, 8)))


def _strings(rng: random.Random, split: str) -> Recipe:
    kind = rng.choice(list(_STRINGS))
    templates, plan, code, vplan, vcode = _STRINGS[kind]
    while True:
        w = _rand_word(rng, split)
        c = rng.choice(w) if rng.random() < 0.8 else rng.choice("aeiost")
        xs = _intlist(rng, 4, 7)
        s = " ".join(_rand_word(rng, split) for _ in range(rng.randint(3, 8)))
        key = {"sort": (xs,), "words": (s,), "count": (w, c)}.get(kind, (w,))
        if _numbers_in_split((kind, *key), split):
            break
    slots = {"w": w, "c": c, "xs": xs, "s": s, "name": rng.choice(NAMES)}
    return Recipe("strings", f"strings.{kind}", _question(rng, split, templates, 1, f"strings.{kind}"), slots,
                  [Step(plan, code), Step(vplan, vcode, "verify")], "")


# The "data" family: the user's DataFrame (or list) already exists in the namespace. The model first
# inspects it, then computes on the column it found, then verifies — three tool calls.
_TABLES = [
    ("sales", ["region", "units", "price"], ["north", "south", "east", "west"]),
    ("orders", ["customer", "qty", "amount"], ["ana", "ben", "cleo", "dev", "eva"]),
    ("trips", ["city", "km", "cost"], ["paris", "rome", "oslo", "lima", "kyiv"]),
    ("scores", ["student", "math", "art"], ["kai", "lena", "milo", "nora", "omar", "pia"]),
    ("stock", ["shop", "apples", "pears"], ["a1", "b2", "c3", "d4"]),
]
_DATA_Q = {
    "sum": ["What is the total {col} in {var}?", "Sum the {col} column of {var}.",
            "Add up all {col} values in {var}.", "How much {col} is there in {var} overall?",
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
            "Using the DataFrame {var}, what is the sum of {col}?"],
    "mean": ["What is the average {col} in {var}?", "Give the mean of {col} in {var}.",
             "Compute the average {col} across {var}.", "In {var}, what is the mean {col}?",
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
             "Using the DataFrame {var}, what is the average {col}?"],
    "max": ["What is the largest {col} in {var}?", "Find the maximum {col} in {var}.",
            "Which value is the highest {col} in {var}?", "In {var}, what is the top {col}?",
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
            "Using the DataFrame {var}, what is the max of {col}?"],
    "argmax": ["Which {key} has the highest {col} in {var}?", "In {var}, which {key} has the most {col}?",
               "Find the {key} with the largest {col} in {var}.", "Who or what leads {var} in {col}?",
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
               "Using the DataFrame {var}, which {key} has the top {col}?"],
    "count": ["How many rows of {var} have {col} above {k}?", "Count the rows in {var} where {col} > {k}.",
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
              "Using the DataFrame {var}, count rows with {col} over {k}."],
    "list_mean": ["What is the average of the list {var}?", "Give the mean of {var}.",
                  "Compute the average value in {var}.", "The list {var} is loaded. What is its mean?",
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
                  "Using the list {var}, what is the average?"],
}


def _data(rng: random.Random, split: str) -> Recipe:
    kind = rng.choice(list(_DATA_Q))
    if kind == "list_mean":
        while True:
            var = rng.choice(["temps", "values", "readings", "prices", "heights", "ages"])
            xs = _intlist(rng, 5, 9)
            if _numbers_in_split((kind, var, xs), split):
                break
        slots = {"var": var, "xs": xs}
        steps = [
            Step("{var} is in the namespace. Look at it first.", "print(len({var}), {var}[:5])", "inspect"),
            Step("Average = sum / len.", "print(round(sum({var}) / len({var}), 2))"),
            Step("Check with statistics.mean.", "import statistics\nprint(round(statistics.mean({var}), 2))",
                 "verify"),
        ]
        return Recipe("data", "data.list_mean", _phrasing(rng, split, _DATA_Q[kind]), slots, steps, "",
                      setup=f"{var} = {xs}")
    name, cols, keys = rng.choice(_TABLES)
    while True:
        var = rng.choice([name, "df", f"{name}_df"])
        n = rng.randint(3, len(keys))
        picked = rng.sample(keys, n)
        a = [rng.randint(1, 99) for _ in range(n)]
        b = [rng.randint(1, 99) for _ in range(n)]
        k = str(rng.randint(10, 80))
        if _numbers_in_split((kind, tuple(a), tuple(b), k), split):
            break
    # The question names the column by its plain word; the real column name is found by inspecting.
    col_i = rng.choice([1, 2])
    word = cols[col_i]
    real = rng.choice([word, word, f"{word}_total", f"n_{word}"]) if kind != "argmax" else word
    real_cols = [cols[0], cols[1] if col_i != 1 else real, cols[2] if col_i != 2 else real]
    setup = (
        "import pandas as pd\n"
        f"{var} = pd.DataFrame({{'{real_cols[0]}': {picked!r}, "
        f"'{real_cols[1]}': {a}, '{real_cols[2]}': {b}}})"
    )
    slots = {"var": var, "col": word, "real": real, "key": cols[0], "k": k}
    compute = {
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
    }[kind]
    steps = [
        Step("{var} is a DataFrame in the namespace. Check its columns first.",
             "print({var}.columns.tolist())", "inspect"),
        Step(compute[0], compute[1]),
        Step(compute[2], compute[3], "verify"),
    ]
    if kind == "argmax" and len(set(real_cols)) and len(set(a if col_i == 1 else b)) < n:
        return _data(rng, split)  # ties make "which row" ambiguous
    question = _phrasing(rng, split, _DATA_Q[kind])
    if split == "train" and rng.random() < 0.15:  # so that the word "DataFrame" is known (see _COMPOSED)
        question = "The DataFrame {var} is loaded. " + question
    return Recipe("data", f"data.{kind}", question, slots, steps, "", setup=setup)


# "combo": a statistic of a list followed by an operation. Some pairs are held out entirely, to test
# whether the model composes parts it has only seen separately.
_COMBO_STATS = {"sum": "sum(xs)", "mean": "sum(xs) / len(xs)", "max": "max(xs)", "min": "min(xs)"}
_COMBO_OPS = {
    "percent": ("{p}% of the {stat}", "round(s * {p} / 100, 2)", "round({p} / 100 * s, 2)"),
    "times": ("the {stat} times {p}", "round(s * {p}, 2)", "round({p} * s, 2)"),
    "plus": ("the {stat} plus {p}", "round(s + {p}, 2)", "round({p} + s, 2)"),
    "minus": ("the {stat} minus {p}", "round(s - {p}, 2)", "round(-{p} + s, 2)"),
}
# Other words for each operation, training only, so that the operation is read from its words.
_COMBO_OP_WORDS = {
    "percent": ["{p} percent of the {stat}", "the {stat} scaled to {p}%"],
    "times": ["the {stat} multiplied by {p}", "{p} times the {stat}"],
    "plus": ["the {stat} increased by {p}", "{p} more than the {stat}"],
    "minus": ["the {stat} decreased by {p}", "{p} less than the {stat}"],
}
HELDOUT_COMBOS = {("max", "percent"), ("mean", "times"), ("min", "plus"), ("sum", "minus")}
_COMBO_Q = [
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


def _combo(rng: random.Random, split: str) -> Recipe:
    pairs = [(s, o) for s in _COMBO_STATS for o in _COMBO_OPS]
    allowed = [p for p in pairs if (p in HELDOUT_COMBOS) == (split == "heldout")]
    stat, op = rng.choice(allowed)
    what_t, expr, vexpr = _COMBO_OPS[op]
    while True:
        xs, p = _intlist(rng, 3, 6), str(rng.choice([2, 3, 4, 5, 10, 15, 20, 25, 50]) + rng.choice([0, 0, 1]))
        if (split == "heldout" or _numbers_in_split((stat, op, xs, p), split)) and (op != "percent" or p):
            break
    if split == "train" and rng.random() < 0.4:
        what_t = rng.choice(_COMBO_OP_WORDS[op])
    what = what_t.replace("{stat}", stat).replace("{p}", p)
    sexpr = _COMBO_STATS[stat]
    # The check names the operation and its operand: with one plan for every operation ("Check in one
    # line."), a held-out pair got the check of another operation (mean times 51 checked as 51 %).
    check = "Check in one line: " + _COMBO_OPS[op][0].replace("{stat}", stat) + "."
    steps = [
        Step(f"First s = {stat} of xs, then {op} {{p}}.", f"xs = {{xs}}\ns = {sexpr}\nprint({expr})"),
        Step(check, f"print({vexpr.replace('s', '(' + sexpr + ')', 1)})".replace(
            "xs", "{xs}"), "verify"),
    ]
    slots = {"xs": xs, "p": p, "what": what, "name": rng.choice(NAMES)}
    # Held-out questions always use unseen pairs, and the last phrasing is held-out as well.
    question = _question(rng, split, _COMBO_Q, 1, "combo")
    return Recipe("combo", f"combo.{stat}-{op}", question, slots, steps, "", numeric_slots=("p",))


_GENERATORS = {
    "arithmetic": _arithmetic, "percent": _percent, "interest": _interest, "units": _units,
    "dates": _dates, "stats": _stats, "strings": _strings, "data": _data, "combo": _combo,
}


# ---------------------------------------------------------------------------------------------
# Turning a recipe into a conversation by running its code.


class _Conversation:
    """Builds the message list and runs the calls in one namespace, as a notebook kernel would."""

    def __init__(self, setup: str) -> None:
        self.namespace: dict[str, Any] = {}
        if setup:
            exec(setup, self.namespace)
        self.messages: list[dict[str, Any]] = []
        self.no_loss: list[int] = []
        self.n_calls = 0
        self.given = ""  # the "Given: ..." line that opens the next call's reasoning (see given_line)

    def call(self, think: str, code: str, *, train: bool = True) -> str:
        if self.given:
            think, self.given = f"{self.given} {think}", ""
        call_id = f"functions.python:{self.n_calls}"
        self.n_calls += 1
        if not train:
            self.no_loss.append(len(self.messages))
        self.messages.append({
            "role": "assistant", "content": "", "reasoning_content": think,
            "tool_calls": [{"id": call_id, "type": "function",
                            "function": {"name": "python", "arguments": json.dumps({"code": code})}}],
        })
        out = run_python(code, self.namespace, self.n_calls)
        self.messages.append({"role": "tool", "tool_call_id": call_id, "name": "python", "content": out})
        return out

    def answer(self, think: str, content: str) -> None:
        self.messages.append({"role": "assistant", "content": content, "reasoning_content": think})


# Literal values of a question, in the order they appear: lists, quoted strings, ISO dates, numbers.
_LITERAL_RE = re.compile(r"\[[^\]]*\]|'[^']*'|\d{4}-\d{2}-\d{2}|\d+(?:\.\d+)?")


# The role word of each slot, by sub-family (or family), for the Given line of kinds with several
# literals. A role is read from the words right beside its number ("5000 dollars", "15% off").
ROLES: dict[str, dict[str, str]] = {
    "arithmetic.buy": {"a": "start", "b": "packs", "c": "each"},
    "arithmetic.spend": {"a": "budget", "b": "cost", "c": "cost"},
    "arithmetic.bags": {"a": "items", "b": "per bag"},
    "arithmetic.rate": {"a": "speed", "b": "hours"},
    "percent.of": {"p": "percent", "x": "of"},
    "percent.discount": {"x": "price", "p": "off"},
    "percent.change": {"x": "old", "y": "new"},
    "interest": {"p": "principal", "r": "rate", "n": "years"},
    "dates.after": {"d1": "start", "n": "days"},
    "dates.between": {"d1": "from", "d2": "to"},
    "dates.minutes": {"h": "hours", "m": "minutes"},
    "strings.count": {"c": "letter", "w": "word"},
    "stats.above": {"xs": "list", "k": "above"},
    "data.count": {"k": "over"},
    "combo": {"xs": "list", "p": "operand"},
}


def roles_of(kind: str, slots: dict[str, str]) -> dict[str, str]:
    """Literal text → role word for a recipe's slots ({"5000": "principal", ...}); empty for kinds
    without roles. Two slots with the same value keep the first role (either binding computes the same)."""
    table = ROLES.get(kind) or ROLES.get(kind.split(".")[0], {})
    roles: dict[str, str] = {}
    for key, role in table.items():
        value = slots.get(key, "")
        if value:
            roles.setdefault(value, role)
    return roles


def given_line(question: str, roles: dict[str, str] | None = None) -> str:
    """The first reasoning of every turn restates the question's literals in order ("Given: 772, 10.")
    before the plan binds them to roles. Copying in reading order, right after the question, is the
    easiest copy there is; the plan and the code then take their numbers from a short list instead of
    searching the question, which is where a small model mis-copies and invents numbers.

    With ``roles`` (see ``roles_of``) each literal carries its role word ("Given: years 3, rate 6,
    principal 5000."): the plan then copies the principal from right after the word "principal",
    not by its position in a bare list, where "Over 3 years at 6%, … 5000 dollars" became
    3000 * (1 + 6 / 100) ** 3."""
    def labelled(literal: str) -> str:
        role = (roles or {}).get(literal.strip("'"))
        return f"{role} {literal}" if role else literal

    found = _LITERAL_RE.findall(question)
    return f"Given: {', '.join(map(labelled, found))}." if found else ""


def _fmt(template: str, slots: dict[str, str], out: str = "") -> str:
    return template.format(**slots, out=out)


def _parse_answer(out: str) -> float | int | str:
    if re.fullmatch(r"-?\d+", out):
        return int(out)
    if re.fullmatch(r"-?\d+\.\d+(e-?\d+)?", out):
        return float(out)
    return out


def _final_text(out: str, unit: str) -> str:
    return f"The answer is {out}{unit}."


class CurriculumError(RuntimeError):
    """A recipe produced an inconsistent trace (its verification disagrees); the sampler retries."""


def _run_turn(conv: _Conversation, recipe: Recipe, slots: dict[str, str], variant: str,
              rng: random.Random) -> str:
    """Run one user turn's tool loop; returns the main output (the answer)."""
    main_i = next(i for i, s in enumerate(recipe.steps) if s.role == "main")
    main_step = recipe.steps[main_i]
    main_code = _fmt(main_step.code, slots)
    out = ""
    for i, step in enumerate(recipe.steps):
        if step.role == "inspect":
            code = _fmt(step.code, slots)
            # Half of the typo traces of a recipe that inspects first fail that first call (the eval's
            # injected failure hits whatever call comes first), then go on with the rest of the plan.
            if variant == "typo" and i == 0 and rng.random() < 0.5:
                bad = _typo(code, rng, conv.namespace)
                if bad is not None:
                    err = conv.call(_fmt(step.think, slots), bad, train=False).splitlines()[-1]
                    conv.call(f"{err}. I misspelled a name; fix it and run again.", code)
                    variant = "plain"
                    continue
            conv.call(_fmt(step.think, slots), code)
            continue
        if step.role == "main":
            if variant == "typo":
                bad = _typo(main_code, rng, conv.namespace)
                if bad is None:
                    raise CurriculumError("no name to misspell")
                if bad is not None:
                    err_out = conv.call(_fmt(main_step.think, slots), bad, train=False)
                    err = err_out.splitlines()[-1]
                    fix = f"{err}. I misspelled a name; fix it and run again."
                    out = conv.call(fix, main_code)
                    continue
            if variant == "miscopy":
                # Half of the time the plan itself carries the mis-copied number (the code follows the
                # plan, the Given line stays right): the check, which copies from the question, is what
                # catches it. Otherwise only the code is wrong.
                bad_slots = _miscopy_slot(recipe, slots, rng) if rng.random() < 0.5 else None
                if bad_slots is not None:
                    plan, bad_code = _fmt(main_step.think, bad_slots), _fmt(main_step.code, bad_slots)
                else:
                    plan, bad_code = _fmt(main_step.think, slots), _miscopy(main_code, rng)
                if bad_code is None:
                    raise CurriculumError("no number to mis-copy")
                if bad_code is not None:
                    bad_out = conv.call(plan, bad_code, train=False)
                    if bad_out.startswith("Traceback"):
                        raise CurriculumError("mis-copied literal made the code fail")
                    verify = recipe.steps[i + 1]
                    v_out = conv.call(_fmt(verify.think, slots, bad_out), _fmt(verify.code, slots, bad_out))
                    if v_out == bad_out or v_out == "True":
                        raise CurriculumError("miscopied number did not change the result")
                    seen = ("The check failed" if v_out == "False"
                            else f"The check gave {v_out}, not {bad_out}")
                    what = "number" if _NUM_RE.sub("", bad_code) == _NUM_RE.sub("", main_code) else "letter"
                    think = f"{seen}. A {what} in my first code was copied wrong. Recompute carefully."
                    out = conv.call(think, main_code)
                    if not _agrees(out, v_out):
                        recheck = _fmt(verify.code, slots, out)
                        conv.call(f"Check {out} again.", recheck)
                    break
            out = conv.call(_fmt(main_step.think, slots), main_code)
            continue
        v_out = conv.call(_fmt(step.think, slots, out), _fmt(step.code, slots, out))
        if not _agrees(out, v_out):
            raise CurriculumError(f"verification disagrees: {out!r} vs {v_out!r}")
    if out.startswith("Traceback") or out == "(no output)":
        raise CurriculumError(f"main step failed: {out!r}")
    return out


def _agrees(out: str, v_out: str) -> bool:
    if v_out in (out, "True"):
        return True
    try:  # 59 and 59.0 agree; 47.33 and 47.32 do not (that trace is resampled)
        return float(out) == float(v_out)
    except ValueError:
        return False


_NAME_RE = re.compile(r"(?<![\w'.])([A-Za-z_][A-Za-z_]{2,})(?![\w'])")


def _typo(code: str, rng: random.Random, namespace: dict[str, Any]) -> str | None:
    """A copy of ``code`` with one identifier misspelled that really fails when run (in a scratch
    copy of the namespace, so the failed call leaves nothing behind)."""
    code_wo_strings = re.sub(r"'[^']*'", lambda m: " " * len(m.group()), code)
    names = [m for m in _NAME_RE.finditer(code_wo_strings) if m.group(1) not in {"for", "in", "if", "else",
                                                                               "and", "import", "from"}]
    rng.shuffle(names)
    for m in names:
        word = m.group(1)
        j = rng.randrange(1, len(word))
        bad_word = word[:j] + word[j + 1:] if rng.random() < 0.5 else word[:j] + word[j] + word[j:]
        bad = code[: m.start(1)] + bad_word + code[m.end(1):]
        scratch = dict(namespace)
        out = run_python(bad, scratch).splitlines()[-1]
        # Not ImportError: its message names the stdlib file path, which differs between machines.
        if out.startswith(("NameError", "AttributeError", "ModuleNotFoundError")):
            return bad
    return None


def _miscopy_slot(recipe: Recipe, slots: dict[str, str], rng: random.Random) -> dict[str, str] | None:
    """``slots`` with one digit of one number slot changed (a mis-copy made while writing the plan)."""
    keys = _copyable_slots(recipe, slots)
    if not keys:
        return None
    k = rng.choice(keys)
    return dict(slots, **{k: _change_digit(str(slots[k]), rng)})


def _copyable_slots(recipe: Recipe, slots: dict[str, str]) -> list[str]:
    """The number slots a mis-copy can change (not 0, 1, 2 or 100, which a slip would not hide)."""
    return [k for k in recipe.numeric_slots if re.fullmatch(r"\d+(\.\d+)?", str(slots.get(k, "")))
            and str(slots[k]) not in {"0", "1", "2", "100"}]


def _change_digit(number: str, rng: random.Random) -> str:
    """``number`` with one of its digits replaced by another (1-9)."""
    i = rng.choice([j for j, ch in enumerate(number) if ch.isdigit()])
    return number[:i] + rng.choice([d for d in "123456789" if d != number[i]]) + number[i + 1:]


_NUM_RE = re.compile(r"(?<![\w.])\d+(\.\d+)?(?![\w.])")


def _miscopy(code: str, rng: random.Random) -> str | None:
    """A copy of ``code`` with one number literal mis-copied (one digit changed); code without such a
    number gets one letter of a quoted word of 3+ letters changed instead (the strings family)."""
    code_wo_strings = re.sub(r"'[^']*'", lambda m: " " * len(m.group()), code)
    nums = [m for m in _NUM_RE.finditer(code_wo_strings)
            if m.group() not in {"0", "1", "2", "100", "60", "12", "1200"}]
    if not nums:
        words = list(re.finditer(r"'([a-z ]{3,})'", code))
        if not words:
            return None
        m = rng.choice(words)
        i = rng.choice([j for j in range(m.start(1), m.end(1)) if code[j] != " "])
        return code[:i] + rng.choice([ch for ch in "abcdefghijklmnoprstuvwy" if ch != code[i]]) + code[i + 1:]
    m = rng.choice(nums)
    return code[: m.start()] + _change_digit(m.group(), rng) + code[m.end():]


_FOLLOWUP_Q = [
    "What if it were {new} instead of {old}?",
    "Now use {new} instead of {old}.",
    "Same question with {new} in place of {old}.",
    "And with {new} instead of {old}?",
    "Redo it with {old} changed to {new}.",
    "Change {old} to {new} and solve it again.",
    "Suppose {old} were {new}. What then?",
    "Let's say {new} rather than {old}. What is the answer now?",
    "And if {old} becomes {new}?",
    "Recompute with {new} where you had {old}.",
    "Use {new} for {old} this time.",
    "One change: {new} in place of {old}.",
    "What happens with {new} rather than {old}?",
    "Swap {old} for {new}. New result?",
    "OK, now {new} instead of {old}, please.",
    "Run it again where {old} is now {new}.",
    "How does the answer change if {old} turns into {new}?",
    "Try again, but replace {old} by {new}.",
]
_FOLLOWUP_WORD_Q = [
    "Now do the same for '{new}'.",
    "And for '{new}'?",
    "Same thing with '{new}', please.",
    "What about '{new}'?",
    "Do it again with '{new}'.",
    "Now try '{new}'.",
    "How about the word '{new}'?",
    "Same task, but for '{new}'.",
    "Next word: '{new}'.",
    "Can you do '{new}' too?",
    "Apply the same to '{new}'.",
    "And the word '{new}'?",
    "Now '{new}', please.",
    "What do you get for '{new}'?",
    "Once more, this time with '{new}'.",
    "Let's switch to '{new}'. Same question.",
    "Repeat that for '{new}'.",
]


def _new_number(rng: random.Random, old: str) -> str:
    if "." in old:
        return f"{max(1, int(float(old)) + rng.randint(-9, 9))}.{rng.randint(1, 9)}"
    return str(max(2, int(old) + rng.choice([-1, 1]) * rng.randint(1, max(2, int(old) // 2))))


def _followup(rng: random.Random, recipe: Recipe, split: str) -> tuple[str, dict[str, str]] | None:
    """A second user turn that changes one number (or the word) of the first question; returns the
    follow-up question and the slots to rerun the recipe with."""
    question = _fmt(recipe.question, recipe.slots)

    def unique(text: str) -> bool:
        return len(re.findall(rf"(?<![\d.]){re.escape(text)}(?![\d.])", question)) == 1

    if "w" in recipe.slots and "{w}" in recipe.question:
        new = _rand_word(rng, split)
        if new == recipe.slots["w"]:
            return None
        return _phrasing(rng, split, _FOLLOWUP_WORD_Q).format(new=new), dict(recipe.slots, w=new)
    for key in rng.sample(list(recipe.numeric_slots), len(recipe.numeric_slots)):
        old = recipe.slots[key]
        if not old or not unique(old) or any(v == old for k, v in recipe.slots.items() if k != key):
            continue
        new = _new_number(rng, old)
        if new != old:
            q = _phrasing(rng, split, _FOLLOWUP_Q).format(old=old, new=new)
            return q, dict(recipe.slots, **{key: new})
    if "xs" in recipe.slots and "{xs}" in recipe.question:
        values = recipe.slots["xs"].strip("[]").split(", ")
        old = rng.choice(values)
        new = _new_number(rng, old)
        if unique(old) and new != old and new not in values:
            xs = "[" + ", ".join(new if v == old else v for v in values) + "]"
            return _phrasing(rng, split, _FOLLOWUP_Q).format(old=old, new=new), dict(recipe.slots, xs=xs)
    return None


def make_problem(seed: int | str, split: str = "train", family: str | None = None,
                 variant: str | None = None) -> Problem:
    """One problem, fully determined by (seed, split, family, variant). ``variant`` None draws one:
    plain 46 %, typo 12 %, miscopy 10 %, follow-up 12 %, rollback 12 % (DataFrame questions: wrong
    column 20 % instead of follow-ups; a wrong-column trace needs a column name that differs from the
    question's word, so about half of those become plain). A variant that a recipe cannot support is retried
    with a new recipe of the same family, so the family and variant mix stays as drawn."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', not {split!r}")
    rng = random.Random(f"k2nano:{seed}:{split}:{family}:{variant}")
    fam = family or rng.choice(FAMILIES)
    # DataFrame questions have no number to change in a follow-up; they get wrong-column traces instead.
    weights = [46, 12, 10, 0, 20, 12] if fam == "data" else [46, 12, 10, 12, 0, 12]
    var = variant or rng.choices(["plain", "typo", "miscopy", "followup", "wrong_column", "rollback"],
                                 weights)[0]
    for attempt in range(60):
        recipe = _GENERATORS[fam](rng, split)
        v = var if attempt < 40 else "plain"
        if v == "wrong_column" and "DataFrame" not in recipe.setup:
            if fam != "data" or attempt >= 20:
                v = "plain"
            else:
                continue
        try:
            return _build(recipe, v, split, rng)
        except CurriculumError:
            continue
    raise CurriculumError(f"could not build a consistent problem for seed {seed!r}")


def _build(recipe: Recipe, variant: str, split: str, rng: random.Random) -> Problem:
    conv = _Conversation(recipe.setup)
    if rng.random() < 0.3:
        conv.messages.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
    question = rng.choice(PREFIXES) + _fmt(recipe.question, recipe.slots) + rng.choice(SUFFIXES)
    conv.messages.append({"role": "user", "content": question})
    conv.given = given_line(question, roles_of(recipe.kind, recipe.slots))
    if variant == "wrong_column":
        out = _wrong_column_turn(conv, recipe, rng)
    elif variant == "rollback":
        out = _rollback_turns(conv, recipe, question, rng)
    else:
        out = _run_turn(conv, recipe, recipe.slots, "plain" if variant == "followup" else variant, rng)
    conv.answer(_final_think(out, conv), _final_text(out, _fmt(recipe.unit, recipe.slots)))
    if variant == "followup":
        follow = _followup(rng, recipe, split)
        if follow is None:
            raise CurriculumError("no number to change in a follow-up")
        question, slots = follow
        conv.messages.append({"role": "user", "content": question})
        conv.given = given_line(question)
        out = _run_turn(conv, recipe, slots, "plain", rng)
        conv.answer(_final_think(out, conv), _final_text(out, _fmt(recipe.unit, recipe.slots)))
    return Problem(recipe.family, recipe.kind, variant, split, question, recipe.setup, _parse_answer(out),
                   conv.messages, conv.no_loss, rng.choice(TOOL_SETS))


# What the agent loop says when it rolls back (``k2nb.agent.loop.ROLLBACK_MESSAGE``; this package does
# not import the agent, and a test checks the two are equal), and what a user's check says in it.
ROLLBACK_MESSAGE = "A check of your answer failed. {reason}. Fix it and answer again."
_ROLLBACK_REASONS = [
    ("reviewer", "first answers are never accepted here; recompute and answer again"),
    ("reviewer", "expected another value; the answer was 'The answer is {out}{unit}.'"),
    ("reviewer", "recompute this and answer again: {q}"),
    ("range check", "{out} is outside the expected range"),
    ("unit test", "the result {out} does not match the reference"),
    ("user check", "the answer {out} looks wrong; recompute it from the question"),
    ("check_answer", "please verify the numbers again"),
]


# The loop's built-in checks that roll back, as it names them (``k2nb.agent.checks``; a test runs the
# agent's own checks on these traces and compares the words).
USED_CHECK = "question numbers used"
SELF_VERIFY_CHECK = "model's own verification"
# How the retry after a `used` rollback opens, before its Given line.
RETRY_SAYS = "The question says {number}."


def _rollback_turns(conv: _Conversation, recipe: Recipe, question: str, rng: random.Random) -> str:
    """A failed first attempt, the loop's rollback message, then the attempt again from the question,
    restating its Given line. Three kinds, as the loop makes them:

    - a user's check (45 %): the first attempt is right or, half of the time, carries a mis-copied
      number in its plan and code that its check copies too; the loop drops the first answer message.
    - the built-in ``used`` check (35 %): the Given line itself mis-copies a number (one digit
      changed, or its decimals dropped: 37.94 as 37), so plan, code and check all agree on a wrong
      result and only "37.94 from the question is in no successful call" shows it.
    - the built-in ``self_verify`` check (20 %): the plan mis-copies a number, the check recomputes
      from the question and disagrees; the loop cuts at the check, so the context is the first call,
      its output and the message naming the check's result.

    After a `used` rollback the retry opens by copying the number the message names ("The question
    says 37.94."), right after the message, so the Given line that follows has it close by: without
    that line the session-8 model rewrote `cost 37` after the message. The first attempt is context
    (no loss), shown with its reasoning as the engine shows it. Returns the output of the second
    attempt."""
    kind = rng.choices(["user", "used", "self_verify"], [45, 35, 20])[0]
    unit = _fmt(recipe.unit, recipe.slots)
    if kind == "used":
        literal, bad = _given_miscopy(recipe, rng)
        conv.given = given_line(_replace_literal(question, recipe.slots[literal], bad[literal]),
                                roles_of(recipe.kind, bad))
        start = len(conv.messages)
        first = _run_turn(conv, recipe, bad, "plain", rng)
        if float(recipe.slots[literal]) in _numbers_of_calls(conv.messages[start:]):
            raise CurriculumError("the question's number is still used by a call")
        reason = f"{USED_CHECK}: {recipe.slots[literal]} from the question is in no successful call"
    elif kind == "self_verify":
        reason = _first_call_then_failed_check(conv, recipe, rng)
    else:
        bad = _miscopy_slot(recipe, recipe.slots, rng) if rng.random() < 0.5 else None
        first = _run_turn(conv, recipe, bad or recipe.slots, "plain", rng)
        name, evidence = rng.choice(_ROLLBACK_REASONS)
        reason = f"{name}: " + evidence.format(out=first, unit=unit, q=_fmt(recipe.question, recipe.slots))
    conv.messages.append({"role": "user", "content": ROLLBACK_MESSAGE.format(reason=reason)})
    conv.given = given_line(question, roles_of(recipe.kind, recipe.slots))
    if kind == "used":
        # the retry first copies the number the message names, right after it, then the Given line
        conv.given = f"{RETRY_SAYS.format(number=recipe.slots[literal])} {conv.given}"
    out = _run_turn(conv, recipe, recipe.slots, "plain", rng)
    if kind == "used" and _agrees(out, first):
        raise CurriculumError("the mis-copied number did not change the result")
    return out


def _numbers_of_calls(messages: list[dict[str, Any]]) -> set[float]:
    """The values of every number in the code of these messages' python calls."""
    calls = [tc for m in messages for tc in m.get("tool_calls") or []]
    codes = [json.loads(tc["function"]["arguments"])["code"] for tc in calls]
    return {float(n.group()) for code in codes for n in re.finditer(r"(?<![\w.])\d+(?:\.\d+)?", code)}


def _replace_literal(question: str, old: str, new: str) -> str:
    """``question`` with its first literal equal to ``old`` written as ``new``."""
    hits = [m for m in _LITERAL_RE.finditer(question) if m.group() == old]
    if not hits:
        raise CurriculumError(f"{old} is not a literal of the question")
    return question[: hits[0].start()] + new + question[hits[0].end():]


def _given_miscopy(recipe: Recipe, rng: random.Random) -> tuple[str, dict[str, str]]:
    """(slot, slots) with that number slot mis-copied as a reader slips: its decimals dropped
    (37.94 → 37) or one digit changed. The mis-copy must not be a number the question also states."""
    keys = _copyable_slots(recipe, recipe.slots)
    if not keys:
        raise CurriculumError("no number to mis-copy in the Given line")
    k = rng.choice(keys)
    value = str(recipe.slots[k])
    new = value.split(".")[0] if "." in value and rng.random() < 0.5 else _change_digit(value, rng)
    others = {str(v) for key, v in recipe.slots.items() if key != k}
    if new in others or float(new) == 0:
        raise CurriculumError("the mis-copy equals another number of the question")
    return k, dict(recipe.slots, **{k: new})


def _first_call_then_failed_check(conv: _Conversation, recipe: Recipe, rng: random.Random) -> str:
    """The first attempt of a self_verify rollback: the plan's mis-copied number in the main call
    (after any inspection), then a check that recomputes from the question and disagrees. As the loop
    does, the check's message is dropped from the context; returns the rollback reason."""
    bad = _miscopy_slot(recipe, recipe.slots, rng)
    main_i = next(i for i, s in enumerate(recipe.steps) if s.role == "main")
    verify = recipe.steps[main_i + 1] if main_i + 1 < len(recipe.steps) else None
    if bad is None or verify is None or verify.role != "verify":
        raise CurriculumError("no number to mis-copy before a recomputing check")
    for step in recipe.steps[:main_i]:
        conv.call(_fmt(step.think, recipe.slots), _fmt(step.code, recipe.slots))
    main = recipe.steps[main_i]
    bad_out = conv.call(_fmt(main.think, bad), _fmt(main.code, bad), train=False)
    v_code = _fmt(verify.code, recipe.slots, bad_out)
    scratch = dict(conv.namespace)
    v_out = run_python(v_code, scratch, conv.n_calls)
    if bad_out.startswith("Traceback") or v_out.startswith("Traceback") or v_out in ("True", "False") \
            or _agrees(bad_out, v_out) or not re.fullmatch(r"-?\d+(\.\d+)?", v_out):
        raise CurriculumError("the check does not recompute a different number")
    call_id = f"functions.python:{conv.n_calls}"  # dropped with its message; the next call reuses the id
    return (f"{SELF_VERIFY_CHECK}: verification call {call_id} gave {v_out}, which no earlier result "
            f"reproduces (last: {bad_out})")


def _final_think(out: str, conv: _Conversation) -> str:
    last = conv.messages[-1]["content"]
    if last == "True":
        return f"The check passed. The result is {out}."
    return f"Both calls give {out}."


def _wrong_column_turn(conv: _Conversation, recipe: Recipe, rng: random.Random) -> str:
    """Skip the inspection, guess the column name from the question (KeyError when it differs), then
    inspect and compute. When the guess happens to be right, this is a plain two-call trace."""
    slots = recipe.slots
    guessed = dict(slots, real=slots["col"])
    main = next(s for s in recipe.steps if s.role == "main")
    if slots["real"] == slots["col"]:
        raise CurriculumError("column guess would be right")
    bad_out = conv.call(f"Use the '{slots['col']}' column.", _fmt(main.code, guessed), train=False)
    error = bad_out.splitlines()[-1]
    if not error.startswith("KeyError"):
        raise CurriculumError(f"expected a KeyError, got {bad_out!r}")
    inspect = next(s for s in recipe.steps if s.role == "inspect")
    conv.call(f"{error}. No such column. Look at the columns of {{var}}.".format(**slots),
              _fmt(inspect.code, slots))
    out = conv.call(_fmt(main.think, slots), _fmt(main.code, slots))
    verify = next(s for s in recipe.steps if s.role == "verify")
    v_out = conv.call(_fmt(verify.think, slots, out), _fmt(verify.code, slots, out))
    if not _agrees(out, v_out):
        raise CurriculumError("verification disagrees")
    return out


def generate(n: int, seed: int = 0, split: str = "train") -> list[Problem]:
    """``n`` problems; problem i depends only on (seed, split, i), so any prefix is reproducible."""
    return [make_problem(f"{seed}:{i}", split) for i in range(n)]


def heldout_problems(n: int, seed: int = 1234) -> list[Problem]:
    """The evaluation set: unseen phrasings, number tuples and combo pairs; plain traces (the eval injects
    its own failures) with families in round-robin so every family is represented."""
    return eval_problems(n, seed, "heldout")


def eval_problems(n: int, seed: int = 1234, split: str = "heldout") -> list[Problem]:
    """``n`` plain problems of ``split``, families in round-robin. ``split="train"`` gives questions in
    the training phrasings with fresh draws of numbers (other seeds than any training set): beside the
    held-out set it separates what the model cannot do from what it cannot yet do in new words."""
    return [make_problem(f"{seed}:{i}", split, FAMILIES[i % len(FAMILIES)], "plain") for i in range(n)]


# ---------------------------------------------------------------------------------------------
# Checking an answer.

_ANSWER_RE = re.compile(r"answer is\s+(.+?)\s*\.?\s*$", re.IGNORECASE | re.DOTALL)
ABS_TOL = 0.01  # outputs are printed with round(..., 2), so one unit in the last place
REL_TOL = 1e-4


def extract_answer(content: str) -> str:
    """The text after "The answer is" (the model's answer sentence), or the whole content."""
    m = _ANSWER_RE.search(content.strip())
    return (m.group(1) if m else content).strip()


def answer_matches(expected: float | int | str, content: str) -> bool:
    """Numbers: the first number of the answer is within ABS_TOL or REL_TOL of the expected value.
    Strings: the answer starts with the expected text (case-sensitive; a unit may follow); quotes
    around either are ignored, since string results are shown as a repr ('trepxe')."""
    got = extract_answer(content)
    if isinstance(expected, (int, float)):
        m = re.search(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", got.replace(",", ""))
        if not m:
            return False
        value = float(m.group())
        return math.isclose(value, float(expected), rel_tol=REL_TOL, abs_tol=ABS_TOL)
    got, expected = _unquote(got.rstrip(".")), _unquote(expected)
    return got == expected or got.startswith(expected + " ")


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"" else text
