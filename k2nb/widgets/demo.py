"""A synthetic run (trajectory + routing trace + tokenizer) for trying the views without a model.

The run is a small data question answered in two paths; path 0 has a rolled-back attempt (an
ungrounded answer) and a retry that verifies itself. Routing is random but structured like a
trained MoE: each channel (thinking, tool call, answer, ...) prefers its own experts, so the heatmap
shows something to find. Tests and examples use it; `scale="k2"` gives Kimi-K2's shape
(61 MoE layers × 384 experts, top-8) and a few thousand tokens.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from k2nb.agent.trajectory import Node, Trajectory
from k2nb.routing import Routing, RoutingBuffer

QUESTION = "What is the mean of the price column in df, rounded to 2 decimals?"
PROMPT = (
    "<|im_system|>system<|im_middle|>You are a careful data assistant with a python tool.<|im_end|>"
    f"<|im_user|>user<|im_middle|>{QUESTION}<|im_end|><|im_assistant|>assistant<|im_middle|>"
)


class DemoTokenizer:
    """Maps text chunks to ids and back (``decode([id])``), like a real tokenizer's interface."""

    def __init__(self) -> None:
        self.vocab: list[str] = []
        self._ids: dict[str, int] = {}

    def encode(self, text: str, chunk: int = 4) -> list[int]:
        out = []
        for word in _words(text):
            for i in range(0, len(word), chunk):
                piece = word[i : i + chunk]
                if piece not in self._ids:
                    self._ids[piece] = len(self.vocab)
                    self.vocab.append(piece)
                out.append(self._ids[piece])
        return out

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.vocab[int(i)] for i in ids)


def _words(text: str) -> list[str]:
    # split before spaces so " the" stays one piece, as byte-level BPE vocabularies do
    out, cur = [], ""
    for ch in text:
        if ch in " \n" and cur:
            out.append(cur)
            cur = ""
        cur += ch
    return out + ([cur] if cur else [])


@dataclass(slots=True)
class SyntheticRun:
    trajectory: Trajectory
    trace: Routing
    tokenizer: DemoTokenizer


class _Router:
    """Top-k experts per token and layer with a preference per channel (Gumbel top-k)."""

    def __init__(self, n_layers: int, n_experts: int, top_k: int, seed: int):
        self.L, self.E, self.k = n_layers, n_experts, top_k
        self.rng = np.random.default_rng(seed)
        # [n_channels, L, E] logits: each channel favours ~1/6 of the experts, differently per layer
        pref = self.rng.normal(0, 0.25, size=(8, n_layers, n_experts))
        for c in range(8):
            hot = self.rng.choice(n_experts, size=max(top_k, n_experts // 6), replace=False)
            pref[c, :, hot] += 0.5
        self.pref = pref.astype(np.float32)

    def route(self, channel: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """experts ``[n, L, k]`` int32 and weights ``[n, L, k]`` float32 (renormalised × 2.827)."""
        ex = np.empty((n, self.L, self.k), dtype=np.int32)
        wt = np.empty((n, self.L, self.k), dtype=np.float32)
        for s in range(0, n, 128):  # chunks keep the [n, L, E] scores small at K2 scale
            m = min(128, n - s)
            g = self.rng.gumbel(size=(m, self.L, self.E)).astype(np.float32)
            scores = self.pref[channel][None] + g  # [m, L, E]
            top = np.argpartition(-scores, self.k - 1, axis=-1)[..., : self.k]  # [m, L, k]
            sc = np.take_along_axis(scores, top, -1)
            order = np.argsort(-sc, axis=-1)
            top, sc = np.take_along_axis(top, order, -1), np.take_along_axis(sc, order, -1)
            p = 1 / (1 + np.exp(-(sc - 2.0)))  # sigmoid affinities, as K2 routes
            ex[s : s + m] = top
            wt[s : s + m] = 2.827 * p / p.sum(-1, keepdims=True)
        return ex, wt


class _Writer:
    """Writes a scripted run into a trajectory, token by token, with synthetic routing; the tokens of
    the chosen path also go to the routing record the views show."""

    def __init__(self, t: Trajectory, tok: DemoTokenizer, router: _Router, trace: RoutingBuffer, pos: int):
        self.t, self.tok, self.router, self.trace, self.pos = t, tok, router, trace, pos

    def emit(self, node: Node, text: str, record: bool = True, append_text: bool = True) -> None:
        from k2nb.widgets.data import CHANNELS

        ids = self.tok.encode(text)
        ex, wt = self.router.route(CHANNELS.index(node.kind), len(ids))
        for i, tid in enumerate(ids):
            shown = self.tok.vocab[tid] if append_text else ""
            self.t.add_token(node, self.pos + i, tid, ex[i], wt[i], text=shown)
        if record:
            self.trace.extend(np.arange(self.pos, self.pos + len(ids)), ids, ex, wt)
        self.pos += len(ids)

    def step(self, kind: str, parent: Node, text: str, record: bool = True) -> Node:
        n = self.t.add(kind, parent, "", {})
        self.emit(n, text, record)
        self.t.finish(n)
        return n

    def call(self, parent: Node, code: str, result: str, ok: bool = True, record: bool = True) -> Node:
        args = json.dumps({"code": code})
        n = self.t.add_tool_call(parent, f"functions.python:{self.pos}", "python", "", None)
        self.emit(n, args, record)
        self.t.update(n, text=args, arguments=args, parsed={"code": code})
        self.t.finish(n)
        o = self.t.add_observation(n, {"ok": ok, "text": result})
        self.emit(o, result, record, append_text=False)  # the observation record already holds the text
        return n


def _chosen_path(w: _Writer, seed: int, repeat_thinking: int) -> tuple[Node, Node]:
    """A rolled-back attempt (ungrounded answer) and one whose checks pass; the path and its answer."""
    t = w.t
    think = " ".join(["I should look at the data before answering, not guess."] * repeat_thinking)
    path = t.add("path", None, "", {"seed": seed})
    a0 = t.add("attempt", path, "")
    w.step("thinking", a0, f"The user wants the mean price. {think} Let me compute df['price'].mean().")
    w.call(a0, "df['price'].mean()", "KeyError: 'price'", ok=False)
    w.step("thinking", a0, "The column name differs. Let me list the columns first.")
    w.call(a0, "list(df.columns)", "['Price', 'qty', 'region']")
    ans0 = w.step("answer", a0, "The mean price is 41.5.")
    t.add_check("grounded", "failed", "41.5 does not appear in any tool result or in the question", ans0,
                "grounded")
    t.finish(a0, "rolled_back", failed_checks=["c0"])

    a1 = t.add("attempt", path, "", {"after": a0.id, "reason": "answer not grounded in a tool result"})
    w.step("thinking", a1, f"I must compute the value, not guess it. {think} Use the 'Price' column.")
    w.call(a1, "round(df['Price'].mean(), 2)", "38.27")
    v = t.add("verification", a1, "", {})
    w.emit(v, "assert abs(df['Price'].sum() / len(df) - 38.27) < 0.01  # True")
    t.finish(v)
    ans1 = w.step("answer", a1, "The mean of `Price` is **38.27** (computed from 240 rows).")
    t.add_check("valid arguments", "passed", "every tool call parsed and matched its schema", a1, "args")
    t.add_check("grounded", "passed", "38.27 came from the result of round(df['Price'].mean(), 2)", ans1,
                "grounded")
    t.add_check("self_verify", "passed", "the assert on the sum ÷ count ran without error", v,
                "self_verify")
    t.finish(a1)
    t.finish(path)
    return path, ans1


def synthetic_run(
    scale: str = "small", seed: int = 0, paths: int = 2, repeat_thinking: int = 1
) -> SyntheticRun:
    """A finished run. ``scale``: "small" (4 MoE layers × 16 experts, top-2) or "k2"
    (61 × 384, top-8, ~2,900 tokens); ``repeat_thinking`` lengthens the thinking to grow the run."""
    if scale == "k2":
        n_layers, n_experts, top_k = 61, 384, 8
        repeat_thinking = max(repeat_thinking, 90)
    elif scale == "small":
        n_layers, n_experts, top_k = 4, 16, 2
    else:
        raise ValueError(f"scale must be 'small' or 'k2', not {scale!r}")
    from k2nb.widgets.data import CHANNELS

    tok = DemoTokenizer()
    router = _Router(n_layers, n_experts, top_k, seed)
    clock = iter(np.arange(0, 10_000, 0.37))
    t = Trajectory(QUESTION, {"model": "synthetic"}, clock=lambda: float(next(clock)))
    trace = RoutingBuffer(n_layers, top_k, tuple(range(1, n_layers + 1)), n_experts)
    prompt_ids = tok.encode(PROMPT)
    e, wt = router.route(CHANNELS.index("prompt"), len(prompt_ids))
    trace.extend(np.arange(len(prompt_ids)), prompt_ids, e, wt, prompt=True)
    w = _Writer(t, tok, router, trace, len(prompt_ids))
    path, answer = _chosen_path(w, seed, repeat_thinking)
    for p in range(1, paths):  # other paths reuse the positions after the prompt; not in the trace
        w.pos = len(prompt_ids)
        pn = t.add("path", None, "", {"seed": seed + p})
        at = t.add("attempt", pn, "")
        w.step("thinking", at, "Compute the mean of the Price column directly.", record=False)
        w.call(at, "df.Price.mean().round(2)", "38.27", record=False)
        w.step("answer", at, "38.27", record=False)
        t.finish(at)
        t.finish(pn)
    if paths > 1:
        t.add_check("paths agree", "passed", f"{paths} of {paths} paths answered 38.27", t.root, "agreement")
    t.meta["answer"] = answer.text
    t.meta["chosen_path"] = path.id
    t.finish(t.root)
    return SyntheticRun(t, trace.view(), tok)
