"""MLA's latent KV cache: per layer and token, the normalised c_kv and the rotated k_pe — nothing else."""

from __future__ import annotations

import torch

from .config import ModelConfig


class LatentCache:
    """Latent cache of one sequence batch.

    ``ckv [L, B, capacity, kv_lora_rank]`` and ``kpe [L, B, capacity, rope_dim]``; ``length`` tokens are
    valid. A forward writes positions ``[length, length + T)`` of every layer and only then advances
    ``length`` (``commit``), so an interrupted forward leaves the cache as it was.
    """

    __slots__ = ("ckv", "kpe", "length")

    def __init__(self, cfg: ModelConfig, batch: int = 1, capacity: int = 256,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32):
        L = cfg.num_hidden_layers
        self.ckv = torch.zeros(L, batch, capacity, cfg.kv_lora_rank, device=device, dtype=dtype)
        self.kpe = torch.zeros(L, batch, capacity, cfg.qk_rope_head_dim, device=device, dtype=dtype)
        self.length = 0

    @property
    def capacity(self) -> int:
        return self.ckv.shape[2]

    def reserve(self, total: int) -> None:
        """Make room for ``total`` tokens (doubling, so a growing conversation copies O(log n) times)."""
        if total <= self.capacity:
            return
        cap = max(total, 2 * self.capacity)
        for name in ("ckv", "kpe"):
            old = getattr(self, name)
            new = old.new_zeros(*old.shape[:2], cap, old.shape[3])
            new[:, :, : self.length] = old[:, :, : self.length]
            setattr(self, name, new)

    def write(self, layer: int, ckv: torch.Tensor, kpe: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``ckv [B, T, R]`` and ``kpe [B, T, r]`` after the committed tokens of ``layer``; return
        this layer's views over all tokens so far, ``[B, length + T, R]`` and ``[B, length + T, r]``."""
        start, end = self.length, self.length + ckv.shape[1]
        self.ckv[layer, :, start:end] = ckv
        self.kpe[layer, :, start:end] = kpe
        return self.ckv[layer, :, :end], self.kpe[layer, :, :end]

    def commit(self, n: int) -> None:
        self.length += n

    def truncate(self, length: int) -> None:
        """Forget every token from ``length`` on (rollback, or a prompt that diverges from the cache)."""
        self.length = min(self.length, length)

    def clone(self) -> LatentCache:
        other = LatentCache.__new__(LatentCache)
        other.ckv = self.ckv.clone()
        other.kpe = self.kpe.clone()
        other.length = self.length
        return other

    def nbytes_per_token(self) -> int:
        """Bytes one token occupies across all layers (c_kv + k_pe)."""
        L = self.ckv.shape[0]
        return L * (self.ckv.shape[3] + self.kpe.shape[3]) * self.ckv.element_size()
