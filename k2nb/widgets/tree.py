"""`ReasoningTree`: a Trajectory as a collapsible tree that grows while the run goes on."""

from __future__ import annotations

import pathlib
from typing import TYPE_CHECKING, Any

import ipywidgets
import traitlets

from k2nb.widgets.data import KIND_COLORS, subtree_spans, tree_rows
from k2nb.widgets.following import TrajectoryWidget

if TYPE_CHECKING:
    from k2nb.agent.trajectory import Trajectory
    from k2nb.widgets.heatmap import RoutingHeatmap

_STATIC = pathlib.Path(__file__).parent / "static"
_DETAIL_LIMIT = 20_000  # characters of a selected node's text sent to the detail pane


class ReasoningTree(TrajectoryWidget):
    """The nodes of a `Trajectory` (thinking, tool calls, observations, verification, answers,
    errors; paths and rollback attempts as branches), one compact row per node.

    With ``live=True`` it subscribes to the trajectory and re-sends the rows at most every
    ``throttle_s`` seconds (a token arrives as a ``node_updated`` event; sending each would flood the
    front end and slow generation). Clicking a node sets ``selected_node`` and ``selected_span``
    (the node's token positions, a container's covering all its descendants).
    """

    _esm = _STATIC / "tree.js"
    _css = _STATIC / "tree.css"

    nodes = traitlets.List(traitlets.Dict()).tag(sync=True)
    version = traitlets.Int(0).tag(sync=True)  # bumps on every push, so a view can tell it is live
    kind_colors = traitlets.Dict(dict(KIND_COLORS)).tag(sync=True)
    selected_node = traitlets.Unicode("").tag(sync=True)
    selected_span = traitlets.List(traitlets.Int(), []).tag(sync=True)
    detail = traitlets.Dict().tag(sync=True)  # the selected node's full text and data
    # ids of the nodes whose tokens the linked heatmap's trace holds; None = no trace known. A node
    # outside it (another path) gets an empty selected_span rather than someone else's positions.
    traced_nodes = traitlets.List(traitlets.Unicode(), None, allow_none=True).tag(sync=True)
    title = traitlets.Unicode("Reasoning").tag(sync=True)

    def _push(self) -> None:
        with self._push_lock:
            rows = tree_rows(self._trajectory)
            if self.traced_nodes is not None:
                traced = _traced(self._trajectory, set(self.traced_nodes))
                for r in rows:
                    r["traced"] = r["id"] in traced
            with self.hold_sync():
                self.nodes = rows
                self.version += 1
                if self.selected_node:
                    self._update_selection(self.selected_node)

    @traitlets.observe("selected_node")
    def _selected(self, change: dict[str, Any]) -> None:
        self._update_selection(change["new"])

    def _update_selection(self, nid: str) -> None:
        node = self._trajectory.nodes.get(nid)
        if node is None:
            self.selected_span, self.detail = [], {}
            return
        span = subtree_spans(self._trajectory).get(nid)
        if self.traced_nodes is not None and nid not in _traced(self._trajectory, set(self.traced_nodes)):
            span = None
        self.selected_span = [] if span is None else [span[0], span[1]]
        text = node.text
        self.detail = {
            "id": node.id,
            "kind": node.kind,
            "status": node.status,
            "text": text[:_DETAIL_LIMIT] + ("…" if len(text) > _DETAIL_LIMIT else ""),
            "data": {k: _brief(v) for k, v in node.data.items()},
        }

    @traitlets.observe("traced_nodes")
    def _traced_changed(self, change: dict[str, Any]) -> None:
        self._push()

    def select(self, node_id: str) -> None:
        if node_id not in self._trajectory.nodes:
            raise KeyError(f"trajectory has no node {node_id!r}")
        self.selected_node = node_id

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict, dict] | None:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None or not self.static_fallback:
            return bundle
        data, meta = bundle
        from k2nb.widgets import plot

        data["image/png"] = plot.figure_png(plot.trajectory_tree(self._trajectory))
        return data, meta

    def __repr__(self) -> str:
        return f"ReasoningTree({self._trajectory!r}, selected_node={self.selected_node!r})"


def _brief(value: Any, limit: int = 2000) -> Any:
    """A node's data value, JSON-safe and short enough to show."""
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _traced(trajectory: Trajectory, owners: set[str]) -> set[str]:
    """Nodes that own tokens of the trace, and every ancestor of one."""
    out = set(owners)
    for nid in owners:
        if nid in trajectory.nodes:
            out.update(a.id for a in trajectory.ancestors(nid))
    return out


def link(tree: ReasoningTree, heatmap: RoutingHeatmap) -> ipywidgets.widgets.Link:
    """Choosing a node in `tree` highlights its tokens in `heatmap`.

    The link runs in the browser (``jsdlink``), so it works while a cell keeps the kernel busy and
    in exported HTML; a selection made from Python reaches the heatmap through the same path once
    a front end shows both. The tree learns which nodes the heatmap's trace holds, so a node of
    another path (same positions, other tokens) highlights nothing instead of the wrong tokens."""
    tree.traced_nodes = list(heatmap.node_ids) if heatmap.trajectory is not None else None
    return ipywidgets.jsdlink((tree, "selected_span"), (heatmap, "selection"))
