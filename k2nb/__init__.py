"""k2nb: Kimi-K2-architecture thinking MoE models inside Jupyter.

Importing ``k2nb`` is cheap: torch and the engine load on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_model": ("k2nb.engine", "load_model"),
    "think": ("k2nb.agent", "think"),
    "tool": ("k2nb.agent", "tool"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'k2nb' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext k2nb`: the magics and the notebook's cell channel (imported only here: IPython is
    not a dependency of the engine)."""
    from k2nb.magics import load_ipython_extension as load

    load(ipython)
