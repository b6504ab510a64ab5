"""The expert-specialisation summary: which experts each class of generated token is routed to.

Every generated token of the ``tools`` runs is classified by its text (decoded with the model's
tokenizer) and its trajectory channel: ``tool_marker`` (the tool-call markers), ``marker`` (other K2
markers: think, im_end), ``digit``, ``code`` (other tokens of a tool call: the call id and JSON
arguments), ``word`` (tokens with a letter, in thinking or the answer), ``other`` (punctuation,
spaces). Per class and MoE layer the summary lists the experts chosen most, with their lift over the
expert's overall share; per layer, the load balance max/mean. The counting itself is
``Routing.expert_counts`` on the routing of each class's tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from k2nb.formats.k2 import (
    PARSER_MARKERS,
    TOOL_CALL_ARGUMENT_BEGIN,
    TOOL_CALL_BEGIN,
    TOOL_CALL_END,
    TOOL_CALL_SECTION_BEGIN_SINGULAR,
    TOOL_CALL_SECTION_END_SINGULAR,
    TOOL_CALLS_SECTION_BEGIN,
    TOOL_CALLS_SECTION_END,
)
from k2nb.routing import Routing

if TYPE_CHECKING:
    from k2nb.agent import ThinkResult

TOKEN_CLASSES = ("digit", "word", "code", "tool_marker", "marker", "other")
TOOL_MARKERS = frozenset({
    TOOL_CALLS_SECTION_BEGIN, TOOL_CALLS_SECTION_END, TOOL_CALL_BEGIN, TOOL_CALL_ARGUMENT_BEGIN,
    TOOL_CALL_END,
    TOOL_CALL_SECTION_BEGIN_SINGULAR, TOOL_CALL_SECTION_END_SINGULAR,
})


def classify_token(text: str, channel: str) -> str:
    """One of TOKEN_CLASSES for a generated token's text and the trajectory node kind it went to.
    A byte token that is part of a UTF-8 character decodes alone to U+FFFD, which, like "", has no
    letter or digit: it is "code" in a tool call and "other" elsewhere."""
    if text in TOOL_MARKERS:
        return "tool_marker"
    if text in PARSER_MARKERS or (text.startswith("<|") and text.endswith("|>")):
        return "marker"
    stripped = text.strip()
    if stripped and stripped.isdigit():
        return "digit"
    if channel == "tool_call":
        return "code"
    if any(ch.isalpha() for ch in text):
        return "word"
    return "other"


def token_classes(routing: Routing, decode: Callable[[int], str] | None) -> list[str]:
    """The class of each token of ``routing`` (``decode``: token id -> text; None: no texts)."""
    kinds = routing.kinds or [""] * len(routing)
    ids = routing.tokens.tolist()
    texts = [decode(t) if decode is not None and t >= 0 else "" for t in ids]
    return [classify_token(text, kind) for text, kind in zip(texts, kinds, strict=True)]


def by_class(routing: Routing, classes: Sequence[str]) -> dict[str, Routing]:
    """The tokens of each class, as one Routing per class (first-seen order)."""
    labels = np.asarray(classes, dtype=object)
    out = {}
    for cls in dict.fromkeys(classes):
        m = labels == cls
        out[cls] = Routing(routing.positions[m], routing.tokens[m], routing.experts[m], routing.weights[m],
                           routing.moe_layer_ids, routing.n_experts)
    return out


@dataclass
class RoutingTally:
    """Expert selections per token class and MoE layer, accumulated over runs."""

    n_experts: int
    layers: list[int]  # the model's MoE layer ids, for labels
    counts: dict[str, Any] = field(default_factory=dict)  # class -> [L, E] int array
    tokens: dict[str, int] = field(default_factory=dict)

    def add(self, result: ThinkResult, decode: Callable[[int], str] | None = None) -> None:
        """Count the chosen path's generated tokens of ``result``."""
        r = result.routing
        if len(r) == 0:
            return
        for cls, part in by_class(r, token_classes(r, decode)).items():
            part.n_experts = max(self.n_experts, part.n_experts)
            self._accumulate(cls, part.expert_counts())
            self.tokens[cls] = self.tokens.get(cls, 0) + len(part)

    def _accumulate(self, cls: str, counts: np.ndarray) -> None:
        """Add ``counts`` [L, E] to the class's; a wider one (an expert id past n_experts) widens all."""
        width = max([counts.shape[1], *(c.shape[1] for c in self.counts.values())])
        self.n_experts = max(self.n_experts, width)
        self.counts = {k: _widen(c, width) for k, c in self.counts.items()}
        self.counts[cls] = _widen(counts, width) + self.counts.get(cls, 0)

    def summary(self, top: int = 3) -> dict[str, Any]:
        if not self.counts:
            return {"n_experts": self.n_experts, "layers": self.layers, "classes": {}, "load_balance": []}
        total = sum(self.counts.values())  # [L, E]
        overall = total / np.maximum(total.sum(axis=1, keepdims=True), 1)  # [L, E] share of selections
        classes = {cls: {"tokens": self.tokens[cls], "layers": self._top(self.counts[cls], overall, top)}
                   for cls in TOKEN_CLASSES if cls in self.counts}
        balance = []
        for li in range(total.shape[0]):
            mean = total[li].sum() / self.n_experts
            balance.append({"layer": self._label(li),
                            "max_over_mean": round(float(total[li].max() / mean), 3) if mean else None,
                            "unused_experts": int((total[li] == 0).sum())})
        return {"n_experts": self.n_experts, "layers": self.layers, "classes": classes,
                "load_balance": balance}

    def _top(self, c: np.ndarray, overall: np.ndarray, top: int) -> list[dict[str, Any]]:
        """Per layer, the ``top`` experts of counts ``c`` [L, E] with their share and lift."""
        share = c / np.maximum(c.sum(axis=1, keepdims=True), 1)  # [L, E]
        per_layer = []
        for li in range(c.shape[0]):
            order = np.argsort(-c[li], kind="stable")[:top]
            per_layer.append({
                "layer": self._label(li),
                "top": [{"expert": int(e), "share": round(float(share[li, e]), 4),
                         # lift: how much more often the class picks it than tokens overall do
                         "lift": round(float(share[li, e] / overall[li, e]), 2)}
                        for e in order if c[li, e] > 0],
            })
        return per_layer

    def _label(self, li: int) -> int:
        return self.layers[li] if li < len(self.layers) else li


def _widen(counts: np.ndarray, width: int) -> np.ndarray:
    """``counts`` [L, E] padded with zero columns to [L, width]."""
    return np.pad(counts, ((0, 0), (0, width - counts.shape[1]))) if counts.shape[1] < width else counts
