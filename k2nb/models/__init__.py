"""Models shipped inside the package. ``k2-nano`` is the default wherever a model is optional."""

from __future__ import annotations

from pathlib import Path

from ..engine.errors import CheckpointError

MODELS_DIR = Path(__file__).parent
DEFAULT_MODEL = "k2-nano"


def model_path(name: str = DEFAULT_MODEL) -> Path:
    """Folder of a shipped model (``config.json`` + ``model.safetensors`` + tokenizer files)."""
    folder = MODELS_DIR / name
    if not (folder / "model.safetensors").is_file():
        shipped = sorted(p.name for p in MODELS_DIR.iterdir() if (p / "model.safetensors").is_file())
        raise CheckpointError(
            f"{folder}: the shipped model {name!r} is not in this installation "
            f"(shipped: {', '.join(shipped) or 'none'}); pass a checkpoint folder instead")
    return folder


def resolve_model_arg(model: object | None) -> object:
    """``None`` → the default shipped model's folder; a known shipped name → its folder; else as given."""
    if model is None:
        return model_path()
    if isinstance(model, str) and (MODELS_DIR / model).is_dir() and not Path(model).exists():
        return model_path(model)
    return model
