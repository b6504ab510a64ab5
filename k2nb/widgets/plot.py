"""Static figures of a run (matplotlib): routing heatmaps, expert load, the reasoning tree.

They are what nbconvert and GitHub show in place of the interactive widgets, and are useful on their
own (papers, slides, a terminal with no front end). matplotlib is imported on first use and figures
are drawn on the Agg canvas without pyplot, so nothing here opens a window, touches global state or
needs a display; the returned figures still show themselves in a notebook (``_repr_png_``).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from k2nb.agent.verdict import summary
from k2nb.widgets.data import (
    CHANNEL_COLORS,
    CHANNEL_LABELS,
    CHANNELS,
    KIND_COLORS,
    check_rows,
    node_label,
    selection_stats,
    superseded_nodes,
    token_channels,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from k2nb.agent.trajectory import Trajectory
    from k2nb.routing import Routing

__all__ = ["expert_load", "figure_png", "routing_heatmap", "scaling_curve", "trajectory_tree"]

Span = int | tuple[int, int] | None

STATUS_GLYPH = {"running": "…", "done": "✓", "failed": "✗", "cancelled": "⊘", "rolled_back": "↺"}
CHECK_GLYPH = {"passed": "✓", "failed": "✗", "pending": "…"}
CHECK_COLORS = {"passed": "#4a8a8e", "failed": "#d6453d", "pending": "#e0912f", "none": "#8c96a3"}


def _figure(width: float, height: float, layout: str | None = "constrained") -> Figure:
    """A pyplot-free figure on the Agg canvas that renders itself as PNG in IPython."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    class K2Figure(Figure):
        def _repr_png_(self) -> bytes:
            return figure_png(self)

    fig = K2Figure(figsize=(width, height), dpi=100, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


def _as_range(token: Span, n: int, n_prompt: int) -> tuple[int, int]:
    if token is None:  # the generated part, the model's own work, else all of it
        return (n_prompt, n) if n_prompt < n else (0, n)
    if isinstance(token, (int, np.integer)):
        return int(token), int(token) + 1
    a, b = int(token[0]), int(token[1])
    return a, b


def routing_heatmap(
    trace: Routing,
    token: Span = None,
    *,
    trajectory: Trajectory | None = None,
    mode: str = "weight",
    title: str | None = None,
) -> Figure:
    """Layers × experts routing of one token (``token=i``) or a span (``token=(start, end)``, trace
    indices) of a trace; by default the generated tokens. ``mode`` "weight" shows the mean routing
    weight per token, "load" the share of tokens routed to each expert. A bar per layer gives its
    balance (max ÷ mean load) and a strip on top the channel of every token, the selection boxed."""
    trace = trace.dense()
    from matplotlib.colors import PowerNorm
    from matplotlib.patches import Rectangle

    T, L, E = len(trace), len(trace.moe_layer_ids), trace.n_experts
    a, b = _as_range(token, T, trace.n_prompt)
    if not (0 <= a < b <= T):
        raise ValueError(f"token span [{a}, {b}) is outside the trace's {T} tokens")
    st = selection_stats(trace, a, b)
    vals = st["weight"] if mode == "weight" else st["load"] / max(b - a, 1)  # [L, E]
    fig = _figure(10.5, 1.6 + min(7.0, 0.11 * L + 1.2))
    gs = fig.add_gridspec(2, 2, width_ratios=[8, 1.1], height_ratios=[1, 14])
    ax_strip = fig.add_subplot(gs[0, 0])
    ax = fig.add_subplot(gs[1, 0])
    ax_bal = fig.add_subplot(gs[1, 1], sharey=ax)

    tc = token_channels(T, trace.start, trace.n_prompt, trajectory, trace.tokens)
    rgb = np.array([_hex_rgb(CHANNEL_COLORS[c]) for c in CHANNELS])[tc.channels][None]  # [1, T, 3]
    ax_strip.imshow(rgb, aspect="auto", interpolation="nearest", extent=(0, T, 0, 1))
    ax_strip.add_patch(Rectangle((a, 0), b - a, 1, fill=False, lw=1.6, ec="black"))
    ax_strip.set_yticks([])
    ax_strip.set_xlim(0, T)
    ax_strip.tick_params(labelsize=7, length=2, pad=1)
    present = [c for i, c in enumerate(CHANNELS) if (tc.channels == i).any()]
    handles = [Rectangle((0, 0), 1, 1, color=CHANNEL_COLORS[c]) for c in present]
    ax_strip.legend(handles, [CHANNEL_LABELS[c] for c in present], loc="lower left",
                    bbox_to_anchor=(0, 1.02), ncol=len(present), fontsize=7, frameon=False,
                    handlelength=1, handleheight=1, borderaxespad=0, columnspacing=1)

    masked = np.ma.masked_less_equal(vals, 0)
    cmap = _cmap()
    im = ax.imshow(masked, aspect="auto", interpolation="nearest", cmap=cmap,
                   norm=PowerNorm(0.5, vmin=0, vmax=max(float(vals.max()), 1e-9)))
    ax.set_facecolor("#eeeeee")
    ax.set_xlabel("expert")
    ax.set_ylabel("MoE layer")
    step = max(1, L // 12)
    ax.set_yticks(range(0, L, step), [str(trace.moe_layer_ids[i]) for i in range(0, L, step)])
    ax.tick_params(labelsize=7)
    vmax = max(float(vals.max()), 1e-9)
    cb = fig.colorbar(im, ax=ax, location="bottom", shrink=0.35, aspect=30, pad=0.02,
                      ticks=[vmax * f for f in (0, 1 / 16, 1 / 4, 9 / 16, 1)])  # even in sqrt space
    cb.ax.xaxis.set_major_formatter("{x:.3g}")
    cb.set_label("mean routing weight per token" if mode == "weight" else "share of tokens", fontsize=8)
    cb.ax.tick_params(labelsize=7)

    bal = st["balance"]
    colors = ["#3ea64f" if v < 1.5 else "#e0912f" if v < 3 else "#d6453d" for v in bal]
    ax_bal.barh(range(L), bal, color=colors, height=0.8)
    ax_bal.axvline(1.0, color="#555", lw=0.8, ls=":")
    ax_bal.set_xlabel("max/mean", fontsize=8)
    ax_bal.tick_params(labelsize=7, labelleft=False)
    ax_bal.set_xlim(0, max(2.0, float(bal.max()) * 1.05))

    p0 = trace.start
    what = f"token {p0 + a}" if b - a == 1 else f"tokens {p0 + a}–{p0 + b - 1} ({b - a})"
    fig.suptitle(title or f"Expert routing · {what} · {L} layers × {E} experts, top-{trace.top_k}",
                 fontsize=10, x=0.01, ha="left")
    return fig


def expert_load(trace: Routing, *, title: str | None = None) -> Figure:
    """Load of every expert in every MoE layer over the whole trace, relative to the layer's mean
    (1 = its fair share), and each layer's balance (max ÷ mean)."""
    from matplotlib.colors import TwoSlopeNorm

    counts = trace.expert_counts()  # [L, E]
    L, E = counts.shape
    mean = counts.mean(axis=1, keepdims=True)
    rel = np.where(mean > 0, counts / np.maximum(mean, 1e-12), 0.0)
    fig = _figure(10.5, 1.2 + min(7.0, 0.11 * L + 1.2))
    gs = fig.add_gridspec(1, 2, width_ratios=[8, 1.3])
    ax = fig.add_subplot(gs[0, 0])
    ax_bal = fig.add_subplot(gs[0, 1], sharey=ax)
    vmax = max(2.0, float(rel.max()))
    im = ax.imshow(rel, aspect="auto", interpolation="nearest", cmap="RdBu_r",
                   norm=TwoSlopeNorm(vcenter=1.0, vmin=0.0, vmax=vmax))
    ax.set_xlabel("expert")
    ax.set_ylabel("MoE layer")
    step = max(1, L // 12)
    ax.set_yticks(range(0, L, step), [str(trace.moe_layer_ids[i]) for i in range(0, L, step)])
    ax.tick_params(labelsize=7)
    cb = fig.colorbar(im, ax=ax, location="bottom", shrink=0.35, aspect=30, pad=0.02)
    cb.set_label("load ÷ layer mean (1 = fair share)", fontsize=8)
    cb.ax.tick_params(labelsize=7)
    bal = trace.load_balance()
    ax_bal.plot(bal, range(L), marker="o", ms=2.5, lw=1, color="#444")
    ax_bal.axvline(1.0, color="#555", lw=0.8, ls=":")
    ax_bal.set_xlabel("max/mean", fontsize=8)
    ax_bal.tick_params(labelsize=7, labelleft=False)
    ax_bal.set_xlim(0, max(2.0, float(bal.max()) * 1.05) if len(bal) else 2.0)
    fig.suptitle(title or f"Expert load · {len(trace)} tokens · {L} layers × {E} experts",
                 fontsize=10, x=0.01, ha="left")
    return fig


def trajectory_tree(trajectory: Trajectory, *, max_rows: int = 60, title: str | None = None) -> Figure:
    """The reasoning tree as an indented, colour-coded outline with status and checks."""
    rows: list[tuple[int, Any]] = []
    depth: dict[str, int] = {}
    for node in trajectory.walk():
        depth[node.id] = 0 if node.parent is None else depth[node.parent] + 1
        rows.append((depth[node.id], node))
    hidden = max(0, len(rows) - max_rows)
    rows = rows[:max_rows]
    gone = superseded_nodes(trajectory)
    checks = check_rows(trajectory)
    n_lines = len(rows) + (1 if hidden else 0)
    fig = _figure(9.0, 0.6 + 0.24 * (n_lines + 1), layout=None)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    ax.set_xlim(0, 100)
    ax.set_ylim(n_lines + 1.2, -0.2)
    head = title or (f"Reasoning tree · {len(trajectory.nodes)} nodes · {len(checks)} checks · "
                     f"{summary(trajectory).headline}")
    ax.text(1, 0.4, head, fontsize=10, fontweight="bold", va="center")
    for i, (d, node) in enumerate(rows):
        y = i + 1.4
        x = 1.5 + 2.6 * d
        color = KIND_COLORS.get(node.kind, "#555")
        alpha = 0.45 if node.id in gone else 1.0
        kind = node.kind.replace("_", " ")
        ax.text(x, y, f" {kind} ", fontsize=7.5, va="center", color="white",
                alpha=alpha, bbox={"boxstyle": "round,pad=0.2", "fc": color, "ec": "none", "alpha": alpha})
        glyph = STATUS_GLYPH.get(node.status, "")
        label = node_label(node)
        label = label[:90] + ("…" if len(label) > 90 else "")
        extra = f"  [{node.n_tokens} tok]" if node.n_tokens else ""
        cs = trajectory.checks_for(node)
        marks = " ".join(CHECK_GLYPH.get(c.status, "?") + c.name for c in cs)
        ax.text(x + 9.6, y, f"{glyph} {label}{extra}", fontsize=8, va="center",
                color="#222", alpha=alpha, family="DejaVu Sans")
        if marks:
            ax.text(99, y, marks[:40], fontsize=7.5, va="center", ha="right",
                    color=CHECK_COLORS["failed" if any(c.status == "failed" for c in cs) else "passed"])
    if hidden:
        ax.text(1.5, len(rows) + 1.4, f"… {hidden} more nodes", fontsize=8, va="center", color="#666")
    return fig


def scaling_curve(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    xlabel: str = "parallel paths",
    ylabel: str = "accuracy",
    title: str | None = None,
    logx: bool = True,
) -> Figure:
    """Test-time scaling: one line per series, ``{"name": (budgets, scores)}``."""
    fig = _figure(6.0, 3.8)
    ax = fig.add_subplot()
    for name, (x, y) in series.items():
        ax.plot(list(x), list(y), marker="o", lw=1.5, label=name)
    if logx:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend(frameon=False)
    ax.set_title(title or f"{ylabel} vs {xlabel}", fontsize=10, loc="left")
    return fig


def _hex_rgb(c: str) -> tuple[float, float, float]:
    c = c.lstrip("#")
    return tuple(int(c[i : i + 2], 16) / 255 for i in (0, 2, 4))  # type: ignore[return-value]


def _cmap() -> Any:
    from matplotlib import colormaps

    return colormaps["viridis"]
