"""Which kernel computes an operation for a weight: the table keyed on (operation, format, device)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeVar

import torch

from ..errors import K2nbError

Op = Literal["linear", "moe_experts", "dense_weight"]
F = TypeVar("F", bound=Callable[..., torch.Tensor])

DENSE_DTYPES = frozenset({torch.float32, torch.bfloat16, torch.float16, torch.float64})
# (operation, weight format, device type or None for every device) → kernel
KERNELS: dict[tuple[str, str, str | None], Callable[..., torch.Tensor]] = {}
# (operation, weight format, device type) → the kernel that applies; filled on first use, since a
# decode step asks ~30 times
_RESOLVED: dict[tuple[str, str, str], Callable[..., torch.Tensor]] = {}


def register(op: Op, fmt: str, device: str | None = None) -> Callable[[F], F]:
    """Decorator: `fn` computes `op` for weights of format `fmt` (on `device` only, when given)."""

    def add(fn: F) -> F:
        KERNELS[(op, fmt, device)] = fn
        _RESOLVED.clear()
        return fn

    return add


def unregister(op: Op, fmt: str, device: str | None = None) -> None:
    """Remove a kernel (tests; a module that finds its hardware missing)."""
    KERNELS.pop((op, fmt, device), None)
    _RESOLVED.clear()


def weight_format(weight: torch.Tensor) -> str:
    """"dense" for a float tensor, else the format the (packed) weight names in its ``format``."""
    fmt = getattr(weight, "format", None)
    if fmt is not None:
        return fmt
    if weight.dtype in DENSE_DTYPES:
        return "dense"
    raise K2nbError(
        f"a weight of dtype {weight.dtype} carries no format attribute, so no kernel can read it; "
        "dense weights are float32, bfloat16 or float16 and quantized ones name their format"
    )


def kernel(op: Op, weight: torch.Tensor, device: torch.device) -> Callable[..., torch.Tensor]:
    """The kernel that computes `op` for `weight` on `device`: one registered for that device type
    wins over one registered for every device."""
    key = (op, weight_format(weight), device.type)
    fn = _RESOLVED.get(key)
    if fn is None:
        fn = _resolve(*key)
        _RESOLVED[key] = fn
    return fn


def _resolve(op: str, fmt: str, device_type: str) -> Callable[..., torch.Tensor]:
    fn = KERNELS.get((op, fmt, device_type)) or KERNELS.get((op, fmt, None))
    if fn is None:
        known = sorted({f for o, f, _ in KERNELS if o == op})
        raise K2nbError(
            f"weights in format {fmt!r} have no {op} kernel on {device_type}; "
            f"the formats with one are {', '.join(known) or 'none'}"
        )
    return fn
