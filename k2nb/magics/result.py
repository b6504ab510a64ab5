"""`K2Result`: what `%%k2think` returns (so `_` is the run): answer, trajectory, routing, tool cells."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from k2nb.agent.trajectory import Trajectory
from k2nb.agent.verdict import Summary, summary
from k2nb.routing import Routing


class K2Result:
    """One `%%k2think` run. `think` is the agent's ThinkResult (None when the run was stopped before
    the loop could return one: then the partial trajectory is still here)."""

    def __init__(
        self,
        trajectory: Trajectory,
        think: Any = None,
        *,
        end_reason: str | None = None,
        cells: list[dict[str, Any]] | None = None,
        model: Any = None,
        tokenizer: Any = None,
        cell_mode: str = "none",
        elapsed_s: float = 0.0,
        n_tokens: int = 0,
    ):
        self.trajectory = trajectory
        self.think = think
        self.end_reason = end_reason or (think.end_reason if think is not None else "cancelled")
        self.cells = list(cells or [])  # the tool cells of this run: id, source, outputs, count, metadata
        self.cell_mode = cell_mode  # "cells" (inserted by the extension), "inline" or "none"
        self.model = model
        self.tokenizer = tokenizer
        self.elapsed_s = elapsed_s
        self.n_tokens = n_tokens

    @property
    def answer(self) -> str | None:
        if self.think is not None:
            return self.think.answer
        return self.trajectory.answer  # partial run: the last answer node, if any

    @property
    def withheld(self) -> str | None:
        """The model's answer when its checks failed and the run withheld it (`answer` says so)."""
        return self.think.withheld if self.think is not None else None

    @property
    def routing(self) -> Routing:
        """The routing of the tokens the chosen path generated, each labelled with its node."""
        if self.think is not None:
            return self.think.routing
        return self.trajectory.routing()

    @property
    def error(self) -> str | None:
        """Why the run failed (the last error node's sentence), None unless it ended with an error or
        with a full context ("the context is full (2,040 of 2,048 tokens); start a new conversation")."""
        if self.end_reason not in ("error", "context_full"):
            return None
        errors = [n for n in self.trajectory.walk() if n.kind == "error"]
        return errors[-1].text if errors else "the run failed"

    @property
    def checks(self) -> list[Any]:
        return self.trajectory.checks

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        if self.think is not None:
            return self.think.tool_calls
        return [
            {"id": n.data.get("call_id"), "name": n.data.get("name"), "arguments": n.data.get("arguments")}
            for n in self.trajectory.find("tool_call")
        ]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.think.messages) if self.think is not None else []

    def to_notebook(self) -> Any:
        """The run as an nbformat v4 notebook: thinking as markdown, python calls as code cells with
        their outputs, checks and the answer."""
        return self.trajectory.to_notebook()

    def export(self, path: str | Path) -> Path:
        """Write `to_notebook()` to `path` (.ipynb)."""
        import nbformat

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(self.to_notebook(), str(path))
        return path

    def read_routing(self) -> Routing:
        """The routing of the prompt tokens the chosen path read: the question and the tool results
        fed back, where the backend reported it (the engine does)."""
        under = self.think.paths[self.think.chosen].node if self.think is not None else None
        return self.trajectory.routing(under, context=True)

    def full_routing(self) -> Routing | None:
        """The chosen path's routing over its positions, for the heatmap and the figures: the tokens
        it generated and the prompt tokens it read, dense (a position with neither, e.g. a prompt
        the backend did not report, has token UNTRACED_TOKEN and weight 0). None without routing."""
        parts = [r for r in (self.read_routing(), self.routing) if len(r)]  # generated last: it wins
        if not parts:
            return None
        config = getattr(self.model, "config", None)
        full = Routing.concat(parts).dense()
        if config is not None:
            full.moe_layer_ids = tuple(config.moe_layer_ids)[: full.n_layers]
            full.n_experts = max(full.n_experts, int(config.n_routed_experts))
        return full

    def show(self) -> Any:
        """The dashboard of this run (reasoning tree, checks, routing heatmap), displayed."""
        from IPython.display import display

        view = self.dashboard()
        display(view)
        return None

    def dashboard(self) -> Any:
        """The widgets' Dashboard of this run, or a static summary where ipywidgets is missing."""
        try:
            from k2nb.widgets import Dashboard
        except ImportError:
            return self.summary()
        return Dashboard(self.trajectory, self.full_routing(), self.tokenizer, live=False)

    @property
    def verdict(self) -> Summary:
        """What the run's checks established (`k2nb.agent.verdict`): `.text` is e.g. "4 of 4 checks
        passed" or "checks could not establish anything"; it never says the answer is true."""
        return summary(self.trajectory)

    def summary(self) -> str:
        ans = self.answer
        ans_s = "None" if ans is None else repr(ans if len(ans) <= 60 else ans[:57] + "...")
        return (
            f"K2Result(answer={ans_s}, end_reason={self.end_reason!r}, "
            f"{len(self.tool_calls)} tool call(s), {self.verdict.text})"
        )

    def __repr__(self) -> str:
        return self.summary()
