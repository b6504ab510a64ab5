"""The paraphrase split (tests/data/paraphrase.jsonl) and what `k2nb eval` measures on it: the file's
coverage and answers, its separation from training, abstention vs confident-wrong outcomes, the
family confusion, and one short run through the real runner and model."""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from k2nb.backends.scripted import ScriptedBackend, Turn
from k2nb.nano import cli as nano_cli
from k2nb.nano import curriculum
from k2nb.nano import eval as E
from k2nb.nano.curriculum.families import FAMILIES, KINDS
from k2nb.nano.eval.confusion import ABSTAINED, NO_CALL, OTHER, setup_names
from k2nb.nano.eval.experts import RoutingTally
from k2nb.nano.eval.metrics import RunRecord

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = E.load_questions()
ANSWERABLE = [q for q in QUESTIONS if q.answerable]
DATA_KINDS = {"rows", "columns", "sum", "mean", "median", "max", "min", "count", "group"}


def test_the_default_file_is_the_one_in_tests_data():
    assert E.PARAPHRASE_FILE == ROOT / "tests" / "data" / "paraphrase.jsonl"


def test_the_split_covers_every_family_and_the_dataframe_questions():
    assert len(ANSWERABLE) >= 200
    per_family = Counter(q.family for q in ANSWERABLE)
    assert set(per_family) == set(FAMILIES)
    assert min(per_family.values()) >= 20, per_family  # roughly even
    data = [q for q in ANSWERABLE if q.family == "data"]
    assert len(data) >= 40 and all(q.setup for q in data)
    # the kinds the issue names, by the sub-kind's stem ("count-eq", "list-max", "group-argmax" …)
    stems = {re.sub(r"^list-", "", q.sub_kind).split("-")[0] for q in data}
    assert DATA_KINDS <= stems, DATA_KINDS - stems
    # the data is never called df, and goes by several names
    names = set().union(*(setup_names(q.setup) for q in data))
    assert "df" not in names and {"sales", "people", "orders", "scores"} <= names
    unanswerable = [q for q in QUESTIONS if not q.answerable]
    assert len(unanswerable) >= 15 and all(q.answer is None and q.reference is None for q in unanswerable)


def test_every_stored_answer_is_its_reference_recomputed():
    for q in ANSWERABLE:
        value = E.reference_value(q)
        assert type(value) is type(q.answer) and value == q.answer, (q.id, value, q.answer)
        # and the stored form is one the eval's matching accepts from an answer sentence
        assert curriculum.answer_matches(q.answer, f"The answer is {q.answer}."), q.id


def test_ids_are_unique_and_a_bad_file_is_one_sentence(tmp_path):
    assert len({q.id for q in QUESTIONS}) == len(QUESTIONS)
    good = {"id": "a", "family": "arithmetic", "question": "What is 2 plus 2?", "answer": 4,
            "reference": "2 + 2"}
    cases = {
        "used twice": [good, good],
        "is none of": [{**good, "family": "algebra"}],
        "needs a number or text answer": [{**good, "answer": None}],
        "has no answer (null)": [{**good, "answerable": False}],
        "unknown field": [{**good, "note": "x"}],
        "missing question": [{k: v for k, v in good.items() if k != "question"}],
    }
    for message, records in cases.items():
        path = tmp_path / "q.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
        with pytest.raises(E.QuestionFileError, match=re.escape(message)) as err:
            E.load_questions(path)
        assert "q.jsonl line" in str(err.value)
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(E.QuestionFileError, match="bad.jsonl line 1: not JSON"):
        E.load_questions(tmp_path / "bad.jsonl")
    # "none" is a family only for a question without an answer
    (tmp_path / "none.jsonl").write_text(json.dumps({"id": "n", "family": "none", "question": "Hi?",
                                                     "answer": None, "answerable": False}) + "\n")
    assert not E.load_questions(tmp_path / "none.jsonl")[0].answerable


def _templates() -> list[tuple[str, re.Pattern[str]]]:
    """Every question-like template string in the curriculum's source (3+ literal words), as a regex
    whose slots take one token or a bracketed list."""
    out = []
    for path in (ROOT / "k2nb" / "nano" / "curriculum").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            text = node.value
            if "\n" in text or not re.search(r"\{\w+\}", text):
                continue
            if len(re.findall(r"[A-Za-z]+", re.sub(r"\{\w+\}", " ", text))) < 3:
                continue
            rx = re.sub(r"\\\{\w+\\\}", r"(?:\\[[^\\]]*\\]|[\\w.,'$%-]+)", re.escape(text))
            out.append((text, re.compile(rx, re.IGNORECASE)))
    return out


def _pieces(question: str) -> set[str]:
    """The question and every run of its consecutive sentences (a template may be one of them, with
    a greeting before or a request after, as the curriculum adds them)."""
    s = [x for x in re.split(r"(?<=[.?!])\s+", question.strip()) if x]
    return {" ".join(s[i:j]) for i in range(len(s)) for j in range(i + 1, len(s) + 1)}


def test_no_question_is_a_training_question_or_template():
    questions = {q.question for q in QUESTIONS}
    trained = {p.question for seed in range(3) for p in curriculum.generate(1000, seed=seed, split="train")}
    trained |= {p.question for p in curriculum.eval_problems(300, split="train")}
    assert len(trained) > 2500 and not questions & trained
    templates = _templates()
    assert len(templates) > 300  # the scan found the template lists
    copies = [(q.id, t) for q in QUESTIONS for piece in _pieces(q.question) for t, rx in templates
              if rx.fullmatch(piece)]
    assert not copies


def test_training_code_never_reads_the_split():
    training = [*(ROOT / "k2nb" / "nano" / "curriculum").rglob("*.py"),
                *(ROOT / "k2nb" / "nano" / name for name in ("train.py", "data.py", "tokenizer_train.py",
                                                            "average.py", "cli_args.py"))]
    for path in training:
        text = path.read_text()
        for word in ("paraphrase", "tests/data", "nano.eval", "nano import eval"):
            assert word not in text, (path, word)
    # and generating training problems opens no file of tests/data
    opened: list[str] = []
    watching = [True]

    def hook(event: str, args: tuple) -> None:
        if watching[0] and event == "open" and isinstance(args[0], (str, Path)):
            opened.append(str(args[0]))
    sys.addaudithook(hook)  # cannot be removed: `watching` turns it off
    try:
        curriculum.generate(120, seed=11, split="train")
    finally:
        watching[0] = False
    assert not [p for p in opened if "tests/data" in p or "paraphrase" in p]


@pytest.mark.parametrize("text, says", [
    (E.ABSTENTION, True), ("i CAN'T tell what to compute from this question", True),
    ("I can\u2019t tell what to compute from this question: it does not say how many boxes.", True),
    ("I can't tell   what to compute from\nthis question.", True),
    ("I can't tell what to compute: the price is missing.", True), ("I can't tell what you mean.", False),
    ("I can tell what to compute from this question. The answer is 4.", False), ("", False), (None, False),
])
def test_abstention_is_the_phrase_in_any_case(text, says):
    assert E.is_abstention(text) is says


def q_(id_: str, family: str, answer, answerable: bool = True, question: str = "") -> E.Question:
    return E.Question(id_, family, "test", question or f"question {id_}?", answer, "", None, answerable)


def record(q: E.EvalProblem, answer: str | None, looked: str) -> RunRecord:
    """A tools run of ``q`` that ended with ``answer``, built by hand as record_of would."""
    return RunRecord(0, q.family, "tools", answer, q.answer, E.is_correct(q, answer), "answer", 1, 1, None,
                     kind=q.kind, id=getattr(q, "id", ""), answerable=E.metrics.is_answerable(q),
                     abstained=E.is_abstention(answer), confident_wrong=E.is_confident_wrong(q, answer),
                     looked_like=looked)


def test_outcomes_count_abstentions_apart_from_confident_wrong_answers():
    a, s, u = q_("a", "arithmetic", 42), q_("s", "strings", "'olleh'"), q_("u", "percent", None, False)
    runs = [
        record(a, "The answer is 42.", "arithmetic"),          # correct
        record(a, "The answer is 41.", "percent"),             # confident wrong
        record(a, E.ABSTENTION, ABSTAINED),                    # abstained on an answerable question
        record(a, None, NO_CALL),                              # no answer: neither
        record(a, f"{E.ABSTENTION} The answer is 42.", "arithmetic"),  # abstains, so not correct
        record(s, "The answer is 'olleh'.", "strings"),        # correct
        record(s, "The answer is hello.", "strings"),          # confident wrong
        record(u, E.ABSTENTION.lower(), ABSTAINED),            # correct abstention
        record(u, "The answer is 20.", "percent"),             # answers the unanswerable: confident wrong
    ]
    for i, r in enumerate(runs):
        r.problem = i
    rep = E.summarise(runs, RoutingTally(0, []), {"split": "paraphrase", "paths": [1],
                                                  "scaling_temperature": 1.0}, {"tools": 0.0}, 0.0)
    assert rep["accuracy"] == round(2 / 7, 6)  # answerable runs only
    assert rep["answers"]["answerable"] == {"runs": 7, "correct": 2, "abstained": 2, "confident_wrong": 2,
                                            "withheld": 0, "withheld_correct": 0, "no_answer": 1}
    assert rep["answers"]["unanswerable"] == {"runs": 2, "correct": 1, "abstained": 1, "confident_wrong": 1,
                                              "withheld": 0, "withheld_correct": 0, "no_answer": 0}
    assert rep["abstention_rate"] == round(2 / 7, 6)
    assert rep["confident_wrong_rate"] == round(3 / 9, 6)
    assert rep["correct_abstention_rate"] == 0.5
    assert rep["n_answerable"] == 7 and rep["n_unanswerable"] == 2
    assert rep["family_confusion"] == {
        "arithmetic": {"abstained": 1, "arithmetic": 2, "no_call": 1, "percent": 1},
        "strings": {"strings": 2}, "unanswerable": {"abstained": 1, "percent": 1}}
    assert rep["misses_by_kind"]["tools"] == {"arithmetic.test": 4, "strings.test": 1, "unanswerable.test": 1}
    targets = rep["targets"]
    assert targets["accuracy"]["target"] == 0.85 and not targets["accuracy"]["met"]
    assert targets["confident_wrong_rate"] == {"target": 0.05, "value": round(3 / 9, 6), "at_most": True,
                                               "met": False}
    assert "recovery_rate" not in targets  # the injected condition did not run
    text = E.format_report(json.loads(json.dumps(rep | {"settings": rep["settings"] | {"model": "m"}})))
    assert "confident wrong answers          33.3%   (3/9 runs; 2 answerable, 1 unanswerable)" in text
    assert "abstentions (unanswerable)       50.0%   (1/2" in text
    assert "hand-written paraphrase problems" in text and "recovery after" not in text
    assert "arithmetic    2/5 as arithmetic; abstained 1, no_call 1, percent 1" in text
    assert "unanswerable  1/2 abstained; percent 1" in text
    assert "NOT met (0.333333 vs at most 0.05)" in text


def test_the_heldout_report_has_the_new_measures_too():
    """Every generated problem is answerable: its stated wrong answers are confident-wrong."""
    p = curriculum.heldout_problems(1)[0]
    r = record(p, "The answer is -1.", "arithmetic")
    settings = {"split": "heldout", "paths": [1], "scaling_temperature": 1.0}
    rep = E.summarise([r], RoutingTally(0, []), settings, {"tools": 0.0}, 0.0)
    assert rep["confident_wrong_rate"] == 1.0 and rep["abstention_rate"] == 0.0
    assert rep["correct_abstention_rate"] is None and rep["targets"]["accuracy"]["target"] == 0.95


def first_code(p: curriculum.Problem) -> str:
    first = next(m for m in p.messages if m["role"] == "assistant" and m.get("tool_calls"))
    return json.loads(first["tool_calls"][0]["function"]["arguments"])["code"]


def test_confusion_names_the_family_of_every_generated_kinds_first_call():
    kinds = set()
    for split in ("heldout", "train"):
        for fam in FAMILIES:
            for i in range(30):
                p = curriculum.make_problem(f"confusion:{i}", split, fam, "plain")
                names = setup_names(p.setup)
                assert E.family_of_code(first_code(p), names) == fam, (p.kind, first_code(p))
                kinds.add(p.kind)
    nine = {k for k in KINDS if k.split(".")[0] in FAMILIES}
    assert len(kinds) >= 0.9 * len(nine)


def test_confusion_of_runs_without_a_call_and_of_user_data():
    assert E.looked_like([], abstained=True) == ABSTAINED and E.looked_like([], abstained=False) == NO_CALL
    assert E.family_of_code("print('hi')") == OTHER
    assert E.family_of_code("print(len(people))", {"people"}) == "data"
    assert E.family_of_code("print(348 * 27)") == "arithmetic"
    assert E.family_of_code("print(round(120 * (1 - 25 / 100), 2))") == "percent"
    assert E.family_of_code("print(3 * 3600)") == "units"


def test_scripted_runs_through_the_runner_record_ids_and_outcomes():
    qs = [q_("x1", "arithmetic", 42, question="What is 40 plus 2?"),
          q_("x2", "percent", None, False, "What is 25% off?")]
    scripts = {
        "x1": [Turn(think="Compute.", calls=[("python", {"code": "print(40 + 2)"})]),
               Turn(think="Done.", answer="The answer is 42.")],
        "x2": [Turn(think="No number.", answer=E.ABSTENTION)],
    }
    rep = E.evaluate(qs, lambda i, q, c: ScriptedBackend(scripts[q.id]), conditions=["tools"], progress=False,
                     split="paraphrase", questions="inline")
    runs = {r["id"]: r for r in rep["runs"]}
    assert runs["x1"]["correct"] and runs["x1"]["looked_like"] == "arithmetic"
    assert runs["x2"]["correct"] and runs["x2"]["abstained"] and not runs["x2"]["confident_wrong"]
    assert rep["accuracy"] == 1.0 and rep["correct_abstention_rate"] == 1.0
    assert rep["confident_wrong_rate"] == 0
    assert rep["settings"]["conditions"] == ["tools"] and rep["settings"]["questions"] == "inline"


def test_a_withheld_answer_is_neither_correct_nor_confident_wrong():
    """Answers whose `sourced` check fails on every attempt: the loop withholds them; the report counts
    them apart, and says which of them were right."""
    qs = [q_("w1", "arithmetic", 42, question="What is 40 plus 2?"),
          q_("w2", "arithmetic", 42, question="What is 40 plus 2?")]

    def attempts(code: str, answer: str) -> list[Turn]:  # the same misreading at every attempt
        return [Turn(think="Compute.", calls=[("python", {"code": code})]), Turn(answer=answer)] * 3

    scripts = {"w1": attempts("print(38 + 4)", "The answer is 42."),    # right, from numbers never given
               "w2": attempts("print(40 + 3)", "The answer is 43.")}    # wrong
    rep = E.evaluate(qs, lambda i, q, c: ScriptedBackend(scripts[q.id]), conditions=["tools"], progress=False,
                     split="paraphrase", questions="inline")
    runs = {r["id"]: r for r in rep["runs"]}
    assert runs["w1"]["answer"] == 'No checked answer: the answer "The answer is 42." failed the checks ' \
        "question numbers used, numbers sourced."
    assert [(r["withheld"], r["withheld_correct"], r["correct"], r["confident_wrong"])
            for r in runs.values()] == [(True, True, False, False), (True, False, False, False)]
    assert rep["accuracy"] == 0 and rep["confident_wrong_rate"] == 0 and rep["withheld_rate"] == 1.0
    assert rep["answers"]["answerable"]["withheld_correct"] == 1
    text = E.format_report(rep | {"settings": rep["settings"] | {"model": "m"}})
    assert "withheld (checks failed)         100.0%   (2/2 runs; 1 of the 2 answerable ones were right)" \
        in text


def cli_args(*argv: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    nano_cli.register(ap.add_subparsers(dest="command"))
    return ap.parse_args(["eval", *argv])


def test_cli_split_limit_conditions_and_questions(tmp_path):
    whole = nano_cli.eval_problems(cli_args("--split", "paraphrase"))
    assert len(whole) == len(QUESTIONS)  # no --limit: the whole split
    three = nano_cli.eval_problems(cli_args("--split", "paraphrase", "--limit", "3"))
    assert [q.family for q in three] == ["arithmetic", "percent", "interest"] and three == whole[:3]
    assert [q.answerable for q in whole[:10]] == [True] * 9 + [False]  # unanswerable in the round-robin
    assert nano_cli.eval_conditions(cli_args("--split", "paraphrase")) == ["tools"]
    assert nano_cli.eval_conditions(cli_args("--no-scaling")) == ["tools", "injected", "no_tools"]
    assert nano_cli.eval_conditions(cli_args("--split", "paraphrase", "--conditions", "paths,tools",
                                             "--no-scaling")) == ["tools"]
    with pytest.raises(SystemExit):
        cli_args("--conditions", "tools,vibes")
    own = tmp_path / "mine.jsonl"
    own.write_text(json.dumps({"id": "m1", "family": "units", "question": "3 feet in inches?", "answer": 36,
                               "reference": "3 * 12"}) + "\n")
    mine = nano_cli.eval_problems(cli_args("--split", "paraphrase", "--questions", str(own)))
    assert [q.id for q in mine] == ["m1"]
    with pytest.raises(E.QuestionFileError, match="add --split paraphrase"):
        nano_cli.eval_problems(cli_args("--questions", str(own)))


def test_a_short_paraphrase_eval_through_the_real_runner(tmp_path):
    """`k2nb eval --split paraphrase --limit 3` with the shipped model: the report has the split's
    fields whatever the model answers."""
    from k2nb.cli import main

    argv = ["eval", "--split", "paraphrase", "--limit", "3", "--out", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    rep = json.loads((tmp_path / "eval.json").read_text())
    assert rep["settings"]["split"] == "paraphrase" and rep["settings"]["conditions"] == ["tools"]
    assert rep["settings"]["questions"] == str(E.PARAPHRASE_FILE)
    assert [r["id"] for r in rep["runs"]] == [q.id for q in nano_cli.eval_problems(
        cli_args("--split", "paraphrase", "--limit", "3"))]
    assert set(rep["family_confusion"]) == {"arithmetic", "percent", "interest"}
    a = rep["answers"]["answerable"]
    outcomes = a["correct"] + a["abstained"] + a["confident_wrong"] + a["withheld"] + a["no_answer"]
    assert a["runs"] == 3 and outcomes == 3
    assert rep["conditions_run"] == ["tools"] and not (tmp_path / "scaling.png").exists()
