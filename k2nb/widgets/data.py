"""What the views show, computed from a `Routing` record and a `Trajectory` with numpy only.

The widgets (anywidget) and the static figures (`k2nb.widgets.plot`) read the same records from here, so a
token is the same colour, a node has the same span and a run has the same verdict in both. Nothing
here imports IPython, ipywidgets or matplotlib.

Coordinates: token *positions* are absolute positions in the sequence, as in `Node.span` and
`Routing.positions`. The views take a dense record (`Routing.dense()`): its token ``i`` sits at
position ``routing.start + i``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from k2nb.agent.verdict import other_path_nodes, summary, superseded_nodes
from k2nb.routing import UNTRACED_TOKEN, balance

if TYPE_CHECKING:
    from k2nb.agent.trajectory import Node, Trajectory
    from k2nb.routing import Routing

# Channel of a token: which part of the conversation it belongs to. The index is what crosses to the
# browser (one uint8 per token); colours are chosen to stay apart on light and dark themes and for
# the common colour-vision deficiencies (thinking violet vs tool amber vs answer green differ in
# lightness too).
CHANNELS: tuple[str, ...] = (
    "prompt",
    "thinking",
    "tool_call",
    "observation",
    "verification",
    "answer",
    "error",
    "generated",  # generated, but no trajectory node says which part of the output it was
)
CHANNEL_COLORS: dict[str, str] = {
    "prompt": "#8c96a3",
    "thinking": "#8e6bd8",
    "tool_call": "#e0912f",
    "observation": "#3b8fc4",
    "verification": "#1aa6a0",
    "answer": "#3ea64f",
    "error": "#d6453d",
    "generated": "#b5a27a",
}
CHANNEL_LABELS: dict[str, str] = {
    "prompt": "prompt",
    "thinking": "thinking",
    "tool_call": "tool call",
    "observation": "observation",
    "verification": "verification",
    "answer": "answer",
    "error": "error",
    "generated": "generated",
}
KIND_COLORS: dict[str, str] = {
    "root": "#5b6470",
    "path": "#5b6470",
    "attempt": "#5b6470",
    **{k: CHANNEL_COLORS[k] for k in CHANNELS if k not in ("prompt", "generated")},
}
# Node kinds whose span is made of tokens; root / path / attempt only group other nodes.
TOKEN_KINDS = frozenset({"thinking", "tool_call", "observation", "verification", "answer", "error"})
CONTAINER_KINDS = frozenset({"root", "path", "attempt"})


class TokenDecoder(Protocol):
    def decode(self, ids: Sequence[int]) -> str: ...


# ---------------------------------------------------------------------------------------------
# tokens


# `UNTRACED_TOKEN` (a position a record covers without knowing its token: tool results and prompts fed
# back between generated tokens) is shown as "·" in the "prompt" channel, never decoded.


def token_texts(token_ids: Sequence[int], tokenizer: TokenDecoder | None) -> list[str]:
    """The text of each token (``tokenizer.decode([id])``), or ``[]`` without a tokenizer (the views
    then show ids). Decoded once per distinct id: a K2 run repeats ids a lot."""
    if tokenizer is None:
        return []
    cache: dict[int, str] = {}
    out = []
    for t in token_ids:
        t = int(t)
        if t < 0:  # a context token whose id and routing the trace does not hold (UNTRACED_TOKEN)
            out.append("·")
            continue
        if t not in cache:
            try:
                cache[t] = tokenizer.decode([t])
            except Exception:  # noqa: BLE001 - an id the tokenizer rejects is shown, not fatal
                cache[t] = f"<{t}>"
        out.append(cache[t])
    return out


@dataclass(slots=True)
class TokenChannels:
    """Per token of a trace: its channel (index into `CHANNELS`) and the node that holds it."""

    channels: np.ndarray  # [T] uint8
    node_index: np.ndarray  # [T] int32, index into `node_ids`, -1 where no node holds the token
    node_ids: list[str]


def token_channels(
    n_tokens: int,
    start: int = 0,
    n_prompt: int = 0,
    trajectory: Trajectory | None = None,
    token_ids: Sequence[int] | None = None,
) -> TokenChannels:
    """Assign every token of a trace to a channel from the trajectory node whose span holds it.

    Without a node, tokens before `n_prompt` are "prompt", later ones "generated". Parallel paths
    reuse the same positions; where spans of several nodes cover a token, a node whose recorded
    routing has the trace's token id at that position wins (it is the path this trace ran), then
    the narrower span.
    """
    chan = np.full(n_tokens, CHANNELS.index("generated"), dtype=np.uint8)
    chan[: min(n_prompt, n_tokens)] = CHANNELS.index("prompt")
    if token_ids is not None and len(token_ids):  # context fed back between generated tokens
        untraced = np.asarray(token_ids[:n_tokens], dtype=np.int64) == UNTRACED_TOKEN
        chan[: len(untraced)][untraced] = CHANNELS.index("prompt")
    owner = np.full(n_tokens, -1, dtype=np.int32)
    node_ids: list[str] = []
    if trajectory is None or n_tokens == 0:
        return TokenChannels(chan, owner, node_ids)
    ids = np.asarray(token_ids, dtype=np.int64) if token_ids is not None and len(token_ids) else None
    prio = np.zeros(n_tokens, dtype=np.int8)
    nodes = [n for n in trajectory.nodes.values() if n.kind in TOKEN_KINDS and n.span is not None]
    nodes.sort(key=lambda n: -(n.span[1] - n.span[0]))  # wide first, so narrower spans overwrite
    for node in nodes:
        a, b = max(node.span[0] - start, 0), min(node.span[1] - start, n_tokens)
        if a >= b:
            continue
        cand = np.zeros(n_tokens, dtype=np.int8)
        cand[a:b] = 1
        r = node.routing
        if ids is not None and r is not None and r.n:
            idx = r.positions.astype(np.int64) - start
            ok = (idx >= 0) & (idx < min(n_tokens, len(ids)))
            idx, toks = idx[ok], r.tokens[ok]
            cand[idx[ids[idx] == toks]] = 2
        take = cand >= np.maximum(prio, 1)
        if not take.any():
            continue
        node_ids.append(node.id)
        chan[take] = CHANNELS.index(node.kind)
        owner[take] = len(node_ids) - 1
        prio[take] = cand[take]
    # Context the model read (the question on the root, tool results on observations): positions
    # whose token id is the one the node read, so another path's context at the same place does not
    # take them. Generated tokens keep their node.
    for node in trajectory.nodes.values():
        r = node.context
        if r is None or not r.n or ids is None:
            continue
        idx = r.positions.astype(np.int64) - start
        ok = (idx >= 0) & (idx < min(n_tokens, len(ids)))
        idx = idx[ok][ids[idx[ok]] == r.tokens[ok]]
        idx = idx[prio[idx] == 0]
        if not len(idx):
            continue
        node_ids.append(node.id)
        chan[idx] = CHANNELS.index("observation" if node.kind == "observation" else "prompt")
        owner[idx] = len(node_ids) - 1
    return TokenChannels(chan, owner, node_ids)


# ---------------------------------------------------------------------------------------------
# routing payload


@dataclass(slots=True)
class RoutingPayload:
    """A trace packed for the browser: little-endian uint16 expert ids and uint8 weights
    (``weight ≈ q * weight_scale``), both ``[T, L, k]`` row-major."""

    experts: bytes
    weights: bytes
    weight_scale: float
    shape: tuple[int, int, int]

    @property
    def nbytes(self) -> int:
        return len(self.experts) + len(self.weights)


def pack_routing(experts: np.ndarray, weights: np.ndarray, n_experts: int) -> RoutingPayload:
    """Quantise weights to 8 bits against their maximum: a weight is shown as a colour and a
    3-digit number, and 1/255 of the largest weight is below what either can show."""
    if n_experts > 65535:
        raise ValueError(f"n_experts={n_experts} does not fit the uint16 expert ids the heatmap sends")
    e = np.ascontiguousarray(experts, dtype="<u2")  # [T, L, k]
    w = np.asarray(weights, dtype=np.float32)  # [T, L, k]
    wmax = float(w.max()) if w.size else 0.0
    scale = wmax / 255.0 if wmax > 0 else 1.0
    q = np.clip(np.rint(w / scale), 0, 255).astype(np.uint8)
    return RoutingPayload(e.tobytes(), q.tobytes(), scale, tuple(e.shape))  # type: ignore[arg-type]


def selection_stats(trace: Routing, start: int, end: int) -> dict[str, np.ndarray]:
    """Per layer × expert over tokens ``[start, end)`` of the trace (indices, not positions):
    ``load`` (tokens routed there), ``weight`` (mean routing weight per token of the selection) and
    per layer ``balance`` (max load ÷ mean load; 1 is perfectly even)."""
    n = max(0, min(end, len(trace)) - max(start, 0))
    load = trace.expert_counts(start=start, end=end).astype(np.float64)
    wsum = trace.expert_counts(weighted=True, start=start, end=end)
    return {"load": load, "weight": wsum / max(n, 1), "balance": balance(load)}


# ---------------------------------------------------------------------------------------------
# trajectory rows


def subtree_spans(trajectory: Trajectory) -> dict[str, tuple[int, int] | None]:
    """Each node's token span, containers (root, path, attempt, a call with its observation) as
    the union of their descendants' spans: what "highlight this node's tokens" means. The context a
    node read (the question, a tool result fed back) counts as its span too."""
    out: dict[str, tuple[int, int] | None] = {}
    order = list(trajectory.walk())
    for node in reversed(order):  # children before parents
        a, b = (node.span if node.span is not None else (None, None))
        if node.context is not None and node.context.n:
            lo, hi = int(node.context.positions.min()), int(node.context.positions.max()) + 1
            a, b = (lo, hi) if a is None else (min(a, lo), max(b, hi))
        for c in node.children:
            cs = out.get(c)
            if cs is None:
                continue
            a = cs[0] if a is None else min(a, cs[0])
            b = cs[1] if b is None else max(b, cs[1])
        out[node.id] = None if a is None else (int(a), int(b))
    return out


def _short(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def node_label(node: Node) -> str:
    """One line that names a node: a call's name and arguments, a path's seed, the text's start."""
    d = node.data
    if node.kind == "tool_call":
        name = d.get("name") or "call"
        return f"{name}({_short(' '.join(node.text.split()), 120)})"
    if node.kind == "path":
        seed = d.get("seed")
        return f"path{'' if seed is None else f' · seed {seed}'}"
    if node.kind == "attempt":
        reason = d.get("reason")
        return "attempt" + (f" · after rollback: {_short(str(reason), 100)}" if reason else "")
    if node.kind == "root":
        return _short(" ".join(node.text.split()), 160) or "run"
    return _short(" ".join(node.text.split()), 160)


def node_row(
    node: Node,
    trajectory: Trajectory,
    spans: dict[str, tuple[int, int] | None],
    text_limit: int = 400,
) -> dict[str, Any]:
    """The compact record of a node that the tree view gets: no routing, text capped (the full text
    comes on selection), span as the node's own or its subtree's."""
    checks = trajectory.checks_for(node)
    span = spans.get(node.id)
    dur = node.duration_s
    row: dict[str, Any] = {
        "id": node.id,
        "kind": node.kind,
        "parent": node.parent,
        "children": list(node.children),
        "status": node.status,
        "label": node_label(node),
        "text": _short(node.text, text_limit),
        "span": None if span is None else [span[0], span[1]],
        "n": node.n_tokens,
        "dur": None if dur is None else round(dur, 3),
        "checks": [c.status for c in checks],
    }
    if node.kind == "tool_call":
        row["name"] = node.data.get("name") or ""
    if node.kind == "observation":
        row["ok"] = bool(node.data.get("ok", node.status != "failed"))
    return row


def tree_rows(trajectory: Trajectory, text_limit: int = 400) -> list[dict[str, Any]]:
    """All nodes as rows, depth-first (a parent before its children)."""
    spans = subtree_spans(trajectory)
    return [node_row(n, trajectory, spans, text_limit) for n in trajectory.walk()]


# ---------------------------------------------------------------------------------------------
# checks and verdict


def check_rows(trajectory: Trajectory) -> list[dict[str, Any]]:
    """Every check with its node's kind and label; `superseded` when its node was rolled back,
    `other_path` when it belongs to a path the run did not choose (neither counts in the verdict)."""
    gone = superseded_nodes(trajectory)
    others = other_path_nodes(trajectory)
    rows = []
    for c in trajectory.checks:
        node = trajectory.nodes.get(c.node) if c.node else None
        rows.append(
            {
                "id": c.id,
                "name": c.name,
                "kind": c.kind,
                "status": c.status,
                "evidence": c.evidence,
                "node": c.node,
                "node_kind": node.kind if node is not None else None,
                "node_label": node_label(node) if node is not None else "",
                "superseded": bool(c.node in gone),
                "other_path": bool(c.node in others),
            }
        )
    return rows


def verdict(trajectory: Trajectory) -> str:
    """The run's verdict status (`k2nb.agent.verdict`): "passed" (every counted check passed),
    "partial" (the rest are pending), "failed", "inconclusive" (every check pending: nothing was
    established) or "none" (no checks)."""
    return summary(trajectory).status


# ---------------------------------------------------------------------------------------------
# rate limiting of live updates


class Throttle:
    """Call `fn` at most once per `interval` seconds, with a trailing call so the last change is
    always shown. `poke()` is cheap and safe from any thread (the loop may run in a worker thread);
    `fn` runs in the poking thread or in a timer thread."""

    def __init__(self, fn: Callable[[], None], interval: float = 0.1,
                 clock: Callable[[], float] | None = None):
        import threading
        import time

        self._fn = fn
        self.interval = interval
        self._clock = clock or time.monotonic
        self._lock = threading.Lock()
        self._last = -float("inf")
        self._timer: threading.Timer | None = None
        self._threading = threading
        self.calls = 0

    def poke(self) -> None:
        with self._lock:
            if self._timer is not None:
                return  # a trailing call is already due and will include this change
            wait = self._last + self.interval - self._clock()
            if wait > 0:
                self._timer = self._threading.Timer(wait, self._fire)
                self._timer.daemon = True
                self._timer.start()
                return
            self._last = self._clock()
        self._run()

    def _fire(self) -> None:
        with self._lock:
            self._timer = None
            self._last = self._clock()
        self._run()

    def _run(self) -> None:
        self.calls += 1
        self._fn()

    def flush(self) -> None:
        """Run now (cancelling a pending trailing call): the view is current when this returns."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._last = self._clock()
        self._run()

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
