"""The one table between Hugging Face checkpoint names and the model's parameter names.

    HF checkpoint                                            K2Model
    model.<name>                                             <name>   (embeddings, norms, attention,
                                                                       dense MLPs, router, shared experts)
    lm_head.weight                                           lm_head.weight
    model.layers.L.mlp.experts.E.gate_proj.weight  [I, D]    layers.L.mlp.experts.w13 [E, 2I, D], rows :I
    model.layers.L.mlp.experts.E.up_proj.weight    [I, D]    layers.L.mlp.experts.w13 [E, 2I, D], rows I:
    model.layers.L.mlp.experts.E.down_proj.weight  [D, I]    layers.L.mlp.experts.w2  [E, D, I]
    model.layers.L.*, L ≥ num_hidden_layers                  (multi-token-prediction layers: skipped;
                                                              num_nextn_predict_layers of them at most)
    <linear>.weight_packed / _scale / _shape  (INT4)         one ops.PackedWeight record in the weight's
    <linear>.weight + .weight_scale_inv       (block FP8)    place (stacked like the dense experts)

The loader, `hf_tensors` (saving, comparisons with transformers) and the expected shapes of a
checkpoint all read this table.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

HF_PREFIX = "model."
UNPREFIXED = ("lm_head.",)  # HF names that are not under `model.`
# Stacked expert tensor → the per-expert HF projections concatenated along its rows (dim 1), in order.
EXPERT_STACKS: dict[str, tuple[str, ...]] = {"w13": ("gate_proj", "up_proj"), "w2": ("down_proj",)}
# Kept float32 whatever the model's dtype: the router's weight and its selection bias.
FLOAT32_SUFFIXES = ("mlp.gate.weight", "e_score_correction_bias")

_STACK_OF = {proj: (stack, part) for stack, projs in EXPERT_STACKS.items() for part, proj in enumerate(projs)}
_LAYER = re.compile(r"^model\.layers\.(\d+)\.")
_HF_EXPERT = re.compile(
    rf"^model\.(layers\.\d+\.mlp\.experts)\.(\d+)\.({'|'.join(_STACK_OF)})\.weight$"
)


@dataclass(frozen=True, slots=True)
class ExpertPart:
    """Where one expert's HF projection goes: part `part` of expert `expert` in stacked tensor `stack`."""

    stack: str  # model name, e.g. "layers.3.mlp.experts.w13"
    expert: int
    part: int  # index into EXPERT_STACKS[...] (0 = gate, 1 = up for w13)


def to_model(hf_name: str) -> str | ExpertPart:
    """The model's name for an HF tensor, or the slot of a stacked expert tensor it fills."""
    m = _HF_EXPERT.match(hf_name)
    if m:
        stack, part = _STACK_OF[m.group(3)]
        return ExpertPart(f"{m.group(1)}.{stack}", int(m.group(2)), part)
    if hf_name.startswith(UNPREFIXED):
        return hf_name
    return hf_name.removeprefix(HF_PREFIX)


def to_hf(name: str, tensor: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
    """The HF name(s) and tensor(s) of one model tensor; a stacked expert tensor yields one view per
    expert and projection (no copies)."""
    head, _, leaf = name.rpartition(".")
    if head.endswith("mlp.experts") and leaf in EXPERT_STACKS:
        projs = EXPERT_STACKS[leaf]
        rows = tensor.shape[1] // len(projs)
        for e in range(tensor.shape[0]):
            for i, proj in enumerate(projs):
                yield f"{HF_PREFIX}{head}.{e}.{proj}.weight", tensor[e, i * rows:(i + 1) * rows]
    elif name.startswith(UNPREFIXED):
        yield name, tensor
    else:
        yield HF_PREFIX + name, tensor


def stack_experts(parts: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
    """``parts[e][i]``: expert e's projection i (``EXPERT_STACKS`` order) → the stacked ``[E, rows, in]``."""
    return torch.stack([p[0] if len(p) == 1 else torch.cat(tuple(p)) for p in parts])


def keeps_float32(name: str) -> bool:
    """Whether a tensor (HF or model name) stays float32 in a model of any dtype."""
    return name.endswith(FLOAT32_SUFFIXES)


def layer_index(hf_name: str) -> int | None:
    """The decoder layer an HF tensor belongs to (None for embeddings, final norm, head)."""
    m = _LAYER.match(hf_name)
    return int(m.group(1)) if m else None


# ---- quantized linears ---------------------------------------------------------------------------
# A quantized linear `M` (HF module name) stores its packed form under `M.<suffix>` instead of
# `M.weight`: INT4 `weight_packed`, `weight_scale`, `weight_shape`; FP8 `weight` + `weight_scale_inv`
# (or `weight_scale`). In the model it is one `ops.PackedWeight` record where the dense weight would be
# (`…q_a_proj.weight`, or stacked per layer as `…experts.w13` / `w2`).
_NOT_LINEAR = ("embed_tokens.weight", "mlp.gate.weight")  # 2-D weights no quantization packs


def is_linear(hf_name: str, shape: Sequence[int]) -> bool:
    """Whether an HF tensor is a linear layer's weight (what a quantization_config may pack)."""
    return hf_name.endswith(".weight") and len(shape) == 2 and not hf_name.endswith(_NOT_LINEAR)


def module_of(hf_weight: str) -> str:
    """``model.layers.3.mlp.experts.7.up_proj.weight`` → ``model.layers.3.mlp.experts.7.up_proj``."""
    return hf_weight.removesuffix(".weight")


def packed_to_hf(name: str, record, scale_name: str) -> Iterator[tuple[str, torch.Tensor]]:
    """The HF names and tensors of one packed weight (model name ``name``): per expert and projection
    for a stack, under the module's own name otherwise (views, plus the small ``weight_shape``)."""
    head, _, leaf = name.rpartition(".")
    if head.endswith("mlp.experts") and leaf in EXPERT_STACKS:
        projs = EXPERT_STACKS[leaf]
        rows = record.shape[1] // len(projs)
        for e in range(record.shape[0]):
            for i, proj in enumerate(projs):
                parts = record.checkpoint_tensors(e, slice(i * rows, (i + 1) * rows), scale_name)
                for suffix, t in parts.items():
                    yield f"{HF_PREFIX}{head}.{e}.{proj}.{suffix}", t
        return
    module = name.removesuffix(".weight")
    hf = module if module.startswith(UNPREFIXED) else HF_PREFIX + module
    for suffix, t in record.checkpoint_tensors(None, slice(None), scale_name).items():
        yield f"{hf}.{suffix}", t
