"""The composed families of the k2-nano curriculum: questions in people's words (``words``), tables
and lists under any name (``tables``) and honest abstentions (``abstain``)."""

from __future__ import annotations

import json
import random
import re
from collections import Counter

import pytest

from k2nb.nano import curriculum as C
from k2nb.nano.curriculum.families import BY_NAME, TRAIN_MIX
from k2nb.nano.curriculum.families import words as words_family
from k2nb.nano.curriculum.grammar import Grammar, number_text

NEW = ("words", "tables", "chains", "abstain")
# constants a trace may write in code besides the question's numbers and tool results ("half" is 0.5)
NAMED = {"0", "0.5", "1", "2", "7", "12", "24", "60", "100", "365", "1000", "3600"}


@pytest.fixture(scope="module")
def composed() -> list[C.Problem]:
    return [C.make_problem(f"g{i}", "train", fam) for fam in NEW for i in range(150)]


def _calls(p: C.Problem) -> list[str]:
    return [
        json.loads(tc["function"]["arguments"])["code"]
        for m in p.messages
        for tc in m.get("tool_calls") or []
    ]


def _first_thought(p: C.Problem) -> str:
    return next(m for m in p.messages if m["role"] == "assistant")["reasoning_content"]


def test_the_mix_keeps_the_template_families_and_a_small_share_of_abstentions():
    total = sum(TRAIN_MIX.values())
    assert 0.03 <= TRAIN_MIX["abstain"] / total <= 0.05
    assert 0.45 <= sum(TRAIN_MIX[f] for f in C.FAMILIES) / total <= 0.6
    drawn = Counter(p.family for p in C.generate(1500, seed=4))
    assert 25 <= drawn["abstain"] <= 90 and drawn["words"] > drawn["arithmetic"] * 3


def test_numbers_are_written_as_people_write_them_and_read_back_without_separators():
    rng = random.Random(0)
    shown = {number_text("1250", rng) for _ in range(60)}
    assert shown == {"1250", "1,250"}
    assert number_text("7.5", rng) == "7.5" and number_text("999", rng) == "999"
    assert C.given_line("Compute 1,250 times 7.5, then add 3.") == "Given: 1250, 7.5, 3."
    assert C.given_line("Sum [1,250, 3] and 12,000,000.") == "Given: [1,250, 3], 12000000."
    seen = 0
    for i in range(300):
        p = C.make_problem(f"n{i}", "train", "words", "plain")
        if not re.search(r"\d,\d{3}", p.question):
            continue
        seen += 1
        assert "," not in _first_thought(p).split(". ")[0].removeprefix("Given: ").replace(", ", " ")
        assert not any(re.search(r"\d,\d", c) for c in _calls(p))
    assert seen >= 15


def test_code_numbers_come_from_the_question_a_result_or_a_named_constant(composed):
    """The agent's checks (and a user) trust a call whose numbers they can trace: every number in the
    code is in the question, in an earlier tool result, or a named constant (3600 seconds an hour)."""
    for p in composed:
        if p.variant != "plain" or p.family == "abstain":
            continue
        known = set(NAMED) | {n.replace(",", "") for n in re.findall(r"\d[\d,]*(?:\.\d+)?", p.question)}
        for m in p.messages:
            if m["role"] == "tool":
                known |= set(re.findall(r"-?\d+(?:\.\d+)?", m["content"]))
            for code in [json.loads(tc["function"]["arguments"])["code"] for tc in m.get("tool_calls") or []]:
                code = re.sub(r"'[^']*'", "", code)  # column names and keys
                for n in re.findall(r"(?<![\w.])\d+(?:\.\d+)?", code):
                    assert n in known, (p.kind, n, code, p.question)


def test_the_plan_quotes_key_words_of_the_question_and_writes_the_expression(composed):
    quoted = 0
    for p in composed:
        if p.family != "words" or p.variant != "plain":
            continue
        main = next(m for m in p.messages if m.get("tool_calls"))
        thought = main["reasoning_content"]
        for word in re.findall(r'"([^"]+)"', thought):
            quoted += 1
            assert word.lower() in p.question.lower(), (word, p.question)
        if "xs = " not in thought:  # the expression of the plan is the code's
            expr = thought.rsplit(": ", 1)[-1].rsplit(". ", 1)[-1].rstrip(".") if ": " in thought else ""
            code = _calls(p)[0]
            assert expr and expr in code, (thought, code)
    assert quoted > 40


def test_distractor_numbers_are_named_and_never_computed_with():
    skipped = 0
    for p in [C.make_problem(f"d{i}", "train", "words", "plain") for i in range(400)]:
        got = re.search(r"Not needed: (\d+)\.", _first_thought(p))
        if not got:
            continue
        skipped += 1
        d = got.group(1)
        assert re.search(rf"(?<![\d.]){d}(?!\d|\.\d)", p.question)
        assert not re.search(rf"(?<![\w.]){d}(?![\w.])", _calls(p)[0]), (p.question, _calls(p)[0])
    assert skipped >= 10


def test_one_kind_is_asked_in_many_sentence_forms_and_clause_orders():
    probs = [C.make_problem(f"e{i}", "train", "words", "plain") for i in range(1500)]
    each = [p for p in probs if p.kind == "words.each"]
    shapes = {re.sub(r"\d[\d,.]*", "N", p.question) for p in each}
    assert len(each) > 30 and len(shapes) > 0.8 * len(each)
    ends = Counter(p.question.rstrip().rsplit(" ", 3)[0][-1:] for p in each)
    assert len(ends) >= 2
    # questions, commands and first-person statements all occur
    text = " ".join(p.question for p in probs)
    assert re.search(r"\bFind\b|\bWork out\b|\bCompute\b", text) and "I want to know" in text and "?" in text
    # the container clause comes first in some questions, the per-box clause in others
    order = Counter()
    for p in each:
        nums = re.findall(r"\d[\d,]*", p.question)
        if len(nums) == 2:
            a = re.search(
                r"(\d+) (?:" + "|".join(pl for _, pl in words_family.CONTAINERS) + r")\b", p.question
            )
            if a:
                order[nums[0] == a.group(1)] += 1
    assert order[True] and order[False]


def test_tables_have_any_name_and_columns_and_inspect_before_a_column_question(composed):
    tables = [p for p in composed if p.family == "tables"]
    names = {re.search(r"^(\w+) = ", p.setup, re.M).group(1) for p in tables if p.setup}
    assert len(names) >= 25 and {"df", "sales"} & names
    renamed = 0
    for p in tables:
        if p.variant != "plain":
            continue
        calls = _calls(p)
        if any(k in p.kind for k in ("rows", "columns", "list_len")):
            assert "len(" in calls[0]
            continue
        assert ".columns" in calls[0] or ".head()" in calls[0] or "len(" in calls[0], calls
        if "DataFrame" in p.setup and ".columns" in calls[0]:
            col = re.search(r"\['([^']+)'\]", calls[1]).group(1)
            renamed += col not in p.question
    assert renamed >= 3  # the real column is found by inspecting, not copied from the question


def test_abstentions_say_so_without_a_call_and_say_why():
    probs = [C.make_problem(f"a{i}", "train", "abstain") for i in range(80)]
    assert {p.variant for p in probs} == {"plain"}
    for p in probs:
        last = p.messages[-1]
        assert last["role"] == "assistant" and not any(m.get("tool_calls") for m in p.messages)
        assert last["content"].startswith(C.ABSTAIN + " It ") and len(last["content"]) > len(C.ABSTAIN) + 10
        assert "Nothing to compute: " in last["reasoning_content"]
    assert len({p.kind for p in probs}) >= 10
    # the answerable families never abstain
    assert not any(
        C.ABSTAIN in m.get("content", "")
        for p in C.generate(300, seed=8)
        if p.family != "abstain"
        for m in p.messages
    )


def test_a_grammar_is_data_a_question_of_roles_and_asks():
    g = Grammar(
        "multiply",
        facts=[[("{n} boxes", "")], [("{k} pens in each box", "each")]],
        asks=[("How many pens?", "")],
        numbers=("n",),
        distract=False,
    )
    rng = random.Random(3)
    texts = {g(rng, {"n": "1400", "k": "37"}, "train")[0] for _ in range(80)}
    assert any(t.index("37") > t.index("boxes") for t in texts) and any(
        t.index("37") < t.index("boxes") for t in texts
    )
    assert any("1,400" in t for t in texts)
    _, decided = g(rng, {"n": "3", "k": "37"}, "train")
    assert decided["how"] == 'Key word "each": multiply.' and decided["skip"] == ""


def test_every_new_kind_builds_in_both_splits():
    for name in NEW:
        fam = BY_NAME[name]
        for split in ("train", "heldout"):
            kinds = {C.make_problem(f"b{i}", split, name, "plain").kind for i in range(12 * len(fam.kinds))}
            assert kinds == {f"{name}.{k.name}" for k in fam.kinds}, (name, split)


def test_open_vocabulary_nouns_make_plurals_and_safe_python_names():
    from k2nb.nano.curriculum import lexicon

    assert len(lexicon.nouns()) > 4000 and len(lexicon.adjectives()) > 500
    assert [lexicon.plural(w) for w in ("box", "city", "day", "pen", "church")] == [
        "boxes", "cities", "days", "pens", "churches"]
    rng = random.Random(0)
    names = [lexicon.identifier(rng) for _ in range(500)]
    assert all(n.isidentifier() and n not in dir(__builtins__) for n in names)
    assert len(set(names)) > 400  # open, not a pool
    things = {lexicon.thing(rng)[0] for _ in range(200)}
    assert any(" " in t for t in things)  # some with an adjective


def test_composed_questions_draw_nouns_beyond_the_pools(composed):
    from k2nb.nano.curriculum.families import tables

    pools = set(tables.TABLE_NAMES) | set(tables.LIST_NAMES)
    frames = [p for p in composed if p.family == "tables"]
    def bound(p: C.Problem) -> str:
        return re.search(r"^(\w+) = ", p.setup, re.MULTILINE).group(1)

    other = [p for p in frames if bound(p) not in pools]
    assert 0.2 * len(frames) <= len(other) <= 0.5 * len(frames)
    for p in other:  # the trace names the variable as the setup binds it (a typo trace misspells it first)
        assert bound(p) in _calls(p)[0 if p.variant == "plain" else -1]


def test_chains_compute_the_statistic_then_the_operation_their_words_say(composed):
    stats = {"sum": sum, "mean": lambda v: sum(v) / len(v), "max": max, "min": min}
    ops = {"minus": lambda s, p: s - p, "plus": lambda s, p: s + p, "times": lambda s, p: s * p,
           "percent": lambda s, p: s * p / 100, "double": lambda s, p: 2 * s, "half": lambda s, p: s / 2}
    seen = Counter()
    for p in composed:
        if p.family != "chains" or p.variant not in ("plain", "typo"):
            continue
        stat, op = p.kind.split(".")[1].split("-")
        code = _calls(p)[-2] if p.variant == "typo" else _calls(p)[0]
        xs = json.loads(re.search(r"xs = (\[[^\]]*\])", code).group(1))
        operand = re.search(r"s [-+*] (\d+)", code)
        want = ops[op](stats[stat](xs), float(operand.group(1)) if operand else 0)
        assert abs(float(p.answer) - round(want, 2)) < 0.01, (p.question, code, p.answer)
        thought = next(m for m in p.messages if m.get("tool_calls"))["reasoning_content"]
        words = re.findall(r'"([^"]+)"', thought)
        assert len(words) == 2 and all(w.lower() in p.question.lower() for w in words), (thought, p.question)
        seen[op] += 1
    assert set(seen) == set(ops)
