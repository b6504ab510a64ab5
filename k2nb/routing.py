"""The routing record: which experts each token was sent to, in every MoE layer.

One record, numpy only, one shape convention, from the backend that produced it to the trajectory,
the widgets, the static figures and the eval:

    positions  [T]        int64    absolute position of each token in its sequence
    tokens     [T]        int64    token ids (UNTRACED_TOKEN where a position has no reported token)
    experts    [T, L, K]  int32    chosen expert ids per MoE layer (L layers, top-K)
    weights    [T, L, K]  float32  their routing weights (after scaling)

`moe_layer_ids` are the model's layer indices of the L MoE layers (labels only), `n_experts` the
routed experts per layer, `n_prompt` how many of the first tokens were read (prompt, tool results)
rather than generated; `kinds` and `nodes` optionally say which trajectory node each token went to.
`RoutingBuffer` grows a record token by token (amortised O(1)). `expert_counts` is the one place
that counts expert selections.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

UNTRACED_TOKEN = -1  # a position inside a record's span whose token no backend reported


@dataclass(eq=False)
class Routing:
    positions: np.ndarray
    tokens: np.ndarray
    experts: np.ndarray
    weights: np.ndarray
    moe_layer_ids: tuple[int, ...] = ()
    n_experts: int = 0
    n_prompt: int = 0
    kinds: list[str] | None = None
    nodes: list[str] | None = None

    def __post_init__(self) -> None:
        self.positions = np.asarray(self.positions, dtype=np.int64).reshape(-1)
        self.tokens = np.asarray(self.tokens, dtype=np.int64).reshape(-1)
        self.experts = np.asarray(self.experts, dtype=np.int32)
        self.weights = np.asarray(self.weights, dtype=np.float32)
        n = len(self.positions)
        if self.experts.ndim != 3 or self.experts.shape[0] != n or self.weights.shape != self.experts.shape:
            raise ValueError(
                f"routing of {n} tokens has experts {self.experts.shape} and weights {self.weights.shape}; "
                "both must be [tokens, moe_layers, top_k]"
            )
        if len(self.tokens) != n:
            raise ValueError(f"routing has {n} positions but {len(self.tokens)} token ids")
        if not self.moe_layer_ids:
            self.moe_layer_ids = tuple(range(self.experts.shape[1]))
        self.moe_layer_ids = tuple(int(i) for i in self.moe_layer_ids)
        if not self.n_experts:
            self.n_experts = int(self.experts.max()) + 1 if self.experts.size else 0

    # ---- shape ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.positions)

    @property
    def n_layers(self) -> int:
        return self.experts.shape[1]

    @property
    def top_k(self) -> int:
        return self.experts.shape[2]

    @property
    def start(self) -> int:
        """Position of the first token (0 for an empty record)."""
        return int(self.positions[0]) if len(self.positions) else 0

    @classmethod
    def empty(
        cls, n_layers: int = 0, top_k: int = 0, moe_layer_ids: Sequence[int] = (), n_experts: int = 0
    ) -> Routing:
        return cls(
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros((0, n_layers, top_k), np.int32),
            np.zeros((0, n_layers, top_k), np.float32),
            tuple(moe_layer_ids),
            n_experts,
        )

    # ---- counting (the one place) --------------------------------------------------------------
    def expert_counts(self, weighted: bool = False, start: int = 0, end: int | None = None) -> np.ndarray:
        """``[n_layers, n_experts]``: how many of tokens ``[start, end)`` (indices) chose each expert,
        or with `weighted` the summed routing weight."""
        e = self.experts[start:end]
        L, E = self.n_layers, max(self.n_experts, int(e.max()) + 1 if e.size else 0)
        flat = (e.astype(np.int64) + np.arange(L)[None, :, None] * E).reshape(-1)
        w = self.weights[start:end].reshape(-1).astype(np.float64) if weighted else None
        counts = np.bincount(flat, weights=w, minlength=L * E).reshape(L, E)
        return counts if weighted else counts.astype(np.int64)

    def load_balance(self) -> np.ndarray:
        """Per MoE layer: max expert load ÷ mean load (1.0 is perfectly balanced; 0 with no tokens)."""
        return balance(self.expert_counts())

    def top_experts(self, n: int = 3) -> list[list[tuple[int, int]]]:
        """Per MoE layer, the `n` most chosen experts as (expert id, count)."""
        out = []
        for row in self.expert_counts():
            order = np.argsort(-row, kind="stable")[:n]
            out.append([(int(e), int(row[e])) for e in order if row[e] > 0])
        return out

    # ---- views ---------------------------------------------------------------------------------
    def slice(self, start: int, end: int) -> Routing:
        """Tokens ``[start, end)`` counted from this record's first token."""
        pick = lambda xs: None if xs is None else xs[start:end]  # noqa: E731
        return replace(
            self,
            positions=self.positions[start:end],
            tokens=self.tokens[start:end],
            experts=self.experts[start:end],
            weights=self.weights[start:end],
            n_prompt=max(0, min(self.n_prompt, end) - start),
            kinds=pick(self.kinds),
            nodes=pick(self.nodes),
        )

    def dense(self) -> Routing:
        """The record over every position from its first to its last: a position no token covers
        gets token UNTRACED_TOKEN and weight 0; where two tokens share a position the later wins."""
        if not len(self):
            return self
        lo, hi = int(self.positions.min()), int(self.positions.max()) + 1
        if hi - lo == len(self) and np.all(np.diff(self.positions) == 1):
            return self
        n = hi - lo
        experts = np.zeros((n, self.n_layers, self.top_k), np.int32)
        weights = np.zeros((n, self.n_layers, self.top_k), np.float32)
        tokens = np.full(n, UNTRACED_TOKEN, np.int64)
        idx = self.positions - lo
        experts[idx], weights[idx], tokens[idx] = self.experts, self.weights, self.tokens
        return Routing(
            np.arange(lo, hi), tokens, experts, weights, self.moe_layer_ids, self.n_experts, 0
        )

    @classmethod
    def concat(cls, parts: Iterable[Routing]) -> Routing:
        """The tokens of `parts`, in order (labels kept when every part has them)."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        first = parts[0]
        def label(name: str) -> list[str] | None:
            if any(getattr(p, name) is None for p in parts):
                return None
            return [x for p in parts for x in getattr(p, name)]

        return cls(
            np.concatenate([p.positions for p in parts]),
            np.concatenate([p.tokens for p in parts]),
            np.concatenate([p.experts for p in parts]),
            np.concatenate([p.weights for p in parts]),
            first.moe_layer_ids,
            max(p.n_experts for p in parts),
            first.n_prompt,
            label("kinds"),
            label("nodes"),
        )

    # ---- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "moe_layer_ids": list(self.moe_layer_ids),
            "n_experts": self.n_experts,
            "n_prompt": self.n_prompt,
            "n_layers": self.n_layers,
            "top_k": self.top_k,
        }
        for name in ("positions", "tokens", "experts", "weights"):
            d[name] = pack_array(getattr(self, name))
        if self.kinds is not None:
            d["kinds"] = list(self.kinds)
        if self.nodes is not None:
            d["nodes"] = list(self.nodes)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Routing:
        arrays = {name: unpack_array(d[name]) for name in ("positions", "tokens", "experts", "weights")}
        L, K = int(d.get("n_layers", 0)), int(d.get("top_k", 0))
        if arrays["experts"].size == 0:
            arrays["experts"] = arrays["experts"].reshape(0, L, K)
            arrays["weights"] = arrays["weights"].reshape(0, L, K)
        return cls(
            **arrays,
            moe_layer_ids=tuple(d.get("moe_layer_ids", ())),
            n_experts=int(d.get("n_experts", 0)),
            n_prompt=int(d.get("n_prompt", 0)),
            kinds=d.get("kinds"),
            nodes=d.get("nodes"),
        )

    def __repr__(self) -> str:
        return (
            f"Routing(tokens={len(self)}, prompt={self.n_prompt}, moe_layers={self.n_layers}, "
            f"experts={self.n_experts}, top_k={self.top_k})"
        )


@dataclass(eq=False)
class RoutingBuffer:
    """A routing record that grows a token (or a block of tokens) at a time, in doubling arrays."""

    n_layers: int
    top_k: int
    moe_layer_ids: tuple[int, ...] = ()
    n_experts: int = 0
    n: int = 0
    n_prompt: int = 0
    _arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self._arrays:
            self._arrays = _alloc(16, self.n_layers, self.top_k)

    def append(self, position: int, token_id: int, experts: Any, weights: Any) -> None:
        """One token: `experts` and `weights` ``[n_layers, top_k]`` (once per generated token: direct
        stores, no temporary arrays)."""
        e, w = np.asarray(experts), np.asarray(weights)
        if e.shape != (self.n_layers, self.top_k) or w.shape != e.shape:
            raise ValueError(
                f"routing of the token at position {position} has shapes {e.shape}/{w.shape}, expected "
                f"[T, {self.n_layers}, {self.top_k}] (tokens, moe_layers, top_k)"
            )
        if self.n == len(self._arrays["positions"]):
            self._grow()
        a, i = self._arrays, self.n
        a["positions"][i], a["tokens"][i], a["experts"][i], a["weights"][i] = position, token_id, e, w
        self.n += 1

    def extend(
        self, positions: Any, token_ids: Any, experts: Any, weights: Any, prompt: bool = False
    ) -> None:
        """T tokens: positions and ids ``[T]``, experts and weights ``[T, n_layers, top_k]``."""
        e, w = np.asarray(experts), np.asarray(weights)
        if e.ndim != 3 or e.shape[1:] != (self.n_layers, self.top_k) or w.shape != e.shape:
            raise ValueError(
                f"routing of {len(e)} tokens has shapes {e.shape}/{w.shape}, expected "
                f"[T, {self.n_layers}, {self.top_k}] (tokens, moe_layers, top_k)"
            )
        n = len(e)
        while self.n + n > len(self._arrays["positions"]):
            self._grow()
        sl = slice(self.n, self.n + n)
        a = self._arrays
        a["positions"][sl], a["tokens"][sl], a["experts"][sl], a["weights"][sl] = positions, token_ids, e, w
        self.n += n
        if prompt:
            self.n_prompt += n

    def _grow(self) -> None:
        new = _alloc(max(2 * len(self._arrays["positions"]), 16), self.n_layers, self.top_k)
        for name, old in self._arrays.items():
            new[name][: self.n] = old[: self.n]
        self._arrays = new

    def __len__(self) -> int:
        return self.n

    @classmethod
    def of(cls, record: Routing) -> RoutingBuffer:
        """A buffer holding `record`'s tokens (to grow it further)."""
        buf = cls(record.n_layers, record.top_k, record.moe_layer_ids, record.n_experts)
        buf.extend(record.positions, record.tokens, record.experts, record.weights)
        buf.n_prompt = record.n_prompt
        return buf

    @property
    def positions(self) -> np.ndarray:  # [T]
        return self._arrays["positions"][: self.n]

    @property
    def tokens(self) -> np.ndarray:  # [T]
        return self._arrays["tokens"][: self.n]

    @property
    def experts(self) -> np.ndarray:  # [T, L, K]
        return self._arrays["experts"][: self.n]

    @property
    def weights(self) -> np.ndarray:  # [T, L, K]
        return self._arrays["weights"][: self.n]

    def view(self) -> Routing:
        """The tokens so far as a `Routing` (arrays are views: valid until the next append)."""
        a, n = self._arrays, self.n
        return Routing(
            a["positions"][:n], a["tokens"][:n], a["experts"][:n], a["weights"][:n],
            self.moe_layer_ids, self.n_experts, self.n_prompt,
        )


def balance(counts: np.ndarray) -> np.ndarray:
    """Per layer of ``counts [n_layers, n_experts]``: max load ÷ mean load (1 is perfectly even; 0 for
    a layer with no tokens)."""
    c = np.asarray(counts, dtype=np.float64)
    mean = c.mean(axis=1) if c.size else np.zeros(len(c))
    return np.where(mean > 0, c.max(axis=1, initial=0) / np.maximum(mean, 1e-12), 0.0)


def _alloc(capacity: int, n_layers: int, top_k: int) -> dict[str, np.ndarray]:
    return {
        "positions": np.zeros(capacity, np.int64),
        "tokens": np.zeros(capacity, np.int64),
        "experts": np.zeros((capacity, n_layers, top_k), np.int32),
        "weights": np.zeros((capacity, n_layers, top_k), np.float32),
    }


def pack_array(a: np.ndarray) -> dict[str, Any]:
    """An array as JSON-safe dict (dtype, shape, base64 of its bytes)."""
    a = np.ascontiguousarray(a)
    b64 = base64.b64encode(a.tobytes()).decode("ascii")
    return {"dtype": a.dtype.str, "shape": list(a.shape), "b64": b64}


def unpack_array(d: dict[str, Any]) -> np.ndarray:
    raw = base64.b64decode(d["b64"])
    return np.frombuffer(raw, dtype=np.dtype(d["dtype"])).reshape(d["shape"]).copy()
