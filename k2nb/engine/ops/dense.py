"""Dense weights (float32 / bfloat16 / float16): the linear layers and routed experts in plain torch.

The routed experts take one of four paths, chosen by the number of tokens N and the device:

- **gather** (N ≤ GATHER_MAX_TOKENS on an accelerator, i.e. decode): index the chosen experts'
  weights and run two batched matmuls; no host sync, no loop.
- **one token on the CPU** (decode, inference): each chosen expert runs on the token, the k of them
  spread over the CPU helper threads (`threads.WORKERS`); no sort.
- **grouped GEMM** (more tokens, inference, torch ≥ 2.10 with `grouped_mm`; on CUDA only in
  bfloat16, what its kernels take): sort the token copies by expert, one GEMM per projection.
- **per-expert loop** (everything else: training, older torch): the same sort, then each expert that
  received tokens runs once on its contiguous rows, reading its weights in place.

A one-row linear on the CPU whose weight is at least SPLIT_MIN_BYTES is computed as row blocks on the
helper threads (each output is the same dot product either way, so the result is bit-for-bit that of
one call).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .registry import register
from .threads import WORKERS

# Tokens at or below this count take the gather path on an accelerator (decode); more are grouped.
GATHER_MAX_TOKENS = 4
# A one-row CPU linear reading at least this many weight bytes is split over the helper threads
# (below it the hand-off costs about what the split saves).
SPLIT_MIN_BYTES = 1 << 20
# torch ≥ 2.10 has a grouped GEMM (CPU and CUDA); older versions loop over the used experts.
_grouped_mm = getattr(F, "grouped_mm", None)


@register("linear", "dense")
def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    if (x.device.type == "cpu" and x.numel() == x.shape[-1] and not torch.is_grad_enabled()
            and weight.numel() * weight.element_size() >= SPLIT_MIN_BYTES and WORKERS.helpers()):
        return _row_blocks(x, weight, bias)
    return F.linear(x, weight, bias)


def _row_blocks(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """One row ``x [..., in]`` through ``weight [out, in]`` as ``helpers + 1`` blocks of output rows
    (multiples of 64 rows), computed at once and concatenated: ``[..., out]``."""
    out = weight.shape[0]
    step = -(-out // (WORKERS.helpers() + 1) // 64) * 64
    bounds = [(a, min(a + step, out)) for a in range(0, out, step)]
    parts = WORKERS.map([lambda a=a, b=b: F.linear(x, weight[a:b], None if bias is None else bias[a:b])
                         for a, b in bounds])
    return torch.cat(parts, dim=-1)


@register("dense_weight", "dense")
def dense_weight(weight: torch.Tensor) -> torch.Tensor:
    return weight


@register("moe_experts", "dense")
def moe_experts(
    x: torch.Tensor, topk_weights: torch.Tensor, topk_ids: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor
) -> torch.Tensor:
    """x ``[N, D]``, topk_weights / topk_ids ``[N, k]``, w13 ``[E, 2I, D]``, w2 ``[E, D, I]`` → ``[N, D]``."""
    N, k = topk_ids.shape
    if N <= GATHER_MAX_TOKENS and x.device.type != "cpu":
        # On the CPU there is no sync to avoid, and the gather would copy k experts' weights per
        # layer, so the paths that read them in place are faster there.
        y = _gathered(x, topk_ids, w13, w2)
    elif N == 1 and x.device.type == "cpu" and not torch.is_grad_enabled():
        y = _one_token(x, topk_ids, lambda e: (w13[e], w2[e]))
    else:
        y = _sorted_by_expert(x, topk_ids, w13, w2)
    return (y.view(N, k, -1) * topk_weights[..., None].to(y.dtype)).sum(dim=1)


def _mlp(x: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """down(silu(gate(x)) · up(x)) of one expert: x ``[n, D]``, w13 ``[2I, D]``, w2 ``[D, I]``."""
    g, u = F.linear(x, w13).chunk(2, dim=-1)
    return F.linear(F.silu(g) * u, w2)


def _one_token(x: torch.Tensor, ids: torch.Tensor,
               expert: Callable[[int], tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """x ``[1, D]`` through each of its k experts (``expert(e)`` → dense ``(w13, w2)``), spread over the
    CPU helpers: ``[k, D]`` in the order of ``ids [1, k]``."""
    return torch.cat(WORKERS.map([lambda e=e: _mlp(x, *expert(e)) for e in ids[0].tolist()]))


def _gathered(x: torch.Tensor, ids: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """Each token copy through its expert: ``[N*k, D]`` in token-major order."""
    k = ids.shape[1]
    flat = ids.reshape(-1)  # [N*k]
    xk = x.repeat_interleave(k, dim=0)[:, :, None]  # [N*k, D, 1]
    g, u = torch.bmm(w13[flat], xk).squeeze(-1).chunk(2, dim=-1)  # [N*k, I] each
    return torch.bmm(w2[flat], (F.silu(g) * u)[:, :, None]).squeeze(-1)  # [N*k, D]


def _sorted_by_expert(x: torch.Tensor, ids: torch.Tensor, w13: torch.Tensor,
                      w2: torch.Tensor) -> torch.Tensor:
    """Sort token copies by expert so each expert's rows are contiguous, run every *used* expert once
    on its rows, and scatter back: ``[N*k, D]`` in token-major order."""
    N, k = ids.shape
    flat = ids.reshape(-1)
    order = flat.argsort(stable=True)  # [N*k]
    counts = torch.bincount(flat, minlength=w13.shape[0])  # [E]
    xs = x[order // k]  # [N*k, D], grouped by expert
    if (_grouped_mm is not None and N > GATHER_MAX_TOKENS and not torch.is_grad_enabled()
            and (x.device.type == "cpu" or x.dtype == torch.bfloat16)):
        # Inference only: the grouped GEMM has no CPU autograd.
        offs = counts.cumsum(0).to(torch.int32)
        g, u = _grouped_mm(xs, w13.transpose(1, 2), offs=offs).chunk(2, dim=-1)
        ys = _grouped_mm(F.silu(g) * u, w2.transpose(1, 2), offs=offs)  # [N*k, D]
    else:
        ys = _per_expert(xs, counts, w13, w2)
    y = torch.empty_like(xs)
    y[order] = ys
    return y


def _per_expert(xs: torch.Tensor, counts: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """xs ``[N*k, D]`` grouped by expert, counts ``[E]`` rows per expert → ``[N*k, D]``."""
    parts, start = [], 0
    for e, c in enumerate(counts.tolist()):  # one host sync per layer, not per expert
        if c:  # only the experts that received tokens
            g, u = F.linear(xs[start:start + c], w13[e]).chunk(2, dim=-1)
            parts.append(F.linear(F.silu(g) * u, w2[e]))
            start += c
    return torch.cat(parts)


def moe_by_expert(x: torch.Tensor, topk_weights: torch.Tensor, topk_ids: torch.Tensor, n_experts: int,
                  expert: Callable[[int], tuple[torch.Tensor, torch.Tensor]] | None = None,
                  mlp: Callable[[int, torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """The routed experts for weights that are read per expert (quantized formats). Either
    ``expert(e)`` gives expert e's dense ``(w13 [2I, D], w2 [D, I])``, or ``mlp(e, xs)`` runs expert e on
    its rows ``xs [n, D]`` → ``[n, D]``; each is called once per expert that received tokens (one token
    on the CPU: the k experts spread over the helper threads). x ``[N, D]``, topk_* ``[N, k]`` →
    Σ_k w_k · expert_k(x), ``[N, D]``."""
    run = mlp if mlp is not None else (lambda e, xs: _mlp(xs, *expert(e)))  # type: ignore[misc]
    N, k = topk_ids.shape
    if N == 1 and x.device.type == "cpu":
        y = torch.cat(WORKERS.map([lambda e=e: run(e, x) for e in topk_ids[0].tolist()]))  # [k, D]
        return (y.view(N, k, -1) * topk_weights[..., None].to(y.dtype)).sum(dim=1)
    flat = topk_ids.reshape(-1)  # [N*k]
    order = flat.argsort(stable=True)
    counts = torch.bincount(flat, minlength=n_experts).tolist()  # one host sync per layer
    xs = x[order // k]  # [N*k, D] grouped by expert
    parts, start = [], 0
    for e, c in enumerate(counts):
        if c:
            parts.append(run(e, xs[start:start + c]))
            start += c
    ys = torch.cat(parts)  # in the experts' output dtype, which may differ from x's
    y = torch.empty_like(ys)
    y[order] = ys
    return (y.view(N, k, -1) * topk_weights[..., None].to(y.dtype)).sum(dim=1)
