"""Rotary position embedding of MLA's decoupled rope dims: YaRN frequencies, interleaved pairs."""

from __future__ import annotations

import math

import torch

from .config import ModelConfig, yarn_mscale


def inv_frequencies(cfg: ModelConfig) -> tuple[torch.Tensor, float]:
    """Inverse frequencies ``[rope_dim/2]`` (float32) and the cos/sin magnitude factor.

    Without scaling: θ_i = base^(-2i/d). With YaRN, pairs below the low correction dim keep θ_i, pairs
    above the high one use θ_i / factor, and a linear ramp mixes the two in between.
    """
    dim, base = cfg.qk_rope_head_dim, cfg.rope_theta
    theta = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32, device="cpu") / dim))  # [dim/2]
    rs = cfg.rope_scaling
    if rs is None:
        return theta, 1.0

    def correction_dim(rotations: float) -> float:
        return dim * math.log(rs.original_max_position_embeddings / (rotations * 2 * math.pi)) / (
            2 * math.log(base))

    low = max(math.floor(correction_dim(rs.beta_fast)), 0)
    high = min(math.ceil(correction_dim(rs.beta_slow)), dim - 1)
    if low == high:
        high += 0.001  # avoid 0/0 in the ramp
    ramp = ((torch.arange(dim // 2, dtype=torch.float32, device="cpu") - low) / (high - low)).clamp(0, 1)
    keep = 1.0 - ramp  # 1 → original θ (high-frequency pairs), 0 → interpolated θ / factor
    inv_freq = theta / rs.factor * (1 - keep) + theta * keep
    if rs.mscale and rs.mscale_all_dim:
        magnitude = yarn_mscale(rs.factor, rs.mscale) / yarn_mscale(rs.factor, rs.mscale_all_dim)
    else:
        magnitude = yarn_mscale(rs.factor)
    return inv_freq, magnitude


def rope_cos_sin(inv_freq: torch.Tensor, magnitude: float, positions: torch.Tensor,
                 dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin ``[T, rope_dim/2]`` for integer ``positions [T]``, computed in float32."""
    freqs = positions.to(torch.float32)[:, None] * inv_freq[None, :]  # [T, d/2]
    return (freqs.cos() * magnitude).to(dtype), (freqs.sin() * magnitude).to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs (x[2i], x[2i+1]) of ``x [..., T, d]`` (GPT-J layout).

    The result is written de-interleaved ([rotated evens | rotated odds]). Queries and keys both get
    the same permutation, so their dot products are those of the interleaved layout, and the cached
    k_pe is only ever compared with a query rotated by this same function.
    """
    x1, x2 = x[..., 0::2], x[..., 1::2]  # [..., T, d/2]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)
