"""Notebook views of a run: routing heatmap, reasoning tree, verification panel, dashboard.

Imported lazily, so `k2nb.widgets.data` (numpy only) and `k2nb.widgets.plot` (the static
figures, matplotlib) work without ipywidgets.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "RoutingHeatmap": "k2nb.widgets.heatmap",
    "ReasoningTree": "k2nb.widgets.tree",
    "VerificationPanel": "k2nb.widgets.verification",
    "Dashboard": "k2nb.widgets.dashboard",
    "link": "k2nb.widgets.tree",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'k2nb.widgets' has no attribute {name!r}")
