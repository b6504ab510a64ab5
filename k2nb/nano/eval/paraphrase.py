"""The paraphrase split: questions written by hand, in the words of users, never trained on.

The generated held-out set shares its generator with the training data; this split measures whether
the model reads questions it was not built around. It lives in ``tests/data/paraphrase.jsonl`` of the
k2nb source tree (``PARAPHRASE_FILE``), one JSON object per line:

``id``          unique name, e.g. ``"percent-07"``
``family``      one of the curriculum's nine families (``"none"`` allowed when not answerable)
``kind``        a free sub-kind name (``"product"``, ``"group"``, ``"missing-number"``)
``question``    the user's text
``setup``       optional Python run in the tool's namespace first (a DataFrame ``sales``, a list)
``reference``   a Python expression computing the answer after ``REFERENCE_PRELUDE`` and ``setup``
``answer``      the stored answer: ``reference``'s value by ``normalise`` (null when not answerable)
``answerable``  false for questions with nothing to compute (missing numbers, no data, not a sum):
                the right outcome there is to abstain

Nothing in ``k2nb.nano.curriculum`` or the trainer reads this file (a test checks it), so it stays
out of training.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from k2nb.engine.errors import K2nbError
from k2nb.nano.curriculum.families import FAMILIES

SPLIT = "paraphrase"
PARAPHRASE_FILE = Path(__file__).resolve().parents[3] / "tests" / "data" / "paraphrase.jsonl"
# What a reference expression may use beside the record's setup (its answer is computed in it).
REFERENCE_PRELUDE = "import math\nimport statistics\nfrom datetime import date, timedelta\n"
UNANSWERABLE = "unanswerable"  # the bucket (and confusion row) of questions without an answer
_FIELDS = {"id", "family", "kind", "question", "setup", "reference", "answer", "answerable"}


class QuestionFileError(K2nbError, ValueError):
    """A paraphrase file that cannot be read (or a question file without ``--split paraphrase``); the
    message names the file and line. ``k2nb`` prints it as one line."""


@dataclass(frozen=True, slots=True)
class Question:
    """One hand-written question, with what ``evaluate`` reads of a generated problem."""

    id: str
    family: str
    sub_kind: str
    question: str
    answer: float | int | str | None
    setup: str = ""
    reference: str | None = None
    answerable: bool = True
    split: str = SPLIT
    variant: str = "plain"

    @property
    def kind(self) -> str:
        """``family.sub_kind``, as generated problems name their sub-family (for misses by kind)."""
        return f"{self.family if self.answerable else UNANSWERABLE}.{self.sub_kind}"

    @property
    def prompt_messages(self) -> list[dict[str, Any]]:
        return [{"role": "user", "content": self.question}]


def normalise(value: Any) -> float | int | str:
    """A computed value as the eval compares it: floats rounded to 2 places (as the tool's outputs
    are printed), ints as they are, dates as ISO text, lists as their repr, numpy scalars unwrapped."""
    if hasattr(value, "item") and not isinstance(value, (list, str)):
        value = value.item()  # numpy / pandas scalars
    if isinstance(value, bool):
        raise TypeError("a True/False answer is not an answer this eval can match")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"the answer is {value}")
        return round(value, 2)
    if isinstance(value, (int, str)):
        return value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return str(value)
    raise TypeError(f"an answer of type {type(value).__name__} cannot be stored")


def reference_value(q: Question) -> float | int | str:
    """``q.reference`` evaluated after the prelude and ``q.setup`` (the check of a stored answer)."""
    if q.reference is None:
        raise ValueError(f"{q.id} has no reference")
    namespace: dict[str, Any] = {"__name__": "__paraphrase__"}
    exec(REFERENCE_PRELUDE + q.setup, namespace)
    return normalise(eval(q.reference, namespace))


def _question(record: Any, where: str) -> Question:
    if not isinstance(record, dict):
        raise QuestionFileError(f"{where}: not a JSON object")
    unknown = set(record) - _FIELDS
    missing = {"id", "family", "question"} - set(record)
    if unknown or missing:
        raise QuestionFileError(f"{where}: " + "; ".join(
            ([f"missing {', '.join(sorted(missing))}"] if missing else [])
            + ([f"unknown field {', '.join(sorted(unknown))}"] if unknown else [])))
    answerable = record.get("answerable", True)
    family, answer = record["family"], record.get("answer")
    if not isinstance(answerable, bool):
        raise QuestionFileError(f"{where}: answerable must be true or false")
    if family not in FAMILIES and not (family == "none" and not answerable):
        raise QuestionFileError(f"{where}: family {family!r} is none of {', '.join(FAMILIES)}")
    if answerable and not isinstance(answer, (int, float, str)):
        raise QuestionFileError(f"{where}: an answerable question needs a number or text answer")
    if not answerable and answer is not None:
        raise QuestionFileError(f"{where}: a question marked answerable: false has no answer (null)")
    if not (isinstance(record["question"], str) and record["question"].strip()):
        raise QuestionFileError(f"{where}: the question is empty")
    return Question(str(record["id"]), family, str(record.get("kind") or "question"), record["question"],
                    answer, record.get("setup") or "", record.get("reference"), answerable)


def load_questions(path: str | Path | None = None) -> list[Question]:
    """Every question of a paraphrase file (default ``PARAPHRASE_FILE``), in file order."""
    path = Path(path) if path else PARAPHRASE_FILE
    if not path.is_file():
        hint = (" (the paraphrase split is part of the k2nb source tree; pass --questions FILE)"
                if path == PARAPHRASE_FILE else "")
        raise QuestionFileError(f"{path}: no such file{hint}")
    questions: list[Question] = []
    seen: set[str] = set()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path.name} line {n}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise QuestionFileError(f"{where}: not JSON ({e.msg})") from None
        q = _question(record, where)
        if q.id in seen:
            raise QuestionFileError(f"{where}: id {q.id!r} is used twice")
        seen.add(q.id)
        questions.append(q)
    if not questions:
        raise QuestionFileError(f"{path}: no questions")
    return questions


def paraphrase_problems(limit: int | None = None, path: str | Path | None = None) -> list[Question]:
    """The first ``limit`` questions (all when None), buckets in round-robin: the families in the
    curriculum's order, then the unanswerable questions, each bucket in file order. So a small
    ``--limit`` still spans the families, and its first N are the first N of any larger limit."""
    questions = load_questions(path)
    order = [*FAMILIES, UNANSWERABLE]
    buckets: dict[str, list[Question]] = {b: [] for b in order}
    for q in questions:
        buckets[q.family if q.answerable else UNANSWERABLE].append(q)
    queues = [buckets[b] for b in order if buckets[b]]
    picked: list[Question] = []
    for depth in range(max(len(b) for b in queues)):
        picked += [b[depth] for b in queues if depth < len(b)]
    return picked if limit is None else picked[:limit]
