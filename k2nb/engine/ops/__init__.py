"""The engine's kernels, chosen by the format of the weights they read.

Every matrix product of the model goes through one of three operations:

    linear(x, weight, bias=None)                      x [..., in] → [..., out]
    moe_experts(x, topk_weights, topk_ids, w13, w2)   x [N, D], topk_* [N, k] → Σ_k w_k · expert_k(x), [N, D]
    dense_weight(weight)                              the weight as a plain [out, in] matrix
    prepare(weight)                                   once at load: the weight in the layout its device's
                                                      kernels read best (the weight itself if none)

(`w13 [E, 2I, D]` holds each routed expert's gate rows then up rows, `w2 [E, D, I]` its down
projection; `dense_weight` serves MLA's absorbed decode, which folds kv_b's matrix into the query.)

A weight's format is `weight_format(w)`: "dense" for a float32 / bfloat16 / float16 tensor, otherwise
the weight's own ``format`` attribute. A quantized weight is a `PackedWeight` record standing where
the dense tensor would (`int4.Int4Weight`: compressed-tensors pack-quantized INT4, "int4";
`fp8.Fp8BlockWeight`: DeepSeek block FP8, "fp8"), holding its packed tensors and scales. Each
format's module (`dense.py`, `int4.py`, `fp8.py`; Triton kernels next) registers its kernels with
`registry.register` and is imported below, so a new format or a faster kernel for an existing one
(a Triton MoE for dense or INT4 weights on CUDA) is one module.
"""

from __future__ import annotations

import torch

from ..errors import K2nbError
from . import dense, fp8, int4, int4_cpu  # noqa: F401  (each registers its format's kernels)
from .registry import DENSE_DTYPES, KERNELS, PackedWeight, kernel, register, unregister, weight_format
from .threads import WORKERS


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x [..., in] · weight [out, in]ᵀ (+ bias)`` → ``[..., out]``."""
    return kernel("linear", weight, x.device)(x, weight, bias)


def moe_experts(
    x: torch.Tensor, topk_weights: torch.Tensor, topk_ids: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor
) -> torch.Tensor:
    """x ``[N, D]``, topk_weights / topk_ids ``[N, k]`` → Σ_k w_k · down(silu(gate(x)) · up(x)),
    ``[N, D]``."""
    if (fmt := weight_format(w13)) != (fmt2 := weight_format(w2)):
        raise K2nbError(
            f"the routed experts' w13 is {fmt!r} but w2 is {fmt2!r}; "
            "both projections of the experts must be stored in one format"
        )
    return kernel("moe_experts", w13, x.device)(x, topk_weights, topk_ids, w13, w2)


def prepare(weight: PackedWeight) -> PackedWeight:
    """A packed weight in the layout its device's kernels read best — e.g. INT4 on the CPU becomes
    torch's tiled int4 layout (`int4_cpu`) — or the weight itself. Called once per weight at load
    (not with ``load_model(..., exact=True)``)."""
    key = ("prepare", weight_format(weight))
    fn = KERNELS.get((*key, weight.device.type)) or KERNELS.get((*key, None))
    return fn(weight) if fn is not None else weight


def dense_weight(weight: torch.Tensor) -> torch.Tensor:
    """The weight as a plain ``[out, in]`` matrix in the compute dtype (dequantized if it is packed)."""
    return kernel("dense_weight", weight, weight.device)(weight)


__all__ = [
    "DENSE_DTYPES", "KERNELS", "PackedWeight", "WORKERS", "dense_weight", "kernel", "linear", "moe_experts",
    "prepare", "register", "unregister", "weight_format",
]
