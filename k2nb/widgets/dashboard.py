"""`Dashboard`: the reasoning tree, the verification panel and the routing heatmap of one run, linked."""

from __future__ import annotations

import base64
import html
from typing import TYPE_CHECKING, Any

import ipywidgets

from k2nb.widgets.data import TokenDecoder
from k2nb.widgets.heatmap import RoutingHeatmap
from k2nb.widgets.tree import ReasoningTree, link
from k2nb.widgets.verification import VerificationPanel, checks_html

if TYPE_CHECKING:
    from k2nb.agent.trajectory import Trajectory
    from k2nb.routing import Routing


NO_ROUTING = "Expert routing: this backend reports no routing (a served model without routed-expert reports)."
SERVER_ROUTING = ("Expert routing as the server reported it: the chosen experts only, without their "
                  "weights (each counts 1/top_k here).")


def _server_note(trajectory: Trajectory) -> str | None:
    return SERVER_ROUTING if trajectory.meta.get("routing_reported_by") == "server" else None


class Dashboard(ipywidgets.VBox):
    """Tree and checks side by side above the heatmap. Choosing a node (in the tree, or a check's
    node in the panel) highlights its tokens in the heatmap; the links run in the browser, so they
    work while the kernel is busy. Without routing (a served model that reports none) the heatmap's
    place says so."""

    def __init__(
        self,
        trajectory: Trajectory,
        trace: Routing | None = None,
        tokenizer: TokenDecoder | None = None,
        *,
        live: bool = True,
        static_fallback: bool = True,
        **kwargs: Any,
    ):
        self.trajectory = trajectory
        self.trace = trace
        self.static_fallback = static_fallback
        self.tree = ReasoningTree(trajectory, live=live, static_fallback=False)
        self.panel = VerificationPanel(trajectory, live=live, static_fallback=False)
        self.heatmap = (
            RoutingHeatmap(trace, tokenizer=tokenizer, trajectory=trajectory, static_fallback=False)
            if trace is not None else None
        )
        self.tree.layout = ipywidgets.Layout(flex="3 1 0%", min_width="300px", margin="0 8px 0 0")
        self.panel.layout = ipywidgets.Layout(flex="2 1 0%", min_width="240px")
        row = ipywidgets.Layout(width="100%", margin="0 0 8px 0")
        top = ipywidgets.HBox([self.tree, self.panel], layout=row)
        children: list[ipywidgets.Widget] = [top]
        # kept on the instance: a Link widget that is garbage-collected stops linking
        self.links = [ipywidgets.jslink((self.panel, "selected_node"), (self.tree, "selected_node"))]
        if self.heatmap is not None:
            if _server_note(trajectory):
                children.append(ipywidgets.HTML(f"<div class='k2nb-server-routing' style='color:#777'>"
                                                f"{SERVER_ROUTING}</div>"))
            children.append(self.heatmap)
            self.links.append(link(self.tree, self.heatmap))
        else:
            note = f"<div class='k2nb-no-routing' style='color:#777'>{NO_ROUTING}</div>"
            children.append(ipywidgets.HTML(note))
        super().__init__(children, layout=ipywidgets.Layout(width="100%"), **kwargs)
        self.add_class("k2nb-dashboard")

    def flush(self) -> None:
        """Send the tree's and panel's pending live updates now."""
        self.tree.flush()
        self.panel.flush()

    def close(self) -> None:
        for w in (*self.links, self.tree, self.panel, self.heatmap):
            if w is not None:
                w.close()
        super().close()

    def to_html(self) -> str:
        """A static page of the run: the tree and heatmap as PNGs, the checks as a table."""
        from k2nb.widgets import plot

        def img(fig: Any, alt: str) -> str:
            b64 = base64.b64encode(plot.figure_png(fig)).decode("ascii")
            return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}" style="max-width:100%"/>'

        parts = [img(plot.trajectory_tree(self.trajectory), "reasoning tree"), checks_html(self.trajectory)]
        if self.heatmap is not None and self.trace is not None:
            a, b = self.heatmap.selected_indices
            if _server_note(self.trajectory):
                parts.append(f"<p class='k2nb-server-routing'>{SERVER_ROUTING}</p>")
            parts.append(img(plot.routing_heatmap(self.trace, token=(a, b), trajectory=self.trajectory),
                             "expert routing heatmap"))
        else:
            parts.append(f"<p class='k2nb-no-routing'>{NO_ROUTING}</p>")
        return "<div>" + "".join(parts) + "</div>"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict | None:
        data = super()._repr_mimebundle_(**kwargs)  # ipywidgets returns the data dict alone
        if data is None or not self.static_fallback:
            return data
        data["text/html"] = self.to_html()
        return data
