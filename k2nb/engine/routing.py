"""The MoE routing rule, written once: the model, the tests and future kernels call or compare to it."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from .config import ModelConfig


def route(logits: torch.Tensor, bias: torch.Tensor | None, cfg: ModelConfig
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose experts for each token.

    logits: ``[N, E]`` float32 gate logits. bias: ``[E]`` float32 selection bias (noaux_tc only).
    Returns (weights ``[N, k]`` float32, expert ids ``[N, k]`` int64).

    - noaux_tc (V3 / K2): s = sigmoid(logits); the bias shifts the *selection* only; group score is the
      sum of the top-2 biased scores of a group; weights are the unbiased s of the chosen experts,
      renormalised when norm_topk_prob, then times routed_scaling_factor.
    - greedy / group_limited_greedy (V2): s = softmax(logits); group score is the group's max; weights
      are renormalised when norm_topk_prob (and k > 1), otherwise scaled by routed_scaling_factor.
    """
    k, E = cfg.num_experts_per_tok, cfg.n_routed_experts
    scores = logits.sigmoid() if cfg.scoring_func == "sigmoid" else logits.softmax(dim=-1)  # [N, E]
    choice = scores
    if cfg.topk_method == "noaux_tc" and bias is not None:
        choice = scores + bias
    if cfg.n_group > 1 and cfg.topk_method != "greedy":
        grouped = choice.view(-1, cfg.n_group, E // cfg.n_group)  # [N, G, E/G]
        if cfg.topk_method == "noaux_tc":
            group_score = grouped.topk(2, dim=-1).values.sum(dim=-1)  # [N, G]
        else:
            group_score = grouped.amax(dim=-1)
        keep = group_score.topk(cfg.topk_group, dim=-1).indices  # [N, topk_group]
        mask = torch.ones_like(group_score, dtype=torch.bool).scatter_(1, keep, False)  # True = drop
        choice = grouped.masked_fill(mask[..., None], float("-inf")).view(-1, E)
    ids = choice.topk(k, dim=-1).indices  # [N, k]
    weights = scores.gather(1, ids)  # [N, k]
    if cfg.topk_method == "noaux_tc":
        if cfg.norm_topk_prob:
            weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
        weights = weights * cfg.routed_scaling_factor
    elif cfg.norm_topk_prob and k > 1:
        weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
    else:
        weights = weights * cfg.routed_scaling_factor
    return weights, ids


@torch.no_grad()
def update_selection_bias(moe_layers: Iterable[torch.nn.Module], rate: float) -> None:
    """Aux-loss-free load balancing (DeepSeek-V3): after an optimizer step, raise the selection bias of
    under-loaded experts and lower that of over-loaded ones by a fixed ``rate``. Each layer's
    ``expert_load [E]`` holds the tokens each expert received in the last training forward."""
    for moe in moe_layers:
        load = moe.expert_load
        if load is None:
            continue
        bias = moe.gate.e_score_correction_bias
        bias += rate * torch.sign(load.mean() - load).to(bias.dtype)
