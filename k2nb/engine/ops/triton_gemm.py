"""One Triton matrix product that reads a weight in place in any of the engine's three storage formats.

    out[r, n] = Σ_k a[row(r), k] · W_e[n, k]       (times a routed weight, or SwiGLU-fused; see below)

Formats of ``W [E, N, K]`` (a plain linear is ``E = 1``), dequantized tile by tile in registers, never
as a whole matrix:

- **dense**: float16 / bfloat16 / float32, ``[E, N, K]``.
- **int4** (compressed-tensors ``pack-quantized``, K2-Thinking's routed experts): ``packed`` int32
  ``[E, N, K/8]``, column ``k`` in word ``k // 8`` at bits ``4·(k % 8)`` (least significant first),
  stored as ``q + 8``; ``scale [E, N, K/G]``; ``W[n, k] = (nibble − 8) · scale[n, k // G]`` (G = 32).
- **fp8** (block FP8, K2-Instruct / DeepSeek-V3): e4m3 ``[E, N, K]`` and ``scale_inv`` (float32 or
  bfloat16) ``[E, ⌈N/bo⌉, ⌈K/bi⌉]`` multiplying each bo×bi block (128×128; a stack whose gate rows
  are not whole blocks keeps bo = 1, see ops/fp8.py). Activations stay in 16 bits (W8A16).

Which rows a program multiplies (``ROUTING``):

- ``PLAIN``: rows ``pid·BM …`` of ``a`` (a linear layer, expert 0).
- ``PER_COPY``: one routed token copy per program (``BM = 1``), its expert read from ``topk_ids``; the
  decode path: no alignment pass, each chosen expert's weights read once per token.
- ``SORTED``: ``BM`` copies of one expert, from the ``moe_align`` tables (`triton_moe.py`): a block's
  expert, its number of real rows, and the copy index of each row.

Two kernels share the row mapping: ``_gemv_kernel`` (few rows per weight tile, i.e. decode: multiply
and add in fp32 registers, every tensor in the weight tile's own layout, per-chunk partial sums kept
in their thread and one cross-thread sum at the end; the int4 nibbles become floats in place, two
integer ops and a subtract each, see `_nibble`) and ``_dot_kernel`` (``tl.dot`` on tensor cores on a
dequantized tile: many rows per expert, prefill).
``SWIGLU`` reads gate rows ``n`` and up rows ``n + up_row`` of the same stacked ``w13`` and writes
``silu(gate) · up`` (the MoE intermediate is never stored twice as wide).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import triton
import triton.language as tl

from ..errors import K2nbError
from .registry import register

INT4, FP8, DENSE = "int4", "fp8", "dense"  # the registry's format names
_FMT_CODE = {DENSE: 0, INT4: 1, FP8: 2}
PLAIN, PER_COPY, SORTED = 0, 1, 2  # ROUTING modes
# The int4 nibble mask, passed to the decode kernel at run time rather than written in it: as a value
# the compiler cannot fold, its four shifted copies stay in registers, and each nibble's mask-and-or
# is one LOP3 instead of two (SASS takes one immediate per instruction), ~20 % fewer instructions.
NIBBLE_MASK = 0xF


@dataclass(frozen=True, slots=True)
class WeightView:
    """A weight as the kernels see it: ``data [E, N, Kstore]`` (int32 words, e4m3 or float), ``scale``
    (int4: ``[E, N, K/G]``; fp8: ``[E, ⌈N/bo⌉, ⌈K/bi⌉]``; dense: None), ``group`` (G, or bi: columns per
    scale), ``row_block`` (bo: rows per scale; 1 for int4 and dense), logical N, K."""

    fmt: str
    data: torch.Tensor
    scale: torch.Tensor | None
    group: int
    row_block: int
    n: int
    k: int


def weight_view(w: Any, fmt: str) -> WeightView:
    """The stored tensors of a weight, read in place (no copy unless a view is not contiguous in K):
    a dense tensor, or a record with int4's ``packed`` / ``scale`` / ``group_size`` or fp8's
    ``weight`` / ``scale_inv`` / ``block = (bo, bi)`` (`ops.int4.Int4Weight`, `ops.fp8.Fp8BlockWeight`).
    Leading dims are experts."""
    if fmt == DENSE:
        data = _stacked(w)
        return WeightView(DENSE, data, None, 1, 1, data.shape[1], data.shape[2])
    if fmt == INT4:
        packed, scale, group = _stacked(w.packed), _stacked(w.scale), int(w.group_size)
        k = packed.shape[2] * 8
        if packed.dtype != torch.int32 or scale.shape[:2] != packed.shape[:2] or scale.shape[2] * group != k:
            raise K2nbError(f"an int4 weight has packed {tuple(packed.shape)} {packed.dtype} and scale "
                            f"{tuple(scale.shape)} with group {group}; expected int32 [E, N, K/8] and "
                            "[E, N, K/group]")
        if group % 8 or group & (group - 1):
            raise K2nbError(f"int4 group size {group} is not a power of two ≥ 8, which the Triton "
                            "kernels need")
        return WeightView(INT4, packed, scale, group, 1, packed.shape[1], k)
    if fmt == FP8:
        data, scale = _stacked(w.weight), _stacked(w.scale_inv)
        bo, bi = (int(b) for b in w.block)
        n, k = data.shape[1], data.shape[2]
        if (data.dtype != torch.float8_e4m3fn or scale.shape[1] != -(-n // bo)
                or scale.shape[2] != -(-k // bi)):
            raise K2nbError(f"an fp8 weight has data {tuple(data.shape)} {data.dtype} and scale_inv "
                            f"{tuple(scale.shape)}; expected float8_e4m3fn [E, N, K] and "
                            f"[E, N/{bo}, K/{bi}]")
        if bi & (bi - 1) or bi < 16:
            raise K2nbError(f"fp8 column block {bi} is not a power of two ≥ 16, which the Triton "
                            "kernels need")
        return WeightView(FP8, data, scale, bi, bo, n, k)
    raise K2nbError(f"the Triton kernels read dense, int4 and fp8 weights, not {fmt!r}")


def _stacked(t: torch.Tensor) -> torch.Tensor:
    """``[N, K]`` → ``[1, N, K]``; the last dim made contiguous (the kernels step along it)."""
    t = t if t.dim() == 3 else t.unsqueeze(0)
    return t if t.stride(2) == 1 else t.contiguous()


@dataclass(frozen=True, slots=True)
class GemmConfig:
    """One kernel launch's tiling: ``kind`` gemv (broadcast-reduce) or dot (tensor cores)."""

    kind: Literal["gemv", "dot"]
    block_m: int
    block_n: int
    block_k: int
    num_warps: int = 4
    num_stages: int = 3


def fit_block_k(cfg: GemmConfig, view: WeightView) -> int:
    """The largest power of two ≤ cfg.block_k that divides K and suits the format (int4: a multiple of
    the group, so whole groups sit in a tile; fp8: a divisor of the block, so a tile has one scale)."""
    bk = cfg.block_k
    while bk > 16 and view.k % bk:
        bk //= 2
    if view.fmt == FP8:
        bk = min(bk, view.group)
    if view.k % bk or (view.fmt == INT4 and bk % view.group):
        raise K2nbError(f"a {view.fmt} weight with K = {view.k} (group {view.group}) has no tile width the "
                        "Triton kernels can step by; K must be a multiple of 16 (and of the int4 group)")
    return bk


# ---------------------------------------------------------------------------------------------------
# device code


@triton.jit
def _rows(pid_m, M, ids_ptr, sorted_ptr, bexp_ptr, brows_ptr, ROUTING: tl.constexpr, BM: tl.constexpr):
    """The block's expert, its rows (copy or token indices, [BM]) and which of them are real."""
    if ROUTING == 0:  # PLAIN
        rows = pid_m * BM + tl.arange(0, BM)
        return pid_m * 0, rows, rows < M
    elif ROUTING == 1:  # PER_COPY (BM == 1)
        rows = pid_m + tl.arange(0, BM)
        return tl.load(ids_ptr + pid_m), rows, rows < M
    else:  # SORTED
        n_real = tl.load(brows_ptr + pid_m)
        real = tl.arange(0, BM) < n_real
        rows = tl.load(sorted_ptr + pid_m * BM + tl.arange(0, BM), mask=real, other=0)
        return tl.load(bexp_ptr + pid_m), rows, real


@triton.jit
def _weight_tile(w_ptr, s_ptr, expert, wrows, srows, n_ok, k0, stride_we, stride_wn, stride_se, stride_sn,
                 stride_sk, FMT: tl.constexpr, GROUP: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    """W_e[wrows, k0 : k0 + BK] dequantized, fp32 ``[BN, BK]`` (dense: the stored dtype). `srows` are the
    scale rows of `wrows` (int4: the same rows; fp8: their block rows)."""
    e = expert.to(tl.int64)
    if FMT == 0:  # dense
        cols = k0 + tl.arange(0, BK)
        return tl.load(w_ptr + e * stride_we + wrows[:, None] * stride_wn + cols[None, :],
                       mask=n_ok[:, None], other=0.0)
    elif FMT == 1:  # int4: BK/8 words per row, each holding 8 columns
        WORDS: tl.constexpr = BK // 8
        words_k = k0 // 8 + tl.arange(0, WORDS)
        words = tl.load(w_ptr + e * stride_we + wrows[:, None] * stride_wn + words_k[None, :],
                        mask=n_ok[:, None], other=0)  # [BN, BK/8] int32
        # one scale per word (a group of GROUP columns spans GROUP/8 words; repeated loads hit L1)
        scale_k = (words_k // (GROUP // 8)) * stride_sk
        scale = tl.load(s_ptr + e * stride_se + srows[:, None] * stride_sn + scale_k[None, :],
                        mask=n_ok[:, None], other=0.0).to(tl.float32)  # [BN, BK/8]
        nib = (words[:, :, None] >> (tl.arange(0, 8) * 4)[None, None, :]) & 0xF  # [BN, BK/8, 8]
        # 2^23 + nibble as float bits, minus 2^23 + 8: the signed value q exactly, without an int→float op
        q = (nib | 0x4B000000).to(tl.float32, bitcast=True) - 8388616.0
        return tl.reshape(q * scale[:, :, None], (BN, BK))
    else:  # fp8: a tile lies in one block column (BK divides GROUP), so one scale per row
        cols = k0 + tl.arange(0, BK)
        w = tl.load(w_ptr + e * stride_we + wrows[:, None] * stride_wn + cols[None, :],
                    mask=n_ok[:, None], other=0.0).to(tl.float32)
        scale = tl.load(s_ptr + e * stride_se + srows * stride_sn + (k0 // GROUP) * stride_sk, mask=n_ok,
                        other=0.0)
        return w * scale.to(tl.float32)[:, None]


@triton.jit
def _scale_rows(offs_n, up_row, ROW_BLOCK: tl.constexpr):
    """Scale rows of weight rows offs_n (the gate half) and up_row + offs_n (the up half)."""
    return offs_n // ROW_BLOCK, (up_row + offs_n) // ROW_BLOCK


@triton.jit
def _store(c_ptr, rw_ptr, acc_g, acc_u, rows, real, offs_n, N, stride_cm, SWIGLU: tl.constexpr,
           MUL_WEIGHT: tl.constexpr):
    if SWIGLU:
        out = acc_g * tl.sigmoid(acc_g) * acc_u
    else:
        out = acc_g
    if MUL_WEIGHT:
        out = out * tl.load(rw_ptr + rows, mask=real, other=0.0).to(tl.float32)[:, None]
    ptrs = c_ptr + rows.to(tl.int64)[:, None] * stride_cm + offs_n[None, :]
    tl.store(ptrs, out.to(c_ptr.dtype.element_ty), mask=real[:, None] & (offs_n < N)[None, :])


@triton.jit
def _nibble(words, high, nib_mask, j: tl.constexpr):
    """Nibble j of each uint32 word as q = nibble − 8 in float32, exactly, in two instructions: the
    nibble is masked where it lies (nibbles 0–3 in `words`, 4–7 in `high` = words >> 16, at bit 4j')
    under the float exponent that makes its lowest bit worth 1, which reads as the float
    2^(23 − 4j') + nibble, and that constant plus 8 is subtracted. No shift per nibble and no
    int→float conversion; four mask / exponent pairs serve all eight nibbles. `nib_mask` is 0xF
    (NIBBLE_MASK, a kernel argument)."""
    if j < 4:
        src = words
        jj: tl.constexpr = j
    else:
        src = high
        jj: tl.constexpr = j - 4
    bits = (src & (nib_mask << (4 * jj))) | ((150 - 4 * jj) << 23)
    return bits.to(tl.float32, bitcast=True) - (2.0 ** (23 - 4 * jj) + 8.0)


@triton.jit
def _gemv_step(acc, a_ptr, a_rows, real, k0, w_ptr, s_ptr, wrows, srows, n_ok, stride_wn, stride_sn,
               stride_sk, nib_mask, FMT: tl.constexpr, GROUP: tl.constexpr, BM: tl.constexpr,
               BN: tl.constexpr, BK: tl.constexpr):
    """acc ``[BM, BN, C]`` += the K-tile ``k0 … k0 + BK`` of a[rows] · W[wrows]ᵀ, split into C chunks
    whose partial sums stay in their thread; a chunk's scale multiplies once (int4: a chunk is a word
    for one row, a group for several; fp8 / dense: 16 / 8 values). `w_ptr` / `s_ptr` point at the
    expert already."""
    if FMT == 1 and BM == 1:  # int4 decode: [BN, W = BK/8 words], one contiguous run of words per row
        W: tl.constexpr = BK // 8
        WG: tl.constexpr = GROUP // 8  # words per group
        word = k0 // 8 + tl.arange(0, W)  # [W]
        words = tl.load(w_ptr + wrows[:, None] * stride_wn + word[None, :], mask=n_ok[:, None],
                        other=0).to(tl.uint32, bitcast=True)  # [BN, W]
        high = words >> 16
        part = tl.zeros((BN, W), dtype=tl.float32)
        for j in tl.static_range(8):  # nibble j of every word: column 8·word + j
            a = tl.load(a_ptr + a_rows + word * 8 + j, mask=real, other=0.0).to(tl.float32)  # [W]
            part += _nibble(words, high, nib_mask, j) * a[None, :]
        # each word's group scale (GROUP / 8 words share one; the repeated loads hit L1)
        scale = tl.load(s_ptr + srows[:, None] * stride_sn + (word // WG)[None, :] * stride_sk,
                        mask=n_ok[:, None], other=0.0).to(tl.float32)  # [BN, W]
        return acc + (part * scale)[None, :, :]
    elif FMT == 1:  # int4, several rows: [BN, C = BK/G groups, G/8 words]
        C: tl.constexpr = BK // GROUP
        WG: tl.constexpr = GROUP // 8
        word = k0 // 8 + tl.arange(0, C)[:, None] * WG + tl.arange(0, WG)[None, :]  # [C, WG]
        words = tl.load(w_ptr + wrows[:, None, None] * stride_wn + word[None, :, :], mask=n_ok[:, None, None],
                        other=0).to(tl.uint32, bitcast=True)  # [BN, C, WG]
        high = words >> 16
        part = tl.zeros((BM, BN, C, WG), dtype=tl.float32)
        for j in tl.static_range(8):
            a = tl.load(a_ptr + a_rows[:, None, None] + (word * 8 + j)[None, :, :],
                        mask=real[:, None, None], other=0.0).to(tl.float32)  # [BM, C, WG]
            part += _nibble(words, high, nib_mask, j)[None, :, :, :] * a[:, None, :, :]
        group = k0 // GROUP + tl.arange(0, C)
        scale = tl.load(s_ptr + srows[:, None] * stride_sn + group[None, :] * stride_sk, mask=n_ok[:, None],
                        other=0.0).to(tl.float32)  # [BN, C]
        return acc + tl.sum(part, axis=3) * scale[None, :, :]
    else:  # fp8 / dense: [BN, C, V] with V values in 16 bytes
        V: tl.constexpr = 16 if FMT == 2 else 8
        C: tl.constexpr = BK // V
        col = k0 + tl.arange(0, C)[:, None] * V + tl.arange(0, V)[None, :]  # [C, V]
        w = tl.load(w_ptr + wrows[:, None, None] * stride_wn + col[None, :, :], mask=n_ok[:, None, None],
                    other=0.0).to(tl.float32)  # [BN, C, V]
        if BM == 1:  # decode: the chunk's V values are in one thread, so the sum stays there
            a = tl.load(a_ptr + a_rows + col, mask=real, other=0.0).to(tl.float32)  # [C, V]
            part = tl.sum(w * a[None, :, :], axis=2)[None, :, :]  # [1, BN, C]
        else:
            a = tl.load(a_ptr + a_rows[:, None, None] + col[None, :, :], mask=real[:, None, None],
                        other=0.0).to(tl.float32)  # [BM, C, V]
            part = tl.sum(w[None, :, :, :] * a[:, None, :, :], axis=3)  # [BM, BN, C]
        if FMT == 2:  # the tile lies in one column block (BK divides it): one scale per row
            scale = tl.load(s_ptr + srows * stride_sn + (k0 // GROUP) * stride_sk, mask=n_ok, other=0.0)
            part = part * scale.to(tl.float32)[None, :, None]
        return acc + part


@triton.jit
def _gemv_kernel(a_ptr, w_ptr, s_ptr, c_ptr, rw_ptr, ids_ptr, sorted_ptr, bexp_ptr, brows_ptr,
                 M, N, K, up_row,
                 stride_am, stride_we, stride_wn, stride_se, stride_sn, stride_sk, stride_cm, nib_mask,
                 A_ROW_DIV: tl.constexpr, FMT: tl.constexpr, GROUP: tl.constexpr, ROW_BLOCK: tl.constexpr,
                 ROUTING: tl.constexpr, SWIGLU: tl.constexpr, MUL_WEIGHT: tl.constexpr,
                 BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    pid_m, pid_n = tl.program_id(0), tl.program_id(1)
    expert, rows, real = _rows(pid_m, M, ids_ptr, sorted_ptr, bexp_ptr, brows_ptr, ROUTING, BM)
    if expert < 0:  # a SORTED block past the last expert's rows
        return
    offs_n = pid_n * BN + tl.arange(0, BN)
    n_ok = offs_n < N
    srow_g, srow_u = _scale_rows(offs_n, up_row, ROW_BLOCK)
    a_rows = (rows // A_ROW_DIV).to(tl.int64) * stride_am
    e = expert.to(tl.int64)
    w_ptr += e * stride_we
    s_ptr += e * stride_se
    C: tl.constexpr = (BK // 8 if BM == 1 else BK // GROUP) if FMT == 1 else BK // (16 if FMT == 2 else 8)
    acc_g = tl.zeros((BM, BN, C), dtype=tl.float32)
    acc_u = tl.zeros((BM, BN, C), dtype=tl.float32)
    for k0 in range(0, K, BK):
        acc_g = _gemv_step(acc_g, a_ptr, a_rows, real, k0, w_ptr, s_ptr, offs_n, srow_g, n_ok, stride_wn,
                           stride_sn, stride_sk, nib_mask, FMT, GROUP, BM, BN, BK)
        if SWIGLU:
            acc_u = _gemv_step(acc_u, a_ptr, a_rows, real, k0, w_ptr, s_ptr, up_row + offs_n, srow_u, n_ok,
                               stride_wn, stride_sn, stride_sk, nib_mask, FMT, GROUP, BM, BN, BK)
    _store(c_ptr, rw_ptr, tl.sum(acc_g, axis=2), tl.sum(acc_u, axis=2), rows, real, offs_n, N, stride_cm,
           SWIGLU, MUL_WEIGHT)


@triton.jit
def _dot_kernel(a_ptr, w_ptr, s_ptr, c_ptr, rw_ptr, ids_ptr, sorted_ptr, bexp_ptr, brows_ptr,
                M, N, K, up_row,
                stride_am, stride_we, stride_wn, stride_se, stride_sn, stride_sk, stride_cm,
                A_ROW_DIV: tl.constexpr, FMT: tl.constexpr, GROUP: tl.constexpr, ROW_BLOCK: tl.constexpr,
                ROUTING: tl.constexpr, SWIGLU: tl.constexpr, MUL_WEIGHT: tl.constexpr,
                BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, PRECISION: tl.constexpr):
    pid_m, pid_n = tl.program_id(0), tl.program_id(1)
    expert, rows, real = _rows(pid_m, M, ids_ptr, sorted_ptr, bexp_ptr, brows_ptr, ROUTING, BM)
    if expert < 0:
        return
    offs_n = pid_n * BN + tl.arange(0, BN)
    n_ok = offs_n < N
    srow_g, srow_u = _scale_rows(offs_n, up_row, ROW_BLOCK)
    a_rows = (rows // A_ROW_DIV).to(tl.int64) * stride_am
    acc_g = tl.zeros((BM, BN), dtype=tl.float32)
    acc_u = tl.zeros((BM, BN), dtype=tl.float32)
    for k0 in range(0, K, BK):
        a = tl.load(a_ptr + a_rows[:, None] + (k0 + tl.arange(0, BK))[None, :], mask=real[:, None], other=0.0)
        w = _weight_tile(w_ptr, s_ptr, expert, offs_n, srow_g, n_ok, k0, stride_we, stride_wn, stride_se,
                         stride_sn, stride_sk, FMT, GROUP, BN, BK).to(a.dtype)
        acc_g = tl.dot(a, tl.trans(w), acc_g, input_precision=PRECISION)
        if SWIGLU:
            w = _weight_tile(w_ptr, s_ptr, expert, up_row + offs_n, srow_u, n_ok, k0, stride_we, stride_wn,
                             stride_se, stride_sn, stride_sk, FMT, GROUP, BN, BK).to(a.dtype)
            acc_u = tl.dot(a, tl.trans(w), acc_u, input_precision=PRECISION)
    _store(c_ptr, rw_ptr, acc_g, acc_u, rows, real, offs_n, N, stride_cm, SWIGLU, MUL_WEIGHT)


# ---------------------------------------------------------------------------------------------------
# host side


@dataclass(frozen=True, slots=True)
class Rows:
    """Which rows the launch multiplies: ``routing`` PLAIN / PER_COPY / SORTED, ``m`` rows (tokens or
    token copies), ``blocks`` programs along M, and the tables the mode reads (unused ones are None)."""

    routing: int
    m: int
    blocks: int
    ids: torch.Tensor | None = None  # [M] int32 expert of each copy (PER_COPY)
    sorted_ids: torch.Tensor | None = None  # [blocks·BM] int32 copy index per row (SORTED)
    block_expert: torch.Tensor | None = None  # [blocks] int32, −1 past the end (SORTED)
    block_rows: torch.Tensor | None = None  # [blocks] int32 real rows of each block (SORTED)


def gemm(a: torch.Tensor, view: WeightView, out: torch.Tensor, rows: Rows, cfg: GemmConfig, *,
         a_row_div: int = 1, swiglu: bool = False,
         routed_weights: torch.Tensor | None = None) -> torch.Tensor:
    """out[r, :N] = a[rows(r) // a_row_div] · W_e[:N]ᵀ, where N = view.n (SWIGLU: view.n / 2, the gate
    half, fused with the up half); rows multiplied by routed_weights[r] when given. a ``[*, K]`` and out
    ``[M, N]`` must be row-major in their last dim."""
    n = view.n // 2 if swiglu else view.n
    bk = fit_block_k(cfg, view)
    if a.stride(-1) != 1 or out.stride(-1) != 1 or a.shape[-1] != view.k:
        raise K2nbError(f"gemm got a {tuple(a.shape)} for a weight of K = {view.k} (both must be row-major)")
    scale = view.scale if view.scale is not None else view.data  # dense: an unused pointer

    def ptr(t: torch.Tensor | None) -> torch.Tensor:
        return out if t is None else t  # a pointer the mode never reads

    args = (a, view.data, scale, out, ptr(routed_weights), ptr(rows.ids), ptr(rows.sorted_ids),
            ptr(rows.block_expert), ptr(rows.block_rows), rows.m, n, view.k, n,
            a.stride(0), view.data.stride(0) if view.data.shape[0] > 1 else 0, view.data.stride(1),
            scale.stride(0) if scale.shape[0] > 1 else 0, scale.stride(1), scale.stride(2), out.stride(0))
    meta: dict[str, Any] = dict(A_ROW_DIV=a_row_div, FMT=_FMT_CODE[view.fmt], GROUP=view.group,
                                ROW_BLOCK=view.row_block,
                                ROUTING=rows.routing, SWIGLU=swiglu, MUL_WEIGHT=routed_weights is not None,
                                BM=cfg.block_m, BN=cfg.block_n, BK=bk, num_warps=cfg.num_warps,
                                num_stages=cfg.num_stages)
    grid = (rows.blocks, triton.cdiv(n, cfg.block_n))
    if cfg.kind == "gemv":
        _gemv_kernel[grid](*args, NIBBLE_MASK, **meta)
    else:
        _dot_kernel[grid](*args, **meta, PRECISION="ieee" if a.dtype == torch.float32 else "tf32")
    return out


def linear_config(m: int, view: WeightView) -> GemmConfig:
    """Tiling for a plain linear of m rows (defaults; bench/gpu_moe.py --sweep measures others)."""
    if m <= 8:
        bm = 1 << max(m - 1, 0).bit_length()
        return GemmConfig("gemv", bm, 32 if bm <= 2 else 16, 256 if view.fmt == INT4 else 128, 4, 3)
    return GemmConfig("dot", 16 if m <= 32 else 64, 64 if m <= 32 else 128, 64, 4, 3)


def _linear(x: torch.Tensor, weight: Any, bias: torch.Tensor | None, fmt: str) -> torch.Tensor:
    """``x [..., in] · Wᵀ (+ bias)`` → ``[..., out]`` with the weight read packed."""
    view = weight_view(weight, fmt)
    if view.data.shape[0] != 1:
        raise K2nbError(f"a linear weight must be one matrix, not {view.data.shape[0]} stacked")
    a = x.reshape(-1, x.shape[-1])
    a = a if a.stride(-1) == 1 else a.contiguous()
    out = torch.empty(a.shape[0], view.n, dtype=x.dtype, device=x.device)
    if a.shape[0]:
        cfg = linear_config(a.shape[0], view)
        gemm(a, view, out, Rows(PLAIN, a.shape[0], triton.cdiv(a.shape[0], cfg.block_m)), cfg)
    if bias is not None:
        out += bias
    return out.view(*x.shape[:-1], view.n)


@register("linear", INT4, "cuda")
def linear_int4(x: torch.Tensor, weight: Any, bias: torch.Tensor | None = None) -> torch.Tensor:
    return _linear(x, weight, bias, INT4)


@register("linear", FP8, "cuda")
def linear_fp8(x: torch.Tensor, weight: Any, bias: torch.Tensor | None = None) -> torch.Tensor:
    return _linear(x, weight, bias, FP8)
