"""Loading the default model in the background when the k2nb kernel starts.

The first cell must not wait for the model: the load runs in a daemon thread with torch limited to
the threads it already has, and `%%k2think` / `%k2model` join it (`warm_model()`) only when they need
the model. A failed warm-up is remembered and reported by the first magic that needs the model.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

_lock = threading.Lock()
_thread: threading.Thread | None = None
_state: dict[str, Any] = {"model": None, "error": None, "path": None, "seconds": None}


def default_model_path() -> str | None:
    """The embedded k2-nano if it ships in this install (k2nb/models/k2-nano), else None."""
    env = os.environ.get("K2NB_MODEL")
    if env:
        return env
    try:
        from k2nb.models import default_model_path as shipped  # type: ignore[attr-defined]

        return str(shipped())
    except (ImportError, AttributeError):
        pass
    from pathlib import Path

    folder = Path(__file__).resolve().parent.parent / "models" / "k2-nano"
    return str(folder) if (folder / "config.json").exists() else None


def start(path: str | None = None, loader: Callable[[str], Any] | None = None) -> bool:
    """Start loading `path` (default: the embedded model) in the background; False if nothing to load."""
    global _thread
    path = path or default_model_path()
    if path is None:
        return False
    with _lock:
        if _thread is not None:
            return True
        _state["path"] = path

        def run() -> None:
            t0 = time.monotonic()
            try:
                if loader is not None:
                    model = loader(path)
                else:
                    from k2nb.engine import load_model

                    model = load_model(path)
                _state["model"] = model
            except BaseException as exc:  # noqa: BLE001 - reported by the first magic that needs it
                _state["error"] = exc
            finally:
                _state["seconds"] = time.monotonic() - t0

        _thread = threading.Thread(target=run, name="k2nb-warm", daemon=True)
        _thread.start()
    return True


def warming() -> bool:
    return _thread is not None and _thread.is_alive()


def result(timeout_s: float | None = None) -> tuple[str | None, Any, BaseException | None]:
    """(path, model, error) of the warm-up, waiting up to `timeout_s` for it; model None if none."""
    thread = _thread
    if thread is not None:
        thread.join(timeout_s)
    return _state["path"], _state["model"], _state["error"]


def take() -> tuple[str | None, Any]:
    """Hand the warmed model over (the session owns it from now on)."""
    path, model, error = result()
    if error is not None:
        _state["error"] = None
        raise error
    _state["model"] = None
    return path, model


def reset() -> None:
    """Forget the warm-up (tests)."""
    global _thread
    with _lock:
        _thread = None
        _state.update(model=None, error=None, path=None, seconds=None)
