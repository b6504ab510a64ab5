"""`k2nb think`'s terminal view: what a user sees stream by, from a scripted run (a test double)."""

from __future__ import annotations

import io
import json

import pytest

from k2nb.agent import think
from k2nb.backends.scripted import ScriptedBackend, Turn
from k2nb.terminal import TerminalView, routing_summary


def _py(code: str) -> tuple[str, dict]:
    return ("python", {"code": code})


def test_view_streams_thinking_calls_observations_checks_and_answer():
    out = io.StringIO()
    backend = ScriptedBackend([
        Turn("I need the mean of the list.", [_py("xs = [2, 4, 9]\nsum(xs) / len(xs)")]),
        Turn("Check it another way.", [_py("import statistics\nassert statistics.mean(xs) == 5.0\n5.0")]),
        Turn("Both agree.", answer="The mean is 5.0."),
    ])
    result = think("What is the mean of 2, 4 and 9?", backend=backend, observers=[TerminalView(out)])
    text = out.getvalue()
    assert result.answer == "The mean is 5.0."
    assert "[thinking] I need the mean of the list." in text
    assert "→ python\n  │ xs = [2, 4, 9]\n  │ sum(xs) / len(xs)" in text
    assert "← 5.0" in text
    assert "[answer] The mean is 5.0." in text
    assert "✓ check" in text
    assert "\033[" not in text  # not a terminal: no colour codes
    assert routing_summary(result)[0].startswith("routing: ")
    assert json.loads(json.dumps(result.to_dict(), default=str))["answer"] == "The mean is 5.0."


def test_view_shows_a_failing_call_as_an_error_observation():
    out = io.StringIO()
    backend = ScriptedBackend([
        Turn("Compute.", [_py("total = prices * 2")]),
        Turn("Define it first.", [_py("prices = 21\nprices * 2")]),
        Turn("Done.", answer="It is 42."),
    ])
    think("Double 21.", backend=backend, observers=[TerminalView(out, color=True)])
    text = out.getvalue()
    assert "NameError: name 'prices' is not defined" in text
    assert "\033[31m← \033[0m" in text  # the failed observation is marked in red
    assert "42" in text


@pytest.mark.parametrize(
    ("flags", "complaint"),
    [(["--temperature", "nan"], "temperature"), (["--paths", "1000"], "paths"), (["--paths", "0"], "paths")],
)
def test_think_refuses_bad_options_in_one_line(capsys, flags, complaint):
    from k2nb.cli import main

    assert main(["think", "What is 2+2?", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert complaint in err and "\n" not in err and "Traceback" not in err


def test_think_words_the_verdict_as_what_the_checks_established(capsys, monkeypatch):
    """The closing lines count the checks and name the one that could not run; no "verified"."""
    import k2nb.agent
    from k2nb.cli import main

    real = k2nb.agent.think
    backend = ScriptedBackend([Turn("Multiply.", [_py("print(348 * 27)")]), Turn("", answer="It is 9396.")])
    monkeypatch.setattr(k2nb.agent, "think", lambda *a, **kw: real(*a, **{**kw, "backend": backend}))
    assert main(["think", "Compute 348 times 27"]) == 0
    out = capsys.readouterr().out
    assert "… check model's own verification not established: the model ran no verification step" in out
    assert "checks: 4 of 5 checks passed; not established: model's own verification\n" in out
    assert "verified" not in out.lower()
