"""Which kernel computes an operation for a weight: the table keyed on (operation, format, device),
and `PackedWeight`, the base of every quantized weight record the table dispatches on."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Literal, TypeVar

import torch
from torch import nn

from ..errors import K2nbError

Op = Literal["linear", "moe_experts", "dense_weight", "prepare"]
F = TypeVar("F", bound=Callable[..., torch.Tensor])

DENSE_DTYPES = frozenset({torch.float32, torch.bfloat16, torch.float16, torch.float64})
# (operation, weight format, device type or None for every device) → kernel
KERNELS: dict[tuple[str, str, str | None], Callable[..., torch.Tensor]] = {}
# (operation, weight format, device type) → the kernel that applies; filled on first use, since a
# decode step asks ~30 times
_RESOLVED: dict[tuple[str, str, str], Callable[..., torch.Tensor]] = {}
# Modules that register kernels for one device type, imported on the first lookup for that device so
# that `import k2nb` never imports their dependencies (Triton). A module whose dependency is not
# installed is skipped: the kernels registered for every device serve instead.
DEVICE_MODULES: dict[str, tuple[str, ...]] = {
    "cuda": ("k2nb.engine.ops.triton_gemm", "k2nb.engine.ops.triton_moe"),
}
_IMPORTED: set[str] = set()


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


class PackedWeight(nn.Module):
    """A quantized weight: its packed tensors (parameters without gradient, so ``.to(device)``,
    ``state_dict`` and ``parameters()`` see their real bytes) plus what a kernel needs to read them.

    It stands where a dense weight would (``Linear.weight``, ``Experts.w13``) and behaves like one
    where the model asks: ``shape`` is the logical ``[..., out, in]`` shape, ``dtype`` the compute
    dtype its values are dequantized to, ``device`` where its storage lives. ``format`` picks the
    kernels (`weight_format`). Subclasses: `ops.int4.Int4Weight`, `ops.fp8.Fp8BlockWeight`.
    """

    format: ClassVar[str]
    scale_name: ClassVar[str]  # the checkpoint suffix of its scales ("weight_scale", …)

    def __init__(self, shape: tuple[int, ...], dtype: torch.dtype):
        super().__init__()
        self.shape = torch.Size(shape)
        self.dtype = dtype

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def nbytes(self) -> int:
        """Bytes of the packed storage (values and scales)."""
        return sum(p.numel() * p.element_size() for p in self.parameters())

    def numel(self) -> int:
        """Logical number of weights (the dense matrix's), not of packed words."""
        return self.shape.numel()

    def dim(self) -> int:
        return len(self.shape)

    def dequantize(self) -> torch.Tensor:
        """The dense ``shape`` tensor in ``dtype`` (reference semantics; kernels avoid calling it).
        Every packed format (Int4Weight, Fp8BlockWeight) defines it; this base has no layout."""
        raise TypeError(f"{type(self).__name__} is a packed format without a dequantize(); "
                        "each format subclass defines its own")

    def _apply(self, fn, recurse: bool = True):  # noqa: ANN001 (nn.Module's signature)
        """``.to(device)``, ``.cuda()``, ``.bfloat16()``: the packed tensors follow the device only
        (their dtypes are the format's), and a float conversion changes the compute ``dtype``."""
        probe = fn(torch.empty(0, dtype=self.dtype, device=self.device))
        for name, p in self._parameters.items():
            if p is not None and p.device != probe.device:
                self._parameters[name] = packed_parameter(p.data.to(probe.device))
        if probe.is_floating_point():
            self.dtype = probe.dtype
        return self

    def extra_repr(self) -> str:
        return f"{self.format}, shape={tuple(self.shape)}, dtype={self.dtype}"


def packed_parameter(t: torch.Tensor) -> nn.Parameter:
    """A packed tensor as a parameter that never asks for a gradient (integer and float8 storage)."""
    return t if isinstance(t, nn.Parameter) else nn.Parameter(t, requires_grad=False)


def weight_format(weight: torch.Tensor | PackedWeight) -> str:
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


def kernel(op: Op, weight: torch.Tensor | PackedWeight, device: torch.device) -> Callable[..., torch.Tensor]:
    """The kernel that computes `op` for `weight` on `device`: one registered for that device type
    wins over one registered for every device."""
    key = (op, weight_format(weight), device.type)
    fn = _RESOLVED.get(key)
    if fn is None:
        fn = _resolve(*key)
        _RESOLVED[key] = fn
    return fn


def _import_device_modules(device_type: str) -> None:
    import importlib

    if device_type in _IMPORTED:
        return
    _IMPORTED.add(device_type)
    for name in DEVICE_MODULES.get(device_type, ()):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != "triton":  # only a missing Triton is expected; anything else is a bug
                raise


def _resolve(op: str, fmt: str, device_type: str) -> Callable[..., torch.Tensor]:
    _import_device_modules(device_type)
    fn = KERNELS.get((op, fmt, device_type)) or KERNELS.get((op, fmt, None))
    if fn is None:
        known = sorted({f for o, f, _ in KERNELS if o == op})
        raise K2nbError(
            f"weights in format {fmt!r} have no {op} kernel on {device_type}; "
            f"the formats with one are {', '.join(known) or 'none'}"
        )
    return fn
