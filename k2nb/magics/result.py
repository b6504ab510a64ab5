"""`K2Result`: what `%%k2think` returns (so `_` is the run): answer, trajectory, routing, tool cells."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from k2nb.agent.trajectory import Trajectory


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
    def routing(self) -> Any:
        """The chosen path's per-token routing (`RunRouting`: positions, tokens, experts, weights)."""
        if self.think is not None:
            return self.think.routing
        from k2nb.agent.loop import collect_routing

        return collect_routing(self.trajectory, self.trajectory.root)

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

    def context_routing(self) -> Any:
        """The routing of the prompt tokens the chosen path read (`RunRouting`): the question and the
        tool results fed back, where the backend reported it (the engine does)."""
        from k2nb.agent.loop import collect_routing

        under = self.think.paths[self.think.chosen].node if self.think is not None else self.trajectory.root
        return collect_routing(self.trajectory, under, context=True)

    def routing_trace(self) -> Any:
        """The chosen path's routing as an engine `RoutingTrace` over its positions, for the heatmap:
        the tokens it generated and the prompt tokens it read (question, tool results fed back).
        Positions with neither (a prompt the backend did not report) carry weight 0 and token id
        UNTRACED_TOKEN (shown as "·" in the prompt channel)."""
        gen, ctx = self.routing, self.context_routing()
        parts = [r for r in (ctx, gen) if len(r)]  # generated last: it wins a shared position
        if not parts:
            return None
        import torch

        from k2nb.engine.trace import RoutingTrace
        from k2nb.widgets.data import UNTRACED_TOKEN

        positions = np.concatenate([r.positions for r in parts])
        start, end = int(positions.min()), int(positions.max()) + 1
        n, (n_layers, top_k) = end - start, parts[0].experts.shape[1:]
        experts = np.zeros((n, n_layers, top_k), dtype=np.int32)
        weights = np.zeros((n, n_layers, top_k), dtype=np.float32)
        tokens = np.full(n, UNTRACED_TOKEN, dtype=np.int64)
        for r in parts:
            idx = r.positions - start
            experts[idx], weights[idx], tokens[idx] = r.experts, r.weights, r.tokens
        n_experts = getattr(getattr(self.model, "config", None), "n_routed_experts", None)
        n_experts = int(n_experts or int(max(r.experts.max() for r in parts)) + 1)
        layer_ids = list(getattr(getattr(self.model, "config", None), "moe_layer_ids", range(n_layers)))
        trace = RoutingTrace(layer_ids[:n_layers], n_experts, int(top_k), start=start)
        trace.append(torch.from_numpy(experts), torch.from_numpy(weights), tokens.tolist())
        return trace

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
        return Dashboard(self.trajectory, self.routing_trace(), self.tokenizer, live=False)

    def summary(self) -> str:
        checks = self.checks
        passed = sum(c.status == "passed" for c in checks)
        ans = self.answer
        ans_s = "None" if ans is None else repr(ans if len(ans) <= 60 else ans[:57] + "...")
        return (
            f"K2Result(answer={ans_s}, end_reason={self.end_reason!r}, "
            f"{len(self.tool_calls)} tool call(s), {passed}/{len(checks)} checks passed)"
        )

    def __repr__(self) -> str:
        return self.summary()
