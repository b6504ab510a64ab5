"""Load (and save) K2-family checkpoints in Hugging Face layout.

The model is built on the meta device (no random weights are ever allocated), every tensor is read
memory-mapped from safetensors, checked against the config, converted once to the target dtype and
device, and assigned. Routed experts are stacked per layer while loading. Linears that the config's
``quantization_config`` packs (INT4 pack-quantized, block FP8) stay packed: their tensors become one
``ops.PackedWeight`` record each, which takes the dense weight's place in the model. Any problem raises
a ``CheckpointError`` naming the file and the tensor, and nothing half-built is returned.
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
from .config import ConfigError, ModelConfig, QuantizationConfig
from .errors import CheckpointError, K2nbError
from .model import K2Model
from .ops import PackedWeight, prepare
from .ops.fp8 import Fp8BlockWeight
from .ops.int4 import Int4Weight

# HF module name → (out, in) of each linear the checkpoint stores packed
QuantPlan = dict[str, tuple[int, int]]

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
                              "config.json has no quantization_config saying how the weights are packed; "
                              "add the checkpoint's own (quant_method 'fp8', weight_block_size)")
    if unexpected:
        raise CheckpointError(f"{files[unexpected[0]]}: unexpected tensor {unexpected[0]!r} "
                              f"(not part of a {cfg.model_type} model with this config.json)")


# ---- packed (quantized) linears --------------------------------------------------------------------

def _quant_plan(folder: Path, files: dict[str, Path], expected: dict[str, tuple[int, ...]],
                cfg: ModelConfig) -> QuantPlan:
    """Which linears the checkpoint stores packed: those the config's targets and ignore list name
    (compressed-tensors), or those with a scale tensor in the files (DeepSeek's FP8 config names
    none). The routed experts of a layer are stacked, so they must all share one format."""
    qc = cfg.quantization_config
    if qc is None:
        return {}
    linears = {names.module_of(n): (s[0], s[1]) for n, s in expected.items() if names.is_linear(n, s)}
    if qc.from_checkpoint:
        suffix = "." + qc.scale_name
        plan = {m: linears[m] for n in files if n.endswith(suffix) and (m := n[:-len(suffix)]) in linears}
    else:
        plan = {m: shape for m, shape in linears.items() if qc.quantizes(m)}
    if not plan:
        raise ConfigError(f"{folder / 'config.json'}: quantization_config packs none of the model's "
                          "linear layers (check its targets and ignore list)")
    if qc.format == "int4":
        for m, (_, inp) in plan.items():
            if inp % qc.group_size:
                raise ConfigError(f"{folder / 'config.json'}: quantization_config group_size "
                                  f"{qc.group_size} does not divide the {inp} input columns of {m}")
    stacks: dict[str, dict[bool, str]] = {}  # a layer's experts → packed or not → one such linear
    for m in linears:
        target = names.to_model(m + ".weight")
        if isinstance(target, names.ExpertPart):
            stacks.setdefault(target.stack.rpartition(".")[0], {}).setdefault(m in plan, m)
    for stack, kinds in stacks.items():
        if len(kinds) < 2:
            continue
        if qc.from_checkpoint:
            m = kinds[False]
            raise CheckpointError(f"{files.get(m + '.weight', folder)}: tensor '{m}.weight' has no "
                                  f"'{m}.{qc.scale_name}' while other routed experts of {stack} have "
                                  "one; a layer's experts are stored stacked, so all of them must share one "
                                  "format")
        raise ConfigError(f"{folder / 'config.json'}: quantization_config packs some of the routed "
                          f"experts of {stack} but not others (e.g. {kinds[False]}); a layer's experts are "
                          "stored stacked, so all of them (gate, up and down) must share one format")
    return plan


def _packed_shapes(qc: QuantizationConfig, out: int, inp: int) -> dict[str, tuple[int, ...]]:
    """Suffix → shape of the checkpoint tensors of one packed ``[out, in]`` linear."""
    if qc.format == "int4":
        return Int4Weight.checkpoint_shapes(out, inp, qc.group_size, qc.scale_name)
    return Fp8BlockWeight.checkpoint_shapes(out, inp, qc.block, qc.scale_name)


def _packed_expected(expected: dict[str, tuple[int, ...]], plan: QuantPlan,
                     qc: QuantizationConfig | None) -> dict[str, tuple[int, ...]]:
    """The expected HF tensors with each packed linear's weight replaced by its packed tensors."""
    if not plan or qc is None:
        return expected
    out = {n: s for n, s in expected.items() if names.module_of(n) not in plan or not n.endswith(".weight")}
    for m, (o, i) in plan.items():
        out.update({f"{m}.{suffix}": shape for suffix, shape in _packed_shapes(qc, o, i).items()})
    return out


def _shape_hint(name: str, plan: QuantPlan, qc: QuantizationConfig | None) -> str:
    """What config key a packed tensor's expected shape comes from."""
    if qc is None or name.rpartition(".")[0] not in plan:
        return ""
    if name.endswith(qc.scale_name):
        key = (f"group_size {qc.group_size}" if qc.format == "int4"
               else f"block {list(qc.block)}")
        return f" (one scale per {key} of quantization_config)"
    if name.endswith(".weight_packed"):
        return " (int32 words of 8 INT4 values)"
    return ""


def _packed_record(module: str, tensors: dict[str, torch.Tensor], plan: QuantPlan,
                   qc: QuantizationConfig | None, files: dict[str, Path], dev: torch.device,
                   dt: torch.dtype) -> PackedWeight:
    assert qc is not None
    out, inp = plan[module]

    def where(suffix: str) -> str:
        return f"{files[f'{module}.{suffix}']}: tensor '{module}.{suffix}'"

    if qc.format == "int4":
        return Int4Weight.from_checkpoint(tensors, out, inp, qc.group_size, dt, dev, where, qc.scale_name)
    return Fp8BlockWeight.from_checkpoint(tensors, qc.block, dt, dev, where, qc.scale_name)


def _install_packed(model: K2Model, state: dict[str, torch.Tensor | PackedWeight]) -> None:
    """Put each packed record where its dense weight is on the meta model, and list its tensors in
    ``state`` under their model names (so a strict ``load_state_dict`` checks and assigns them)."""
    for name, value in list(state.items()):
        if isinstance(value, PackedWeight):
            owner, _, attr = name.rpartition(".")
            module = model.get_submodule(owner)
            delattr(module, attr)
            setattr(module, attr, value)
            del state[name]
            state.update({f"{name}.{p}": t for p, t in value.named_parameters()})


def weight_bytes(cfg: ModelConfig, dtype: torch.dtype | str | None = None) -> int:
    """Bytes of a model's weights from its config alone: the linears its ``quantization_config`` packs
    in their format (INT4: ½ byte per weight plus a bfloat16 scale per group; FP8: 1 byte plus a
    float32 scale per block), the router in float32, the rest in ``dtype`` (default: the config's
    ``torch_dtype``, else bfloat16). DeepSeek's FP8 config names no linears; there the family's
    convention (every linear but lm_head) is assumed."""
    qc = cfg.quantization_config
    dt = resolve_dtype(dtype or cfg.torch_dtype or "bfloat16", torch.device("cpu"))
    rest = torch.empty(0, dtype=dt).element_size()
    with torch.device("meta"):
        expected = _expected_shapes(K2Model(cfg))
    total = 0
    for name, shape in expected.items():
        module = names.module_of(name)
        packed = qc is not None and names.is_linear(name, shape) and (
            module != "lm_head" if qc.from_checkpoint else qc.quantizes(module))
        if packed and qc is not None and qc.format == "int4":
            total += shape[0] * shape[1] // 2 + shape[0] * (shape[1] // qc.group_size) * 2
        elif packed and qc is not None:
            total += shape[0] * shape[1] + -(-shape[0] // qc.block[0]) * -(-shape[1] // qc.block[1]) * 4
        else:
            total += math.prod(shape) * (4 if names.keeps_float32(name) else rest)
    return total


def load_model(path: str | os.PathLike, device: torch.device | str | None = None,
               dtype: torch.dtype | str | None = None, progress: bool | None = None,
               load_tokenizer: bool = True, exact: bool = False) -> K2Model:
    """Load a K2-family checkpoint folder (HF layout) onto ``device`` in ``dtype``.

    ``device`` defaults to CUDA when present, else CPU; ``dtype`` to bfloat16 on CUDA, float32 on CPU.
    ``dtype`` is the compute dtype (activations and the weights stored unquantized); linears the
    config's ``quantization_config`` packs stay packed in memory whatever it is. MTP layers (the
    config's ``num_nextn_predict_layers`` after the decoder layers) are skipped; a tensor of any later
    layer, a non-float tensor or an FP8 one the config does not describe, and a NaN or Inf value are
    errors. The
    folder's tokenizer, when it has one, is checked against ``vocab_size`` and attached as
    ``model.tokenizer``. ``progress=None`` shows a progress bar only for checkpoints over
    1 GB (a small model loads in well under a second; a bar would only clutter a notebook cell).

    Packed weights are prepared for their device's kernels (on the CPU, INT4 goes into torch's int4
    matmul, which reads bfloat16 activations, in either compute dtype). ``exact=True`` keeps them in
    their published layout and computes each product by dequantizing in the compute dtype: in float32,
    the logits of the decompressed weights, for checking a format against its reference.
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
    plan = _quant_plan(folder, files, expected, cfg)
    expected = _packed_expected(expected, plan, cfg.quantization_config)
    _check_names(folder, files, expected, cfg)
    state = _read_state(folder, files, expected, plan, cfg.quantization_config, dev, dt, progress, exact)
    try:
        _install_packed(model, state)
        model.load_state_dict(state, strict=True, assign=True)
    finally:
        state.clear()
    model.eval()
    model.source = str(folder)
    if load_tokenizer:
        model.tokenizer = _maybe_tokenizer(folder, cfg.vocab_size)
    return model


def _read_state(folder: Path, files: dict[str, Path], expected: dict[str, tuple[int, ...]], plan: QuantPlan,
                qc: QuantizationConfig | None, dev: torch.device, dt: torch.dtype,
                progress: bool, exact: bool = False) -> dict[str, torch.Tensor | PackedWeight]:
    """The model's state: every expected tensor read, checked, converted (packed linears: gathered
    into their record), experts stacked, packed weights prepared for their kernels (unless exact)."""
    from tqdm.auto import tqdm

    handles: dict[Path, object] = {}
    state: dict[str, torch.Tensor | PackedWeight] = {}
    experts: dict[str, dict[tuple[int, int], torch.Tensor | PackedWeight]] = {}  # stack → (e, part) → …
    pending: dict[str, dict[str, torch.Tensor]] = {}  # packed linear → its tensors read so far
    suffixes = set(_packed_shapes(qc, 8, qc.group_size or 8)) if qc is not None else set()
    try:
        for name in tqdm(sorted(expected), desc=f"loading {folder.name}", unit="tensor",
                         disable=not progress, leave=False):
            t = _read_tensor(handles, files[name], name)
            if tuple(t.shape) != expected[name]:
                raise CheckpointError(f"{files[name]}: tensor {name!r} has shape {tuple(t.shape)}, the "
                                      f"config implies {expected[name]}{_shape_hint(name, plan, qc)}")
            module, _, suffix = name.rpartition(".")
            if module in plan and suffix in suffixes:
                parts = pending.setdefault(module, {})
                parts[suffix] = t
                if len(parts) < len(suffixes):
                    continue
                value: torch.Tensor | PackedWeight = _packed_record(module, pending.pop(module), plan, qc,
                                                                    files, dev, dt)
                name = module + ".weight"
            else:
                value = _convert(t, files[name], name, dev,
                                 torch.float32 if names.keeps_float32(name) else dt)
            target = names.to_model(name)
            if isinstance(target, names.ExpertPart):
                experts.setdefault(target.stack, {})[(target.expert, target.part)] = value
            else:
                state[target] = value
        for stack, parts in experts.items():
            n_experts, n_proj = (max(i for i, _ in parts) + 1), (max(p for _, p in parts) + 1)
            grid = [[parts[(e, p)] for p in range(n_proj)] for e in range(n_experts)]
            first = grid[0][0]
            state[stack] = (type(first).stack(grid) if isinstance(first, PackedWeight)
                            else names.stack_experts(grid))
            parts.clear()
        for name, value in state.items():  # packed weights in their device kernels' layout
            if isinstance(value, PackedWeight) and not exact:
                state[name] = prepare(value)
    except BaseException:
        state.clear()
        raise
    finally:
        handles.clear()
        experts.clear()
        pending.clear()
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
                              "values are read only with their block scales and a quantization_config in "
                              "config.json that describes them (quant_method 'fp8', weight_block_size)")
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
    """The model's tensors under their HF checkpoint names, experts unstacked (views, no copies);
    a packed linear gives its checkpoint tensors (``weight_packed`` … or ``weight`` + scales)."""
    qc = model.config.quantization_config
    packed = {name: m for name, m in model.named_modules() if isinstance(m, PackedWeight)}
    for name, t in model.state_dict().items():
        if name.rpartition(".")[0] not in packed:
            yield from names.to_hf(name, t)
    for name, record in packed.items():
        yield from names.packed_to_hf(name, record, qc.scale_name if qc is not None else record.scale_name)


def save_checkpoint(model: K2Model, folder: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
    """Write ``config.json`` and ``model.safetensors`` (HF names) that ``load_model`` and transformers
    read. The router weight and selection bias stay float32; packed linears are written packed (with
    the config's ``quantization_config``), whatever ``dtype`` says."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {}
    packed = {name for name, _ in _packed_tensor_names(model)}
    for name, t in hf_tensors(model):
        t = t.detach().to("cpu")
        if dtype is not None and not names.keeps_float32(name) and name not in packed:
            t = t.to(dtype)
        tensors[name] = t.contiguous()
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    d = model.config.to_dict()
    d["torch_dtype"] = str(dtype or model.dtype).removeprefix("torch.")
    (out / "config.json").write_text(json.dumps(d, indent=2) + "\n")
    return out


def _packed_tensor_names(model: K2Model) -> Iterator[tuple[str, torch.Tensor]]:
    """The HF names (and tensors) of the model's packed linears."""
    qc = model.config.quantization_config
    for name, m in model.named_modules():
        if isinstance(m, PackedWeight):
            yield from names.packed_to_hf(name, m, qc.scale_name if qc is not None else m.scale_name)
