"""Which experts every token used: the record behind the routing heatmaps and specialisation stats."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class RoutingTrace:
    """Routing of a run of tokens: for every token and MoE layer, the chosen expert ids and weights.

    Tokens are kept in order; ``start`` is the absolute position of the first one and ``n_prompt``
    how many of them were prompt (prefill) tokens rather than generated ones. Chunks are appended as
    they are produced and concatenated lazily, so capture costs a list append per step.
    """

    def __init__(self, moe_layer_ids: list[int], n_experts: int, top_k: int, start: int = 0):
        self.moe_layer_ids = list(moe_layer_ids)
        self.n_experts = n_experts
        self.top_k = top_k
        self.start = start
        self.n_prompt = 0
        self._chunks: list[tuple[torch.Tensor, torch.Tensor]] = []  # ([T, L, k] int, [T, L, k] f32)
        self._tokens: list[int] = []
        self._cat: tuple[torch.Tensor, torch.Tensor] | None = None

    # ---- building -----------------------------------------------------------------------------
    def append(self, experts: torch.Tensor, weights: torch.Tensor, tokens: list[int] | None = None,
               prompt: bool = False) -> None:
        """Add ``experts [T, L, k]`` and ``weights [T, L, k]`` for T tokens (moved to the CPU)."""
        self._chunks.append((experts.to("cpu", torch.int32), weights.to("cpu", torch.float32)))
        if tokens is not None:
            self._tokens.extend(int(t) for t in tokens)
        if prompt:
            self.n_prompt += experts.shape[0]
        self._cat = None

    def extend(self, other: RoutingTrace) -> None:
        """Append another trace's tokens (e.g. the next step of a conversation)."""
        self._chunks.extend(other._chunks)
        self._tokens.extend(other._tokens)
        self._cat = None

    # ---- accessors ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return sum(c[0].shape[0] for c in self._chunks)

    def _tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._cat is None:
            L, k = len(self.moe_layer_ids), self.top_k
            if self._chunks:
                self._cat = (torch.cat([c[0] for c in self._chunks]), torch.cat([c[1] for c in self._chunks]))
            else:
                self._cat = (torch.zeros(0, L, k, dtype=torch.int32), torch.zeros(0, L, k))
            self._chunks = [self._cat]
        return self._cat

    @property
    def experts(self) -> torch.Tensor:
        """``[T, n_moe_layers, top_k]`` int32 expert ids."""
        return self._tensors()[0]

    @property
    def weights(self) -> torch.Tensor:
        """``[T, n_moe_layers, top_k]`` float32 routing weights (after scaling)."""
        return self._tensors()[1]

    @property
    def tokens(self) -> list[int]:
        """Token ids, when the producer recorded them (the engine does)."""
        return list(self._tokens)

    def numpy(self) -> tuple[np.ndarray, np.ndarray]:
        e, w = self._tensors()
        return e.numpy(), w.numpy()

    def slice(self, start: int, end: int) -> RoutingTrace:
        """Tokens ``[start, end)`` counted from this trace's first token."""
        e, w = self._tensors()
        out = RoutingTrace(self.moe_layer_ids, self.n_experts, self.top_k, self.start + start)
        out._chunks = [(e[start:end], w[start:end])]
        out._tokens = self._tokens[start:end]
        out.n_prompt = max(0, min(self.n_prompt, end) - start)
        return out

    def expert_counts(self, weighted: bool = False) -> np.ndarray:
        """``[n_moe_layers, n_experts]``: how many tokens chose each expert (or the summed weight)."""
        e, w = self._tensors()
        L = len(self.moe_layer_ids)
        flat = (e.long() + torch.arange(L)[None, :, None] * self.n_experts).reshape(-1)
        vals = w.reshape(-1) if weighted else torch.ones(flat.shape[0])
        counts = torch.zeros(L * self.n_experts).index_add_(0, flat, vals.float())
        return counts.view(L, self.n_experts).numpy()

    def load_balance(self) -> np.ndarray:
        """Per MoE layer: max expert load ÷ mean load (1.0 is perfectly balanced)."""
        c = self.expert_counts()
        mean = c.mean(axis=1)
        return np.where(mean > 0, c.max(axis=1) / np.maximum(mean, 1e-9), 0.0)

    def top_experts(self, n: int = 3) -> list[list[tuple[int, int]]]:
        """Per MoE layer, the ``n`` most chosen experts as (expert id, count)."""
        c = self.expert_counts()
        out = []
        for row in c:
            idx = np.argsort(-row, kind="stable")[:n]
            out.append([(int(i), int(row[i])) for i in idx if row[i] > 0])
        return out

    # ---- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        e, w = self.numpy()
        return {"moe_layer_ids": self.moe_layer_ids, "n_experts": self.n_experts, "top_k": self.top_k,
                "start": self.start, "n_prompt": self.n_prompt, "tokens": self._tokens,
                "experts": e.tolist(), "weights": np.round(w, 5).tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RoutingTrace:
        out = cls(d["moe_layer_ids"], d["n_experts"], d["top_k"], d.get("start", 0))
        L, k = len(out.moe_layer_ids), out.top_k
        e = torch.tensor(d["experts"], dtype=torch.int32).reshape(-1, L, k)
        w = torch.tensor(d["weights"], dtype=torch.float32).reshape(-1, L, k)
        out._chunks = [(e, w)]
        out._tokens = list(d.get("tokens", []))
        out.n_prompt = d.get("n_prompt", 0)
        return out

    def __repr__(self) -> str:
        return (f"RoutingTrace(tokens={len(self)}, prompt={self.n_prompt}, "
                f"moe_layers={len(self.moe_layer_ids)}, experts={self.n_experts}, top_k={self.top_k})")
