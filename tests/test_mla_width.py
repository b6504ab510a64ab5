"""`k2nb widen-mla`: a model moved to the served engines' MLA width (latent 512 + rope 64) computes
the same logits, in k2nb's engine and in transformers; the shipped k2-nano is at that width."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from conftest import make_hf_checkpoint, tiny_v3_config

from k2nb.engine import generate, load_model
from k2nb.engine.config import RopeScaling
from k2nb.engine.errors import K2nbError
from k2nb.engine.mla_width import widen_checkpoint, widen_mla, widened_config
from k2nb.models import model_path


@pytest.fixture(scope="module")
def narrow(tmp_path_factory):
    folder = tmp_path_factory.mktemp("narrow")
    config = tiny_v3_config(rope_scaling=None, kv_lora_rank=24, qk_rope_head_dim=8)
    reference = make_hf_checkpoint(folder, config)
    return folder, reference


def _ids(n: int, vocab: int = 320, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, vocab, (1, n), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("rank, rope", [(512, 64), (48, 16), (24, 8)])
def test_widened_model_gives_the_same_logits_and_tokens(narrow, rank, rope):
    model = load_model(narrow[0], device="cpu")
    wide = widen_mla(model, rank, rope)
    assert (wide.config.kv_lora_rank, wide.config.qk_rope_head_dim) == (rank, rope)
    ids = _ids(40)
    torch.testing.assert_close(wide.logits(ids), model.logits(ids), atol=2e-5, rtol=1e-5)
    prompt = ids[0, :12].tolist()
    a, b = generate(model, prompt, max_new_tokens=20), generate(wide, prompt, max_new_tokens=20)
    assert a.ids == b.ids  # the decode steps run the absorbed form over the widened latent cache
    assert (a.routing.experts == b.routing.experts).all()


def test_widened_folder_is_read_by_transformers_with_the_same_logits(narrow, tmp_path):
    from transformers import AutoModelForCausalLM

    folder, reference = narrow
    wide_folder = widen_checkpoint(folder, tmp_path / "wide", model_type="deepseek_v3")
    config = json.loads((wide_folder / "config.json").read_text())
    assert (config["kv_lora_rank"], config["qk_rope_head_dim"], config["model_type"]) == (
        512, 64, "deepseek_v3")
    assert config["topk_method"] == "noaux_tc"  # vLLM needs it to read e_score_correction_bias
    wide_hf = AutoModelForCausalLM.from_pretrained(wide_folder).eval()
    ids = _ids(33, seed=3)
    with torch.no_grad():
        want = reference(ids).logits
        got = wide_hf(ids).logits
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)


def test_widen_refuses_what_has_no_exact_transform(narrow):
    model = load_model(narrow[0], device="cpu")
    with pytest.raises(K2nbError, match="smaller than the model's 24"):
        widen_mla(model, 16, 64)
    with pytest.raises(K2nbError, match="even multiple of the model's 8"):
        widen_mla(model, 512, 20)
    # YaRN whose ramp falls between the pairs: at rope 64 the mapped pairs would get other frequencies
    # (K2's own: factor 64 over 4,096 positions, β 32 / 1)
    yarn = dataclasses.replace(model.config, rope_scaling=RopeScaling(
        factor=64.0, original_max_position_embeddings=4096, beta_fast=32.0, beta_slow=1.0,
        mscale=1.0, mscale_all_dim=1.0))
    with pytest.raises(K2nbError, match="rope_scaling"):
        widened_config(yarn, 512, 64)
    # one whose ramp lands on the same pairs at both widths is widened
    exact = dataclasses.replace(yarn.rope_scaling, factor=8.0, original_max_position_embeddings=64)
    assert widened_config(dataclasses.replace(yarn, rope_scaling=exact), 512, 64).qk_rope_head_dim == 64


def test_widen_checkpoint_refuses_to_overwrite_its_source(narrow):
    with pytest.raises(K2nbError, match="another folder"):
        widen_checkpoint(narrow[0], narrow[0])


def test_shipped_k2_nano_is_at_the_served_width_exactly():
    """The shipped folder has the family's MLA width, and the widening was exact: the added latent
    dims and rope pairs carry nothing (so the model is the trained one, zero-padded)."""
    model = load_model(model_path(), device="cpu", progress=False)
    cfg = model.config
    assert (cfg.kv_lora_rank, cfg.qk_rope_head_dim, cfg.model_type) == (512, 64, "deepseek_v3")
    for layer in model.layers:
        attn = layer.self_attn
        assert not attn.kv_b_proj.weight[:, 64:].any()  # the trained latent is 64 wide
        kv_a = attn.kv_a_proj_with_mqa.weight
        assert not kv_a[64:512].any()
        rope = kv_a[512:].view(32, 2, -1)  # 32 interleaved pairs; the trained ones every 4th
        assert rope[0::4].any(dim=(1, 2)).all() and not rope.view(8, 4, 2, -1)[:, 1:].any()
