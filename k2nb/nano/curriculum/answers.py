"""The answer: how a trace states it and how an answer is matched against the computed one."""

from __future__ import annotations

import math
import re

ABS_TOL = 0.01  # outputs are printed with round(..., 2), so one unit in the last place
REL_TOL = 1e-4
_ANSWER_RE = re.compile(r"answer is\s+(.+?)\s*\.?\s*$", re.IGNORECASE | re.DOTALL)


def answer_sentence(out: str, unit: str) -> str:
    """The final answer of every trace restates the tool's output: "The answer is 42 km."."""
    return f"The answer is {out}{unit}."


def parse_answer(out: str) -> float | int | str:
    """The expected answer of a problem from the main call's output."""
    if re.fullmatch(r"-?\d+", out):
        return int(out)
    if re.fullmatch(r"-?\d+\.\d+(e-?\d+)?", out):
        return float(out)
    return out


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
