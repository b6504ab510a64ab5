"""Statistics of a list: mean, median, range, sum, population standard deviation, values above k."""

from __future__ import annotations

from k2nb.nano.curriculum.slots import NAMES, derived, int_list, ints, one_of
from k2nb.nano.curriculum.spec import Family, Kind, checked

STATISTICS = {
    # name: (phrase (a template over k), main code, verification code)
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
QUESTIONS = [
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


def statistic(name: str, phrase: str, code: str, check: str) -> Kind:
    """The kind that computes one statistic of xs, then checks it in plain Python."""
    imp = "import statistics\n" if "statistics" in code else ""
    return Kind(name, key=("xs", "k"), after=(("stat", derived(lambda v: phrase.format(**v))),),
                steps=checked("Store the list as xs and take the {stat}.", f"{imp}xs = {{xs}}\n{code}",
                              "Check with plain Python.", f"xs = {{xs}}\n{check}"),
                roles={"xs": "list", "k": "above"} if name == "above" else None)


FAMILY = Family(
    "stats",
    n_heldout=2,
    questions=QUESTIONS,
    slots=(("xs", int_list()), ("k", ints(10, 80))),
    people=(("name", one_of(*NAMES)),),
    kinds=tuple(statistic(name, *row) for name, row in STATISTICS.items()),
)
