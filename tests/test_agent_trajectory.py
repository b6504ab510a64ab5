"""Trajectory: building, observers, routing storage, exact JSON round-trip, notebook export that
nbformat validates and a real kernel executes."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import nbformat
import numpy as np
import pytest

from k2nb.agent import LocalExecutor, ToolCallRequest, Trajectory, TrajectoryEvent, tool
from k2nb.routing import RoutingBuffer


@tool
def lookup(key: str) -> str:
    """Look a key up.

    Args:
        key: The key.
    """
    return {"pi": "3.14159"}.get(key, "missing")


def run_call(t: Trajectory, ex: LocalExecutor, parent: Any, name: str, args: dict[str, Any], idx: int) -> Any:
    """Record one call the way the loop does: a tool_call node, then its observation under it."""
    text = json.dumps(args)
    node = t.add_tool_call(parent, f"functions.{name}:{idx}", name, text, args)
    t.finish(node)
    obs = ex.execute(ToolCallRequest(f"functions.{name}:{idx}", name, text, args))
    return node, t.add_observation(node, obs)


def build(executor: LocalExecutor | None = None) -> Trajectory:
    """A trajectory with every node kind, routing, a branch and checks, from real tool runs."""
    ex = executor or LocalExecutor([lookup], timeout_s=0.2)
    rng = np.random.default_rng(0)
    t = Trajectory("What is the mean of [1, 2, 3, 10]?", meta={"model": "test", "seed": 7})
    path = t.add("path", None, data={"index": 1, "seed": 7})
    a1 = t.add("attempt", path, data={"index": 1})
    think = t.add("thinking", a1)
    for pos, piece in enumerate(["I will ", "compute ", "it."]):
        experts = rng.integers(0, 64, size=(3, 4))  # [n_moe_layers, top_k]
        weights = rng.random((3, 4)).astype(np.float32)
        t.add_token(think, 100 + pos, 1000 + pos, experts, weights, text=piece)
    t.finish(think)
    run_call(t, ex, a1, "python", {"code": "xs = [1, 2, 3, 10]\nprint('n =', len(xs))\nsum(xs) / len(xs)"}, 0)
    run_call(t, ex, a1, "python", {"code": "import sys\nprint('oops', file=sys.stderr)\nxs[10]"}, 1)
    run_call(t, ex, a1, "python", {"code": "while True:\n    pass"}, 2)
    run_call(t, ex, a1, "lookup", {"key": "pi"}, 3)
    run_call(t, ex, a1, "python", {"wrong": 1}, 4)
    ans1 = t.add("answer", a1, "The mean is 5.", status="done")
    t.finish(a1, "rolled_back")
    a2 = t.add("attempt", path, data={"index": 2, "after": think.id, "reason": "5 is not in any tool result"})
    t.add("verification", a2, "Recomputed: 16 / 4 = 4.0.", status="done")
    ans2 = t.add("answer", a2, "The mean is 4.0.", status="done")
    t.add("error", a2, "budget: tool calls (5) used up", status="done")
    t.finish(a2)
    t.finish(path)
    t.add_check("grounded", "failed", "5 does not appear in any observation", ans1, kind="grounded")
    t.add_check("grounded", "passed", "4.0 appears in observation n5", ans2, kind="grounded", numbers=[4.0])
    t.meta["answer"] = "The mean is 4.0."
    t.finish(t.root)
    return t


# --------------------------------------------------------------------------------------------
# building and observing


def test_tree_layout_and_lookups() -> None:
    t = build()
    path = t.find("path")[0]
    attempts = t.children(path, "attempt")
    assert [a.data["index"] for a in attempts] == [1, 2]
    calls = t.children(attempts[0], "tool_call")
    assert [c.data["call_id"] for c in calls] == [
        f"functions.{n}:{i}" for i, n in enumerate(["python", "python", "python", "lookup", "python"])
    ]
    first_obs = t.children(calls[0], "observation")[0]
    assert first_obs.text == "n = 4\n4.0" and first_obs.status == "done"
    assert t.children(calls[2], "observation")[0].data["error_kind"] == "timeout"
    assert t.children(calls[4], "observation")[0].status == "failed"
    assert [n.id for n in t.ancestors(first_obs)] == [t.root.id, path.id, attempts[0].id, calls[0].id]
    assert t.answer == "The mean is 4.0."
    kinds = {n.kind for n in t.walk()}
    assert kinds == {
        "root",
        "path",
        "attempt",
        "thinking",
        "tool_call",
        "observation",
        "verification",
        "answer",
        "error",
    }
    assert len(list(t.walk())) == len(t.nodes)


def test_token_spans_and_routing_arrays() -> None:
    t = build()
    think = t.find("thinking")[0]
    assert think.text == "I will compute it." and think.span == (100, 103) and think.n_tokens == 3
    r = think.routing
    assert r is not None and r.experts.shape == (3, 3, 4) and r.weights.dtype == np.float32
    assert r.tokens.tolist() == [1000, 1001, 1002] and r.positions.tolist() == [100, 101, 102]


def test_routing_grows_and_rejects_wrong_shapes() -> None:
    r = RoutingBuffer(n_layers=2, top_k=2)
    for i in range(100):
        r.append(i, i, [[i, i + 1], [i + 2, i + 3]], [[0.5, 0.5], [0.25, 0.75]])
    assert len(r) == 100 and r.experts[99].tolist() == [[99, 100], [101, 102]]
    with pytest.raises(ValueError, match=r"expected \[T, 2, 2\] \(tokens, moe_layers, top_k\)"):
        r.append(100, 0, [[1, 2, 3]], [[1.0, 1.0, 1.0]])


def test_observers_see_live_updates_and_a_broken_one_does_not_stop_the_run() -> None:
    t = Trajectory("q")
    seen: list[tuple[str, str | None, str]] = []

    def view(e: TrajectoryEvent) -> None:
        seen.append((e.type, e.node.kind if e.node else e.check.name if e.check else None, e.delta))

    def broken(e: TrajectoryEvent) -> None:
        raise RuntimeError("view crashed")

    t.subscribe(view)
    unsubscribe_broken = t.subscribe(broken)
    with pytest.warns(RuntimeWarning, match="view crashed"):
        n = t.add("thinking")
    t.append_text(n, "hmm")
    t.add_token(n, 0, 5, text="!")
    t.finish(n)
    c = t.add_check("mine", node=n)
    t.update_check(c, "passed", "ok")
    unsubscribe_broken()
    t.add("answer", None, "done", status="done")
    assert seen == [
        ("node_added", "thinking", ""),
        ("node_updated", "thinking", "hmm"),
        ("node_updated", "thinking", "!"),
        ("node_finished", "thinking", ""),
        ("check_added", "mine", ""),
        ("check_updated", "mine", ""),
        ("node_added", "answer", ""),
    ]
    assert len(t.observer_errors) == 6 and n.text == "hmm!"


def test_unknown_parent_and_kind_are_refused() -> None:
    t = Trajectory()
    with pytest.raises(KeyError):
        t.add("thinking", "n99")
    with pytest.raises(ValueError, match="node kind 'musing'"):
        t.add("musing")


def test_walk_is_iterative_for_long_chains() -> None:
    t = Trajectory()
    parent = t.root
    for _ in range(5000):  # deeper than Python's recursion limit
        parent = t.add("thinking", parent)
    assert sum(1 for _ in t.walk()) == 5001


# --------------------------------------------------------------------------------------------
# JSON


def test_json_round_trip_is_exact() -> None:
    t = build()
    text = t.to_json()
    back = Trajectory.from_json(text)
    assert back.to_json() == text
    for nid, node in t.nodes.items():
        other = back.nodes[nid]
        assert (other.kind, other.parent, other.children, other.text, other.data, other.status) == (
            node.kind,
            node.parent,
            node.children,
            node.text,
            node.data,
            node.status,
        )
        assert (other.started_at, other.finished_at, other.span) == (
            node.started_at,
            node.finished_at,
            node.span,
        )
        if node.routing is not None:
            assert other.routing is not None
            for field in ("positions", "tokens", "experts", "weights"):
                a, b = getattr(node.routing, field), getattr(other.routing, field)
                assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    assert [c.to_dict() for c in back.checks] == [c.to_dict() for c in t.checks]
    # the restored tree keeps growing with fresh ids
    new = back.add("thinking")
    assert new.id not in t.nodes and back.add_check("x").id == f"c{len(t.checks)}"


def test_json_accepts_numpy_values_in_data() -> None:
    t = Trajectory("q")
    t.add("verification", None, "ok", data={"score": np.float32(0.5), "ids": np.arange(3)})
    d = json.loads(t.to_json())
    assert d["nodes"][1]["data"] == {"score": 0.5, "ids": [0, 1, 2]}


def test_from_json_refuses_other_documents() -> None:
    with pytest.raises(ValueError, match="not a k2nb trajectory"):
        Trajectory.from_json('{"nodes": []}')


# --------------------------------------------------------------------------------------------
# notebook export


def cells_of(nb: Any, kind: str) -> list[Any]:
    return [c for c in nb.cells if c.metadata.get("k2nb", {}).get("kind") == kind]


def test_to_notebook_structure() -> None:
    t = build()
    nb = t.to_notebook()
    nbformat.validate(nb)
    assert nb.nbformat == 4
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert len(code) == 3  # the two python runs and the timed-out one; the invalid call is markdown
    ok, err, loop = code
    assert [o.output_type for o in ok.outputs] == ["stream", "execute_result"]
    assert ok.outputs[0].text == "n = 4\n" and ok.outputs[1].data["text/plain"] == "4.0"
    assert (
        ok.metadata["k2nb"]["kind"] == "tool_call" and ok.metadata["k2nb"]["call_id"] == "functions.python:0"
    )
    assert [o.output_type for o in err.outputs] == ["stream", "error"]
    assert err.outputs[1].ename == "IndexError" and err.metadata["tags"] == ["raises-exception"]
    assert loop.source.startswith("# k2nb: this call ran past its time limit") and "#     pass" in loop.source
    think = cells_of(nb, "thinking")[0]
    assert think.cell_type == "markdown" and "> I will compute it." in think.source
    lookup_md = [c for c in cells_of(nb, "tool_call") if c.cell_type == "markdown"]
    assert "`lookup`" in lookup_md[0].source
    assert "3.14159" in cells_of(nb, "observation")[0].source
    answers = cells_of(nb, "answer")
    assert [a.source for a in answers] == ["## Answer\n\nThe mean is 5.", "## Answer\n\nThe mean is 4.0."]
    checks = cells_of(nb, "checks")[0].source
    assert "✗ failed" in checks and "✓ passed" in checks
    # the verdict counts the retry's check (the rolled-back attempt's is superseded), claims no truth
    assert "**1 of 1 check passed**" in checks and "verified" not in checks.lower()
    assert nb.metadata["k2nb"]["checks"] == {"status": "passed", "text": "1 of 1 check passed",
                                             "passed": ["grounded"], "failed": [], "pending": []}
    ids = [c.id for c in nb.cells]
    assert len(set(ids)) == len(ids) and ids == [c.id for c in build().to_notebook().cells]
    assert all("node" in c.metadata["k2nb"] for c in nb.cells if c.metadata["k2nb"]["kind"] != "checks")


def test_code_fences_survive_backticks() -> None:
    t = Trajectory("q")
    c = t.add_tool_call(None, "functions.lookup:0", "lookup", '{"key": "```"}', {"key": "```"})
    t.add_observation(c, {"text": "``` a ````", "ok": True})
    nb = t.to_notebook()
    obs = cells_of(nb, "observation")[0].source
    assert "`````\n``` a ````\n`````" in obs


@pytest.fixture(scope="module")
def python3_kernel() -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    if "python3" not in KernelSpecManager().find_kernel_specs():
        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--user"], check=True)
    return "python3"


def test_exported_notebook_runs_top_to_bottom_and_reproduces_outputs(python3_kernel: str) -> None:
    from nbclient import NotebookClient

    t = build()
    nb = t.to_notebook()
    recorded = [[dict(o) for o in c.outputs] for c in nb.cells if c.cell_type == "code"]
    NotebookClient(nb, timeout=60, kernel_name=python3_kernel).execute()  # raises on an unexpected error
    executed = [c for c in nb.cells if c.cell_type == "code"]
    ok, err, loop = executed
    assert [o.output_type for o in ok.outputs] == ["stream", "execute_result"]
    assert ok.outputs[0].text == recorded[0][0]["text"]
    assert ok.outputs[1].data["text/plain"] == recorded[0][1]["data"]["text/plain"]
    assert err.outputs[-1].output_type == "error" and err.outputs[-1].ename == "IndexError"
    assert loop.outputs == []  # commented out, so it did not hang the kernel
