"""Tools: schemas from type hints and docstrings, argument validation, the python tool's robustness,
and the local executor's observations."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any, Literal, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from k2nb.agent import LocalExecutor, PythonTool, ToolCallRequest, ToolDefinitionError, tool
from k2nb.agent.guard import CappedText, cut_middle
from k2nb.agent.tools import parse_docstring, schema_for, validate_arguments

# --------------------------------------------------------------------------------------------
# schema generation


def props(t: Any) -> dict[str, Any]:
    return t.schema["function"]["parameters"]["properties"]


def test_schema_shape_and_callable() -> None:
    @tool
    def fib(n: int) -> int:
        """Return the n-th Fibonacci number.

        Args:
            n: Index in the sequence, starting at 0.
        """
        a, b = 0, 1
        for _ in range(n):
            a, b = b, a + b
        return a

    assert fib(10) == 55  # still the function
    assert fib.schema == {
        "type": "function",
        "function": {
            "name": "fib",
            "description": "Return the n-th Fibonacci number.",
            "parameters": {
                "type": "object",
                "properties": {
                    "n": {"type": "integer", "description": "Index in the sequence, starting at 0."}
                },
                "required": ["n"],
            },
        },
    }
    json.dumps(fib.schema)  # must be JSON as is


@pytest.mark.parametrize(
    ("annotation", "schema"),
    [
        (int, {"type": "integer"}),
        (float, {"type": "number"}),
        (str, {"type": "string"}),
        (bool, {"type": "boolean"}),
        (Optional[int], {"type": ["integer", "null"]}),  # noqa: UP045 - testing the old spelling
        (int | None, {"type": ["integer", "null"]}),
        (Literal["mean", "median"], {"type": "string", "enum": ["mean", "median"]}),
        (Literal[1, 2, 3], {"type": "integer", "enum": [1, 2, 3]}),
        (Literal["a", 1], {"type": ["string", "integer"], "enum": ["a", 1]}),
        (Literal["a"] | None, {"anyOf": [{"type": "string", "enum": ["a"]}, {"type": "null"}]}),
        (list[int], {"type": "array", "items": {"type": "integer"}}),
        (list[list[float]], {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}),
        (list, {"type": "array"}),
        (dict, {"type": "object"}),
        (dict[str, float], {"type": "object", "additionalProperties": {"type": "number"}}),
        (int | str, {"anyOf": [{"type": "integer"}, {"type": "string"}]}),
        (Annotated[int, "how many"], {"type": "integer", "description": "how many"}),
        (Any, {}),
    ],
)
def test_schema_for_each_annotation(annotation: Any, schema: dict[str, Any]) -> None:
    assert schema_for(annotation) == schema


def test_defaults_are_not_required_and_are_recorded() -> None:
    @tool
    def stats(column: str, how: Literal["mean", "sum"] = "mean", limit: int | None = None) -> float:
        """Aggregate a column."""
        return 0.0

    params = stats.schema["function"]["parameters"]
    assert params["required"] == ["column"]
    assert params["properties"]["how"]["default"] == "mean"
    assert params["properties"]["limit"] == {"type": ["integer", "null"], "default": None}


def test_google_docstring_with_types_and_continuation_lines() -> None:
    @tool
    def search(query: str, k: int = 5) -> list[str]:
        """Search the notes.

        Longer explanation that stays in the description.

        Args:
            query (str): What to look for,
                case-insensitive.
            k: How many hits to return.

        Returns:
            The hits.
        """
        return []

    assert search.description == "Search the notes.\n\nLonger explanation that stays in the description."
    assert props(search)["query"]["description"] == "What to look for, case-insensitive."
    assert props(search)["k"]["description"] == "How many hits to return."


def test_numpy_docstring() -> None:
    @tool
    def scale(x: float, factor: float = 2.0) -> float:
        """Scale a number.

        Parameters
        ----------
        x : float
            The number.
        factor : float, optional
            Multiplier, applied
            once.

        Returns
        -------
        float
        """
        return x * factor

    assert scale.description == "Scale a number."
    assert props(scale)["x"]["description"] == "The number."
    assert props(scale)["factor"]["description"] == "Multiplier, applied once."


def test_rest_docstring() -> None:
    @tool
    def greet(name: str, loud: bool = False) -> str:
        """Greet someone.

        :param name: Who to greet.
        :param bool loud: Shout it.
        :returns: The greeting.
        """
        return name

    assert greet.description == "Greet someone."
    assert props(greet)["name"]["description"] == "Who to greet."
    assert props(greet)["loud"]["description"] == "Shout it."


def test_parse_docstring_without_sections() -> None:
    assert parse_docstring("Just a summary.").summary == "Just a summary."
    assert parse_docstring(None).params == {}


def test_tool_with_options() -> None:
    @tool(name="add-two", description="Adds two numbers.")
    def add(a: int, b: int) -> int:
        return a + b

    assert add.name == "add-two" and add.schema["function"]["description"] == "Adds two numbers."
    assert add(1, 2) == 3


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: tool(lambda x: x), "name '<lambda>' is not usable"),
        (lambda: tool(_no_hint), "parameter 'x' of tool '_no_hint' has no type hint"),
        (lambda: tool(_tuple_hint), "parameter 'p' of tool '_tuple_hint' has the type tuple[int, int]"),
        (lambda: tool(_set_hint), "parameter 's' of tool '_set_hint' has the type set[str]"),
        (lambda: tool(_varargs), "parameter 'xs' of tool '_varargs' is *args/**kwargs"),
        (lambda: tool(_int_keys), "is a dict with <class 'int'> keys"),
        (lambda: tool(_bad_literal), "Literal[...] with the value"),
        (lambda: tool(_object_hint), "has the type <class 'object'>"),
    ],
)
def test_unsupported_annotations_fail_at_decoration(make: Any, fragment: str) -> None:
    with pytest.raises(ToolDefinitionError, match=None) as info:
        make()
    assert fragment in str(info.value)


def _no_hint(x) -> int:  # type: ignore[no-untyped-def]
    return 1


def _tuple_hint(p: tuple[int, int]) -> int:
    return 1


def _set_hint(s: set[str]) -> int:
    return 1


def _varargs(*xs: int) -> int:
    return 1


def _int_keys(d: dict[int, str]) -> int:
    return 1


def _bad_literal(x: Literal[b"raw"]) -> int:
    return 1


def _object_hint(x: object) -> int:
    return 1


# --------------------------------------------------------------------------------------------
# validation


@tool
def fib(n: int) -> int:
    """Fibonacci."""
    return n


@tool
def report(
    columns: list[str],
    how: Literal["mean", "median"] = "mean",
    weights: dict[str, float] | None = None,
    ratio: float = 1.0,
    verbose: bool = False,
) -> str:
    """Report."""
    return ",".join(columns)


@pytest.mark.parametrize(
    ("tool_", "args", "message"),
    [
        (fib, {"n": "3x"}, "argument 'n' of tool 'fib' must be an integer, got '3x'"),
        (fib, {"n": True}, "argument 'n' of tool 'fib' must be an integer, got true"),
        (fib, {"n": 2.5}, "argument 'n' of tool 'fib' must be an integer, got 2.5"),
        (fib, {}, "tool 'fib' is missing the required argument 'n'"),
        (fib, {"n": 1, "m": 2}, "tool 'fib' has no argument 'm' (it takes 'n')"),
        (fib, [1], "the arguments of tool 'fib' must be a JSON object, got [1]"),
        (
            report,
            {"columns": "a"},
            "argument 'columns' of tool 'report' must be an array of strings, got 'a'",
        ),
        (
            report,
            {"columns": ["a", 2]},
            "argument 'columns' of tool 'report': item 1 must be a string, got 2",
        ),
        (
            report,
            {"columns": [], "how": "max"},
            "argument 'how' of tool 'report' must be one of 'mean', 'median', got 'max'",
        ),
        (
            report,
            {"columns": [], "weights": {"a": "x"}},
            "argument 'weights' of tool 'report': entry 'a' must be a number, got 'x'",
        ),
        (
            report,
            {"columns": [], "weights": 3},
            "argument 'weights' of tool 'report' must be an object or null, got 3",
        ),
        (report, {"columns": [], "verbose": "yes"}, "argument 'verbose' of tool 'report' must be a boolean"),
    ],
)
def test_validation_messages(tool_: Any, args: Any, message: str) -> None:
    why = tool_.validate(args)
    assert why is not None and why.startswith(message), why


def test_valid_arguments_pass_and_integral_floats_become_ints() -> None:
    assert report.validate({"columns": ["a"], "how": "median", "weights": None, "ratio": 2}) is None
    assert fib.validate({"n": 3.0}) is None
    seen = []

    @tool
    def take(n: int, xs: list[int]) -> None:
        """Take."""
        seen.append((n, xs))

    take.invoke({"n": 3.0, "xs": [1.0, 2]})
    assert seen == [(3, [1, 2])] and type(seen[0][0]) is int


def test_long_values_are_shortened_in_messages() -> None:
    why = fib.validate({"n": "x" * 500})
    assert why is not None and len(why) < 120 and why.endswith("...")


def _value_for(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values that satisfy a generated schema (the subset `schema_for` emits)."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "anyOf" in schema:
        return st.one_of([_value_for(s) for s in schema["anyOf"]])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([_value_for({**schema, "type": k}) for k in kind])
    simple = {
        "integer": st.integers(),
        "number": st.floats(allow_nan=False) | st.integers(),
        "string": st.text(),
        "boolean": st.booleans(),
        "null": st.none(),
    }
    if kind in simple:
        return simple[kind]
    if kind == "array":
        return st.lists(_value_for(schema.get("items", {"type": "string"})), max_size=4)
    if kind == "object":
        return st.dictionaries(
            st.text(), _value_for(schema.get("additionalProperties", {"type": "string"})), max_size=3
        )
    return st.none()


ANNOTATIONS = [
    int,
    float,
    str,
    bool,
    int | None,
    Literal["a", "b"],
    list[int],
    dict[str, float],
    list[str] | None,
]
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_generated_values_validate_and_random_json_never_raises(data: st.DataObject) -> None:
    annotation = data.draw(st.sampled_from(ANNOTATIONS))
    schema = schema_for(annotation)
    params = {"type": "object", "properties": {"x": schema}, "required": ["x"]}
    good = data.draw(_value_for(schema))
    assert validate_arguments("t", params, {"x": good}) is None
    anything = data.draw(_json)
    why = validate_arguments("t", params, {"x": anything})
    assert why is None or (isinstance(why, str) and "'x'" in why)


# --------------------------------------------------------------------------------------------
# the python tool


def test_python_state_persists_and_last_value_is_shown() -> None:
    py = PythonTool()
    r1 = py.run("import math\nx = 40\nx + 2")
    assert (r1.value, r1.ok, r1.execution_count) == ("42", True, 1)
    r2 = py.run("print('sqrt', math.sqrt(x + 9))\ny = x * 2")
    assert r2.stdout == "sqrt 7.0\n" and r2.value is None
    assert py.run("y").value == "80"
    assert py.run("y;").value is None  # IPython's trailing ';' hides the value
    assert py.run("_").value == "80"  # the last shown value, as in a notebook
    assert py.run("None").value is None


def test_python_errors_are_observations_with_user_frames_only() -> None:
    py = PythonTool()
    r = py.run("def f(d):\n    return 1 / d\nf(0)")
    assert (r.ename, r.evalue) == ("ZeroDivisionError", "division by zero")
    tb = "".join(r.traceback)
    assert "return 1 / d" in tb and "python_tool.py" not in tb
    text = r.to_model_text()
    assert text.endswith("ZeroDivisionError: division by zero")
    syntax = py.run("x = (1,")
    assert syntax.ename == "SyntaxError" and "never closed" in syntax.to_model_text()


def test_python_stdout_and_stderr_before_the_error() -> None:
    r = PythonTool().run(
        "import sys\nprint('partial')\nprint('warn', file=sys.stderr)\nraise ValueError('bad')"
    )
    assert r.stdout == "partial\n" and r.stderr == "warn\n"
    assert r.to_model_text().startswith("partial\n[stderr]\nwarn\nTraceback")


def test_timeout_stops_an_infinite_loop_and_the_namespace_survives() -> None:
    py = PythonTool(timeout_s=0.5)
    py.run("state = 'kept'")
    t0 = time.perf_counter()
    r = py.run("i = 0\nwhile True:\n    i += 1")
    elapsed = time.perf_counter() - t0
    assert r.timed_out and not r.abandoned and r.ename == "TimeoutError"
    assert elapsed < 2.0, elapsed  # stopped, not waited out
    assert "0.5 s limit and was stopped" in r.to_model_text()
    after = py.run("(state, i > 0)")
    assert after.value == "('kept', True)"


def test_timeout_survives_code_that_swallows_exceptions() -> None:
    py = PythonTool(timeout_s=0.3)
    t0 = time.perf_counter()
    r = py.run("while True:\n    try:\n        while True: pass\n    except BaseException:\n        pass")
    assert r.timed_out and time.perf_counter() - t0 < 3.0


def test_ten_megabytes_of_output_are_capped() -> None:
    py = PythonTool(capture_chars=100_000, model_chars=2_000)
    r = py.run("print('x' * 10_000_000)\nfor i in range(1000): print('line', i)")
    assert r.stdout_chars == 10_000_001 + sum(len(f"line {i}\n") for i in range(1000))
    assert len(r.stdout) < 100_200 and "chars cut ..." in r.stdout
    assert r.stdout.endswith("line 999\n")  # the tail is kept: that is where a run ends
    text = r.to_model_text()
    assert len(text) <= 2_000 and "chars cut ...]" in text and text.endswith("line 999")


def test_sys_exit_and_keyboard_interrupt_become_observations() -> None:
    py = PythonTool()
    r = py.run("import sys\nsys.exit(3)")
    assert (r.ename, r.evalue) == ("SystemExit", "3")
    r = py.run("raise KeyboardInterrupt")
    assert r.ename == "KeyboardInterrupt"
    r = py.run("exit()")  # the site builtin, which raises SystemExit too
    assert r.ename == "SystemExit"
    assert py.run("1 + 1").value == "2"  # the tool, the process, and this test all go on


def test_streams_are_restored_and_other_threads_are_not_captured() -> None:
    before = sys.stdout
    PythonTool().run("print('inside')")
    assert sys.stdout is before


def test_capped_text_and_cut_middle() -> None:
    c = CappedText(10)
    for ch in "abcdefghijklmnopqrstuvwxyz":
        c.write(ch)
    assert c.total == 26 and c.dropped == 16
    assert c.getvalue() == "abcde\n[... 16 chars cut ...]\nvwxyz"
    assert cut_middle("short", 100) == "short"
    cut = cut_middle("a" * 500 + "b" * 500, 200)
    assert len(cut) <= 200 and cut.startswith("a") and cut.endswith("b") and "chars cut" in cut


# --------------------------------------------------------------------------------------------
# the executor


def call(name: str, arguments: Any, id_: str | None = None) -> ToolCallRequest:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return ToolCallRequest(id=id_ or f"functions.{name}:0", name=name, arguments=text)


def test_executor_runs_python_and_tools_with_shared_state() -> None:
    ex = LocalExecutor([fib])
    names = [s["function"]["name"] for s in ex.tool_schemas()]
    assert names == ["python", "fib"]
    obs = ex.execute(call("python", {"code": "data = [3, 1, 2]\nsorted(data)"}, "functions.python:0"))
    assert obs.ok and obs.text == "[1, 2, 3]" and obs.call_id == "functions.python:0"
    assert obs.data["code"].startswith("data =")  # the full record stays for the trajectory
    assert ex.execute(call("python", {"code": "len(data)"})).text == "3"
    assert ex.execute(call("fib", {"n": 7})).text == "7"


def test_executor_error_observations_tell_the_model_what_was_wrong() -> None:
    ex = LocalExecutor([fib])
    unknown = ex.execute(call("fibonacci", {"n": 1}))
    assert not unknown.ok and unknown.error_kind == "unknown_tool"
    assert unknown.text == "error: there is no tool named 'fibonacci'; the tools are: python, fib"
    bad_json = ex.execute(call("fib", '{"n": 3'))
    assert bad_json.error_kind == "invalid_json" and "not valid JSON" in bad_json.text
    bad_args = ex.execute(call("fib", {"n": "3x"}))
    assert bad_args.error_kind == "invalid_arguments"
    assert bad_args.text == "error: argument 'n' of tool 'fib' must be an integer, got '3x'"
    no_code = ex.execute(call("python", {}))
    assert no_code.text == "error: tool 'python' is missing the required argument 'code'"


def test_executor_uses_the_parsers_arguments_when_given() -> None:
    ex = LocalExecutor([fib])
    req = ToolCallRequest("functions.fib:0", "fib", "not json", parsed={"n": 5})
    assert ex.execute(req).text == "5"


def test_failing_slow_and_printing_tools() -> None:
    @tool
    def boom(x: int) -> int:
        """Fails."""
        raise ValueError(f"x={x} is not allowed")

    @tool
    def slow() -> str:
        """Never returns."""
        while True:
            pass

    @tool
    def chatty() -> dict:
        """Prints and returns."""
        print("working")
        return {"rows": 3}

    ex = LocalExecutor([boom, slow, chatty], python=False, timeout_s=0.3)
    o = ex.execute(call("boom", {"x": 1}))
    assert (
        o.error_kind == "tool_error" and o.text == "error: tool 'boom' raised ValueError: x=1 is not allowed"
    )
    assert "raise ValueError" in "".join(o.data["traceback"])
    t0 = time.perf_counter()
    o = ex.execute(call("slow", {}))
    assert o.error_kind == "timeout" and time.perf_counter() - t0 < 2.5
    o = ex.execute(call("chatty", {}))
    assert o.ok and o.text == 'working\n{"rows": 3}'


def test_python_errors_and_timeouts_through_the_executor() -> None:
    ex = LocalExecutor(timeout_s=0.3)
    o = ex.execute(call("python", {"code": "1/0"}))
    assert not o.ok and o.error_kind == "tool_error" and o.error == "ZeroDivisionError: division by zero"
    o = ex.execute(call("python", {"code": "while True: pass"}))
    assert o.error_kind == "timeout" and o.data["timed_out"]


def test_fork_gives_a_path_its_own_bindings() -> None:
    ex = LocalExecutor()
    ex.execute(call("python", {"code": "x = 1"}))
    other = ex.fork()
    other.execute(call("python", {"code": "x = 2"}))
    assert ex.execute(call("python", {"code": "x"})).text == "1"
    assert other.execute(call("python", {"code": "x"})).text == "2"


def test_duplicate_tool_names_are_refused() -> None:
    @tool(name="fib")
    def other(n: int) -> int:
        """Other."""
        return n

    with pytest.raises(ToolDefinitionError, match="two tools are named 'fib'"):
        LocalExecutor([fib, other])
