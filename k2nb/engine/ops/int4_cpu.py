"""INT4 on the CPU through torch's packed-int4 matmul (``aten._weight_int4pack_mm_for_cpu``).

That kernel reads int4 weights in its own tiled layout and bfloat16 activations, and dequantizes
``(nibble − 8) · scale + zero`` group by group inside the matmul — compressed-tensors' symmetric
values with zero = 0. Measured on this project's CPU (one thread, decode, a 512×1024 expert matrix):
34 µs, against 150 µs for the float32 matrix, 127 µs for bfloat16 and 470–820 µs to dequantize the
expert and multiply. So a model loaded on the CPU (in bfloat16 or float32 compute) has its INT4
weights *prepared* once at load (`prepare`): repacked into that layout (the same ½ byte per weight)
with their scales as the kernel's ``[in/g, out, 2]`` scale-and-zero pairs (2 bytes more per group
than the published scales). Everything else — ``load_model(..., exact=True)``, scales that are not
bfloat16, shapes the kernel refuses (out not a multiple of 16, group not 32/64/128/256) — stays on
the published layout and the reference path of ops/int4.py.

The tiled layout is torch's private one; it is never written to disk. Going back (saving a
prepared model, ``dequantize``) uses the permutation torch's own converter applies, read off it by
converting index patterns, so no assumption about the layout is built in here.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from .dense import moe_by_expert
from .int4 import PACK, Int4Weight, pack
from .registry import PackedWeight, packed_parameter, register

GROUPS = (32, 64, 128, 256)  # what the CPU kernel takes
# Compute dtypes that use the kernel. In float32 the experts' input is rounded to bfloat16 (relative
# error ≤ 2⁻⁹, far below INT4's own) and the rest of the model keeps float32, which CPUs without
# native bfloat16 (AVX2) multiply several times faster than bfloat16.
COMPUTE = (torch.bfloat16, torch.float32)
_mm = torch.ops.aten._weight_int4pack_mm_for_cpu
_convert = torch.ops.aten._convert_weight_to_int4pack_for_cpu


class Int4CpuWeight(PackedWeight):
    """INT4 in the CPU kernel's layout: ``tiles`` uint8 ``[..., out, in/2]``, ``scale_zeros`` bfloat16
    ``[..., in/g, out, 2]`` (scale, 0). Made from an `Int4Weight` by `prepare`; `to_int4` gives it
    back."""

    format = "int4_cpu"
    scale_name = "weight_scale"

    def __init__(self, tiles: torch.Tensor, scale_zeros: torch.Tensor, group_size: int, dtype: torch.dtype):
        *lead, rows, half = tiles.shape
        super().__init__((*lead, rows, half * 2), dtype)
        self.tiles = packed_parameter(tiles)
        self.scale_zeros = packed_parameter(scale_zeros)
        self.group_size = group_size

    @staticmethod
    def supports(w: Int4Weight) -> bool:
        return (w.device.type == "cpu" and w.dtype in COMPUTE and w.scale.dtype == torch.bfloat16
                and w.group_size in GROUPS and w.shape[-2] % 16 == 0)

    @classmethod
    def from_int4(cls, w: Int4Weight) -> Int4CpuWeight:
        from .int4 import unpack

        nib = unpack(w.packed).to(torch.int32)  # [..., out, in], 0 … 15
        flat = nib.reshape(-1, *nib.shape[-2:])
        tiles = torch.stack([_convert(m.contiguous(), 2) for m in flat]).view(*nib.shape[:-1], -1)
        sz = torch.stack((w.scale, torch.zeros_like(w.scale)), dim=-1)  # [..., out, in/g, 2]
        return cls(tiles, sz.transpose(-3, -2).contiguous(), w.group_size, w.dtype)

    def experts(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per expert of a stack, ``(tiles [out, in/2], scale_zeros [in/g, out, 2])`` views, made once
        (a decode step would otherwise index them for every expert it runs)."""
        views = self.__dict__.get("_views")
        if views is None or views[0][0].data_ptr() != self.tiles[0].data_ptr():
            views = list(zip(self.tiles.unbind(0), self.scale_zeros.unbind(0), strict=True))
            self.__dict__["_views"] = views
        return views

    def to_int4(self, expert: int | None = None) -> Int4Weight:
        """The published layout (of one expert of a stack, when given)."""
        tiles = self.tiles if expert is None else self.tiles[expert]
        sz = self.scale_zeros if expert is None else self.scale_zeros[expert]
        out, inp = tiles.shape[-2], tiles.shape[-1] * 2
        order = _tile_order(out, inp)  # [out·in]: the published position of each tiled nibble
        flat = tiles.reshape(-1, out, inp // 2)
        packed = []
        for t in flat:
            nib = torch.empty(out * inp, dtype=torch.uint8)
            nib[order] = torch.stack((t & 0xF, t >> 4), dim=-1).flatten()
            packed.append(pack(nib.view(out, inp).to(torch.int8) - 8))
        words = torch.stack(packed).view(*tiles.shape[:-1], inp // PACK)
        return Int4Weight(words, sz[..., 0].transpose(-2, -1).contiguous(), self.group_size, self.dtype)

    def dequantize(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        return self.to_int4().dequantize(dtype or self.dtype)

    def checkpoint_tensors(self, expert: int | None, rows: slice,
                           scale_name: str = "weight_scale") -> dict[str, torch.Tensor]:
        return self.to_int4(expert).checkpoint_tensors(None, rows, scale_name)


@functools.lru_cache(maxsize=4)
def _tile_order(out: int, inp: int) -> torch.Tensor:
    """For an ``[out, in]`` weight, the flat published index of each nibble in torch's tiled order,
    read off the converter: index patterns, one hexadecimal digit per conversion."""
    n = out * inp
    pos = torch.arange(n, dtype=torch.int64).view(out, inp)
    order = torch.zeros(n, dtype=torch.int64)
    for shift in range(0, max(4, (n - 1).bit_length() + 3) // 4 * 4, 4):
        t = _convert(((pos >> shift) & 0xF).to(torch.int32), 2)
        order |= torch.stack((t & 0xF, t >> 4), dim=-1).flatten().to(torch.int64) << shift
    return order


def _matmul(x: torch.Tensor, tiles: torch.Tensor, scale_zeros: torch.Tensor, group_size: int) -> torch.Tensor:
    """x ``[..., in]`` (bfloat16) · W ``[out, in]``ᵀ → ``[..., out]``."""
    if x.dim() == 2:
        return _mm(x, tiles, group_size, scale_zeros)
    y = _mm(x.reshape(-1, x.shape[-1]), tiles, group_size, scale_zeros)
    return y.view(*x.shape[:-1], -1)


@register("prepare", "int4", "cpu")
def prepare(weight: Int4Weight) -> PackedWeight:
    return Int4CpuWeight.from_int4(weight) if Int4CpuWeight.supports(weight) else weight


@register("linear", "int4_cpu")
def linear(x: torch.Tensor, weight: Int4CpuWeight, bias: torch.Tensor | None = None) -> torch.Tensor:
    xb = x if x.dtype == torch.bfloat16 else x.to(torch.bfloat16)
    y = _matmul(xb, weight.tiles, weight.scale_zeros, weight.group_size)
    y = y if y.dtype == x.dtype else y.to(x.dtype)
    return y if bias is None else y + bias


@register("dense_weight", "int4_cpu")
def dense_weight(weight: Int4CpuWeight) -> torch.Tensor:
    return weight.dequantize()


@register("moe_experts", "int4_cpu")
def moe_experts(x: torch.Tensor, topk_weights: torch.Tensor, topk_ids: torch.Tensor,
                w13: Int4CpuWeight, w2: Int4CpuWeight) -> torch.Tensor:
    """x ``[N, D]`` (bfloat16 or float32), topk_* ``[N, k]``, w13 ``[E, 2I, D]``, w2 ``[E, D, I]`` →
    ``[N, D]`` in x's dtype. Each expert runs in bfloat16 (what the kernel reads); its output returns
    to x's dtype before the weighted sum."""
    g13, g2 = w13.group_size, w2.group_size
    e13, e2 = w13.experts(), w2.experts()

    def mlp(e: int, xs: torch.Tensor) -> torch.Tensor:
        g, u = _matmul(xs, *e13[e], g13).chunk(2, dim=-1)
        return _matmul(F.silu(g) * u, *e2[e], g2).to(x.dtype)

    xb = x if x.dtype == torch.bfloat16 else x.to(torch.bfloat16)
    return moe_by_expert(xb, topk_weights, topk_ids, w13.shape[0], mlp=mlp)
