"""sys.stdout / sys.stderr routing while tools run, with other threads printing all the while.

CPython 3.11's print() holds a borrowed reference to sys.stdout while it writes; a stream swapped
out and freed under a printing thread crashed the process (rc 139). The crash tests run in a
subprocess, so that a segfault fails the test instead of ending pytest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from k2nb.agent.python_tool import PythonTool

ROOT = Path(__file__).resolve().parents[1]

# Every child starts with this: a daemon thread printing in a tight loop for the whole run. Its
# lines must reach the real stdout and never a tool's capture.
PRINTER = """
import sys, threading
def spam():
    while True:
        print("background line")
threading.Thread(target=spam, daemon=True).start()
"""

TOOL_CALLS = """
from k2nb.agent.python_tool import PythonTool
tool = PythonTool()
for i in range(200):
    r = tool.run(f"print({i})")
    assert r.stdout == f"{i}\\n" and r.ok, (i, r.stdout[:200], r.ename)
sys.stderr.write("all calls clean\\n")
"""

TOOL_CELLS = """
from IPython.core.interactiveshell import InteractiveShell
from k2nb.magics.capture import OutputRecorder, recording, run_tool_cell
shell = InteractiveShell.instance()
for i in range(200):
    run = run_tool_cell(shell, f"print({i})")
    text = "".join(o.get("text", "") for o in run.outputs)
    assert text == f"{i}\\n" and run.ok, (i, text[:200], run.ename)
# IPython 9.18's run_cell keeps its streams alive a little longer (a reference cycle), which hides
# the crash from the loop above; the redirection alone, many times, does not hide it.
for i in range(2000):
    with recording(shell, OutputRecorder()):
        print(i)
sys.stderr.write("all cells clean\\n")
"""


def _run_child(code: str, tmp_path: Path) -> tuple[int, str, str]:
    out = tmp_path / "stdout.txt"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with out.open("w") as f:
        proc = subprocess.run(
            [sys.executable, "-c", PRINTER + code],
            stdout=f,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=240,
        )
    return proc.returncode, out.read_text(), proc.stderr


def test_a_printing_thread_through_200_python_tool_calls(tmp_path: Path) -> None:
    rc, stdout, stderr = _run_child(TOOL_CALLS, tmp_path)
    assert rc == 0, f"rc {rc} (-11 / 139: segfault): {stderr[-2000:]}"
    assert "all calls clean" in stderr
    assert "background line" in stdout  # the thread's prints went to the real stdout


def test_a_printing_thread_through_200_tool_cells(tmp_path: Path) -> None:
    pytest.importorskip("IPython")
    rc, stdout, stderr = _run_child(TOOL_CELLS, tmp_path)
    assert rc == 0, f"rc {rc} (-11 / 139: segfault): {stderr[-2000:]}"
    assert "all cells clean" in stderr
    assert "background line" in stdout


# --------------------------------------------------------------------------------------------
# the router itself, in this process


class _Sink:
    def __init__(self) -> None:
        self.text = ""

    def write(self, s: str) -> int:
        self.text += s
        return len(s)


def test_router_sends_each_thread_to_its_sink_and_the_rest_to_the_base() -> None:
    from k2nb.agent.guard import StreamRouter

    base, mine, spawned = _Sink(), _Sink(), _Sink()
    router = StreamRouter(base)  # type: ignore[arg-type]
    router.sinks[threading.get_ident()] = mine
    router.write("main\n")
    done = threading.Event()
    # a thread running before the capture began writes to the base, one started after to its sink
    old = threading.Thread(target=lambda: (done.wait(), router.write("old\n")))
    old.start()
    router.spawned = ((frozenset({old.ident}), spawned),)
    new = threading.Thread(target=lambda: router.write("new\n"))
    new.start()
    new.join()
    done.set()
    old.join()
    assert (mine.text, spawned.text, base.text) == ("main\n", "new\n", "old\n")
    assert not router.isatty() and not router.idle()


def test_routers_come_off_after_the_call_and_are_kept_alive() -> None:
    from k2nb.agent.guard import KEPT_ROUTERS, acquire_routers, release_routers

    before = sys.stdout
    assert PythonTool().run("print('inside')").stdout == "inside\n"
    assert sys.stdout is before
    router = KEPT_ROUTERS[id(before)]
    assert router.base is before and router.idle()
    # the same stream gets the same router back: kept routers do not pile up
    out, _ = acquire_routers()
    try:
        assert out is router and sys.stdout is router
    finally:
        release_routers()
    assert sys.stdout is before


def test_output_of_threads_the_code_starts() -> None:
    """In a tool cell a thread the cell starts prints into the cell (as in a notebook); the python
    tool keeps to its worker thread, the rest goes to the real stream."""
    from IPython.testing.globalipapp import get_ipython

    from k2nb.magics.capture import run_tool_cell

    code = (
        "import threading\n"
        "t = threading.Thread(target=lambda: print('child'))\n"
        "t.start(); t.join()\n"
        "print('main')"
    )
    run = run_tool_cell(get_ipython(), code)
    assert "".join(o.get("text", "") for o in run.outputs) == "child\nmain\n"
    assert PythonTool().run(code).stdout == "main\n"
