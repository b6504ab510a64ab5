"""The engine against transformers' DeepseekV3ForCausalLM: same logits, same routing choices."""

from __future__ import annotations

import pytest
import torch

from k2nb.engine import load_model, route


def _reference_routing(ref, ids):
    """Expert ids chosen by transformers' router, per MoE layer: list of [N, k] tensors."""
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3TopkRouter

    chosen = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: chosen.append(out[2].sort(-1).values))
             for m in ref.modules() if isinstance(m, DeepseekV3TopkRouter)]
    with torch.no_grad():
        logits = ref(ids).logits
    for h in hooks:
        h.remove()
    return logits, chosen


@pytest.mark.parametrize("fixture", ["k2_like", "grouped"])
def test_logits_and_routing_match_transformers(fixture, request):
    folder, ref = request.getfixturevalue(fixture)
    model = load_model(folder, device="cpu", dtype="float32", progress=False)
    ids = torch.randint(0, model.config.vocab_size, (2, 48), generator=torch.Generator().manual_seed(3))
    ref_logits, ref_choice = _reference_routing(ref, ids)

    record: list = []
    with torch.inference_mode():
        logits = model(ids, record=record)
    assert (logits - ref_logits).abs().max().item() < 1e-4
    assert len(record) == len(ref_choice) == len(model.config.moe_layer_ids)
    for (_, mine), theirs in zip(record, ref_choice, strict=True):
        assert torch.equal(mine.sort(-1).values, theirs)


def test_selection_bias_changes_choice_not_weights(k2_like):
    """The bias picks experts; weights are the unbiased sigmoid scores (renormalised, scaled)."""
    folder, _ = k2_like
    cfg = load_model(folder, progress=False).config
    logits = torch.randn(64, cfg.n_routed_experts)
    bias = torch.zeros(cfg.n_routed_experts)
    bias[3] = 10.0  # expert 3 always selected
    w, ids = route(logits, bias, cfg)
    assert (ids == 3).any(dim=-1).all()
    s = logits.sigmoid().gather(1, ids)
    expected = s / s.sum(-1, keepdim=True) * cfg.routed_scaling_factor
    assert torch.allclose(w, expected, atol=1e-6)


def test_grouped_routing_stays_in_kept_groups(grouped):
    folder, _ = grouped
    cfg = load_model(folder, progress=False).config
    logits = torch.randn(200, cfg.n_routed_experts)
    _, ids = route(logits, torch.zeros(cfg.n_routed_experts), cfg)
    per_group = cfg.n_routed_experts // cfg.n_group
    groups_used = [len(set((row // per_group).tolist())) for row in ids]
    assert max(groups_used) <= cfg.topk_group


def test_bfloat16_close_to_float32(k2_like):
    folder, _ = k2_like
    m32 = load_model(folder, dtype="float32", progress=False)
    m16 = load_model(folder, dtype="bfloat16", progress=False)
    assert m16.dtype == torch.bfloat16
    assert m16.layers[1].mlp.gate.weight.dtype == torch.float32  # router stays float32
    ids = torch.randint(0, 320, (1, 24), generator=torch.Generator().manual_seed(0))
    a, b = m32.logits(ids), m16.logits(ids)
    assert b.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0) > 0.99


def test_deepseek_v2_softmax_group_limited_greedy_matches_transformers(tmp_path):
    """V2(-Lite) routing: softmax scores, group_limited_greedy, no renormalisation; YaRN mscale 0.707."""
    import transformers
    from transformers import DeepseekV2Config, DeepseekV2ForCausalLM

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    cfg = DeepseekV2Config(
        vocab_size=320, hidden_size=64, intermediate_size=96, moe_intermediate_size=32, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=4, n_routed_experts=16, num_experts_per_tok=4,
        n_shared_experts=2, first_k_dense_replace=1, n_group=4, topk_group=2,
        topk_method="group_limited_greedy", q_lora_rank=None, kv_lora_rank=32, qk_nope_head_dim=16,
        qk_rope_head_dim=8, v_head_dim=16, routed_scaling_factor=1.0, norm_topk_prob=False,
        rope_scaling={"type": "yarn", "factor": 8.0, "original_max_position_embeddings": 64, "beta_fast": 32,
                      "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707},
        max_position_embeddings=512)
    ref = DeepseekV2ForCausalLM(cfg).eval()
    with torch.no_grad():
        for _, p in ref.named_parameters():
            if p.dim() > 1:
                p.normal_(0, 0.08)
    ref.save_pretrained(tmp_path)
    model = load_model(tmp_path, progress=False)
    assert model.config.scoring_func == "softmax" and model.config.topk_method == "group_limited_greedy"
    ids = torch.randint(0, 320, (2, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = ref(ids).logits
    assert (model.logits(ids) - expected).abs().max().item() < 1e-4
