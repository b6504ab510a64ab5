"""k2nb in IPython / Jupyter: `%load_ext k2nb` (or the "Python 3 (k2nb)" kernel) loads this.

It registers the cell channel to the JupyterLab extension (tool calls as real cells) and the magics.
"""

from __future__ import annotations

import os
from typing import Any

from k2nb.magics.cells import CellChannel, channel, current_cell_id
from k2nb.magics.executor import NotebookExecutor
from k2nb.magics.session import run_tool_calls

__all__ = [
    "CellChannel",
    "NotebookExecutor",
    "channel",
    "current_cell_id",
    "load_ipython_extension",
    "run_tool_calls",
    "unload_ipython_extension",
]

_LOADED: set[int] = set()


def load_ipython_extension(ipython: Any) -> None:
    channel().register()
    if os.environ.get("K2NB_WARM") == "1":  # set by the k2nb kernelspec: load the model meanwhile
        from k2nb.kernels import warm

        warm.start()
    try:
        from k2nb.magics.magics import register_magics
    except ImportError:  # the magics need the agent's loop; the cell channel works without it
        return
    register_magics(ipython)
    _LOADED.add(id(ipython))


def unload_ipython_extension(ipython: Any) -> None:
    _LOADED.discard(id(ipython))
