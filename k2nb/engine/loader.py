"""Load (and save) K2-family checkpoints in Hugging Face layout.

The model is built on the meta device (no random weights are ever allocated), every tensor is read
memory-mapped from safetensors, checked against the config, converted once to the target dtype and
device, and assigned. Routed experts are stacked per layer while loading. Any problem raises a
``CheckpointError`` naming the file and the tensor, and nothing half-built is returned.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from . import names
from .config import ModelConfig
from .errors import CheckpointError, K2nbError
from .model import K2Model

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
           "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
_FP8_DTYPES = tuple(getattr(torch, n) for n in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz",
                                                 "float8_e5m2fnuz", "float8_e8m0fnu") if hasattr(torch, n))
_FP8_SCALE = "_scale_inv"  # DeepSeek's FP8 layout: `<name>_scale_inv` holds the block scales of `<name>`


def resolve_dtype(dtype: torch.dtype | str | None, device: torch.device) -> torch.dtype:
    """float32 on CPU and bfloat16 on CUDA unless asked otherwise."""
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in _DTYPES.values():
            raise K2nbError(f"dtype {dtype} is not supported; use float32, bfloat16 or float16")
        return dtype
    if dtype not in _DTYPES:
        raise K2nbError(f"dtype {dtype!r} is not supported; use one of {', '.join(sorted(_DTYPES))}")
    return _DTYPES[dtype]


def resolve_device(device: torch.device | str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise K2nbError(f"device {device!r} was asked for but CUDA is not available here; use 'cpu'")
    return dev


def _weight_files(folder: Path) -> dict[str, Path]:
    """Map each tensor name to the safetensors file holding it."""
    index = folder / "model.safetensors.index.json"
    single = folder / "model.safetensors"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise CheckpointError(f"{index}: not a valid safetensors index ({e!r})") from None
        files = {name: folder / fname for name, fname in weight_map.items()}
        for f in sorted(set(files.values())):
            if not f.is_file():
                raise CheckpointError(f"{f}: shard named in {index.name} is missing")
        return files
    if single.is_file():
        try:
            with safe_open(single, "pt") as fh:
                return {name: single for name in fh.keys()}
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{single}: cannot be read as safetensors ({e})") from None
    shards = sorted(folder.glob("*.safetensors"))
    if not shards:
        raise CheckpointError(f"{folder}: no model.safetensors or model.safetensors.index.json found")
    files = {}
    for f in shards:
        try:
            with safe_open(f, "pt") as fh:
                files.update({name: f for name in fh.keys()})
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{f}: cannot be read as safetensors ({e})") from None
    return files


def _expected_shapes(model: K2Model) -> dict[str, tuple[int, ...]]:
    """HF tensor name → shape, derived from the meta-device model (experts unstacked)."""
    return {name: tuple(t.shape) for name, t in hf_tensors(model)}


def _layer_beyond(name: str, cfg: ModelConfig) -> int | None:
    """The layer index of a tensor stored after the decoder layers (MTP or not), else None."""
    layer = names.layer_index(name)
    return layer if layer is not None and layer >= cfg.num_hidden_layers else None


def _check_names(folder: Path, files: dict[str, Path], expected: dict[str, tuple[int, ...]],
                 cfg: ModelConfig) -> None:
    """The checkpoint holds exactly the model's tensors (the config's MTP layers and a tied head's
    copy aside)."""
    n, mtp = cfg.num_hidden_layers, cfg.num_nextn_predict_layers
    beyond = {name: layer for name in files if (layer := _layer_beyond(name, cfg)) is not None}
    stray = sorted((layer, name) for name, layer in beyond.items() if layer >= n + mtp)
    if stray:
        layer, name = stray[0]
        raise CheckpointError(f"{files[name]}: tensor {name!r} belongs to layer {layer}, but config.json "
                              f"has num_hidden_layers {n} (and num_nextn_predict_layers {mtp})")
    present = {name for name in files if name not in beyond}
    if cfg.tie_word_embeddings:
        present.discard("lm_head.weight")  # some tied checkpoints still store it
    missing = sorted(set(expected) - present)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckpointError(f"{folder}: tensor {missing[0]!r} is missing from the checkpoint{more}")
    unexpected = sorted(present - set(expected))
    scales = [name for name in unexpected if name.endswith(_FP8_SCALE)]
    if scales:
        raise CheckpointError(f"{files[scales[0]]}: tensor {scales[0]!r} is an FP8 block scale, but "
                              "config.json has no quantization_config; FP8 checkpoints are not supported "
                              "yet (k2nb loads bf16/fp16/fp32 weights)")
    if unexpected:
        raise CheckpointError(f"{files[unexpected[0]]}: unexpected tensor {unexpected[0]!r} "
                              f"(not part of a {cfg.model_type} model with this config.json)")


def load_model(path: str | os.PathLike, device: torch.device | str | None = None,
               dtype: torch.dtype | str | None = None, progress: bool | None = None,
               load_tokenizer: bool = True) -> K2Model:
    """Load a K2-family checkpoint folder (HF layout) onto ``device`` in ``dtype``.

    ``device`` defaults to CUDA when present, else CPU; ``dtype`` to bfloat16 on CUDA, float32 on CPU.
    MTP layers (the config's ``num_nextn_predict_layers`` after the decoder layers) are skipped; a
    tensor of any later layer, a non-float or FP8 tensor and a NaN or Inf value are errors. The
    folder's tokenizer, when it has one, is checked against ``vocab_size`` and attached as
    ``model.tokenizer``. ``progress=None`` shows a progress bar only for checkpoints over
    1 GB (a small model loads in well under a second; a bar would only clutter a notebook cell).
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: checkpoint folder not found")
    cfg = ModelConfig.from_file(folder / "config.json")
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    files = _weight_files(folder)
    if progress is None:
        progress = sum(f.stat().st_size for f in set(files.values())) > 2**30

    with torch.device("meta"):
        model = K2Model(cfg)
    expected = _expected_shapes(model)
    _check_names(folder, files, expected, cfg)
    state = _read_state(folder, files, expected, dev, dt, progress)
    try:
        model.load_state_dict(state, strict=True, assign=True)
    finally:
        state.clear()
    model.eval()
    model.source = str(folder)
    if load_tokenizer:
        model.tokenizer = _maybe_tokenizer(folder, cfg.vocab_size)
    return model


def _read_state(folder: Path, files: dict[str, Path], expected: dict[str, tuple[int, ...]],
                dev: torch.device, dt: torch.dtype, progress: bool) -> dict[str, torch.Tensor]:
    """The model's state dict: every expected tensor read, checked, converted, experts stacked."""
    from tqdm.auto import tqdm

    handles: dict[Path, object] = {}
    state: dict[str, torch.Tensor] = {}
    experts: dict[str, dict[tuple[int, int], torch.Tensor]] = {}  # stack → (expert, part) → tensor
    try:
        for name in tqdm(sorted(expected), desc=f"loading {folder.name}", unit="tensor",
                         disable=not progress, leave=False):
            t = _read_tensor(handles, files[name], name)
            if tuple(t.shape) != expected[name]:
                raise CheckpointError(f"{files[name]}: tensor {name!r} has shape {tuple(t.shape)}, the "
                                      f"config implies {expected[name]}")
            t = _convert(t, files[name], name, dev, torch.float32 if names.keeps_float32(name) else dt)
            target = names.to_model(name)
            if isinstance(target, names.ExpertPart):
                experts.setdefault(target.stack, {})[(target.expert, target.part)] = t
            else:
                state[target] = t
        for stack, parts in experts.items():
            n_experts, n_parts = (max(i for i, _ in parts) + 1), (max(p for _, p in parts) + 1)
            state[stack] = names.stack_experts(
                [[parts[(e, p)] for p in range(n_parts)] for e in range(n_experts)])
            parts.clear()
    except BaseException:
        state.clear()
        raise
    finally:
        handles.clear()
        experts.clear()
    return state


def _read_tensor(handles: dict[Path, object], f: Path, name: str) -> torch.Tensor:
    if f not in handles:
        try:
            handles[f] = safe_open(f, "pt")
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{f}: cannot be read as safetensors ({e})") from None
    try:
        return handles[f].get_tensor(name)  # type: ignore[attr-defined]
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{f}: tensor {name!r} cannot be read; the file looks truncated "
                              f"or corrupt ({e})") from None


def _convert(t: torch.Tensor, f: Path, name: str, dev: torch.device, dt: torch.dtype) -> torch.Tensor:
    """``t`` on ``dev`` in ``dt``, refused when it is not a plain float tensor or is not finite there."""
    kind = str(t.dtype).removeprefix("torch.")
    if t.dtype in _FP8_DTYPES:
        raise CheckpointError(f"{f}: tensor {name!r} is {kind} without its '{name}{_FP8_SCALE}'; FP8 "
                              "checkpoints are not supported yet (config.json has no quantization_config, "
                              "and k2nb loads bf16/fp16/fp32 weights)")
    if not t.is_floating_point():
        raise CheckpointError(f"{f}: tensor {name!r} has {kind} values, which cannot be loaded as weights")
    out = t.to(device=dev, dtype=dt)
    if not _all_finite(out):
        if _all_finite(t):
            fix = "; load it in bfloat16 or float32" if dt == torch.float16 else ""
            raise CheckpointError(f"{f}: tensor {name!r} has values beyond the range of "
                                  f"{str(dt).removeprefix('torch.')} (±{torch.finfo(dt).max:g}){fix}")
        raise CheckpointError(f"{f}: tensor {name!r} holds NaN or Inf values")
    return out


def _all_finite(t: torch.Tensor) -> bool:
    """No NaN or Inf in ``t``: one min/max pass (both propagate NaN), no temporary the size of ``t``."""
    if t.numel() == 0:
        return True
    lo, hi = torch.aminmax(t.reshape(-1))
    return math.isfinite(lo.item()) and math.isfinite(hi.item())


def _maybe_tokenizer(folder: Path, vocab_size: int):
    if not ((folder / "tokenizer.json").is_file() or (folder / "tiktoken.model").is_file()):
        return None
    from .tokenizer import load_tokenizer

    return load_tokenizer(folder, vocab_size=vocab_size)


def hf_tensors(model: K2Model) -> Iterator[tuple[str, torch.Tensor]]:
    """The model's tensors under their HF checkpoint names, experts unstacked (views, no copies)."""
    for name, t in model.state_dict().items():
        yield from names.to_hf(name, t)


def save_checkpoint(model: K2Model, folder: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
    """Write ``config.json`` and ``model.safetensors`` (HF names) that ``load_model`` and transformers
    read. The router weight and selection bias stay float32."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, t in hf_tensors(model):
        t = t.detach().to("cpu")
        if dtype is not None and not names.keeps_float32(name):
            t = t.to(dtype)
        tensors[name] = t.contiguous()
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    d = model.config.to_dict()
    d["torch_dtype"] = str(dtype or model.dtype).removeprefix("torch.")
    (out / "config.json").write_text(json.dumps(d, indent=2) + "\n")
    return out
