"""``k2nb quantize SRC DST``: write a dense K2-family checkpoint in K2 Thinking's INT4 format.

K2 Thinking ships its routed experts as compressed-tensors "pack-quantized" INT4 (symmetric, groups
of 32 input columns, bfloat16 scales) and everything else unquantized; its ``quantization_config``
says so with ``targets: ["Linear"]`` and an ignore list (lm_head, attention, shared experts, dense
MLPs). This writes exactly that: each routed expert's ``gate_proj`` / ``up_proj`` / ``down_proj``
becomes ``weight_packed`` / ``weight_scale`` / ``weight_shape`` (`ops.int4.quantize`, min-max
scales), every other tensor is copied (optionally cast), and the config gains K2 Thinking's
``quantization_config``. It streams one safetensors file at a time, so memory stays about one shard.

The packing is k2nb's own (`ops.int4`), checked in the tests against compressed-tensors' decompressor
(the format's reference): what is written here reads back to the same values there.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from . import names
from .config import ModelConfig, parse_quantization
from .errors import CheckpointError, K2nbError
from .ops import int4

K2_THINKING_IGNORE = ["lm_head", "re:.*self_attn.*", "re:.*shared_experts.*",
                      r"re:.*mlp\.(gate|up|gate_up|down)_proj.*"]


def k2_thinking_quantization_config(group_size: int = 32) -> dict[str, Any]:
    """K2 Thinking's ``quantization_config``, key for key (``group_size`` 32 there)."""
    return {
        "config_groups": {"group_0": {
            "input_activations": None, "output_activations": None, "targets": ["Linear"],
            "weights": {"actorder": None, "block_structure": None, "dynamic": False,
                        "group_size": group_size, "num_bits": 4, "observer": "minmax",
                        "observer_kwargs": {}, "strategy": "group", "symmetric": True, "type": "int"},
        }},
        "format": "pack-quantized",
        "ignore": list(K2_THINKING_IGNORE),
        "kv_cache_scheme": None,
        "quant_method": "compressed-tensors",
        "quantization_status": "compressed",
    }


def quantize_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, group_size: int = 32,
                        dtype: torch.dtype | None = None) -> Path:
    """Write ``src`` (a dense HF folder) to ``dst`` with its routed experts in INT4. ``dtype`` casts
    the tensors left unquantized (the float32 router excepted); None keeps the source's dtypes."""
    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve():
        raise K2nbError(f"{dst}: write the quantized model to another folder than its source")
    cfg = ModelConfig.from_file(src)
    if cfg.quantization_config is not None:
        raise K2nbError(f"{src / 'config.json'}: the checkpoint is already quantized "
                        f"(quant_method {cfg.quantization_config.method!r}); quantize a dense one")
    raw_qc = k2_thinking_quantization_config(group_size)
    qc = parse_quantization(raw_qc, str(dst / "config.json"))
    assert qc is not None
    shards = _shards(src)
    dst.mkdir(parents=True, exist_ok=True)
    weight_map: dict[str, str] = {}
    for shard in shards:
        tensors = {}
        with safe_open(shard, "pt") as fh:
            for name in fh.keys():
                t = fh.get_tensor(name)
                for out_name, out in _converted(name, t, qc.quantizes, group_size, dtype, shard):
                    tensors[out_name] = out
                    weight_map[out_name] = shard.name
        save_file(tensors, str(dst / shard.name), metadata={"format": "pt"})
    if (src / "model.safetensors.index.json").is_file():
        total = sum((dst / f).stat().st_size for f in set(weight_map.values()))
        (dst / "model.safetensors.index.json").write_text(json.dumps(
            {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, indent=2))
    for f in src.iterdir():
        if f.is_file() and not f.name.endswith(".safetensors") and f.name not in (
                "config.json", "model.safetensors.index.json"):
            shutil.copy2(f, dst / f.name)
    config = json.loads((src / "config.json").read_text())
    config["quantization_config"] = raw_qc
    if dtype is not None:
        config["torch_dtype"] = str(dtype).removeprefix("torch.")
    (dst / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return dst


def _shards(src: Path) -> list[Path]:
    index = src / "model.safetensors.index.json"
    if index.is_file():
        try:
            files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise CheckpointError(f"{index}: not a valid safetensors index ({e!r})") from None
        return [src / f for f in files]
    if (src / "model.safetensors").is_file():
        return [src / "model.safetensors"]
    shards = sorted(src.glob("*.safetensors"))
    if not shards:
        raise CheckpointError(f"{src}: no model.safetensors or model.safetensors.index.json found")
    return shards


def _converted(name: str, t: torch.Tensor, quantizes, group_size: int, dtype: torch.dtype | None,
               shard: Path):
    """The tensor(s) one source tensor becomes: a targeted linear's packed INT4 tensors, else itself
    (cast to ``dtype`` when given and it is a float tensor the model keeps in its dtype)."""
    if names.is_linear(name, t.shape) and quantizes(names.module_of(name)):
        if not t.is_floating_point() or t.dtype.itemsize < 2:
            raise CheckpointError(f"{shard}: tensor {name!r} is {t.dtype}; quantize a bf16/fp16/fp32 "
                                  "checkpoint")
        if t.shape[1] % group_size:
            raise K2nbError(f"{shard}: tensor {name!r} has {t.shape[1]} input columns, not a multiple of "
                            f"the group size {group_size}")
        w = int4.quantize(t, group_size, torch.bfloat16)
        module = names.module_of(name)
        for suffix, out in w.checkpoint_tensors(None, slice(None)).items():
            yield f"{module}.{suffix}", out.contiguous()
        return
    if dtype is not None and t.is_floating_point() and not names.keeps_float32(name):
        t = t.to(dtype)
    yield name, t


def register(sub) -> None:
    """``k2nb quantize SRC DST``."""
    p = sub.add_parser("quantize", help="write a checkpoint with its routed experts in INT4 "
                       "(K2 Thinking's compressed-tensors pack-quantized format)")
    p.add_argument("src", help="dense checkpoint folder in Hugging Face layout (bf16/fp16/fp32)")
    p.add_argument("dst", help="folder to write")
    p.add_argument("--group-size", type=int, default=32, help="input columns per scale (K2 Thinking: 32)")
    p.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default=None,
                   help="cast the unquantized tensors (default: keep the source's)")
    p.set_defaults(func=_cmd)


def _cmd(args) -> int:
    dtype = getattr(torch, args.dtype) if args.dtype else None
    out = quantize_checkpoint(args.src, args.dst, args.group_size, dtype)
    print(f"wrote {out} (routed experts INT4, group {args.group_size})")
    return 0
