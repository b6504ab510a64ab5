"""Shared fixtures: tiny random K2-family checkpoints written by transformers itself; the in-process
IPython shell with k2nb loaded (`ip`) and its k2nb state (`k2`, dashboard off, unloaded after)."""

from __future__ import annotations

import pytest
import torch


def tiny_v3_config(**overrides):
    """A tiny DeepseekV3Config (transformers). K2-like by default: sigmoid, noaux_tc, n_group 1,
    q-LoRA, YaRN."""
    from transformers import DeepseekV3Config

    kw = dict(vocab_size=320, hidden_size=64, intermediate_size=96, moe_intermediate_size=32,
              num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4, n_routed_experts=16,
              num_experts_per_tok=4, n_shared_experts=1, first_k_dense_replace=1, n_group=1, topk_group=1,
              q_lora_rank=32, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16,
              routed_scaling_factor=2.827, norm_topk_prob=True, max_position_embeddings=512,
              rope_scaling={"type": "yarn", "factor": 8.0, "original_max_position_embeddings": 64,
                            "beta_fast": 1, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
              rope_theta=50000.0, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    kw.update(overrides)
    return DeepseekV3Config(**kw)


def make_hf_checkpoint(folder, config, seed: int = 0):
    """Random DeepseekV3ForCausalLM saved with save_pretrained; router weights and a non-zero
    selection bias are randomised so routing is not degenerate. Returns the transformers model."""
    import transformers
    from transformers import DeepseekV3ForCausalLM

    transformers.logging.set_verbosity_error()
    torch.manual_seed(seed)
    model = DeepseekV3ForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("mlp.gate.weight"):
                p.normal_(0, 1.0)
            elif p.dim() > 1:
                p.normal_(0, 0.08)
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.normal_(0, 0.2)
    model.save_pretrained(folder)
    return model


@pytest.fixture(scope="session")
def k2_like(tmp_path_factory):
    folder = tmp_path_factory.mktemp("k2_like")
    ref = make_hf_checkpoint(folder, tiny_v3_config())
    return folder, ref


@pytest.fixture(scope="session")
def grouped(tmp_path_factory):
    folder = tmp_path_factory.mktemp("grouped")
    ref = make_hf_checkpoint(folder, tiny_v3_config(n_group=4, topk_group=2, q_lora_rank=None,
                                                    n_shared_experts=2, rope_scaling=None), seed=1)
    return folder, ref


@pytest.fixture(scope="module")
def ip():
    from IPython.testing.globalipapp import get_ipython

    shell = get_ipython()
    shell.run_line_magic("load_ext", "k2nb")
    return shell


@pytest.fixture
def k2(ip):
    from k2nb.magics import state

    st = state(ip)
    st.settings["dashboard"] = False
    yield st
    st.unload()
    st.settings["dashboard"] = True
