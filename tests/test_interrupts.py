"""The stop button (SIGINT, KeyboardInterrupt in the main thread) while a tool call runs ends the run
as "cancelled": the trajectory keeps the call and an observation saying it was interrupted, and
the next run works. Also where the cell's code swallows the KeyboardInterrupt (IPython's `!cmd`).

The interrupt is sent from a timer thread once the tool's code says it has started, so each test
is deterministic; `signal.pthread_kill` aims it at the main thread, as the kernel's SIGINT lands.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Any

import pytest

from k2nb.agent import Conversation, LocalExecutor, ThinkOptions, think
from k2nb.agent.executor import ToolCallRequest
from k2nb.agent.python_tool import PythonTool
from k2nb.backends.scripted import ScriptedBackend, Turn

# (the loop variable is not `_`: assigning `_` in the shared shell's namespace stops IPython updating it)
SLOW = (
    "k2_started.set()\nprint('working')\nimport time\nfor k2_i in range(100):\n"
    "    time.sleep(0.05)\nprint('no')"
)
BANG = "k2_started.set()\nprint('working')\n!sleep 5"  # IPython's system() swallows the interrupt


def interrupt_when(started: threading.Event) -> threading.Thread:
    """SIGINT to the main thread as soon as `started` is set."""

    def fire() -> None:
        if started.wait(20):
            time.sleep(0.05)  # into the sleep, not the lines before it
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # type: ignore[arg-type]

    t = threading.Thread(target=fire, daemon=True)
    t.start()
    return t


def script(first: str) -> list[Any]:
    """A first call running `first`, then more calls and an answer that a stopped run never reaches."""
    more = [Turn(think=f"again {i}", calls=[("python", {"code": f"print({i})"})]) for i in range(3)]
    return [Turn(think="look", calls=[("python", {"code": first})]), *more, Turn(answer="done")]


def check_cancelled(result: Any) -> None:
    t = result.trajectory
    assert result.end_reason == "cancelled" and result.answer is None
    assert len(t.find("tool_call")) == 1  # no step after the interrupted call
    (obs,) = t.find("observation")
    assert obs.data["error_kind"] == "interrupted", obs.data
    assert "again" not in "".join(n.text for n in t.find("thinking"))


# --------------------------------------------------------------------------------------------
# headless: the python tool's worker thread


@pytest.mark.parametrize("attempt", range(3))
def test_an_interrupted_tool_call_ends_the_run_as_cancelled(attempt: int) -> None:
    started, cancel = threading.Event(), threading.Event()
    ns: dict[str, Any] = {"__name__": "__main__", "k2_started": started}
    conv = Conversation(
        ScriptedBackend(script(SLOW)),
        LocalExecutor(namespace=ns, cancel=cancel),
        options=ThinkOptions(cancel=cancel),
    )
    timer = interrupt_when(started)
    t0 = time.monotonic()
    result = conv.ask("go")
    timer.join()
    assert time.monotonic() - t0 < 4  # stopped, not slept through
    check_cancelled(result)
    (obs,) = result.trajectory.find("observation")
    assert obs.data["data"]["stdout"] == "working\n" and obs.data["data"]["interrupted"]
    # the namespace and the conversation go on
    cancel.clear()
    conv.backend = ScriptedBackend(
        [Turn(calls=[("python", {"code": "k2_started.is_set()"})]), Turn(answer="ok")]
    )
    again = conv.ask("again")
    assert again.end_reason == "answer" and again.trajectory.find("observation")[0].text == "True"


def test_without_a_cancel_event_the_interrupt_goes_on_up_with_the_observation() -> None:
    from k2nb.agent.guard import ToolInterrupted

    started = threading.Event()
    ex = LocalExecutor(namespace={"k2_started": started})
    timer = interrupt_when(started)
    with pytest.raises(ToolInterrupted) as info:
        ex.execute(ToolCallRequest("functions.python:0", "python", "", {"code": SLOW}))
    timer.join()
    obs = info.value.observation
    assert obs.error_kind == "interrupted" and obs.data["stdout"] == "working\n"
    assert "KeyboardInterrupt" in obs.text
    started.clear()
    timer = interrupt_when(started)
    with pytest.raises(ToolInterrupted) as info:  # the tool alone: a KeyboardInterrupt, with the result
        PythonTool({"k2_started": started}).run(SLOW)
    timer.join()
    assert info.value.result.interrupted and info.value.result.stdout == "working\n"


def test_plain_think_ends_cancelled_when_a_tool_call_is_interrupted() -> None:
    from k2nb.agent.guard import ToolInterrupted

    started = threading.Event()
    timer = interrupt_when(started)
    try:
        result = think("go", backend=ScriptedBackend(script(SLOW)), namespace={"k2_started": started})
    except ToolInterrupted as exc:
        raise AssertionError("the interrupt escaped think()") from exc
    finally:
        timer.join()
    check_cancelled(result)


# --------------------------------------------------------------------------------------------
# the notebook: tool cells through IPython's run_cell, in this process


@pytest.mark.parametrize("code", [SLOW, BANG], ids=["sleep", "bang"])
def test_an_interrupted_tool_cell_ends_the_run_and_the_next_one_works(ip, k2, code: str, capsys) -> None:
    for _ in range(2):
        started = threading.Event()
        ip.user_ns["k2_started"] = started
        k2.use_backend(ScriptedBackend(script(code)))
        timer = interrupt_when(started)
        t0 = time.monotonic()
        res = ip.run_cell("%%k2think\ngo", store_history=True)
        timer.join()
        assert time.monotonic() - t0 < 4
        assert res.error_in_exec is None
        result = res.result
        check_cancelled(result)
        cell = result.cells[0]
        assert [o["ename"] for o in cell["outputs"] if o["output_type"] == "error"] == ["KeyboardInterrupt"]
        assert "stopped" in capsys.readouterr().out
    k2.use_backend(ScriptedBackend([Turn(calls=[("python", {"code": "6 * 7"})]), Turn(answer="42")]))
    res = ip.run_cell("%%k2think --new\nWhat is 6 times 7?", store_history=True)
    assert res.result.end_reason == "answer" and res.result.answer == "42"


def test_a_keyboard_interrupt_the_cell_catches_still_stops_the_run(ip, k2) -> None:
    code = (
        "k2_started.set()\nimport time\ntry:\n    time.sleep(5)\nexcept KeyboardInterrupt:\n    print('no')"
    )
    started = threading.Event()
    ip.user_ns["k2_started"] = started
    k2.use_backend(ScriptedBackend(script(code)))
    timer = interrupt_when(started)
    result = ip.run_cell("%%k2think\ngo", store_history=True).result
    timer.join()
    check_cancelled(result)
    assert "no" in result.cells[0]["outputs"][0]["text"]


# --------------------------------------------------------------------------------------------
# a real kernel, interrupted as the stop button does it


KERNEL_SETUP = """
from k2nb.magics import state
from k2nb.backends.scripted import ScriptedBackend, Turn
more = [Turn(think=f"again {{i}}", calls=[("python", {{"code": f"print({{i}})"}})]) for i in range(3)]
state().use_backend(ScriptedBackend([Turn(think="look", calls=[("python", {{"code": {code!r}}})]), *more,
                                     Turn(answer="done")]))
state().settings["dashboard"] = False
"""

# The tool cell touches a file once it runs: its own output reaches IOPub only when it ends.
KERNEL_SLOW = "open({flag!r}, 'w').close()\nimport time\nfor _ in range(160):\n    time.sleep(0.05)"
KERNEL_BANG = "open({flag!r}, 'w').close()\n!sleep 8"


@pytest.fixture(scope="module")
def kernel():
    pytest.importorskip("jupyter_client")
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from kernel_harness import KernelSession

    s = KernelSession()
    try:
        yield s
    finally:
        s.close()


@pytest.mark.parametrize("code", [KERNEL_SLOW, KERNEL_BANG], ids=["sleep", "bang"])
def test_the_stop_button_in_the_first_tool_cell_of_a_kernel(kernel, code: str, tmp_path) -> None:
    flag = tmp_path / "started"
    kernel.execute(KERNEL_SETUP.format(code=code.format(flag=str(flag))))
    ex = kernel.execute("%%k2think --new\ngo", wait=False)
    deadline = time.monotonic() + 30
    while not flag.exists():
        assert time.monotonic() < deadline, "the tool cell did not start"
        time.sleep(0.02)
    time.sleep(0.2)  # into the sleep
    t0 = time.monotonic()
    kernel.km.interrupt_kernel()
    kernel.collect(ex, timeout=30)
    assert time.monotonic() - t0 < 5
    assert ex.reply["content"]["status"] == "ok"
    assert "stopped" in ex.text()
    check = kernel.execute(
        "print(k2_last.end_reason, len(k2_last.trajectory.find('tool_call')),"
        " k2_last.trajectory.find('observation')[0].data['error_kind'])"
    )
    assert "cancelled 1 interrupted" in check.text()
    kernel.execute(KERNEL_SETUP.format(code="print(6 * 7)"))
    nxt = kernel.execute("%%k2think --new\nagain")
    assert "done" in nxt.text() and "42" in nxt.text()
