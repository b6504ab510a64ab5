"""MLA's latent KV cache: per layer and token, the normalised c_kv and the rotated k_pe — nothing else."""

from __future__ import annotations

import torch

from .config import ModelConfig


class LatentCache:
    """Latent cache of one sequence batch.

    ``latent [L, B, capacity, kv_lora_rank + rope_dim]``: per layer and token the normalised c_kv
    followed by the rotated k_pe, side by side so attention reads keys (and values) as one view with
    no copy; ``length`` tokens are valid. A forward writes positions ``[length, length + T)`` of every
    layer and only then advances ``length`` (``commit``), so an interrupted forward leaves the cache
    as it was.
    """

    __slots__ = ("latent", "rank", "length")

    def __init__(self, cfg: ModelConfig, batch: int = 1, capacity: int = 256,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32):
        L, width = cfg.num_hidden_layers, cfg.kv_lora_rank + cfg.qk_rope_head_dim
        self.latent = torch.zeros(L, batch, capacity, width, device=device, dtype=dtype)
        self.rank = cfg.kv_lora_rank
        self.length = 0

    @property
    def capacity(self) -> int:
        return self.latent.shape[2]

    def reserve(self, total: int) -> None:
        """Make room for ``total`` tokens (doubling, so a growing conversation copies O(log n) times)."""
        if total <= self.capacity:
            return
        cap = max(total, 2 * self.capacity)
        old = self.latent
        self.latent = old.new_zeros(*old.shape[:2], cap, old.shape[3])
        self.latent[:, :, : self.length] = old[:, :, : self.length]

    def write(self, layer: int, ckv: torch.Tensor, kpe: torch.Tensor) -> torch.Tensor:
        """Store ``ckv [B, T, R]`` and ``kpe [B, T, r]`` after the committed tokens of ``layer``; return
        this layer's view over all tokens so far, ``[B, length + T, R + r]`` ([c_kv | k_pe])."""
        start, end = self.length, self.length + ckv.shape[1]
        self.latent[layer, :, start:end, : self.rank] = ckv
        self.latent[layer, :, start:end, self.rank:] = kpe
        return self.latent[layer, :, :end]

    def commit(self, n: int) -> None:
        self.length += n

    def truncate(self, length: int) -> None:
        """Forget every token from ``length`` on (rollback, or a prompt that diverges from the cache)."""
        self.length = min(self.length, length)

    def clone(self) -> LatentCache:
        other = LatentCache.__new__(LatentCache)
        other.latent = self.latent.clone()
        other.rank = self.rank
        other.length = self.length
        return other

    def nbytes_per_token(self) -> int:
        """Bytes one token occupies across all layers (c_kv + k_pe)."""
        return self.latent.shape[0] * self.latent.shape[3] * self.latent.element_size()
