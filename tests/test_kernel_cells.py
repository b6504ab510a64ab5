"""The kernel side of tool cells, in a real IPython kernel over ZMQ, with a fake front end.

What JupyterLab would receive on the ``k2nb.cells`` comm (tests/test_lab_browser.py checks that the
real extension applies it), the handshake in both directions, the inline fallback where no front end
answers (nbclient, VS Code), Run / Skip buttons clicked while the cell is busy, the stop button
during a run, and the k2nb kernelspec.
"""

from __future__ import annotations

import sys
import time

import pytest
from kernel_harness import FakeFrontend, KernelSession

RUN = (
    "from k2nb.magics import run_tool_calls\n"
    "obs = run_tool_calls(['print(6 * 7)', 'k2_v = 5\\nk2_v + 1', '1 / 0'])\n"
    "[o.ok for o in obs]"
)


@pytest.fixture(scope="module")
def kernel():
    s = KernelSession()
    try:
        yield s
    finally:
        s.close()


def test_kernel_hello_then_cells_in_order(kernel):
    ex = kernel.execute("%load_ext k2nb")
    assert ex.reply["content"]["status"] == "ok"
    opens = [m for m in kernel.comm_msgs if m["msg_type"] == "comm_open"]
    assert opens and opens[-1]["content"]["target_name"] == "k2nb.cells"
    fe = FakeFrontend(kernel)
    assert fe.answer_kernel_hello()
    assert "True" in kernel.execute("from k2nb.magics import channel; channel().connected").text()

    ex = kernel.execute(RUN, cell_id="anchor-1")
    assert ex.reply["content"]["status"] == "ok"
    assert "[True, True, False]" in ex.text()
    # nothing a tool printed leaked into the running cell's own output
    assert "42" not in ex.text().replace("[True, True, False]", "")
    cells = fe.apply()
    ops = [op["op"] for op in fe.ops]
    assert ops[0] == "begin" and ops.count("insert") == 3
    assert [c["source"] for c in cells] == ["print(6 * 7)", "k2_v = 5\nk2_v + 1", "1 / 0"]
    assert cells[0]["outputs"] == [{"output_type": "stream", "name": "stdout", "text": "42\n"}]
    assert cells[1]["outputs"][0]["output_type"] == "execute_result"
    assert cells[1]["outputs"][0]["data"]["text/plain"] == "6"
    assert cells[2]["outputs"][0]["ename"] == "ZeroDivisionError"
    counts = [c["execution_count"] for c in cells]
    run_count = ex.reply["content"]["execution_count"]
    assert counts == sorted(set(counts)) and run_count > counts[-1]
    for c in cells:
        assert c["metadata"]["k2nb"]["anchor"] == "anchor-1"
    # the kernel is fine afterwards and the calls ran in the user's namespace
    assert "5" in kernel.execute("print(k2_v)").text()


def test_inline_where_no_front_end_answers(kernel):
    # no cellId in the request: nbclient / a terminal; the calls are shown in the cell itself
    ex = kernel.execute(
        "obs = run_tool_calls(['print(\"inline\" * 2)', 'raise ValueError(7)'])\n[o.ok for o in obs]"
    )
    text = ex.text()
    assert "tool cell In [" in text and "inlineinline" in text and "ValueError" in text
    assert "[True, False]" in text


def test_run_all_right_after_load_waits_for_the_hello():
    """Run All: the extension's answer is queued behind the next execute_request; the kernel
    processes it from inside that cell, and the request queued after it still runs, in order."""
    s = KernelSession()
    try:
        fe = FakeFrontend(s)
        ex1 = s.execute("%load_ext k2nb", wait=False)
        ex2 = s.execute(RUN, cell_id="a2", wait=False)
        s.collect(ex1)
        assert fe.answer_kernel_hello()
        ex3 = s.execute("print('third')", wait=False)
        s.collect(ex2)
        s.collect(ex3)
        assert len(fe.apply()) == 3
        assert "third" in ex3.text()
        assert ex3.reply["content"]["execution_count"] > ex2.reply["content"]["execution_count"]
    finally:
        s.close()


ASK = """
from k2nb.magics import NotebookExecutor
from k2nb.magics.approval import Approval
from k2nb.agent.executor import ToolCallRequest
ex = NotebookExecutor(get_ipython(), approval=Approval("ask", get_ipython()))
a = ex.execute(ToolCallRequest("functions.python:0", "python", "", {"code": "k2_ask = 1"}))
b = ex.execute(ToolCallRequest("functions.python:1", "python", "", {"code": "k2_ask2 = 2"}))
print("results", a.ok, b.ok, 'k2_ask' in globals(), 'k2_ask2' in globals())
"""


def _button_comm(s: KernelSession, description: str) -> str | None:
    for m in s.comm_msgs:
        c = m["content"]
        if m["msg_type"] == "comm_open" and c.get("target_name") == "jupyter.widget":
            state = c["data"].get("state", {})
            if state.get("_model_name") == "ButtonModel" and state.get("description") == description:
                return c["comm_id"]
    return None


def test_ask_buttons_work_while_the_cell_is_busy(kernel):
    pytest.importorskip("ipywidgets")
    ex = kernel.execute(ASK, wait=False)
    buttons: list[tuple[str, str]] = []  # (description, comm id) in creation order
    clicked: list[str] = []

    def click(msg):
        # Each prompt creates Run, Skip, Run all; once "Run all" exists the prompt is complete.
        # Click Skip on the first prompt and Run on the second, as a user in the browser would.
        if msg["msg_type"] != "comm_open" or msg["content"].get("target_name") != "jupyter.widget":
            return
        state = msg["content"]["data"].get("state", {})
        if state.get("_model_name") != "ButtonModel":
            return
        buttons.append((state.get("description"), msg["content"]["comm_id"]))
        if state.get("description") == "Run all":
            want = "Skip" if not clicked else "Run"
            comm = [c for d, c in buttons if d == want][-1]
            kernel.send_shell(
                "comm_msg", {"comm_id": comm, "data": {"method": "custom", "content": {"event": "click"}}}
            )
            clicked.append(want)

    kernel.collect(ex, timeout=60, on_iopub=click)
    assert clicked == ["Skip", "Run"]
    assert "results False True False True" in ex.text()


INTERRUPTIBLE = """
import time
from k2nb.magics import state
from k2nb.backends.scripted import ScriptedBackend, Turn
def slow(prompt):
    time.sleep(60)   # a long generation; the stop button lands here
    return Turn(answer="never")
state().use_backend(ScriptedBackend([Turn(think="look", calls=[("python", {"code": "k2_before = 1"})]), slow,
                                     Turn(think="t", answer="after the stop")]))
state().settings["dashboard"] = False
"""


def test_stop_button_ends_the_run_and_the_next_one_works(kernel):
    kernel.execute(INTERRUPTIBLE)
    ex = kernel.execute("%%k2think\nthink slowly", wait=False)
    kernel.wait_for_text(ex, "tool cell In")  # the first step ran; the slow generation follows
    time.sleep(1.0)
    t0 = time.monotonic()
    kernel.km.interrupt_kernel()
    kernel.collect(ex, timeout=30)
    stopped_in = time.monotonic() - t0
    print(f"stop -> idle in {stopped_in:.2f} s")
    assert stopped_in < 10  # generous under load; measured well under a second on an idle machine
    assert ex.reply["content"]["status"] == "ok"
    assert "stopped" in ex.text()
    check = kernel.execute("print(_.end_reason, len(_.trajectory.find('tool_call')), k2_before)")
    assert "cancelled 1 1" in check.text()
    nxt = kernel.execute("%%k2think --new\nagain")
    assert "after the stop" in nxt.text()


def test_k2nb_kernelspec_starts_with_the_extension(tmp_path):
    from k2nb.kernels.install import kernelspec_dict

    spec = kernelspec_dict(sys.executable, warm=False)
    s = KernelSession(argv=spec["argv"], extra_env=spec["env"])
    try:
        fe = FakeFrontend(s)
        fe.open()  # the extension's own hello on connection: accepted, the extension is loaded
        ex = s.execute("%k2nb help")
        assert "%%k2think" in ex.text()
        assert "True" in s.execute("from k2nb.magics import channel; channel().connected").text()
    finally:
        s.close()


RAMBLING_ENGINE = """
from k2nb.engine import load_model
from k2nb.magics import state
from k2nb.models import model_path
m = load_model(model_path())
m.init_weights(seed=0)  # k2-nano's shape and tokenizer with random weights: it rambles until a budget
st = state()
st.unload()
st.model, st.model_path = m, "random-weight k2-nano"
st.settings["dashboard"] = False
"""


def test_stop_button_ends_a_real_engine_generation(kernel):
    """The stop button during a real engine generation: the engine turns the interrupt into a
    'cancelled' stream within a forward pass, the partial trajectory is kept, the next run works."""
    kernel.execute(RAMBLING_ENGINE)
    ex = kernel.execute("%%k2think --new --max-think-tokens 100000\nramble", wait=False)
    time.sleep(4.0)  # well into the generation (a budget would end it only after minutes)
    t0 = time.monotonic()
    kernel.km.interrupt_kernel()
    kernel.collect(ex, timeout=60)
    stopped_in = time.monotonic() - t0
    print(f"real engine: stop -> idle in {stopped_in:.2f} s")
    assert stopped_in < 10  # generous under load; a k2-nano forward takes milliseconds
    assert ex.reply["content"]["status"] == "ok"
    check = kernel.execute("print(_.end_reason, sum(n.n_tokens for n in _.trajectory.find('thinking')) > 0)")
    assert "cancelled True" in check.text()
    kernel.execute("%k2model load k2-nano")
    nxt = kernel.execute("%%k2think --new\nGoing from 803 to 682, what is the change in percent?")
    assert "-15.07" in nxt.text()
