"""`RoutingHeatmap`: which experts each token was routed to, layers × experts, drawn on a canvas.

Everything is drawn in the browser from two compact buffers sent once (expert ids as uint16 and
weights quantised to uint8, ``[T, L, k]``): picking a token, a span or the aggregate view never goes
back to the kernel, so the view stays responsive at K2 scale and while a cell is running.
"""

from __future__ import annotations

import pathlib
from typing import TYPE_CHECKING, Any

import anywidget
import numpy as np
import traitlets

from k2nb.widgets.data import (
    CHANNEL_COLORS,
    CHANNEL_LABELS,
    CHANNELS,
    TokenDecoder,
    pack_routing,
    subtree_spans,
    token_channels,
    token_texts,
)

if TYPE_CHECKING:
    from k2nb.agent.trajectory import Node, Trajectory
    from k2nb.routing import Routing

_STATIC = pathlib.Path(__file__).parent / "static"


class RoutingHeatmap(anywidget.AnyWidget):
    """Layers × experts routing of a selected token or span of a `Routing` record.

    ``trajectory`` (optional) colours each token by the node that produced it (thinking, tool call,
    answer, ...); ``tokenizer`` (optional, anything with ``decode([id])``) shows token text instead
    of ids. ``selection`` is ``[start, end)`` in token *positions* (``trace.start + index``), the
    coordinates of `Node.span`, so a tree can drive it directly.
    """

    _esm = _STATIC / "heatmap.js"
    _css = _STATIC / "heatmap.css"

    # routing, [T, L, k] row-major: uint16 LE ids and uint8 weights (weight = q * weight_scale)
    experts = traitlets.Bytes(b"").tag(sync=True)
    weights = traitlets.Bytes(b"").tag(sync=True)
    weight_scale = traitlets.Float(1.0).tag(sync=True)
    n_tokens = traitlets.Int(0).tag(sync=True)
    n_layers = traitlets.Int(0).tag(sync=True)
    top_k = traitlets.Int(0).tag(sync=True)
    n_experts = traitlets.Int(0).tag(sync=True)
    layer_ids = traitlets.List(traitlets.Int()).tag(sync=True)
    start = traitlets.Int(0).tag(sync=True)  # position of token 0
    n_prompt = traitlets.Int(0).tag(sync=True)
    # tokens: ids (int32 LE bytes), text (only with a tokenizer), channel (uint8) and owning node
    token_ids = traitlets.Bytes(b"").tag(sync=True)
    token_text = traitlets.List(traitlets.Unicode()).tag(sync=True)
    channels = traitlets.Bytes(b"").tag(sync=True)
    token_node = traitlets.Bytes(b"").tag(sync=True)  # int32 LE index into node_ids, -1 = none
    node_ids = traitlets.List(traitlets.Unicode()).tag(sync=True)
    node_kinds = traitlets.List(traitlets.Unicode()).tag(sync=True)
    channel_names = traitlets.List(traitlets.Unicode(), list(CHANNELS)).tag(sync=True)
    channel_labels = traitlets.List(traitlets.Unicode(), [CHANNEL_LABELS[c] for c in CHANNELS]).tag(sync=True)
    channel_colors = traitlets.List(traitlets.Unicode(), [CHANNEL_COLORS[c] for c in CHANNELS]).tag(sync=True)
    # view state, changed by either side
    selection = traitlets.List(traitlets.Int(), [0, 0]).tag(sync=True)
    mode = traitlets.Unicode("weight").tag(sync=True)  # "weight": mean routing weight, "load": token share
    title = traitlets.Unicode("Expert routing").tag(sync=True)

    def __init__(
        self,
        trace: Routing,
        tokenizer: TokenDecoder | None = None,
        trajectory: Trajectory | None = None,
        *,
        static_fallback: bool = True,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self._trace = trace
        self._tokenizer = tokenizer
        self._trajectory = trajectory
        self.static_fallback = static_fallback
        self.set_trace(trace, trajectory=trajectory)

    # ---- data -----------------------------------------------------------------------------------
    @property
    def trace(self) -> Routing:
        return self._trace

    @property
    def trajectory(self) -> Trajectory | None:
        return self._trajectory

    def set_trace(self, trace: Routing, trajectory: Trajectory | None = None) -> None:
        """Show another (or a grown) record; the selection is kept when it still fits."""
        trace = trace.dense()
        self._trace = trace
        if trajectory is not None:
            self._trajectory = trajectory
        e, w = trace.experts, trace.weights  # [T, L, k] int32, float32
        T = e.shape[0]
        payload = pack_routing(e, w, trace.n_experts)
        ids = trace.tokens
        tc = token_channels(T, trace.start, trace.n_prompt, self._trajectory, ids)
        kinds = [self._trajectory.nodes[n].kind for n in tc.node_ids] if self._trajectory else []
        old = list(self.selection)
        with self.hold_sync():
            self.experts = payload.experts
            self.weights = payload.weights
            self.weight_scale = payload.weight_scale
            self.n_tokens, self.n_layers, self.top_k = T, e.shape[1], e.shape[2]
            self.n_experts = trace.n_experts
            self.layer_ids = [int(i) for i in trace.moe_layer_ids]
            self.start = trace.start
            self.n_prompt = trace.n_prompt
            self.token_ids = np.asarray(ids if len(ids) == T else np.full(T, -1), dtype="<i4").tobytes()
            self.token_text = token_texts(ids, self._tokenizer) if len(ids) == T else []
            self.channels = tc.channels.tobytes()
            self.token_node = tc.node_index.astype("<i4").tobytes()
            self.node_ids = tc.node_ids
            self.node_kinds = kinds
            lo, hi = trace.start, trace.start + T
            if lo <= old[0] < old[1] <= hi:
                self.selection = old
            else:  # default: the generated tokens (what the model did), else everything
                first = trace.start + (trace.n_prompt if trace.n_prompt < T else 0)
                self.selection = [first, hi]

    @property
    def payload_nbytes(self) -> int:
        """Bytes of the binary buffers this widget sends (routing, token ids, channels, owners)."""
        bufs = (self.experts, self.weights, self.token_ids, self.channels, self.token_node)
        return sum(len(b) for b in bufs)

    # ---- selection ------------------------------------------------------------------------------
    def select(self, start: int, end: int | None = None) -> None:
        """Highlight tokens at positions ``[start, end)`` (one token when `end` is omitted), clipped
        to the trace."""
        end = start + 1 if end is None else end
        lo, hi = self.start, self.start + self.n_tokens
        a, b = max(lo, min(start, end)), min(hi, max(start, end))
        if a >= b:
            raise ValueError(f"span [{start}, {end}) does not overlap the trace's positions [{lo}, {hi})")
        self.selection = [a, b]

    def select_node(self, node: str | Node) -> None:
        """Highlight the tokens of a trajectory node (containers: all their descendants' tokens)."""
        if self._trajectory is None:
            raise ValueError("this heatmap has no trajectory; pass trajectory= to select nodes")
        nid = node if isinstance(node, str) else node.id
        span = subtree_spans(self._trajectory).get(nid)
        if span is None:
            raise ValueError(f"node {nid!r} holds no tokens")
        self.select(*span)

    @property
    def selected_indices(self) -> tuple[int, int]:
        """The selection as indices into the trace (``selection - start``)."""
        return self.selection[0] - self.start, self.selection[1] - self.start

    # ---- static fallback ------------------------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict, dict] | None:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None or not self.static_fallback:
            return bundle
        data, meta = bundle
        from k2nb.widgets import plot

        a, b = self.selected_indices
        fig = plot.routing_heatmap(self._trace, token=(a, b), trajectory=self._trajectory)
        data["image/png"] = plot.figure_png(fig)
        return data, meta

    def __repr__(self) -> str:
        return (f"RoutingHeatmap(tokens={self.n_tokens}, layers={self.n_layers}, "
                f"experts={self.n_experts}, top_k={self.top_k}, selection={list(self.selection)})")
