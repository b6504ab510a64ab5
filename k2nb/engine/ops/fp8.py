"""Block-FP8 weights (DeepSeek-V3 / Kimi-K2-Instruct: e4m3 values, one float32 scale per 128×128
block) and their torch kernels.

Layout of one ``[out, in]`` linear with block ``(bo, bi)``:

    weight            float8_e4m3fn [out, in]
    weight_scale_inv  float32       [ceil(out/bo), ceil(in/bi)]
    W[o, c] = weight[o, c] · scale_inv[o // bo, c // bi], the product taken in the scale's dtype (float32
              for DeepSeek, as its reference dequantizes; bfloat16 scales of a compressed-tensors
              "float-quantized" checkpoint multiply in bfloat16, as its decompressor does), then cast
              to the compute dtype

(the name says "inverse" because it is the reciprocal of the quantizer's scale; it multiplies;
compressed-tensors calls the same tensor ``weight_scale``).
Stacked routed experts add a leading expert dim. Stacking gate and up rows whose count is not a
multiple of ``bo`` would put two blocks' scales in one row block, so such a stack keeps one scale row
per weight row (block ``(1, bi)``, the scales repeated): the same values, a little more scale memory
(never for the family's own shapes: moe_intermediate_size 2048 is 16 blocks of 128).

Kernels here are the torch reference path for every device (CPUs have no FP8 matmul): dequantize
what is used, then a dense matmul.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from ..errors import CheckpointError
from .dense import moe_by_expert
from .registry import PackedWeight, packed_parameter, register

FP8_DTYPE = torch.float8_e4m3fn


class Fp8BlockWeight(PackedWeight):
    """``weight`` float8_e4m3fn ``[..., out, in]``, ``scale_inv`` ``[..., ceil(out/bo), ceil(in/bi)]``
    (float32, or the checkpoint's bfloat16), ``block = (bo, bi)``; ``dtype`` is the compute dtype."""

    format = "fp8"
    scale_name = "weight_scale_inv"  # the checkpoint's suffix for the scales when no config names it

    def __init__(self, weight: torch.Tensor, scale_inv: torch.Tensor, block: tuple[int, int],
                 dtype: torch.dtype, checkpoint_block: tuple[int, int] | None = None):
        super().__init__(tuple(weight.shape), dtype)
        self.weight = packed_parameter(weight)
        self.scale_inv = packed_parameter(scale_inv)
        self.block = (int(block[0]), int(block[1]))
        # the block the checkpoint stores (differs from `block` in a stack kept at one scale per row)
        self.checkpoint_block = checkpoint_block or self.block

    def dequantize(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        return dequantize(self.weight, self.scale_inv, self.block, dtype or self.dtype)

    def expert(self, e: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Expert ``e``'s ``(weight [rows, in], scale_inv [row blocks, col blocks])`` (views)."""
        return self.weight[e], self.scale_inv[e]

    # ---- the checkpoint's tensors (one linear: `<module>.weight`, `<module>.weight_scale_inv`) ----
    @staticmethod
    def checkpoint_shapes(out: int, inp: int, block: tuple[int, int],
                          scale_name: str = "weight_scale_inv") -> dict[str, tuple[int, ...]]:
        return {"weight": (out, inp), scale_name: (-(-out // block[0]), -(-inp // block[1]))}

    @classmethod
    def from_checkpoint(cls, tensors: dict[str, torch.Tensor], block: tuple[int, int], dtype: torch.dtype,
                        device: torch.device, where: Callable[[str], str],
                        scale_name: str = "weight_scale_inv") -> Fp8BlockWeight:
        """One linear from its checkpoint tensors (shapes already checked)."""
        w, s = tensors["weight"], tensors[scale_name]
        if w.dtype != FP8_DTYPE:
            raise CheckpointError(f"{where('weight')} is {_kind(w)}; block-FP8 weights are float8_e4m3fn")
        if not s.dtype.is_floating_point or s.dtype.itemsize < 2:
            raise CheckpointError(f"{where(scale_name)} is {_kind(s)}; FP8 block scales are float32 "
                                  "(or bfloat16)")
        w, s = w.to(device), s.to(device)
        if ((w.view(torch.uint8) & 0x7F) == 0x7F).any():  # e4m3fn's only NaN code, either sign
            raise CheckpointError(f"{where('weight')} holds NaN values")
        if not torch.isfinite(s).all():
            raise CheckpointError(f"{where(scale_name)} holds NaN or Inf values")
        return cls(w, s, block, dtype)

    def checkpoint_tensors(self, expert: int | None, rows: slice,
                           scale_name: str = "weight_scale_inv") -> dict[str, torch.Tensor]:
        """The checkpoint tensors of rows ``rows`` (of expert ``expert`` of a stack), at the
        checkpoint's block."""
        w = (self.weight if expert is None else self.weight[expert])[rows]
        s = self.scale_inv if expert is None else self.scale_inv[expert]
        start = rows.start or 0
        bo, hbo = self.block[0], self.checkpoint_block[0]
        # rows start on a checkpoint block (stacks are cut at projection boundaries)
        s = s[start // bo:start // bo + -(-w.shape[0] // bo)]
        if bo != hbo:  # one scale per row → one per checkpoint row block
            s = s[::hbo // bo]
        return {"weight": w, scale_name: s}

    @classmethod
    def stack(cls, parts: Sequence[Sequence[Fp8BlockWeight]]) -> Fp8BlockWeight:
        """``parts[e][i]`` → one ``[E, rows, in]`` weight; a projection followed by another whose rows
        are not a whole number of row blocks makes the stack keep one scale per row."""
        first = parts[0][0]
        bo, bi = first.block
        aligned = all(p.shape[0] % bo == 0 for ps in parts for p in ps[:-1])
        weight = torch.stack([torch.cat([p.weight for p in ps]) for ps in parts])
        scale = torch.stack([torch.cat([p.scale_inv if aligned else rows_as_blocks(p.scale_inv, p.block,
                                                                                  p.shape[0])
                                        for p in ps]) for ps in parts])
        return cls(weight, scale, first.block if aligned else (1, bi), first.dtype,
                   checkpoint_block=first.block)


def _kind(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def dequantize(weight: torch.Tensor, scale_inv: torch.Tensor, block: tuple[int, int],
               dtype: torch.dtype) -> torch.Tensor:
    """``[..., out, in]`` in ``dtype``: weight · its block's scale in the scale's dtype, then cast."""
    out, inp = weight.shape[-2:]
    bo, bi = block
    s = scale_inv.repeat_interleave(bo, dim=-2)[..., :out, :]  # [..., out, in/bi]
    s = s.repeat_interleave(bi, dim=-1)[..., :inp]  # [..., out, in]
    return (weight.to(s.dtype) * s).to(dtype)


def rows_as_blocks(scale_inv: torch.Tensor, block: tuple[int, int], rows: int) -> torch.Tensor:
    """Scales of a ``rows``-row weight at block ``(bo, bi)`` → one scale row per weight row
    (block ``(1, bi)``): ``[..., rows, col blocks]``."""
    return scale_inv.repeat_interleave(block[0], dim=-2)[..., :rows, :]


def quantize(w: torch.Tensor, block: tuple[int, int] = (128, 128),
             dtype: torch.dtype | None = None) -> Fp8BlockWeight:
    """Block FP8 of ``w [out, in]``: each block's max |w| maps to e4m3's largest value (448)."""
    out, inp = w.shape
    bo, bi = block
    wf = F.pad(w.detach().float(), (0, -inp % bi, 0, -out % bo))  # [out', in'] multiples of the block
    blocks = wf.unflatten(0, (-1, bo)).unflatten(-1, (-1, bi))  # [out'/bo, bo, in'/bi, bi]
    amax = blocks.abs().amax(dim=(1, 3)).clamp_min(1e-12)  # [out'/bo, in'/bi]
    scale_inv = amax / torch.finfo(FP8_DTYPE).max
    q = (blocks / scale_inv[:, None, :, None]).to(FP8_DTYPE).flatten(2).flatten(0, 1)[:out, :inp]
    return Fp8BlockWeight(q.contiguous(), scale_inv.float(), block, dtype or w.dtype)


# ---- kernels -----------------------------------------------------------------------------------

@register("linear", "fp8")
def linear(x: torch.Tensor, weight: Fp8BlockWeight, bias: torch.Tensor | None = None) -> torch.Tensor:
    return F.linear(x, weight.dequantize(x.dtype), bias)


@register("dense_weight", "fp8")
def dense_weight(weight: Fp8BlockWeight) -> torch.Tensor:
    return weight.dequantize()


@register("moe_experts", "fp8")
def moe_experts(x: torch.Tensor, topk_weights: torch.Tensor, topk_ids: torch.Tensor,
                w13: Fp8BlockWeight, w2: Fp8BlockWeight) -> torch.Tensor:
    """x ``[N, D]``, topk_* ``[N, k]``, w13 ``[E, 2I, D]``, w2 ``[E, D, I]`` → ``[N, D]``; each expert
    that received tokens is dequantized once."""

    def expert(e: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (dequantize(*w13.expert(e), w13.block, x.dtype),
                dequantize(*w2.expert(e), w2.block, x.dtype))

    return moe_by_expert(x, topk_weights, topk_ids, w13.shape[0], expert)
