"""The K2 / DeepSeek-V3 architecture: MLA attention over a latent cache, dense and MoE MLPs.

Shapes: B batch, T new tokens, S tokens in the cache (prefix + new), D hidden, H heads,
dn / dr / dv the nope / rope / value head dims, R kv_lora_rank, E routed experts, k experts per token.
Every matrix product except the float32 router goes through `k2nb.engine.ops`, which picks the kernel
by the weight's format.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import ops
from .cache import LatentCache
from .config import ModelConfig
from .rope import apply_rope, inv_frequencies, rope_cos_sin
from .routing import route

# Routing of one forward: per MoE layer (weights [B*T, k] f32, expert ids [B*T, k] int64).
RoutingRecord = list[tuple[torch.Tensor, torch.Tensor]]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x · rsqrt(mean(x²) + eps) in float32 as one op (the same arithmetic as writing it out);
        # conversions only where the dtype changes (a decode step has ~40 norms)
        xf = x if x.dtype == torch.float32 else x.float()
        y = torch.rms_norm(xf, (xf.shape[-1],), eps=self.eps)
        return self.weight * (y if y.dtype == x.dtype else y.to(x.dtype))


class Linear(nn.Linear):
    """``nn.Linear`` whose product is `ops.linear`, so the weight's format picks the kernel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ops.linear(x, self.weight, self.bias)


class MLP(nn.Module):
    """down(silu(gate(x)) · up(x)): the dense layers and the shared experts."""

    def __init__(self, dim: int, inter: int):
        super().__init__()
        self.gate_proj = Linear(dim, inter, bias=False)
        self.up_proj = Linear(dim, inter, bias=False)
        self.down_proj = Linear(inter, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class MLA(nn.Module):
    """Multi-head latent attention.

    Keys and values of every head are linear images of one latent per token (c_kv, R dims) plus one
    shared rope key (k_pe, dr dims). Only those two are cached. A fresh prefill decompresses them
    (cheaper when T = S); a step over a non-empty cache works in the absorbed form: kv_b's key part is
    folded into the query and its value part applied after attending over the latents.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        H, D = cfg.num_attention_heads, cfg.hidden_size
        self.n_heads = H
        bias = cfg.attention_bias
        if cfg.q_lora_rank:
            self.q_a_proj = Linear(D, cfg.q_lora_rank, bias=bias)
            self.q_a_layernorm = RMSNorm(cfg.q_lora_rank, 1e-6)  # fixed eps, as in the reference
            self.q_b_proj = Linear(cfg.q_lora_rank, H * cfg.qk_head_dim, bias=False)
        else:
            self.q_proj = Linear(D, H * cfg.qk_head_dim, bias=False)
        self.kv_a_proj_with_mqa = Linear(D, cfg.kv_lora_rank + cfg.qk_rope_head_dim, bias=bias)
        self.kv_a_layernorm = RMSNorm(cfg.kv_lora_rank, 1e-6)
        self.kv_b_proj = Linear(cfg.kv_lora_rank, H * (cfg.qk_nope_head_dim + cfg.v_head_dim), bias=False)
        self.o_proj = Linear(H * cfg.v_head_dim, D, bias=bias)
        self.scale = cfg.softmax_scale

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache: LatentCache | None, layer: int, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``mask`` (no cache only): ``[B, 1, T, T]`` bool, True where a query may attend a key."""
        cfg, H = self.cfg, self.n_heads
        dn, dr, dv, R = cfg.qk_nope_head_dim, cfg.qk_rope_head_dim, cfg.v_head_dim, cfg.kv_lora_rank
        B, T, _ = x.shape
        q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x))) if cfg.q_lora_rank else self.q_proj(x)
        q = q.view(B, T, H, dn + dr).transpose(1, 2)  # [B, H, T, dn+dr]
        q_nope, q_pe = q.split([dn, dr], dim=-1)
        q_pe = apply_rope(q_pe, cos, sin)  # [B, H, T, dr]
        ckv, kpe = self.kv_a_proj_with_mqa(x).split([R, dr], dim=-1)
        ckv = self.kv_a_layernorm(ckv)  # [B, T, R]
        kpe = apply_rope(kpe, cos, sin)  # [B, T, dr]

        if cache is None or cache.length == 0:
            if cache is not None:
                cache.write(layer, ckv, kpe)
            kv = self.kv_b_proj(ckv).view(B, T, H, dn + dv).transpose(1, 2)  # [B, H, T, dn+dv]
            k_nope, v = kv.split([dn, dv], dim=-1)
            k = torch.cat((k_nope, kpe[:, None].expand(B, H, T, dr)), dim=-1)  # [B, H, T, dn+dr]
            if dv != dn + dr:  # the fused (flash) SDPA kernels want one head dim for q, k and v
                v = F.pad(v, (0, dn + dr - dv))
            o = F.scaled_dot_product_attention(torch.cat((q_nope, q_pe), dim=-1), k, v, attn_mask=mask,
                                               is_causal=mask is None and T > 1,
                                               scale=self.scale)[..., :dv]  # [B, H, T, dv]
        else:
            latent = cache.write(layer, ckv, kpe)[:, None]  # [B, 1, S, R+dr] = [c_kv | k_pe]
            S = latent.shape[2]
            w = ops.dense_weight(self.kv_b_proj.weight).view(H, dn + dv, R)
            # one sequence: a batched matmul per head, what the einsum computes for B = 1 (bit for bit)
            # without parsing its equation every step
            q_lat = (torch.matmul(q_nope, w[:, :dn]) if B == 1
                     else torch.einsum("bhtd,hdr->bhtr", q_nope, w[:, :dn]))  # [B, H, T, R]
            # Every head attends over the same single-"head" latents: keys [c_kv | k_pe], values c_kv.
            # Passing the cache view as the values too (and dropping the last dr output columns) keeps
            # one head width for SDPA's fused kernel without copying the cache: GQA with one KV head.
            visible = None
            if T > 1:  # token i of the chunk sits at S - T + i and sees keys 0 .. S - T + i
                visible = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(S - T)
            with ops.WORKERS.torch_threads():  # its rounding depends on torch's thread count
                if T == 1 and x.device.type == "cpu" and x.dtype != torch.float32:
                    o_lat = _one_query_attention(torch.cat((q_lat, q_pe), dim=-1), latent, self.scale, R)
                else:
                    o_lat = F.scaled_dot_product_attention(torch.cat((q_lat, q_pe), dim=-1), latent, latent,
                                                           attn_mask=visible, scale=self.scale,
                                                           enable_gqa=True)[..., :R]  # [B, H, T, R]
            o = (torch.matmul(o_lat, w[:, dn:].transpose(1, 2)) if B == 1
                 else torch.einsum("bhtr,hvr->bhtv", o_lat, w[:, dn:]))  # [B, H, T, dv]
        return self.o_proj(o.transpose(1, 2).reshape(B, T, H * dv))


def _one_query_attention(q: torch.Tensor, latent: torch.Tensor, scale: float, R: int) -> torch.Tensor:
    """Decode attention over the latent cache on the CPU in a 16-bit compute dtype: q ``[B, H, 1, R+dr]``,
    latent ``[B, 1, S, R+dr]`` → ``[B, H, 1, R]``. The heads are the rows of one product per sequence,
    in float32 like SDPA's accumulators; torch's CPU SDPA in bfloat16 spends about ten times as long
    on the same one-row-per-head problem. (float32 keeps SDPA: its results are pinned elsewhere.)"""
    B, H = q.shape[0], q.shape[1]
    lat = latent.float()  # [B, 1, S, R+dr]
    scores = torch.matmul(q.float().view(B, 1, H, -1), lat.transpose(-1, -2)) * scale  # [B, 1, H, S]
    out = torch.matmul(torch.softmax(scores, dim=-1), lat[..., :R])  # [B, 1, H, R]
    return out.view(B, H, 1, R).to(q.dtype)


class Gate(nn.Module):
    """Router: float32 logits over the routed experts, plus the selection bias of noaux_tc."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(cfg.n_routed_experts, cfg.hidden_size, dtype=torch.float32))
        if cfg.topk_method == "noaux_tc":
            self.register_buffer("e_score_correction_bias",
                                 torch.zeros(cfg.n_routed_experts, dtype=torch.float32))
        else:
            self.e_score_correction_bias = None


class Experts(nn.Module):
    """The routed experts, stacked: ``w13 [E, 2I, D]`` (gate rows then up rows), ``w2 [E, D, I]``."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        E, D, I = cfg.n_routed_experts, cfg.hidden_size, cfg.moe_intermediate_size
        self.w13 = nn.Parameter(torch.empty(E, 2 * I, D))
        self.w2 = nn.Parameter(torch.empty(E, D, I))

    def forward(self, x: torch.Tensor, weights: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """x ``[N, D]``, weights / ids ``[N, k]`` → Σ_k w_k · expert_k(x), ``[N, D]``."""
        return ops.moe_experts(x, weights, ids, self.w13, self.w2)


class MoE(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.gate = Gate(cfg)
        self.experts = Experts(cfg)
        self.shared_experts = (MLP(cfg.hidden_size, cfg.moe_intermediate_size * cfg.n_shared_experts)
                               if cfg.n_shared_experts else None)
        self.expert_load: torch.Tensor | None = None  # [E] tokens per expert, training forwards only

    def forward(self, x: torch.Tensor, record: RoutingRecord | None) -> torch.Tensor:
        B, T, D = x.shape
        flat = x.reshape(-1, D)  # [N, D]
        # The router is float32 and never quantized (K2's quantized checkpoints leave it dense).
        logits = F.linear(flat if flat.dtype == torch.float32 else flat.float(),
                          self.gate.weight.float())  # [N, E] float32
        weights, ids = route(logits, self.gate.e_score_correction_bias, self.cfg)
        if record is not None:
            record.append((weights, ids))
        if self.training:
            self.expert_load = torch.bincount(ids.reshape(-1), minlength=self.cfg.n_routed_experts).float()
        shared = None
        if (self.shared_experts is not None and flat.shape[0] == 1 and flat.device.type == "cpu"
                and not torch.is_grad_enabled()):
            shared = ops.WORKERS.start(self.shared_experts, flat)  # decode: beside the routed experts
        out = self.experts(flat, weights, ids)
        if self.shared_experts is not None:
            out = out + (shared.result() if shared is not None else self.shared_experts(flat))
        return out.view(B, T, D)


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig, index: int):
        super().__init__()
        self.index = index
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = MLA(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp: nn.Module = MoE(cfg) if cfg.is_moe_layer(index) else MLP(cfg.hidden_size,
                                                                             cfg.intermediate_size)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: LatentCache | None,
                record: RoutingRecord | None, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache, self.index, mask)
        h = self.post_attention_layernorm(x)
        return x + (self.mlp(h, record) if isinstance(self.mlp, MoE) else self.mlp(h))


class K2Model(nn.Module):
    """A K2-family causal LM. Parameter names are the HF names without the ``model.`` prefix, except
    the routed experts, which are stacked per layer (``layers.L.mlp.experts.w13`` / ``w2``); the table
    is `k2nb.engine.names`. Generation is `k2nb.engine.generate`, loading `k2nb.engine.loader`."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg, i) for i in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.lm_head = None if cfg.tie_word_embeddings else Linear(cfg.hidden_size, cfg.vocab_size,
                                                                       bias=False)
        self.tokenizer: Any = None  # set by the loader when the folder has one
        self.source: str | None = None  # the folder it was loaded from
        self._inv_freq, self._rope_magnitude = inv_frequencies(cfg)
        self._rope: tuple[torch.Tensor, torch.Tensor] | None = None  # cos, sin [P, dr/2]

    # ---- plumbing -----------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.embed_tokens.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.embed_tokens.weight.dtype

    def moe_layers(self) -> list[MoE]:
        return [layer.mlp for layer in self.layers if isinstance(layer.mlp, MoE)]

    def _cos_sin(self, start: int, end: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos / sin ``[end - start, dr/2]`` from a table grown by doubling."""
        if (self._rope is None or self._rope[0].shape[0] < end or self._rope[0].device != self.device
                or self._rope[0].dtype != self.dtype):
            size = max(end, 2 * (self._rope[0].shape[0] if self._rope is not None else 256))
            pos = torch.arange(size, device=self.device)
            self._rope = rope_cos_sin(self._inv_freq.to(self.device), self._rope_magnitude, pos, self.dtype)
        return self._rope[0][start:end], self._rope[1][start:end]

    # ---- forward ------------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, cache: LatentCache | None = None,
                record: RoutingRecord | None = None, last_only: bool = False,
                segments: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids ``[B, T]`` → logits ``[B, T, vocab]`` float32 (``[B, 1, vocab]`` if last_only).

        With a cache, the tokens continue the ``cache.length`` cached ones, which then grow by T.
        ``segments`` ``[B, T]`` (training on packed rows, no cache): a token attends only to earlier
        tokens of its own segment, so each packed sequence is computed as if it stood alone (RoPE is
        relative, so where a segment starts in the row does not matter).
        """
        B, T = input_ids.shape
        mask = None
        if segments is not None:
            if cache is not None:
                raise ValueError("segments are for training on packed rows, without a cache")
            same = segments[:, :, None] == segments[:, None, :]  # [B, T, T]
            mask = (same & torch.ones(T, T, dtype=torch.bool, device=same.device).tril())[:, None]
        start = cache.length if cache is not None else 0
        if cache is not None:
            cache.reserve(start + T)
        cos, sin = self._cos_sin(start, start + T)
        one_token = B * T == 1 and input_ids.device.type == "cpu" and not torch.is_grad_enabled()
        with ops.WORKERS.one_token_step() if one_token else contextlib.nullcontext():
            x = self.embed_tokens(input_ids)  # [B, T, D]
            for layer in self.layers:
                x = layer(x, cos, sin, cache, record, mask)
            if cache is not None:
                cache.commit(T)
            if last_only:
                x = x[:, -1:]
            x = self.norm(x)
            head = self.lm_head.weight if self.lm_head is not None else self.embed_tokens.weight
            return ops.linear(x, head).float()

    @torch.inference_mode()
    def logits(self, input_ids: torch.Tensor | list[int]) -> torch.Tensor:
        """Logits ``[B, T, vocab]`` (float32) of whole sequences, no cache."""
        ids = torch.as_tensor(input_ids, device=self.device)
        if ids.dim() == 1:
            ids = ids[None]
        return self(ids)

    def new_cache(self, capacity: int = 256, batch: int = 1) -> LatentCache:
        """An empty latent cache for ``forward(..., cache=)`` in this model's device and dtype."""
        return LatentCache(self.config, batch, capacity, self.device, self.dtype)

    @torch.no_grad()
    def init_weights(self, std: float = 0.02, seed: int | None = None) -> K2Model:
        """Random initialisation (training from scratch, demos): normal(0, std) matrices, unit norms,
        zero biases and selection bias. Output projections are scaled by 1/sqrt(2·layers)."""
        gen = torch.Generator(device=self.device)
        if seed is not None:
            gen.manual_seed(seed)
        out_std = std / (2 * self.config.num_hidden_layers) ** 0.5
        for name, p in self.named_parameters():
            if name.endswith("layernorm.weight") or name == "norm.weight":
                p.fill_(1.0)
            elif p.dim() == 1:
                p.zero_()
            else:
                is_out = name.endswith(("o_proj.weight", "down_proj.weight", "experts.w2"))
                p.normal_(0.0, out_std if is_out else std, generator=gen)
        for moe in self.moe_layers():
            if moe.gate.e_score_correction_bias is not None:
                moe.gate.e_score_correction_bias.zero_()
        return self

    def num_parameters(self) -> int:
        """Weights in the model; a packed (quantized) linear counts its logical ``[out, in]``, not its
        storage words."""
        packed = [m for m in self.modules() if isinstance(m, ops.PackedWeight)]
        inner = {id(p) for m in packed for p in m.parameters()}
        return (sum(p.numel() for p in self.parameters() if id(p) not in inner)
                + sum(m.numel() for m in packed))

    def nbytes(self) -> int:
        """Bytes the model's weights and buffers occupy (packed linears at their packed size)."""
        return sum(t.numel() * t.element_size() for t in (*self.parameters(), *self.buffers()))
