"""The magics in an IPython shell, with the agent's ScriptedBackend standing in for the model."""

from __future__ import annotations

import time

import nbformat
import pytest
from IPython.core.error import UsageError

from k2nb.agent.executor import ToolCallRequest
from k2nb.backends.scripted import ScriptedBackend, Turn
from k2nb.magics import K2Result, NotebookExecutor
from k2nb.magics.approval import Approval
from k2nb.magics.cells import InlineCells
from k2nb.magics.parsers import interpolate, parse_line, think_parser


def think(ip, line: str, prompt: str):
    """Run a %%k2think cell the way a notebook does (history, displayhook, `_`)."""
    res = ip.run_cell(f"%%k2think {line}\n{prompt}", store_history=True)
    return res


def test_bad_option_is_a_one_line_usage_error(ip, k2):
    with pytest.raises(UsageError) as exc:
        parse_line(think_parser(), "--paths x")
    msg = str(exc.value)
    assert "\n" not in msg and "--paths" in msg and "invalid" in msg
    with pytest.raises(UsageError, match="--approve"):
        parse_line(think_parser(), "--approve sometimes")
    with pytest.raises(UsageError, match="unrecognized"):
        parse_line(think_parser(), "--bogus")
    res = ip.run_cell("%%k2think --paths 0\nhello")
    assert isinstance(res.error_in_exec, UsageError)
    res = ip.run_cell("%%k2think\n   ")
    assert isinstance(res.error_in_exec, UsageError) and "no prompt" in str(res.error_in_exec)


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        ("--temperature nan", "finite"),
        ("--temperature inf", "finite"),
        ("--paths 1000", "at most 64"),
        ("--timeout 0", "more than 0 seconds"),
        ("--timeout -1", "more than 0 seconds"),
    ],
)
def test_options_that_would_be_silently_wrong_are_refused(ip, k2, line, complaint):
    with pytest.raises(UsageError, match=complaint):
        parse_line(think_parser(), line)


def test_set_refuses_what_the_flags_refuse(ip, k2):
    for key, value in (("temperature", "nan"), ("paths", "1000"), ("timeout", "0")):
        with pytest.raises(UsageError, match=f"%k2nb set {key}"):
            ip.run_line_magic("k2nb", f"set {key} {value}")


def test_a_lone_surrogate_in_a_variable_is_named(ip, k2):
    k2.use_backend(ScriptedBackend([Turn(answer="x")]))
    ip.user_ns["weird"] = "a\ud800b"
    res = ip.run_cell("%%k2think\nWhat is {weird}?")
    assert isinstance(res.error_in_exec, UsageError) and "lone surrogate" in str(res.error_in_exec)


def test_a_failed_run_says_why_in_plain_text(ip, k2, capsys):
    class Broken(ScriptedBackend):
        def stream(self, prompt, options, cancel=None):
            raise ConnectionError("the server went away")

    k2.use_backend(Broken([]))
    result = think(ip, "", "hello").result
    assert result.end_reason == "error" and "the server went away" in result.error


def test_interpolation_fills_known_names_only():
    ns = {"df": {"a": 1}, "n": 3, "name": "x"}
    assert interpolate("rows {n}, keys {df!r}, {n:03d}", ns) == "rows 3, keys {'a': 1}, 003"
    assert interpolate('json {"k": 1} and {unknown} and {{n}}', ns) == 'json {"k": 1} and {unknown} and {n}'
    assert interpolate("{name.upper}", ns).startswith("<built-in method upper")


def test_run_with_a_tool_call_in_the_user_namespace(ip, k2, tmp_path):
    backend = ScriptedBackend(
        [
            Turn(think="Compute it.", calls=[("python", {"code": "k2_y = k2_n * 7\nprint(k2_y)\nk2_y"})]),
            Turn(think="The tool printed 42.", answer="It is **42**."),
        ]
    )
    k2.use_backend(backend)
    ip.user_ns["k2_n"] = 6
    before = ip.execution_count
    out = tmp_path / "run.ipynb"
    res = think(ip, f"--export {out}", "What is {k2_n} times 7?")
    assert res.error_in_exec is None
    result = res.result
    assert isinstance(result, K2Result) and ip.user_ns["_"] is result
    assert result.answer == "It is **42**." and result.end_reason == "answer"
    # the repr counts what the checks established and names the one that could not run
    tail = "1 tool call(s), 4 of 5 checks passed; not established: model's own verification)"
    assert repr(result).endswith(tail)
    assert result.verdict.status == "partial"
    assert "What is 6 times 7?" in backend.prompts[0]  # {var} filled
    assert ip.user_ns["k2_y"] == 42  # ran in the user's namespace
    # one real cell: own execution count after the %%k2think cell's, in IPython's history
    (cell,) = result.cells
    assert cell["execution_count"] == before + 1
    assert ip.user_ns["In"][before + 1] == "k2_y = k2_n * 7\nprint(k2_y)\nk2_y"
    assert [o["output_type"] for o in cell["outputs"]] == ["stream", "execute_result"]
    assert ip.execution_count == before + 3  # the k2think cell took the count after its tool's
    assert ip.user_ns["In"][before + 2].startswith("%%k2think") or "k2think" in ip.user_ns["In"][before + 2]
    assert ip.user_ns["Out"][before + 2] is result  # In[n] / Out[n] of the run cell pair up
    # what the model read back is the cell's output
    obs = result.trajectory.find("observation")[0]
    assert "42" in obs.text
    nb = nbformat.read(out, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].source.startswith("k2_y = k2_n * 7")
    assert result.to_notebook().cells  # the same export in memory


def test_conversation_continues_until_new(ip, k2):
    backend = ScriptedBackend(
        [Turn(think="a", answer="first"), Turn(think="b", answer="second"), Turn(think="c", answer="third")]
    )
    k2.use_backend(backend)
    assert think(ip, "", "remember the word banana").result.answer == "first"
    assert think(ip, "", "what word?").result.answer == "second"
    assert "banana" in backend.prompts[1] and "first" in backend.prompts[1]
    assert think(ip, "--new", "fresh start").result.answer == "third"
    assert "banana" not in backend.prompts[2]


def test_raising_tool_cell_keeps_the_run_going(ip, k2):
    k2.use_backend(
        ScriptedBackend(
            [
                Turn(think="try", calls=[("python", {"code": "undefined_thing + 1"})]),
                Turn(think="fix", calls=[("python", {"code": "1 + 1"})]),
                Turn(think="done", answer="2"),
            ]
        )
    )
    result = think(ip, "", "add").result
    assert result.answer == "2" and len(result.cells) == 2
    err = result.cells[0]["outputs"][0]
    assert err["output_type"] == "error" and err["ename"] == "NameError"
    assert result.cells[0]["metadata"]["k2nb"]["ok"] is False
    obs = result.trajectory.find("observation")
    assert "NameError" in obs[0].text and obs[1].text.strip() == "2"


def test_tool_cell_timeout(ip, k2):
    k2.use_backend(
        ScriptedBackend(
            [
                Turn(think="wait", calls=[("python", {"code": "import time\ntime.sleep(30)"})]),
                Turn(think="too slow", answer="gave up"),
            ]
        )
    )
    t0 = time.monotonic()
    result = think(ip, "--timeout 0.5", "sleep").result
    assert time.monotonic() - t0 < 10
    out = result.cells[0]["outputs"][-1]
    assert out["output_type"] == "error" and out["ename"] == "ToolCellTimeout"
    obs = result.trajectory.find("observation")[0]
    assert obs.data["error_kind"] == "timeout" and result.answer == "gave up"


def test_interrupt_during_generation_keeps_the_partial_run(ip, k2):
    def stop(_prompt):
        raise KeyboardInterrupt  # what the stop button raises in the kernel's main thread

    k2.use_backend(
        ScriptedBackend(
            [
                Turn(think="look", calls=[("python", {"code": "k2_partial = 1"})]),
                stop,
                Turn(think="again", answer="ok"),
            ]
        )
    )
    res = think(ip, "", "go")
    result = res.result
    assert res.error_in_exec is None and result.end_reason == "cancelled"
    assert ip.user_ns["_"] is result and ip.user_ns["k2_partial"] == 1
    assert len(result.trajectory.find("tool_call")) == 1  # the part that ran is kept
    assert think(ip, "--new", "again").result.answer == "ok"  # the next run works


def test_interrupt_in_a_tool_cell_stops_the_run(ip, k2):
    k2.use_backend(
        ScriptedBackend(
            [
                Turn(think="run", calls=[("python", {"code": "raise KeyboardInterrupt"})]),
                Turn(think="never", answer="should not be reached"),
            ]
        )
    )
    result = think(ip, "", "go").result
    assert result.end_reason == "cancelled" and result.answer is None
    assert result.cells[0]["outputs"][0]["ename"] == "KeyboardInterrupt"


def test_approval_modes(ip):
    published = []
    sink = InlineCells(lambda d, m: published.append(d), notice=False)
    asked = []

    def decide(name, code):
        asked.append(code)
        return "skip" if "skip" in code else "run"

    ex = NotebookExecutor(ip, sink=sink, approval=Approval("ask", ip, decide_fn=decide))
    ran = ex.execute(ToolCallRequest("functions.python:0", "python", "", {"code": "k2_ok = 1"}))
    skipped = ex.execute(ToolCallRequest("functions.python:1", "python", "", {"code": "k2_skip = 1"}))
    assert ran.ok and ip.user_ns["k2_ok"] == 1
    assert not skipped.ok and "chose not to run" in skipped.text and "k2_skip" not in ip.user_ns
    assert len(asked) == 2 and len(ex.cells) == 1
    never = NotebookExecutor(ip, approval=Approval("never", ip))
    assert never.tool_schemas() == []
    obs = never.execute(ToolCallRequest("functions.python:0", "python", "", {"code": "1"}))
    assert obs.error_kind == "unknown_tool"
    with pytest.raises(ValueError):
        Approval("sometimes")  # type: ignore[arg-type]


def test_line_magics(ip, k2, capsys):
    k2.use_backend(ScriptedBackend([Turn(answer="x")]), name="scripted")
    ip.run_line_magic("k2model", "")
    assert "scripted" in capsys.readouterr().out
    ip.run_line_magic("k2nb", "set timeout 5")
    assert k2.settings["timeout"] == 5.0
    ip.run_line_magic("k2nb", "settings")
    assert "timeout" in capsys.readouterr().out
    with pytest.raises(UsageError):
        ip.run_line_magic("k2nb", "set nonsense 1")
    with pytest.raises(UsageError):
        ip.run_line_magic("k2nb", "set cells maybe")
    ip.run_line_magic("k2nb", "reset")
    k2.settings["dashboard"] = False
    ip.run_line_magic("k2nb", "help")
    assert "%%k2think" in capsys.readouterr().out
    with pytest.raises(UsageError):
        ip.run_line_magic("k2model", "load")
    with pytest.raises(UsageError):
        ip.run_line_magic("k2route", "99")


def test_dashboard_at_the_end_and_k2route(ip, k2):
    pytest.importorskip("ipywidgets")
    k2.settings["dashboard"] = True
    k2.use_backend(ScriptedBackend([Turn(think="t", calls=[("python", {"code": "3"})]), Turn(answer="3")]))
    result = think(ip, "", "three").result
    trace = result.full_routing()
    assert trace is not None and result.dashboard() is not None
    ip.run_line_magic("k2route", "")
    fig = ip.run_line_magic("k2route", "--static")
    assert fig is not None


def test_an_incomplete_last_tool_cell_does_not_break_the_run_cell(ip, k2):
    """IPython's display hook reads the last input to look for a trailing ';': a model's unfinished
    code in the last tool cell must not make the %%k2think cell fail (it did: tokenize.TokenError)."""
    backend = ScriptedBackend(
        [
            Turn(think="Sum it.", calls=[("python", {"code": "print(int((sum([1, 2])"})]),
            Turn(think="Broken; answer anyway.", answer="It is 3."),
        ]
    )
    k2.use_backend(backend)
    res = think(ip, "--no-dashboard", "Add 1 and 2.")
    assert res.error_in_exec is None and res.error_before_exec is None
    assert isinstance(res.result, K2Result) and ip.user_ns["_"] is res.result
    (cell,) = res.result.cells
    assert cell["outputs"][0]["ename"] == "SyntaxError"
