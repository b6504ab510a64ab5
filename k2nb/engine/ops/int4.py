"""INT4 weights in compressed-tensors' "pack-quantized" layout (K2 Thinking's routed experts), and
their torch kernels.

Layout of one ``[out, in]`` linear (symmetric int4, groups of ``group_size`` along the input dim):

    weight_packed  int32 [out, in/8]   column c of row o in word c // 8, bits 4·(c % 8) … +3,
                                       least-significant first; the nibble stores q + 8, q ∈ [-8, 7]
    weight_scale   bf16  [out, in/g]   (the checkpoint's dtype is kept)
    weight_shape   int   [2]           [out, in]

    W[o, c] = (nibble − 8) · scale[o, c // g], the product taken in the scale's dtype (what
    compressed-tensors' decompressor computes, bit for bit), then cast to the compute dtype.

Stacked routed experts keep the same layout with a leading expert dim: ``packed [E, rows, in/8]``,
``scale [E, rows, in/g]``. On a little-endian host the int32 words read as bytes are the nibble
pairs (low nibble = even column), which is how vLLM's W4A16 kernels read them too.

Kernels here are the reference torch path for every device: dequantize what is used (the whole
matrix for a linear, only the experts that received tokens for the MoE), then a dense matmul. A faster
kernel for a device registers for ("linear" | "moe_experts", "int4", device).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from ..errors import CheckpointError
from .dense import moe_by_expert
from .registry import PackedWeight, packed_parameter, register

PACK = 8  # int4 values per int32 word
QMIN, QMAX = -8, 7
SUPPORTED_SCALE_DTYPES = (torch.bfloat16, torch.float16, torch.float32)


class Int4Weight(PackedWeight):
    """Symmetric group-wise INT4 weight, ``[..., out, in]`` logically.

    ``packed`` int32 ``[..., out, in/8]``, ``scale`` ``[..., out, in/group_size]`` (its checkpoint
    dtype), ``group_size`` a multiple of 8 dividing ``in``; ``dtype`` is the compute dtype the values
    dequantize to.
    """

    format = "int4"
    scale_name = "weight_scale"  # the checkpoint's suffix for the scales when no config names it

    def __init__(self, packed: torch.Tensor, scale: torch.Tensor, group_size: int, dtype: torch.dtype):
        *lead, rows, words = packed.shape
        super().__init__((*lead, rows, words * PACK), dtype)
        self.packed = packed_parameter(packed)
        self.scale = packed_parameter(scale)
        self.group_size = group_size

    def dequantize(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        return dequantize(self.packed, self.scale, self.group_size, dtype or self.dtype)

    def expert(self, e: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Expert ``e``'s ``(packed [rows, in/8], scale [rows, in/g])`` of a stacked weight (views)."""
        return self.packed[e], self.scale[e]

    # ---- the checkpoint's tensors (one linear: `<module>.weight_packed` etc.) ---------------------
    @staticmethod
    def checkpoint_shapes(out: int, inp: int, group_size: int, scale_name: str = "weight_scale",
                          ) -> dict[str, tuple[int, ...]]:
        """Suffix → shape of one ``[out, in]`` linear's tensors (``in`` a multiple of the group)."""
        return {"weight_packed": (out, inp // PACK), scale_name: (out, inp // group_size),
                "weight_shape": (2,)}

    @classmethod
    def from_checkpoint(cls, tensors: dict[str, torch.Tensor], out: int, inp: int, group_size: int,
                        dtype: torch.dtype, device: torch.device, where: Callable[[str], str],
                        scale_name: str = "weight_scale") -> Int4Weight:
        """One linear from its checkpoint tensors (shapes already checked); ``where(suffix)`` names
        the file and tensor in errors."""
        packed, scale, shape = tensors["weight_packed"], tensors[scale_name], tensors["weight_shape"]
        if packed.dtype != torch.int32:
            raise CheckpointError(f"{where('weight_packed')} is {_kind(packed)}; packed INT4 weights are "
                                  "int32 words of 8 values")
        if scale.dtype not in SUPPORTED_SCALE_DTYPES:
            raise CheckpointError(f"{where(scale_name)} is {_kind(scale)}; INT4 scales are bfloat16, "
                                  "float16 or float32")
        if shape.dtype.is_floating_point or shape.tolist() != [out, inp]:
            raise CheckpointError(f"{where('weight_shape')} says {shape.tolist()}, but the config "
                                  f"implies [{out}, {inp}]")
        scale = scale.to(device)
        if not torch.isfinite(scale).all():
            raise CheckpointError(f"{where(scale_name)} holds NaN or Inf values")
        return cls(packed.to(device), scale, group_size, dtype)

    def checkpoint_tensors(self, expert: int | None, rows: slice,
                           scale_name: str = "weight_scale") -> dict[str, torch.Tensor]:
        """The checkpoint tensors of rows ``rows`` (of expert ``expert`` of a stack): views, plus the
        ``weight_shape`` they imply."""
        packed = self.packed if expert is None else self.packed[expert]
        scale = self.scale if expert is None else self.scale[expert]
        packed, scale = packed[rows], scale[rows]
        return {"weight_packed": packed, scale_name: scale,
                "weight_shape": torch.tensor([packed.shape[0], packed.shape[1] * PACK])}

    @classmethod
    def stack(cls, parts: Sequence[Sequence[Int4Weight]]) -> Int4Weight:
        """``parts[e][i]``: expert e's projection i → one ``[E, rows, in]`` weight (rows concatenated)."""
        first = parts[0][0]
        packed = torch.stack([torch.cat([p.packed for p in ps]) for ps in parts])
        scale = torch.stack([torch.cat([p.scale for p in ps]) for ps in parts])
        return cls(packed, scale, first.group_size, first.dtype)


def _kind(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def unpack(packed: torch.Tensor) -> torch.Tensor:
    """int32 ``[..., n/8]`` → the nibbles as uint8 ``[..., n]`` (q + 8, in 0 … 15)."""
    b = packed.contiguous().view(torch.uint8)  # [..., n/2]: byte j of word w = columns 8w + 2j, +1
    if sys.byteorder == "big":  # the words' bytes in memory are most-significant first
        b = b.unflatten(-1, (-1, 4)).flip(-1).flatten(-2)
    return torch.stack((b & 0xF, b >> 4), dim=-1).flatten(-2)


def pack(q: torch.Tensor) -> torch.Tensor:
    """int values ``[..., n]`` in [-8, 7] (n a multiple of 8) → int32 words ``[..., n/8]``."""
    nib = (q.to(torch.int32) + 8).unflatten(-1, (-1, PACK))  # [..., n/8, 8]
    shifts = torch.arange(0, 32, 4, dtype=torch.int32, device=q.device)
    # the top nibble lands in the sign bit; summing disjoint bit fields in int32 wraps correctly
    return (nib << shifts).sum(-1, dtype=torch.int32)


def dequantize(packed: torch.Tensor, scale: torch.Tensor, group_size: int,
               dtype: torch.dtype) -> torch.Tensor:
    """``[..., out, in]`` in ``dtype``: (nibble − 8) · scale in the scale's dtype, then cast."""
    q = unpack(packed).to(scale.dtype) - 8  # [..., out, in], exact small integers
    w = q.unflatten(-1, (-1, group_size)) * scale[..., None]  # [..., out, in/g, g]
    return w.flatten(-2).to(dtype)


def quantize(w: torch.Tensor, group_size: int = 32, scale_dtype: torch.dtype = torch.bfloat16,
             dtype: torch.dtype | None = None) -> Int4Weight:
    """Symmetric min-max INT4 of ``w [..., out, in]``, groups of ``group_size`` along ``in``.

    scale = max|w| of the group / 7.5 (the int4 range −8 … 7 spans 15 steps), rounded to
    ``scale_dtype`` first, so that q = round(w / scale) clamped to [−8, 7] is computed against the
    scale that is stored; a zero group gets the dtype's eps as its scale.
    """
    wf = w.detach().float().unflatten(-1, (-1, group_size))  # [..., out, in/g, g]
    absmax = wf.abs().amax(-1)  # [..., out, in/g]
    scale = (absmax / ((QMAX - QMIN) / 2)).to(scale_dtype)
    scale = torch.where(scale == 0, torch.tensor(torch.finfo(scale_dtype).eps, dtype=scale_dtype,
                                                 device=scale.device), scale)
    q = torch.round(wf / scale.float()[..., None]).clamp_(QMIN, QMAX).flatten(-2)
    return Int4Weight(pack(q), scale, group_size, dtype or w.dtype)


# ---- kernels -----------------------------------------------------------------------------------

@register("linear", "int4")
def linear(x: torch.Tensor, weight: Int4Weight, bias: torch.Tensor | None = None) -> torch.Tensor:
    return F.linear(x, weight.dequantize(x.dtype), bias)


@register("dense_weight", "int4")
def dense_weight(weight: Int4Weight) -> torch.Tensor:
    return weight.dequantize()


@register("moe_experts", "int4")
def moe_experts(x: torch.Tensor, topk_weights: torch.Tensor, topk_ids: torch.Tensor,
                w13: Int4Weight, w2: Int4Weight) -> torch.Tensor:
    """x ``[N, D]``, topk_* ``[N, k]``, w13 ``[E, 2I, D]``, w2 ``[E, D, I]`` (packed) → ``[N, D]``;
    each expert that received tokens is dequantized once (only its own rows)."""

    def expert(e: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (dequantize(*w13.expert(e), w13.group_size, x.dtype),
                dequantize(*w2.expert(e), w2.group_size, x.dtype))

    return moe_by_expert(x, topk_weights, topk_ids, w13.shape[0], expert)
