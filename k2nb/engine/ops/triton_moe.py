"""The routed experts on CUDA in Triton: ``moe_experts`` for int4 (W4A16), fp8 (block, W8A16) and dense
weights, with the same signature and result as the torch kernels in dense.py.

    x [T, D], topk_weights / topk_ids [T, k], w13 [E, 2I, D], w2 [E, D, I]  →  Σ_k w_k · expert_k(x), [T, D]

Two launches of `triton_gemm.gemm` per layer, on the M = T·k token copies (copy ``t·k + j`` is token t's
j-th expert): w13 with SwiGLU fused → ``[M, I]``, then w2 with the routing weight → ``[M, D]``, summed
over k. Weights are read in place in their stored format; nothing is copied per expert and nothing
waits on the host, so a decode step can be captured in a CUDA graph.

The copies reach the kernels one of two ways (`MoeConfig.block_m`):

- ``block_m == 1`` (decode): one program per copy and output tile, its expert read from ``topk_ids``.
  No alignment pass; each chosen expert's weights are read once per token that chose it.
- ``block_m > 1``: `moe_align` groups the copies by expert into blocks of ``block_m`` rows, each block
  one expert's (its last block padded); a block's weights are read once for all its rows. For M up
  to ``ALIGN_KERNEL_MAX`` this is one single-program Triton kernel; beyond it, torch's sort (a few
  more launches, still without a host sync).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import triton
import triton.language as tl

from ..errors import K2nbError
from . import dense
from .registry import register
from .triton_gemm import DENSE, FP8, INT4, PER_COPY, SORTED, GemmConfig, Rows, WeightView, gemm, weight_view

# Token copies up to which the single-program alignment kernel runs (beyond: torch's sort).
ALIGN_KERNEL_MAX = 4096
_ALIGN_CHUNK = 16  # copies per step of the alignment kernel: a [CHUNK, E_PAD] one-hot in registers


@dataclass(frozen=True, slots=True)
class MoeConfig:
    """The tiling of one MoE call: copies per block (1 = one program per copy) and each projection's
    kernel (their block_m must equal ``block_m``)."""

    block_m: int
    w13: GemmConfig
    w2: GemmConfig


def moe_config(m: int, n_experts: int, fmt: str) -> MoeConfig:
    """Default tiling for M token copies over E experts (bench/gpu_moe.py --sweep times alternatives
    on a GPU; measured winners belong here).

    Up to 2·E copies (decode and small batches: few copies share an expert, and those that do run in
    the same wave, so the repeated tile reads tend to hit L2) take the broadcast-reduce kernel with
    one program per copy; int4 tiles are wide (64 / 128 rows of 256 columns) so that each thread's
    activations serve several weight rows (~4.7 instructions per weight in sm_90 SASS, nothing through
    shared memory). More copies take tensor cores on blocks of one expert's copies."""
    if m <= 2 * n_experts:
        if fmt == INT4:
            return MoeConfig(1, GemmConfig("gemv", 1, 64, 256), GemmConfig("gemv", 1, 128, 256))
        return MoeConfig(1, GemmConfig("gemv", 1, 32, 128), GemmConfig("gemv", 1, 64, 128))
    per_expert = m / n_experts
    bm = 16 if per_expert <= 16 else 32 if per_expert <= 64 else 64
    dot = GemmConfig("dot", bm, 64 if bm <= 32 else 128, 64, 4, 3)
    return MoeConfig(bm, dot, dot)


# ---------------------------------------------------------------------------------------------------
# alignment: token copies grouped by expert, in blocks


def max_blocks(m: int, n_experts: int, block_m: int) -> int:
    """Blocks enough for any routing of m copies: each used expert (at most min(E, m)) pads < block_m."""
    return triton.cdiv(m + min(n_experts, m) * (block_m - 1), block_m)


@triton.jit
def _align_kernel(ids_ptr, sorted_ptr, bexp_ptr, brows_ptr, M, n_blocks,
                  BM: tl.constexpr, E_PAD: tl.constexpr, CHUNK: tl.constexpr):
    """One program: count copies per expert, lay each expert's copies out in blocks of BM (stable, in
    copy order), and write each block's expert (−1 past the end) and number of real rows."""
    experts = tl.arange(0, E_PAD)
    counts = tl.zeros((E_PAD,), dtype=tl.int32)
    for c0 in range(0, M, CHUNK):
        offs = c0 + tl.arange(0, CHUNK)
        ids = tl.load(ids_ptr + offs, mask=offs < M, other=E_PAD)  # E_PAD matches no expert
        counts += tl.sum((ids[:, None] == experts[None, :]).to(tl.int32), axis=0)
    padded = (counts + BM - 1) // BM * BM
    ends = tl.cumsum(padded, axis=0)  # [E_PAD] padded end of each expert's rows
    starts = ends - padded
    for b0 in range(0, n_blocks, CHUNK):
        blocks = b0 + tl.arange(0, CHUNK)
        first = blocks * BM
        # a block belongs to the first expert whose padded end lies beyond its first row
        expert = tl.sum((ends[None, :] <= first[:, None]).to(tl.int32), axis=1)  # [CHUNK]
        mine = experts[None, :] == expert[:, None]  # [CHUNK, E_PAD]
        left = tl.sum(tl.where(mine, counts[None, :] - (first[:, None] - starts[None, :]), 0), axis=1)
        real = expert < E_PAD
        tl.store(bexp_ptr + blocks, tl.where(real, expert, -1), mask=blocks < n_blocks)
        tl.store(brows_ptr + blocks, tl.where(real, tl.minimum(left, BM), 0), mask=blocks < n_blocks)
    seen = tl.zeros((E_PAD,), dtype=tl.int32)
    for c0 in range(0, M, CHUNK):
        offs = c0 + tl.arange(0, CHUNK)
        ids = tl.load(ids_ptr + offs, mask=offs < M, other=E_PAD)
        onehot = (ids[:, None] == experts[None, :]).to(tl.int32)  # [CHUNK, E_PAD]
        # slot = expert start + copies of that expert in earlier chunks + earlier in this chunk
        slot = tl.sum(onehot * (starts[None, :] + seen[None, :] + tl.cumsum(onehot, axis=0) - 1), axis=1)
        tl.store(sorted_ptr + slot, offs, mask=offs < M)
        seen += tl.sum(onehot, axis=0)


def moe_align(ids: torch.Tensor, n_experts: int, block_m: int, *, use_kernel: bool | None = None) -> Rows:
    """ids ``[M]`` int32 expert of each copy → SORTED rows: ``sorted_ids [blocks·BM]`` (copy index per
    row, in copy order within an expert; padding rows unspecified), ``block_expert [blocks]`` (−1 for
    blocks past the end), ``block_rows [blocks]`` (real rows per block). Sizes depend on M and E only,
    never on the routing, so nothing is read back to the host."""
    m = ids.numel()
    n_blocks = max_blocks(m, n_experts, block_m)
    dev = ids.device
    if use_kernel if use_kernel is not None else m <= ALIGN_KERNEL_MAX:
        sorted_ids = torch.empty(n_blocks * block_m, dtype=torch.int32, device=dev)
        bexp = torch.empty(n_blocks, dtype=torch.int32, device=dev)
        brows = torch.empty(n_blocks, dtype=torch.int32, device=dev)
        e_pad = triton.next_power_of_2(n_experts)
        _align_kernel[(1,)](ids, sorted_ids, bexp, brows, m, n_blocks, BM=block_m, E_PAD=e_pad,
                            CHUNK=_ALIGN_CHUNK, num_warps=4)
        return Rows(SORTED, m, n_blocks, sorted_ids=sorted_ids, block_expert=bexp, block_rows=brows)
    flat = ids.long()
    counts = torch.zeros(n_experts, dtype=torch.long, device=dev).scatter_add_(0, flat, torch.ones_like(flat))
    padded = (counts + block_m - 1) // block_m * block_m
    ends = padded.cumsum(0)  # [E]
    starts = ends - padded
    order = flat.argsort(stable=True)  # [M] copies grouped by expert, in copy order
    by_expert = flat[order]
    rank = torch.arange(m, device=dev) - (counts.cumsum(0) - counts)[by_expert]
    sorted_ids = torch.zeros(n_blocks * block_m, dtype=torch.int32, device=dev)
    sorted_ids.scatter_(0, starts[by_expert] + rank, order.to(torch.int32))
    first = torch.arange(n_blocks, device=dev) * block_m
    expert = torch.searchsorted(ends, first, right=True)  # first expert whose end lies beyond
    real = expert < n_experts
    e = expert.clamp(max=n_experts - 1)
    left = (counts[e] - (first - starts[e])).clamp(0, block_m)
    return Rows(SORTED, m, n_blocks, sorted_ids=sorted_ids,
                block_expert=torch.where(real, expert, -1).to(torch.int32),
                block_rows=torch.where(real, left, 0).to(torch.int32))


# ---------------------------------------------------------------------------------------------------
# the operation


def fused_moe(x: torch.Tensor, topk_weights: torch.Tensor, topk_ids: torch.Tensor, w13: Any, w2: Any,
              fmt: str, config: MoeConfig | None = None) -> torch.Tensor:
    """x ``[T, D]``, topk_weights / topk_ids ``[T, k]``, w13 / w2 in format `fmt` → ``[T, D]`` in x's dtype.
    `topk_ids` must hold valid expert indices (route() gives them)."""
    v13, v2 = weight_view(w13, fmt), weight_view(w2, fmt)
    _check_shapes(x, topk_ids, v13, v2)
    T, D = x.shape
    k = topk_ids.shape[1]
    m, n_experts, inter = T * k, v13.data.shape[0], v2.k
    if m == 0:
        return torch.zeros_like(x)
    cfg = config or moe_config(m, n_experts, fmt)
    if cfg.w13.block_m != cfg.block_m or cfg.w2.block_m != cfg.block_m:
        raise K2nbError(f"a MoE config's kernels tile {cfg.w13.block_m} and {cfg.w2.block_m} rows, not its "
                        f"block_m {cfg.block_m}")
    x = x if x.stride(-1) == 1 else x.contiguous()
    ids = topk_ids.reshape(-1)
    ids = ids if ids.dtype == torch.int32 and ids.is_contiguous() else ids.to(torch.int32).contiguous()
    if cfg.block_m == 1:
        rows = Rows(PER_COPY, m, m, ids=ids)
    else:
        rows = moe_align(ids, n_experts, cfg.block_m)
    act = torch.empty(m, inter, dtype=x.dtype, device=x.device)  # silu(gate) · up per copy
    gemm(x, v13, act, rows, cfg.w13, a_row_div=k, swiglu=True)
    out = torch.empty(m, D, dtype=x.dtype, device=x.device)  # w_k · expert_k(x) per copy
    gemm(act, v2, out, rows, cfg.w2, routed_weights=topk_weights.reshape(-1).contiguous())
    return out.view(T, k, D).sum(dim=1)


def _check_shapes(x: torch.Tensor, ids: torch.Tensor, v13: WeightView, v2: WeightView) -> None:
    E, D, inter = v13.data.shape[0], x.shape[-1], v2.k
    if (x.dim() != 2 or v13.k != D or v13.n != 2 * inter or v2.n != D or v2.data.shape[0] != E
            or ids.dim() != 2 or ids.shape[0] != x.shape[0]):
        raise K2nbError(f"moe_experts got x {tuple(x.shape)}, topk_ids {tuple(ids.shape)}, w13 "
                        f"[{E}, {v13.n}, {v13.k}] and w2 [{v2.data.shape[0]}, {v2.n}, {v2.k}]; expected "
                        "x [T, D], topk_ids [T, k], w13 [E, 2I, D], w2 [E, D, I]")


@register("moe_experts", INT4, "cuda")
def moe_experts_int4(x: torch.Tensor, topk_weights: torch.Tensor, topk_ids: torch.Tensor, w13: Any,
                     w2: Any) -> torch.Tensor:
    return fused_moe(x, topk_weights, topk_ids, w13, w2, INT4)


@register("moe_experts", FP8, "cuda")
def moe_experts_fp8(x: torch.Tensor, topk_weights: torch.Tensor, topk_ids: torch.Tensor, w13: Any,
                    w2: Any) -> torch.Tensor:
    return fused_moe(x, topk_weights, topk_ids, w13, w2, FP8)


@register("moe_experts", DENSE, "cuda")
def moe_experts_dense(x: torch.Tensor, topk_weights: torch.Tensor, topk_ids: torch.Tensor, w13: torch.Tensor,
                      w2: torch.Tensor) -> torch.Tensor:
    """Float weights: Triton for inference; torch (dense.py) where autograd must see the product, for
    float64, and where D or I is not a multiple of 16 (the kernels' narrowest tile)."""
    grad = torch.is_grad_enabled() and (x.requires_grad or w13.requires_grad or w2.requires_grad)
    if (grad or x.dtype not in (torch.float16, torch.bfloat16, torch.float32) or w13.dtype != x.dtype
            or x.shape[-1] % 16 or w2.shape[-1] % 16):
        return dense.moe_experts(x, topk_weights, topk_ids, w13, w2)
    return fused_moe(x, topk_weights, topk_ids, w13, w2, DENSE)
