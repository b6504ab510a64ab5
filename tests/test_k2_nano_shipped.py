"""The shipped k2-nano: it loads through the normal loader and, greedy, solves held-out problems with
valid tool calls — so a broken or missing checkpoint fails CI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from k2nb.engine import load_model
from k2nb.models import model_path
from k2nb.nano import curriculum


@pytest.fixture(scope="module")
def nano():
    return load_model(model_path(), progress=False)


def test_shipped_checkpoint_is_the_k2_architecture(nano):
    cfg = nano.config
    assert cfg.model_type == "deepseek_v3" and cfg.q_lora_rank and cfg.first_k_dense_replace == 1
    assert cfg.n_routed_experts >= 16 and cfg.num_experts_per_tok >= 2 and cfg.n_shared_experts >= 1
    assert cfg.scoring_func == "sigmoid" and cfg.topk_method == "noaux_tc"
    assert nano.tokenizer is not None
    biases = [m.gate.e_score_correction_bias for m in nano.moe_layers()]
    assert all(b.abs().sum() > 0 for b in biases)  # trained with aux-loss-free balancing
    assert (model_path() / "model.safetensors").stat().st_size <= 30 * 2**20


# Fixed held-out problems (seed 7; for each family the first that the shipped checkpoint solves
# greedily): a smoke test that a broken or swapped checkpoint fails. Overall accuracy is measured by
# `k2nb eval` (docs/k2-nano.md), not asserted here.
SOLVED = {"arithmetic": 18, "percent": 10, "stats": 5, "dates": 4, "data": 7}


@pytest.mark.parametrize("family", sorted(SOLVED))
def test_greedy_run_on_a_heldout_problem_calls_python_and_answers_right(nano, family):
    from k2nb.agent import think

    problem = curriculum.heldout_problems(60, seed=7)[SOLVED[family]]
    assert problem.family == family
    namespace: dict = {}
    if problem.setup:
        exec(problem.setup, namespace)
    result = think(problem.prompt_messages[-1]["content"], model=nano, namespace=namespace)
    assert result.tool_calls, "the model answered without calling python"
    assert all(c["name"] == "python" for c in result.tool_calls)
    assert result.tool_calls[0]["ok"], result.tool_calls[0]
    assert curriculum.answer_matches(problem.answer, result.answer or ""), (result.answer, problem.answer)


def test_k2nb_think_uses_k2_nano_by_default():
    problem = curriculum.heldout_problems(60, seed=7)[SOLVED["arithmetic"]]
    out = subprocess.run([sys.executable, "-m", "k2nb", "think", problem.prompt_messages[-1]["content"],
                          "--json"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert {"answer", "tool_calls", "checks", "trajectory"} <= set(report)
    assert curriculum.answer_matches(problem.answer, report["answer"] or ""), report["answer"]


def test_shipped_tokenizer_is_the_recipes(nano):
    """Digits and the letters of a quoted literal are one token each, as `tokenizer_train` builds it."""
    tok = nano.tokenizer
    ids = tok.encode("print('crhlnc'.count('l') + 1234)")
    pieces = [tok.decode([i]) for i in ids]
    start = pieces.index("'") + 1
    assert pieces[start:start + 6] == list("crhlnc")
    assert [p for p in pieces if p.isdigit()] == list("1234")
