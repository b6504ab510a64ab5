"""The verdict of a run's checks, in words that claim no more than the checks do.

A check that passed established what it says (every number of the answer appears in a tool result,
the model's own check ran, …); it does not make the answer true: a model that misreads the question
can pass them all. So the verdict counts and names — "4 of 4 checks passed", "3 of 5 checks passed;
failed: numbers sourced" — and says when nothing was established: "checks could not establish
anything" when every check is pending (no call succeeded, no verification step was run).

Which checks count: those of the chosen path (once a run has chosen one) and the run's own (paths
agree); a rolled-back attempt's checks are superseded by the retry's. The terminal, `K2Result`, the
widgets and the notebook export all word it through `summary`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from k2nb.agent.trajectory import Check, Trajectory

# passed: every counted check passed; partial: the rest are pending; failed: one failed;
# inconclusive: every check is pending; none: no check ran
STATUSES = ("passed", "partial", "failed", "inconclusive", "none")
NOTHING_ESTABLISHED = "checks could not establish anything"


@dataclass(frozen=True, slots=True)
class Summary:
    """The counted checks of a run, by status."""

    status: str
    passed: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return len(self.passed) + len(self.failed) + len(self.pending)

    @property
    def headline(self) -> str:
        """"4 of 4 checks passed", "checks could not establish anything" or "no checks ran"."""
        if self.status == "none":
            return "no checks ran"
        if self.status == "inconclusive":
            return NOTHING_ESTABLISHED
        noun = "check" if self.total == 1 else "checks"
        return f"{len(self.passed)} of {self.total} {noun} passed"

    @property
    def detail(self) -> str:
        """What failed and what could not be established, by name ("" when nothing needs saying)."""
        parts = []
        if self.failed:
            parts.append("failed: " + ", ".join(dict.fromkeys(self.failed)))
        if self.pending:
            parts.append("not established: " + ", ".join(dict.fromkeys(self.pending)))
        return "; ".join(parts)

    @property
    def text(self) -> str:
        """The verdict in one line: the headline and, where there is one, the detail."""
        return self.headline + (f"; {self.detail}" if self.detail else "")

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "text": self.text, "passed": list(self.passed),
                "failed": list(self.failed), "pending": list(self.pending)}


def summarise(checks: Sequence[Check]) -> Summary:
    """The verdict of these checks (all of them counted)."""
    by: dict[str, list[str]] = {"passed": [], "failed": [], "pending": []}
    for c in checks:
        by.get(c.status, by["pending"]).append(c.name)
    if not checks:
        status = "none"
    elif by["failed"]:
        status = "failed"
    elif not by["passed"]:
        status = "inconclusive"
    elif by["pending"]:
        status = "partial"
    else:
        status = "passed"
    return Summary(status, tuple(by["passed"]), tuple(by["failed"]), tuple(by["pending"]))


def superseded_nodes(trajectory: Trajectory) -> set[str]:
    """Nodes inside a rolled-back attempt (or any rolled-back node): their checks no longer decide
    the run's verdict, the retry's do."""
    out: set[str] = set()
    for node in trajectory.walk():
        if node.status == "rolled_back" or (node.parent is not None and node.parent in out):
            out.add(node.id)
    return out


def other_path_nodes(trajectory: Trajectory) -> set[str]:
    """Nodes of the paths the run did not choose (empty before it chose, or with one path)."""
    chosen = trajectory.meta.get("chosen_path")
    if not chosen:
        return set()
    out: set[str] = set()
    for path in trajectory.find("path"):
        if path.id != chosen:
            out.update(n.id for n in trajectory.walk(path))
    return out


def counted(trajectory: Trajectory) -> list[Check]:
    """The checks the verdict counts: not superseded and not of a path the run did not choose. When
    every check was superseded (the last attempt ran none: its context was full, or it was stopped),
    those of the latest attempt that ran checks: the last word on the run, and it failed."""
    gone = superseded_nodes(trajectory)
    others = other_path_nodes(trajectory)
    mine = [c for c in trajectory.checks if c.node not in others]
    current = [c for c in mine if c.node not in gone]
    if current or not mine:
        return current
    attempt = {c.id: _attempt_of(trajectory, c.node) for c in mine}
    order = {node_id: i for i, node_id in enumerate(trajectory.nodes)}
    last = max(attempt.values(), key=lambda a: order.get(a, -1) if a is not None else -1)
    return [c for c in mine if attempt[c.id] in (last, None)]


def _attempt_of(trajectory: Trajectory, node_id: str | None) -> str | None:
    """The attempt node a check's node lies in (None for the run's own checks, e.g. paths agree)."""
    while node_id is not None:
        node = trajectory.nodes.get(node_id)
        if node is None:
            return None
        if node.kind == "attempt":
            return node.id
        node_id = node.parent
    return None


def summary(trajectory: Trajectory) -> Summary:
    """The run's verdict."""
    return summarise(counted(trajectory))
