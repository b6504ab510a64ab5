"""Checkpoints that used to load as silent garbage: each is refused with one sentence naming the file
and the key, tensor or token at fault."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from checkpoint_edits import edit_config, edit_tensors

from k2nb.engine import CheckpointError, ConfigError, ModelConfig, load_model
from k2nb.engine.errors import TokenizerError
from k2nb.engine.tokenizer import load_tokenizer

EXPERT = "model.layers.1.mlp.experts.3.down_proj.weight"


@pytest.fixture
def ckpt(k2_like, tmp_path):
    """A private copy of the tiny K2-like checkpoint (3 layers, num_nextn_predict_layers 1)."""
    return shutil.copytree(k2_like[0], tmp_path / "ckpt")


def _base_dict():
    return {"model_type": "kimi_k2", "vocab_size": 320, "hidden_size": 64, "intermediate_size": 96,
            "moe_intermediate_size": 32, "num_hidden_layers": 3, "num_attention_heads": 4,
            "n_routed_experts": 16, "num_experts_per_tok": 4, "n_shared_experts": 1,
            "first_k_dense_replace": 1, "q_lora_rank": 32, "kv_lora_rank": 32, "qk_nope_head_dim": 16,
            "qk_rope_head_dim": 8, "v_head_dim": 16, "rms_norm_eps": 1e-5, "rope_theta": 50000.0,
            "max_position_embeddings": 512,
            "rope_scaling": {"type": "yarn", "factor": 8.0, "original_max_position_embeddings": 64,
                             "beta_fast": 1, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0}}


# ---- layers beyond the config ---------------------------------------------------------------------

def test_a_layer_beyond_the_mtp_layers_is_refused(ckpt):
    edit_tensors(ckpt, lambda t: t.update({"model.layers.4.mlp.gate.weight": torch.zeros(16, 64)}))
    with pytest.raises(CheckpointError, match=r"model.safetensors: tensor 'model.layers.4.mlp.gate.weight' "
                                              r"belongs to layer 4, but config.json has num_hidden_layers 3 "
                                              r"\(and num_nextn_predict_layers 1\)"):
        load_model(ckpt, progress=False)


def test_a_layer_beyond_num_hidden_layers_without_mtp_is_refused(ckpt):
    edit_config(ckpt, num_nextn_predict_layers=0)
    edit_tensors(ckpt, lambda t: t.update({"model.layers.3.eh_proj.weight": torch.zeros(4, 4)}))
    with pytest.raises(CheckpointError, match=r"'model.layers.3.eh_proj.weight' belongs to layer 3, but "
                                              r"config.json has num_hidden_layers 3 \(and num_nextn"):
        load_model(ckpt, progress=False)


def test_negative_layer_count_is_refused_at_load(ckpt):
    edit_config(ckpt, num_hidden_layers=-1)
    with pytest.raises(ConfigError, match=r"config.json: num_hidden_layers must be >= 1, got -1"):
        load_model(ckpt, progress=False)


# ---- config.json counts and floats ------------------------------------------------------------------

@pytest.mark.parametrize("key, value, message", [
    ("num_hidden_layers", 0, "num_hidden_layers must be >= 1, got 0"),
    ("num_attention_heads", -2, "num_attention_heads must be >= 1, got -2"),
    ("hidden_size", 0, "hidden_size must be >= 1, got 0"),
    ("vocab_size", 0, "vocab_size must be >= 1, got 0"),
    ("kv_lora_rank", 0, "kv_lora_rank must be >= 1, got 0"),
    ("qk_rope_head_dim", 0, "qk_rope_head_dim must be >= 1, got 0"),
    ("qk_rope_head_dim", 7, "qk_rope_head_dim must be even, got 7"),
    ("v_head_dim", -1, "v_head_dim must be >= 1, got -1"),
    ("q_lora_rank", 0, "q_lora_rank must be >= 1, got 0"),
    ("n_routed_experts", -4, "n_routed_experts must be >= 0, got -4"),
    ("n_routed_experts", 2.5, "'n_routed_experts' must be an integer, got 2.5"),
    ("moe_intermediate_size", 0, "moe_intermediate_size must be >= 1, got 0"),
    ("moe_layer_freq", 0, "moe_layer_freq must be >= 1, got 0"),
    ("n_group", 0, "n_group must be >= 1, got 0"),
    ("n_shared_experts", -1, "n_shared_experts must be >= 0, got -1"),
    ("first_k_dense_replace", -1, "first_k_dense_replace must be >= 0, got -1"),
    ("num_nextn_predict_layers", -1, "num_nextn_predict_layers must be >= 0, got -1"),
    ("max_position_embeddings", 0, "max_position_embeddings must be >= 1, got 0"),
    ("rms_norm_eps", 0, "rms_norm_eps must be > 0, got 0"),
    ("rms_norm_eps", -1e-5, "rms_norm_eps must be > 0, got -1e-05"),
    ("rope_theta", math.nan, "'rope_theta' must be a finite number, got nan"),
    ("rope_theta", math.inf, "'rope_theta' must be a finite number, got inf"),
    ("rope_theta", 0, "rope_theta must be > 0, got 0"),
    ("routed_scaling_factor", 0, "routed_scaling_factor must be > 0, got 0"),
])
def test_config_counts_and_floats_are_checked(key, value, message):
    d = _base_dict()
    d[key] = value
    with pytest.raises(ConfigError, match=r"^config.json: " + message.replace("(", r"\(")):
        ModelConfig.from_dict(d)


@pytest.mark.parametrize("key, value, message", [
    ("factor", math.nan, "'rope_scaling.factor' must be a finite number, got nan"),
    ("factor", 0, "rope_scaling.factor must be > 0, got 0"),
    ("original_max_position_embeddings", 0, "rope_scaling.original_max_position_embeddings must be >= 1"),
    ("beta_fast", math.inf, "'rope_scaling.beta_fast' must be a finite number, got inf"),
    ("mscale_all_dim", math.nan, "'rope_scaling.mscale_all_dim' must be a finite number, got nan"),
])
def test_rope_scaling_is_checked(key, value, message):
    d = _base_dict()
    d["rope_scaling"][key] = value
    with pytest.raises(ConfigError, match=r"^config.json: " + message):
        ModelConfig.from_dict(d)


def test_nan_rope_theta_in_rope_parameters_is_refused():
    d = _base_dict()
    del d["rope_theta"], d["rope_scaling"]
    d["rope_parameters"] = {"rope_type": "default", "rope_theta": math.nan}
    with pytest.raises(ConfigError, match=r"'rope_parameters.rope_theta' must be a finite number, got nan"):
        ModelConfig.from_dict(d)


def test_nan_in_the_config_file_is_refused_at_load(ckpt):
    edit_config(ckpt, rope_parameters={"rope_type": "default", "rope_theta": math.nan})
    with pytest.raises(ConfigError, match=r"config.json: 'rope_parameters.rope_theta' must be a finite"):
        load_model(ckpt, progress=False)


# ---- tensor dtypes -------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.int8, torch.uint8, torch.int32, torch.int64, torch.bool])
def test_integer_tensors_are_refused(ckpt, dtype):
    name = "model.layers.0.self_attn.kv_a_layernorm.weight"
    edit_tensors(ckpt, lambda t: t.update({name: t[name].to(dtype)}))
    kind = str(dtype).removeprefix("torch.")
    with pytest.raises(CheckpointError, match=rf"model.safetensors: tensor '{name}' has {kind} values, "
                                              "which cannot be loaded as weights"):
        load_model(ckpt, progress=False)


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e5m2])
def test_fp8_tensor_without_its_scale_is_refused(ckpt, dtype):
    edit_tensors(ckpt, lambda t: t.update({EXPERT: t[EXPERT].to(dtype)}))
    kind = str(dtype).removeprefix("torch.")
    message = rf"model.safetensors: tensor '{EXPERT}' is {kind} without its '{EXPERT}_scale_inv'; FP8"
    with pytest.raises(CheckpointError, match=message):
        load_model(ckpt, progress=False)


def test_fp8_tensor_with_its_scale_but_no_quantization_config_is_refused(ckpt):
    def fp8(t):
        t[EXPERT] = t[EXPERT].to(torch.float8_e4m3fn)
        t[EXPERT + "_scale_inv"] = torch.ones(1, 1)

    edit_tensors(ckpt, fp8)
    with pytest.raises(CheckpointError, match=rf"tensor '{EXPERT}_scale_inv' is an FP8 block scale, but "
                                              "config.json has no quantization_config saying how"):
        load_model(ckpt, progress=False)


# ---- non-finite weights ----------------------------------------------------------------------------

@pytest.mark.parametrize("name, value", [(EXPERT, math.nan), ("model.norm.weight", math.inf),
                                         ("model.layers.2.mlp.gate.e_score_correction_bias", -math.inf),
                                         ("lm_head.weight", math.nan)])
def test_non_finite_weights_are_refused(ckpt, name, value):
    def poison(t):
        t[name].view(-1)[-1] = value

    edit_tensors(ckpt, poison)
    with pytest.raises(CheckpointError, match=rf"model.safetensors: tensor '{name}' holds NaN or Inf values"):
        load_model(ckpt, progress=False)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_non_finite_weights_are_refused_in_any_dtype(ckpt, dtype):
    edit_tensors(ckpt, lambda t: t[EXPERT].__setitem__((0, 0), math.nan))
    with pytest.raises(CheckpointError, match=rf"tensor '{EXPERT}' holds NaN or Inf values"):
        load_model(ckpt, dtype=dtype, progress=False)


def test_weights_that_overflow_float16_are_refused(ckpt):
    edit_tensors(ckpt, lambda t: t["model.norm.weight"].__setitem__(0, 1e6))
    load_model(ckpt, progress=False)  # float32 holds it
    with pytest.raises(CheckpointError, match=r"tensor 'model.norm.weight' has values beyond the range of "
                                              r"float16 \(±65504\); load it in bfloat16 or float32"):
        load_model(ckpt, dtype="float16", progress=False)


# ---- tokenizer ids beyond the model's vocabulary -----------------------------------------------------

def _hf_tokenizer_in(folder, edit):
    from test_tokenizer import write_hf_tokenizer

    write_hf_tokenizer(folder)
    p = folder / "tokenizer.json"
    data = json.loads(p.read_text())
    edit(data)
    p.write_text(json.dumps(data))
    return folder


def _move_last_token_to(new_id):
    def edit(data):
        vocab = data["model"]["vocab"]
        token = max(vocab, key=vocab.get)
        vocab[token] = new_id
    return edit


def test_tokenizer_json_with_an_id_beyond_the_vocabulary(ckpt):
    _hf_tokenizer_in(ckpt, _move_last_token_to(5000))
    with pytest.raises(TokenizerError, match=r"tokenizer.json: token id 5000 of '[^']+' is beyond the "
                                             r"vocabulary of 320 \(vocab_size in config.json\)"):
        load_model(ckpt, progress=False)


def test_tokenizer_json_with_a_gap_loads_alone_and_is_checked_against_a_vocab(tmp_path):
    folder = _hf_tokenizer_in(tmp_path / "tok", _move_last_token_to(5000))
    tok = load_tokenizer(folder)  # no IndexError: a sparse vocabulary is readable on its own
    assert tok.vocab_size == 5001 and tok.decode([5000])
    with pytest.raises(TokenizerError, match=r"token id 5000 of '[^']+' is beyond the vocabulary of 2048"):
        load_tokenizer(folder, vocab_size=2048)


def test_added_tokens_beyond_the_model_vocabulary(ckpt):
    def add(data):  # the library numbers added tokens after the 300 of the vocabulary: 300..321
        data["added_tokens"] += [{"id": 300 + i, "content": f"<|extra_{i}|>", "single_word": False,
                                  "lstrip": False, "rstrip": False, "normalized": False, "special": True}
                                 for i in range(22)]

    _hf_tokenizer_in(ckpt, add)
    with pytest.raises(TokenizerError, match=r"token id 320 of '<\|extra_20\|>' \(and 1 more\) is beyond the "
                                             r"vocabulary of 320 \(vocab_size in config.json\)"):
        load_model(ckpt, progress=False)


def test_kimi_tokenizer_beyond_the_vocabulary(tmp_path):
    from test_tokenizer import MERGES, write_kimi_tokenizer

    folder = write_kimi_tokenizer(tmp_path / "kimi")
    n_base = 256 + len(MERGES)
    load_tokenizer(folder, vocab_size=n_base + 14)  # base ranks, [BOS], [EOS] and the 12 markers
    with pytest.raises(TokenizerError, match=rf"tiktoken.model: token id {n_base + 1} of '\[EOS\]' \(and 12 "
                                             rf"more\) is beyond the vocabulary of {n_base + 1}"):
        load_tokenizer(folder, vocab_size=n_base + 1)
    with pytest.raises(TokenizerError, match=rf"token id {n_base - 1} of '[^']+' \(and 14 more\) is beyond"):
        load_tokenizer(folder, vocab_size=n_base - 1)


def test_the_shipped_model_passes_every_check():
    from k2nb.models import model_path

    model = load_model(model_path(), progress=False)
    assert model.tokenizer.vocab_size <= model.config.vocab_size
