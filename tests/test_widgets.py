"""The notebook views: payloads, live updates, static fallbacks, and a real notebook run (nbclient)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from k2nb.agent.trajectory import Trajectory
from k2nb.widgets.data import CHANNELS, check_rows, pack_routing, subtree_spans, token_channels, verdict
from k2nb.widgets.demo import synthetic_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def run():
    return synthetic_run(seed=3)


@pytest.fixture(scope="module")
def k2_run():
    return synthetic_run("k2", seed=1)


def _node(traj: Trajectory, kind: str, text_start: str = "") -> str:
    return next(n.id for n in traj.walk() if n.kind == kind and n.text.startswith(text_start))


# ---- channels -------------------------------------------------------------------------------


def test_token_channels_follow_the_nodes_of_the_traced_path(run):
    tr, t = run.trace, run.trajectory
    tc = token_channels(len(tr), tr.start, tr.n_prompt, t, tr.tokens)
    assert (tc.channels[: tr.n_prompt] == CHANNELS.index("prompt")).all()
    chosen = t.nodes[t.meta["chosen_path"]]
    for node in t.walk(chosen):
        if node.span is None or node.kind in ("path", "attempt"):
            continue
        a, b = node.span
        assert (tc.channels[a:b] == CHANNELS.index(node.kind)).all(), node
        assert {tc.node_ids[i] for i in tc.node_index[a:b]} == {node.id}
    # the second path reuses the same positions with other tokens; it must not claim them
    other = [n.id for n in t.walk() if n.parent and t.nodes[n.parent].kind == "attempt"
             and chosen.id not in [a.id for a in t.ancestors(n)]]
    assert other and not set(other) & set(tc.node_ids)
    # without a trajectory: prompt, then "generated"
    bare = token_channels(len(tr), tr.start, tr.n_prompt)
    assert set(bare.channels[tr.n_prompt:].tolist()) == {CHANNELS.index("generated")}


# ---- heatmap payload ------------------------------------------------------------------------


def test_heatmap_payload_round_trips(run):
    from k2nb.widgets import RoutingHeatmap

    tr = run.trace
    w = RoutingHeatmap(tr, tokenizer=run.tokenizer, trajectory=run.trajectory)
    T, L, K = len(tr), len(tr.moe_layer_ids), tr.top_k
    e, wt = tr.experts, tr.weights
    assert (w.n_tokens, w.n_layers, w.top_k, w.n_experts) == (T, L, K, tr.n_experts)
    assert len(w.experts) == T * L * K * 2 and len(w.weights) == T * L * K
    assert np.array_equal(np.frombuffer(w.experts, "<u2").reshape(T, L, K), e)
    deq = np.frombuffer(w.weights, np.uint8).reshape(T, L, K) * w.weight_scale
    assert np.abs(deq - wt).max() <= w.weight_scale / 2 + 1e-6
    assert np.frombuffer(w.token_ids, "<i4").tolist() == tr.tokens.tolist()
    assert w.token_text == [run.tokenizer.decode([i]) for i in tr.tokens]
    assert len(w.channels) == T and len(w.token_node) == 4 * T
    # default selection: the generated tokens, in positions
    assert w.selection == [tr.start + tr.n_prompt, tr.start + T]
    assert "vnd.jupyter.widget-view" not in repr(w)


def test_heatmap_payload_is_compact_at_k2_scale(k2_run):
    from k2nb.widgets import RoutingHeatmap

    tr = k2_run.trace
    T = len(tr)
    assert (len(tr.moe_layer_ids), tr.n_experts, tr.top_k) == (61, 384, 8) and T > 2500
    w = RoutingHeatmap(tr, tokenizer=k2_run.tokenizer, trajectory=k2_run.trajectory)
    # 3 bytes per (token, layer, choice) + 9 per token (id, channel, owner): 1,473 B per token
    assert w.payload_nbytes == T * (61 * 8 * 3 + 9)
    assert w.payload_nbytes < 5_000_000
    e, wt = tr.experts, tr.weights
    assert np.array_equal(np.frombuffer(w.experts, "<u2").reshape(e.shape), e)
    # the same routing as JSON lists of ids and weights would be ~8x larger
    import json

    as_lists = {"experts": e[:200].tolist(), "weights": np.round(wt[:200], 5).tolist()}
    assert len(json.dumps(as_lists)) > 5 * 200 * (61 * 8 * 3 + 9)


def test_pack_routing_rejects_too_many_experts():
    with pytest.raises(ValueError, match="uint16"):
        pack_routing(np.zeros((1, 1, 1), np.int32), np.zeros((1, 1, 1), np.float32), 70_000)


def test_heatmap_select_and_select_node(run):
    from k2nb.widgets import RoutingHeatmap

    tr, t = run.trace, run.trajectory
    w = RoutingHeatmap(tr, trajectory=t)
    w.select(70, 80)
    assert w.selection == [70, 80] and w.selected_indices == (70 - tr.start, 80 - tr.start)
    w.select(75)
    assert w.selection == [75, 76]
    w.select(-50, 10**6)  # clipped to the trace
    assert w.selection == [tr.start, tr.start + len(tr)]
    ans = _node(t, "answer", "The mean of")
    w.select_node(ans)
    assert tuple(w.selection) == t.nodes[ans].span
    with pytest.raises(ValueError, match="does not overlap"):
        w.select(10**6, 10**6 + 5)
    with pytest.raises(ValueError, match="no trajectory"):
        RoutingHeatmap(tr).select_node(ans)


# ---- tree -----------------------------------------------------------------------------------


def test_tree_rows_and_selection(run):
    from k2nb.widgets import ReasoningTree

    t = run.trajectory
    tree = ReasoningTree(t, live=False)
    assert [r["id"] for r in tree.nodes] == [n.id for n in t.walk()]
    kinds = {r["kind"] for r in tree.nodes}
    assert {"thinking", "tool_call", "observation", "verification", "answer", "path", "attempt"} <= kinds
    rolled = [r for r in tree.nodes if r["status"] == "rolled_back"]
    assert len(rolled) == 1 and rolled[0]["kind"] == "attempt"
    call = next(r for r in tree.nodes if r["kind"] == "tool_call")
    assert call["name"] == "python" and call["label"].startswith("python(")
    # rows are compact: no routing, text capped
    assert all("routing" not in r and len(r["text"]) <= 400 for r in tree.nodes)
    # a container's span covers its descendants
    attempt = rolled[0]["id"]
    tree.selected_node = attempt
    spans = [t.nodes[c].span for c in t.nodes[attempt].children if t.nodes[c].span]
    assert tree.selected_span == [min(s[0] for s in spans), max(s[1] for s in spans)]
    assert tree.detail["id"] == attempt
    think = _node(t, "thinking", "I must compute")
    tree.select(think)
    assert tree.detail["text"] == t.nodes[think].text and tree.selected_span == list(t.nodes[think].span)
    with pytest.raises(KeyError):
        tree.select("nope")


def test_tree_follows_the_trajectory_live_and_throttled():
    from k2nb.widgets import ReasoningTree

    t = Trajectory("live?")
    tree = ReasoningTree(t, throttle_s=0.05)
    v0 = tree.version
    think = t.add("thinking", None, "")
    for i in range(300):  # a token each: 300 node_updated events
        t.add_token(think, i, 7, np.zeros((2, 2), np.int32), np.ones((2, 2), np.float32), text="x")
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # the trailing update arrives by itself
        rows = {r["id"]: r for r in tree.nodes}
        if think.id in rows and rows[think.id]["n"] == 300:
            break
        time.sleep(0.02)
    rows = {r["id"]: r for r in tree.nodes}
    assert rows[think.id]["n"] == 300 and rows[think.id]["text"] == "x" * 300
    assert tree.version - v0 < 20, "300 events must not become 300 pushes"
    t.add("answer", None, "42", status="done")
    tree.flush()
    assert tree.nodes[-1]["kind"] == "answer"
    tree.stop()
    t.add("error", None, "after stop")
    time.sleep(0.1)
    assert all(r["kind"] != "error" for r in tree.nodes)


def test_link_connects_the_tree_span_to_the_heatmap_selection(run):
    from k2nb.widgets import ReasoningTree, RoutingHeatmap, link

    tree = ReasoningTree(run.trajectory, live=False)
    hm = RoutingHeatmap(run.trace, trajectory=run.trajectory)
    lnk = link(tree, hm)
    assert lnk.source == (tree, "selected_span") and lnk.target == (hm, "selection")
    # nodes of the other path share positions with the traced one but not tokens: no span
    t = run.trajectory
    other = t.nodes[[n for n in t.find("path") if n.id != t.meta["chosen_path"]][0].id]
    think = next(n for n in t.walk(other) if n.kind == "thinking")
    assert think.span is not None and think.span[0] < len(run.trace)
    tree.selected_node = think.id
    assert tree.selected_span == []
    traced = {r["id"]: r["traced"] for r in tree.nodes}
    assert not traced[think.id] and not traced[other.id] and traced[t.root.id]
    ans = _node(t, "answer", "The mean of")
    tree.selected_node = ans
    assert traced[ans] and tree.selected_span == list(t.nodes[ans].span)


# ---- verification ---------------------------------------------------------------------------


def test_verdict_supersedes_checks_of_rolled_back_attempts(run):
    t = run.trajectory
    rows = check_rows(t)
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["superseded"]
    assert verdict(t) == "passed"

    t2 = Trajectory("q")
    assert verdict(t2) == "none"
    c = t2.add_check("grounded", "pending")
    assert verdict(t2) == "inconclusive"
    t2.update_check(c, "failed", "no source for 41.5")
    assert verdict(t2) == "failed"


def test_the_verdict_counts_and_names_and_never_says_verified() -> None:
    from k2nb.agent.verdict import NOTHING_ESTABLISHED, summary

    t = Trajectory("q")
    assert summary(t).text == "no checks ran"
    a = t.add_check("question numbers used", "pending", "no call succeeded")
    b = t.add_check("model's own verification", "pending", "the model ran no verification step")
    expected = f"{NOTHING_ESTABLISHED}; not established: question numbers used, model's own verification"
    assert (summary(t).status, summary(t).text) == ("inconclusive", expected)
    t.update_check(a, "passed")
    assert (summary(t).status, summary(t).text) == (
        "partial", "1 of 2 checks passed; not established: model's own verification")
    t.update_check(b, "passed")
    assert (summary(t).status, summary(t).text) == ("passed", "2 of 2 checks passed")
    t.add_check("numbers sourced", "failed", "2 in `348 + 2 * 27` …")
    assert (summary(t).status, summary(t).text) == ("failed", "2 of 3 checks passed; failed: numbers sourced")
    one = Trajectory("q")
    one.add_check("valid arguments", "passed")
    assert summary(one).text == "1 of 1 check passed"


def test_the_verdict_counts_the_chosen_path_and_the_run() -> None:
    """Two paths: the one not chosen is shown in the panel but not counted; the run's own check is."""
    t = Trajectory("q")
    p1, p2 = t.add("path"), t.add("path")
    t.add_check("grounded", "passed", "", t.add("answer", p1), "grounded")
    t.add_check("model's own verification", "failed", "printed False", t.add("answer", p2), "self_verify")
    t.add_check("paths agree", "failed", "1 of 2 paths answer '7'", t.root, "agreement")
    assert verdict(t) == "failed" and not any(r["other_path"] for r in check_rows(t))
    t.meta["chosen_path"] = p1.id
    assert [r["other_path"] for r in check_rows(t)] == [False, True, False]
    from k2nb.agent.verdict import summary

    assert summary(t).text == "1 of 2 checks passed; failed: paths agree"


def test_panel_live_and_html_fallback(run):
    from k2nb.widgets import VerificationPanel

    t = Trajectory("q")
    p = VerificationPanel(t, throttle_s=0.0)
    assert p.verdict == "none" and p.checks == [] and p.headline == "no checks ran"
    c = t.add_check("grounded", "pending", "no tool result yet", node=t.root)
    assert p.verdict == "inconclusive" and p.checks[0]["node"] == t.root.id
    assert (p.headline, p.detail) == ("checks could not establish anything", "not established: grounded")
    t.update_check(c, "passed", "38.27 came from a tool result")
    assert p.verdict == "passed" and p.checks[0]["evidence"].startswith("38.27")
    assert (p.headline, p.detail) == ("1 of 1 check passed", "")
    data, _ = VerificationPanel(run.trajectory)._repr_mimebundle_()
    html = data["text/html"]
    assert WIDGET_VIEW in data and "<table>" in html and "superseded" in html
    assert "checks passed" in html and "verified" not in html.lower()


# ---- static fallbacks -----------------------------------------------------------------------


def test_static_png_fallbacks(run):
    from k2nb.widgets import Dashboard, ReasoningTree, RoutingHeatmap, plot

    hm = RoutingHeatmap(run.trace, trajectory=run.trajectory)
    for w in (hm, ReasoningTree(run.trajectory, live=False)):
        data, _ = w._repr_mimebundle_()
        assert WIDGET_VIEW in data and data["image/png"].startswith(PNG_MAGIC)
        assert len(data["image/png"]) > 5_000
    d = Dashboard(run.trajectory, run.trace, run.tokenizer, live=False)
    data = d._repr_mimebundle_()
    assert WIDGET_VIEW in data and data["text/html"].count("data:image/png;base64,") == 2
    for fig in (plot.expert_load(run.trace), plot.routing_heatmap(run.trace, token=70),
                plot.scaling_curve({"k2-nano": ([1, 2, 4], [0.5, 0.6, 0.7])})):
        assert fig._repr_png_().startswith(PNG_MAGIC)
    with pytest.raises(ValueError, match="outside"):
        plot.routing_heatmap(run.trace, token=(0, 10**6))


def test_dashboard_links_and_spans(run):
    from k2nb.widgets import Dashboard

    d = Dashboard(run.trajectory, run.trace, run.tokenizer, live=False)
    assert d.children[1] is d.heatmap and d.tree in d.children[0].children
    assert {(lk.source[1], lk.target[1]) for lk in d.links} == {
        ("selected_node", "selected_node"), ("selected_span", "selection")}
    spans = subtree_spans(run.trajectory)
    assert spans[run.trajectory.root.id][0] >= run.trace.n_prompt
    no_trace = Dashboard(run.trajectory)
    assert no_trace.heatmap is None and len(no_trace.children) == 2  # the tree and panel, and a note
    assert "reports no routing" in no_trace.children[1].value


# ---- a real notebook ------------------------------------------------------------------------

NOTEBOOK_CELLS = [
    "from k2nb.widgets import Dashboard, ReasoningTree, RoutingHeatmap, VerificationPanel\n"
    "from k2nb.widgets.demo import synthetic_run\n"
    "run = synthetic_run(seed=5)",
    "hm = RoutingHeatmap(run.trace, tokenizer=run.tokenizer, trajectory=run.trajectory)\nhm",
    "tree = ReasoningTree(run.trajectory)\ntree",
    "VerificationPanel(run.trajectory)",
    "Dashboard(run.trajectory, run.trace, run.tokenizer)",
    "tree.select('n4'); tree.selected_span",
]


def test_notebook_saves_widget_state(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in NOTEBOOK_CELLS]
    NotebookClient(nb, timeout=120, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    path = tmp_path / "widgets.ipynb"
    nbformat.write(nb, path)
    saved = nbformat.read(path, as_version=4)
    state = saved.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    by_class = {}
    for model in state.values():
        by_class.setdefault(model["state"].get("_anywidget_id", model["model_name"]), []).append(model)
    heat = by_class["k2nb.widgets.heatmap.RoutingHeatmap"]
    assert len(heat) == 2  # the one displayed alone and the dashboard's
    assert {b["path"][0] for b in heat[0].get("buffers", [])} >= {"experts", "weights", "channels"}
    assert "canvas" in heat[0]["state"]["_esm"]  # the view's code travels with the notebook
    trees = by_class["k2nb.widgets.tree.ReasoningTree"]
    assert any(len(m["state"]["nodes"]) == len(synthetic_run(seed=5).trajectory.nodes) for m in trees)
    panels = by_class["k2nb.widgets.verification.VerificationPanel"]
    assert all(m["state"]["verdict"] == "passed" for m in panels)
    assert "VBoxModel" in by_class and "LinkModel" in by_class
    # every display also carries its static fallback for viewers without a widget manager
    outs = [c.outputs[0]["data"] for c in saved.cells[1:5]]
    assert all(WIDGET_VIEW in o for o in outs)
    assert "image/png" in outs[0] and "image/png" in outs[1] and "<table>" in outs[2]["text/html"]
    assert saved.cells[5].outputs[0]["data"]["text/plain"].startswith("[")


def test_a_run_whose_last_attempt_ran_no_checks_is_judged_by_its_latest_checks() -> None:
    """Two rolled-back attempts, then one the full context stopped: the second attempt's checks are
    the last word (not the sum of both)."""
    from k2nb.agent.verdict import summary

    t = Trajectory("q")
    path = t.add("path")
    for n in (1, 2):
        attempt = t.add("attempt", path, data={"index": n})
        answer = t.add("answer", attempt, "It is 7.")
        t.add_check("answer grounded in tool results", "passed", "", answer, "grounded")
        t.add_check("numbers sourced", "failed", "2 has no source", answer, "sourced")
        t.finish(attempt, "rolled_back")
    last = t.add("attempt", path, data={"index": 3})
    t.add("error", last, "the context is full (2,040 of 2,048 tokens); start a new conversation",
          status="done")
    assert summary(t).text == "1 of 2 checks passed; failed: numbers sourced"
