"""Editing a checkpoint folder in place, for the tests of what the loader refuses."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from safetensors.torch import load_file, save_file


def edit_config(folder: Path, **changes: object) -> None:
    """Set keys of config.json; a value of ``...`` removes the key."""
    p = folder / "config.json"
    d = json.loads(p.read_text())
    for k, v in changes.items():
        if v is ...:
            d.pop(k, None)
        else:
            d[k] = v
    p.write_text(json.dumps(d))


def edit_tensors(folder: Path, fn: Callable[[dict], None]) -> None:
    """Apply `fn` to the tensors of model.safetensors (a dict of name → tensor) and save them."""
    p = folder / "model.safetensors"
    tensors = load_file(p)
    fn(tensors)
    save_file(tensors, p)
