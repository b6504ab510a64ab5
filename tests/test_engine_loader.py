"""Loading checkpoints: shards, MTP layers, save/load round trip, and every error a user can cause."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from checkpoint_edits import edit_config, edit_tensors
from safetensors.torch import load_file, save_file

from k2nb.engine import CheckpointError, ConfigError, K2Model, ModelConfig, load_model, save_checkpoint


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_sharded_checkpoint_with_mtp_layer_loads(k2_like, tmp_path):
    src, _ = k2_like
    ref = load_model(src, progress=False)
    tensors = load_file(src / "model.safetensors")
    n = ref.config.num_hidden_layers
    tensors[f"model.layers.{n}.eh_proj.weight"] = torch.zeros(4, 4)  # an MTP layer, skipped
    names = sorted(tensors)
    half = len(names) // 2
    out = tmp_path / "sharded"
    out.mkdir()
    shutil.copy(src / "config.json", out / "config.json")
    weight_map = {}
    for i, chunk in enumerate([names[:half], names[half:]]):
        fname = f"model-{i + 1:05d}-of-00002.safetensors"
        save_file({k: tensors[k] for k in chunk}, out / fname)
        weight_map.update(dict.fromkeys(chunk, fname))
    (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    m = load_model(out, progress=False)
    ids = torch.arange(5, 25)[None]
    assert torch.equal(m.logits(ids), ref.logits(ids))


def test_save_checkpoint_round_trip(k2_like, tmp_path):
    m = load_model(k2_like[0], progress=False)
    save_checkpoint(m, tmp_path / "again")
    m2 = load_model(tmp_path / "again", progress=False)
    ids = torch.arange(3, 30)[None]
    assert torch.equal(m.logits(ids), m2.logits(ids))


def test_build_on_meta_allocates_nothing():
    cfg = ModelConfig.from_dict(json.loads(json.dumps(_k2_dict())))
    with torch.device("meta"):
        m = K2Model(cfg)
    assert all(p.is_meta for p in m.parameters())


def _k2_dict():
    return {"model_type": "kimi_k2", "vocab_size": 163840, "hidden_size": 7168, "intermediate_size": 18432,
            "moe_intermediate_size": 2048, "num_hidden_layers": 61, "num_attention_heads": 64,
            "n_routed_experts": 384, "num_experts_per_tok": 8, "n_shared_experts": 1,
            "first_k_dense_replace": 1, "moe_layer_freq": 1, "n_group": 1, "topk_group": 1,
            "topk_method": "noaux_tc", "scoring_func": "sigmoid", "norm_topk_prob": True,
            "routed_scaling_factor": 2.827, "q_lora_rank": 1536, "kv_lora_rank": 512,
            "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128, "rms_norm_eps": 1e-5,
            "rope_theta": 50000.0, "max_position_embeddings": 262144, "tie_word_embeddings": False,
            "rope_scaling": {"type": "yarn", "factor": 64.0, "beta_fast": 1.0, "beta_slow": 1.0,
                             "mscale": 1.0, "mscale_all_dim": 1.0, "original_max_position_embeddings": 4096},
            "bos_token_id": 163584, "eos_token_id": 163586, "pad_token_id": 163839}


def test_k2_thinking_config_facts():
    cfg = ModelConfig.from_dict(_k2_dict())
    assert abs(cfg.softmax_scale - 0.1446796) < 1e-6
    assert cfg.kv_cache_bytes_per_token(2) == 70_272
    total, active = cfg.parameter_counts()
    assert 1.0e12 < total < 1.07e12 and 3.0e10 < active < 3.4e10
    assert cfg.moe_layer_ids == list(range(1, 61))
    from k2nb.engine.rope import inv_frequencies

    inv, mag = inv_frequencies(cfg)
    theta = 1.0 / (50000.0 ** (torch.arange(0, 64, 2).float() / 64))
    assert torch.allclose(inv[:20], theta[:20]) and torch.allclose(inv[20:], theta[20:] / 64)
    assert mag == 1.0


@pytest.mark.parametrize("change, message", [
    (dict(model_type="llama"), "model_type 'llama' is not supported"),
    (dict(kv_lora_rank=...), "required key 'kv_lora_rank' is missing"),
    (dict(topk_method="fancy"), "topk_method 'fancy' is not supported"),
    (dict(scoring_func="relu"), "scoring_func 'relu' is not supported"),
    (dict(hidden_act="gelu"), "hidden_act 'gelu' is not supported"),
    (dict(n_group=5), "not divisible by n_group 5"),
    (dict(rope_scaling={"type": "linear", "factor": 2.0}), "rope_scaling type 'linear' is not supported"),
    (dict(quantization_config={"quant_method": "gptq"}), "quantization_config.quant_method 'gptq' is not "),
    (dict(hidden_size="big"), "'hidden_size' must be an integer"),
])
def test_config_errors_name_the_key(change, message):
    d = _k2_dict()
    d.update({k: v for k, v in change.items() if v is not ...})
    for k, v in change.items():
        if v is ...:
            d.pop(k)
    with pytest.raises(ConfigError, match=message):
        ModelConfig.from_dict(d)


def test_loader_errors(k2_like, tmp_path):
    src, _ = k2_like
    with pytest.raises(CheckpointError, match="checkpoint folder not found"):
        load_model(tmp_path / "nope", progress=False)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="config.json not found"):
        load_model(empty, progress=False)

    bad_json = _copy(src, tmp_path / "bad_json")
    (bad_json / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="config.json: not valid JSON"):
        load_model(bad_json, progress=False)

    no_weights = _copy(src, tmp_path / "no_weights")
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        load_model(no_weights, progress=False)

    missing = _copy(src, tmp_path / "missing")
    edit_tensors(missing, lambda t: t.pop("model.layers.1.mlp.experts.3.up_proj.weight"))
    with pytest.raises(CheckpointError, match=r"'model.layers.1.mlp.experts.3.up_proj.weight' is missing"):
        load_model(missing, progress=False)

    extra = _copy(src, tmp_path / "extra")
    edit_tensors(extra, lambda t: t.update({"model.layers.0.mlp.bogus.weight": torch.zeros(2)}))
    with pytest.raises(CheckpointError, match=r"safetensors: unexpected tensor 'model.layers.0.mlp.bogus"):
        load_model(extra, progress=False)

    shape = _copy(src, tmp_path / "shape")
    edit_tensors(shape, lambda t: t.update({"model.norm.weight": torch.ones(7)}))
    with pytest.raises(CheckpointError, match=r"norm.weight' has shape \(7,\), the config implies \(64,\)"):
        load_model(shape, progress=False)

    wrong_cfg = _copy(src, tmp_path / "wrong_cfg")
    edit_config(wrong_cfg, n_routed_experts=8)
    with pytest.raises(CheckpointError, match="unexpected tensor"):
        load_model(wrong_cfg, progress=False)

    truncated = _copy(src, tmp_path / "truncated")
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_model(truncated, progress=False)

    garbage = _copy(src, tmp_path / "garbage")
    (garbage / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="cannot be read as safetensors"):
        load_model(garbage, progress=False)

    shard_gone = _copy(src, tmp_path / "shard_gone")
    (shard_gone / "model.safetensors").rename(shard_gone / "model-00001-of-00001.safetensors")
    (shard_gone / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"model.norm.weight": "model-00002-of-00002.safetensors"}}))
    with pytest.raises(CheckpointError, match="model-00002-of-00002.safetensors: shard named in"):
        load_model(shard_gone, progress=False)

    quant = _copy(src, tmp_path / "quant")
    qc = {"quant_method": "compressed-tensors", "format": "pack-quantized"}
    edit_config(quant, quantization_config=qc)
    with pytest.raises(ConfigError, match="quantization_config.config_groups must name at least one scheme"):
        load_model(quant, progress=False)


def test_bad_device_and_dtype_are_clear(k2_like):
    from k2nb.engine import K2nbError

    with pytest.raises(K2nbError, match="dtype 'int8' is not supported"):
        load_model(k2_like[0], dtype="int8", progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(K2nbError, match="CUDA is not available"):
            load_model(k2_like[0], device="cuda", progress=False)
