"""`VerificationPanel`: the run's checks (status, evidence, node) and the verdict, worded by
`k2nb.agent.verdict`: what passed, failed or could not be established, never that the answer is true."""

from __future__ import annotations

import html
import pathlib
from typing import TYPE_CHECKING, Any

import traitlets

from k2nb.agent.verdict import summary
from k2nb.widgets.data import KIND_COLORS, check_rows
from k2nb.widgets.following import TrajectoryWidget

if TYPE_CHECKING:
    from k2nb.agent.trajectory import Trajectory

_STATIC = pathlib.Path(__file__).parent / "static"
_EVENTS = frozenset({"check_added", "check_updated", "node_finished"})  # what can change a verdict


class VerificationPanel(TrajectoryWidget):
    """Every `Check` of a trajectory with its status, evidence and node, and the verdict
    (`k2nb.agent.verdict`: "4 of 4 checks passed"; checks of rolled-back attempts and of paths the
    run did not choose are shown but not counted).

    Live like the tree: it follows the trajectory's check events, throttled. Clicking a check's
    node sets ``selected_node`` (a dashboard links it to the tree)."""

    _esm = _STATIC / "verification.js"
    _css = _STATIC / "verification.css"

    checks = traitlets.List(traitlets.Dict()).tag(sync=True)
    verdict = traitlets.Unicode("none").tag(sync=True)  # k2nb.agent.verdict.STATUSES
    headline = traitlets.Unicode("no checks ran").tag(sync=True)  # "4 of 4 checks passed"
    detail = traitlets.Unicode("").tag(sync=True)  # "failed: …; not established: …"
    answer = traitlets.Unicode("").tag(sync=True)
    selected_node = traitlets.Unicode("").tag(sync=True)
    kind_colors = traitlets.Dict(dict(KIND_COLORS)).tag(sync=True)
    title = traitlets.Unicode("Verification").tag(sync=True)

    events = _EVENTS

    def _push(self) -> None:
        with self._push_lock, self.hold_sync():
            self.checks = check_rows(self._trajectory)
            v = summary(self._trajectory)
            self.verdict, self.headline, self.detail = v.status, v.headline, v.detail
            ans = self._trajectory.answer
            self.answer = "" if ans is None else str(ans)[:2000]

    def to_html(self) -> str:
        """The panel as a plain HTML table: the static fallback for nbconvert and GitHub."""
        return checks_html(self._trajectory)

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict, dict] | None:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None or not self.static_fallback:
            return bundle
        data, meta = bundle
        data["text/html"] = self.to_html()
        return data, meta

    def __repr__(self) -> str:
        return f"VerificationPanel(checks={len(self.checks)}, verdict={self.verdict!r})"


_ICON = {"passed": "✓", "failed": "✗", "pending": "…"}  # a check's status
_VERDICT_ICON = {"passed": "✓", "partial": "✓", "failed": "✗", "inconclusive": "…", "none": "–"}


def checks_html(trajectory: Trajectory) -> str:
    """Checks and verdict as a self-contained HTML table (inline styles only: GitHub strips <style>)."""
    rows = check_rows(trajectory)
    v = summary(trajectory)
    detail = f" ({html.escape(v.detail)})" if v.detail else ""
    head = (f"<p><strong>Checks: {_VERDICT_ICON[v.status]} {html.escape(v.headline)}</strong>{detail}"
            "</p>")
    if not rows:
        return head
    out = [head, "<table>", "<thead><tr><th></th><th>check</th><th>kind</th><th>evidence</th>"
           "<th>node</th></tr></thead><tbody>"]
    for r in rows:
        node = "" if not r["node"] else f"{r['node']} ({r['node_kind']})"
        style = ' style="opacity:0.55"' if r["superseded"] or r["other_path"] else ""
        note = (" <em>(superseded by a retry)</em>" if r["superseded"]
                else " <em>(a path not chosen)</em>" if r["other_path"] else "")
        out.append(
            f"<tr{style}><td>{_ICON.get(r['status'], '')}</td><td>{html.escape(r['name'])}</td>"
            f"<td>{html.escape(r['kind'])}</td><td>{html.escape(r['evidence'])}{note}</td>"
            f"<td>{html.escape(node)}</td></tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)
