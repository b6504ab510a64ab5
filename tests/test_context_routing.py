"""Routing of the tokens the model *read* (the question, tool results fed back), next to the tokens it
generated: the engine backend reports each step's prefilled prompt tokens, the loop gives them to the
node they were, and the heatmap shows them in the prompt and observation channels with their ids."""

from __future__ import annotations

import numpy as np
import pytest

from k2nb.agent import think
from k2nb.agent.trajectory import Trajectory
from k2nb.engine import load_model
from k2nb.magics.result import K2Result
from k2nb.models import model_path
from k2nb.widgets.data import CHANNELS, UNTRACED_TOKEN, subtree_spans, token_channels

QUESTION = "Going from 803 to 682, what is the change in percent?"


@pytest.fixture(scope="module")
def run():
    model = load_model(model_path(), progress=False)
    return model, think(QUESTION, model=model)


def test_question_and_tool_results_carry_their_routing(run):
    model, result = run
    t = result.trajectory
    tok = model.tokenizer
    root = t.root.context
    assert root is not None and len(root) > 10
    assert QUESTION in tok.decode(root.tokens.tolist())  # the question's own tokens, in order
    assert root.positions[0] == 0 and np.all(np.diff(root.positions) == 1)
    observations = [n for n in t.walk() if n.kind == "observation"]
    assert observations and result.tool_calls
    first = observations[0]
    assert first.context is not None, "the first tool result fed back has no routing"
    assert first.text.strip().splitlines()[0] in tok.decode(first.context.tokens.tolist())
    # experts are real choices: top-k distinct ids in range, positive weights
    e, w = first.context.experts, first.context.weights
    assert e.shape[1:] == (len(model.config.moe_layer_ids), model.config.num_experts_per_tok)
    assert e.min() >= 0 and e.max() < model.config.n_routed_experts and (w > 0).all()
    assert all(len(set(row)) == len(row) for row in e.reshape(-1, e.shape[-1]).tolist())
    # generated routing is unchanged by this: `routing` still holds generated tokens only
    gen = result.routing
    ctx = result.read_routing()
    assert not set(gen.positions.tolist()) & set(ctx.positions.tolist())


def test_context_routing_round_trips_through_json(run):
    _, result = run
    t = result.trajectory
    back = Trajectory.from_json(t.to_json())
    for node in t.walk():
        other = back.nodes[node.id]
        if node.context is None:
            assert other.context is None
        else:
            assert np.array_equal(other.context.tokens, node.context.tokens)
            assert np.array_equal(other.context.experts, node.context.experts)


def test_heatmap_trace_has_every_position_with_channels(run):
    model, result = run
    k2 = K2Result(result.trajectory, result, model=model, tokenizer=model.tokenizer)
    trace = k2.full_routing()
    ids = np.asarray(trace.tokens)
    assert trace.start == 0
    # every position of the run is traced now: nothing is left as "·"
    assert (ids != UNTRACED_TOKEN).all()
    tc = token_channels(len(ids), trace.start, trace.n_prompt, result.trajectory, ids.tolist())
    chans = [CHANNELS[c] for c in tc.channels]
    n_question = len(result.trajectory.root.context)
    assert set(chans[:n_question]) == {"prompt"}
    assert "observation" in chans and "tool_call" in chans and "answer" in chans
    assert "generated" not in chans
    # choosing a tool result in the tree highlights the tokens the model read for it
    spans = subtree_spans(result.trajectory)
    obs = next(n for n in result.trajectory.walk() if n.kind == "observation")
    a, b = spans[obs.id]
    assert set(chans[a - trace.start:b - trace.start]) == {"observation"}
