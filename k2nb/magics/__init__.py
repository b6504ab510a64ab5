"""k2nb in IPython / Jupyter: `%load_ext k2nb` (or the "Python 3 (k2nb)" kernel) loads this.

It registers the cell channel to the JupyterLab extension (tool calls as real cells) and the magics.
Loading is cheap (no torch): the agent and the engine are imported when a magic first needs them.
"""

from __future__ import annotations

import os
from typing import Any

from k2nb.magics.cells import CellChannel, channel, current_cell_id

_LAZY = {
    "K2Magics": "k2nb.magics.magics",
    "K2State": "k2nb.magics.magics",
    "state": "k2nb.magics.magics",
    "K2Result": "k2nb.magics.result",
    "NotebookExecutor": "k2nb.magics.executor",
    "run_tool_calls": "k2nb.magics.session",
}

__all__ = [
    "CellChannel",
    "channel",
    "current_cell_id",
    "load_ipython_extension",
    "unload_ipython_extension",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'k2nb.magics' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    from k2nb.magics.magics import register_magics

    channel().register()
    register_magics(ipython)
    if os.environ.get("K2NB_WARM") == "1":  # set by the k2nb kernelspec: load the model meanwhile
        from k2nb.kernels import warm

        warm.start()


def unload_ipython_extension(ipython: Any) -> None:
    return None  # the magics stay registered; re-loading replaces them
