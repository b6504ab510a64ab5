"""What the loader refuses in a quantized checkpoint: one sentence naming the tensor or the config key."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from checkpoint_edits import edit_config, edit_tensors
from quant_checkpoints import deepseek_fp8, k2_thinking_int4

from k2nb.engine import CheckpointError, ConfigError, load_model

pytest.importorskip("compressed_tensors")
GATE = "model.layers.1.mlp.experts.3.gate_proj"
DOWN = "model.layers.2.mlp.experts.0.down_proj"


@pytest.fixture(scope="module")
def int4_source(tmp_path_factory):
    return k2_thinking_int4(tmp_path_factory.mktemp("int4_errors"))[0]


@pytest.fixture
def int4(int4_source, tmp_path):
    return shutil.copytree(int4_source, tmp_path / "int4")


@pytest.fixture(scope="module")
def fp8_source(tmp_path_factory):
    return deepseek_fp8(tmp_path_factory.mktemp("fp8_errors"), block=(16, 32))[0]


@pytest.fixture
def fp8(fp8_source, tmp_path):
    return shutil.copytree(fp8_source, tmp_path / "fp8")


def _one_sentence(message: str) -> None:
    assert "\n" not in message and message.count(". ") == 0, message


def _quant_config(folder) -> dict:
    return json.loads((folder / "config.json").read_text())["quantization_config"]


# ---- tensors ------------------------------------------------------------------------------------

def test_a_wrong_group_size_names_the_scale_tensor(int4):
    qc = _quant_config(int4)
    qc["config_groups"]["group_0"]["weights"]["group_size"] = 16
    edit_config(int4, quantization_config=qc)
    with pytest.raises(CheckpointError) as e:
        load_model(int4, progress=False)
    msg = str(e.value)
    assert "model.safetensors: tensor 'model.layers.1.mlp.experts.0.down_proj.weight_scale' has shape " \
           "(64, 1), the config implies (64, 2) (one scale per group_size 16 of quantization_config)" in msg
    _one_sentence(msg)


def test_a_group_size_that_does_not_divide_the_columns_names_the_linear(int4):
    qc = _quant_config(int4)
    qc["config_groups"]["group_0"]["weights"]["group_size"] = 64
    edit_config(int4, quantization_config=qc)
    with pytest.raises(ConfigError, match=r"quantization_config group_size 64 does not divide the 32 input "
                                          r"columns of model\.layers\.1\.mlp\.experts\.0\.down_proj$"):
        load_model(int4, progress=False)


def test_a_truncated_weight_packed_names_the_tensor(int4):
    name = f"{GATE}.weight_packed"
    edit_tensors(int4, lambda t: t.update({name: t[name][:, :-1].contiguous()}))
    with pytest.raises(CheckpointError, match=rf"tensor '{GATE}.weight_packed' has shape \(32, 7\), the "
                                              r"config implies \(32, 8\) \(int32 words of 8 INT4 values\)"):
        load_model(int4, progress=False)


def test_a_scale_of_the_wrong_shape_names_the_tensor(int4):
    edit_tensors(int4, lambda t: t.update({f"{DOWN}.weight_scale": t[f"{DOWN}.weight_scale"][:-3]}))
    with pytest.raises(CheckpointError, match=rf"tensor '{DOWN}.weight_scale' has shape \(61, 1\), the "
                                              r"config implies \(64, 1\)"):
        load_model(int4, progress=False)


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.update({f"{GATE}.weight_packed": t[f"{GATE}.weight_packed"].to(torch.int64)}),
     rf"tensor '{GATE}.weight_packed' is int64; packed INT4 weights are int32 words of 8 values"),
    (lambda t: t.update({f"{GATE}.weight_scale": t[f"{GATE}.weight_scale"].to(torch.int32)}),
     rf"tensor '{GATE}.weight_scale' is int32; INT4 scales are bfloat16, float16 or float32"),
    (lambda t: t.update({f"{GATE}.weight_shape": torch.tensor([64, 32])}),
     rf"tensor '{GATE}.weight_shape' says \[64, 32\], but the config implies \[32, 64\]"),
    (lambda t: t[f"{GATE}.weight_scale"].__setitem__((0, 0), float("nan")),
     rf"tensor '{GATE}.weight_scale' holds NaN or Inf values"),
    (lambda t: t.pop(f"{GATE}.weight_scale"),
     rf"tensor '{GATE}.weight_scale' is missing from the checkpoint"),
    (lambda t: t.update({f"{GATE}.weight": torch.zeros(32, 64)}),
     rf"unexpected tensor '{GATE}.weight'"),
])
def test_bad_int4_tensors_name_the_tensor(int4, edit, message):
    edit_tensors(int4, edit)
    with pytest.raises(CheckpointError, match=message) as e:
        load_model(int4, progress=False)
    _one_sentence(str(e.value))


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.update({f"{GATE}.weight_scale_inv": t[f"{GATE}.weight_scale_inv"][:1]}),
     rf"tensor '{GATE}.weight_scale_inv' has shape \(1, 2\), the config implies \(2, 2\) \(one scale per "
     r"block \[16, 32\] of quantization_config\)"),
    (lambda t: t.update({f"{GATE}.weight": t[f"{GATE}.weight"].to(torch.float8_e5m2)}),
     rf"tensor '{GATE}.weight' is float8_e5m2; block-FP8 weights are float8_e4m3fn"),
    (lambda t: t.pop(f"{GATE}.weight_scale_inv"),
     rf"tensor '{GATE}.weight' has no '{GATE}.weight_scale_inv' while other routed experts of "
     r"layers\.1\.mlp\.experts have one"),
    (lambda t: t.pop("model.layers.1.self_attn.o_proj.weight_scale_inv"),
     r"tensor 'model\.layers\.1\.self_attn\.o_proj\.weight' is float8_e4m3fn without its "
     r"'model\.layers\.1\.self_attn\.o_proj\.weight_scale_inv'"),
])
def test_bad_fp8_tensors_name_the_tensor(fp8, edit, message):
    edit_tensors(fp8, edit)
    with pytest.raises(CheckpointError, match=message) as e:
        load_model(fp8, progress=False)
    _one_sentence(str(e.value))


def test_experts_of_one_layer_in_two_formats_are_refused(int4):
    qc = _quant_config(int4)
    qc["ignore"].append("re:.*experts\\.3\\.gate_proj")
    edit_config(int4, quantization_config=qc)
    with pytest.raises(ConfigError, match=r"packs some of the routed experts of layers\.1\.mlp\.experts but "
                                          rf"not others \(e\.g\. {GATE}\); a layer's experts are stored"):
        load_model(int4, progress=False)


# ---- config keys --------------------------------------------------------------------------------

def _weights(**change):
    def edit(qc):
        qc["config_groups"]["group_0"]["weights"].update(change)
    return edit


@pytest.mark.parametrize("edit, message", [
    (_weights(symmetric=False), "config_groups.group_0.weights.symmetric is false; asymmetric weights"),
    (_weights(num_bits=8), "config_groups.group_0.weights.num_bits is 8; k2nb reads pack-quantized weights"),
    (_weights(strategy="channel"), "config_groups.group_0.weights.strategy is 'channel'"),
    (_weights(actorder="group"), "config_groups.group_0.weights.actorder is 'group'; activation-ordered"),
    (_weights(group_size=12), "config_groups.group_0.weights.group_size must be a positive multiple of 8"),
    (lambda qc: qc["config_groups"]["group_0"].update(
        input_activations={"num_bits": 8, "type": "int", "dynamic": True}),
     "config_groups.group_0.input_activations is set; k2nb runs weight-only INT4"),
    (lambda qc: qc.update(format="marlin-24"), "quantization_config.format 'marlin-24' is not supported"),
    (lambda qc: qc.update(quant_method="awq"), "quantization_config.quant_method 'awq' is not supported"),
    (lambda qc: qc.update(quantization_status="frozen"), "quantization_status is 'frozen'"),
    (lambda qc: qc.update(kv_cache_scheme={"num_bits": 8}), "kv_cache_scheme is set"),
    (lambda qc: qc.update(ignore=["re:(unclosed"]), "ignore entry 're:(unclosed' is not a valid regular"),
])
def test_unsupported_schemes_name_the_key(int4, edit, message):
    qc = _quant_config(int4)
    edit(qc)
    edit_config(int4, quantization_config=qc)
    with pytest.raises(ConfigError, match=r"config\.json: quantization_config\." if "quant_method" in message
                       or "format '" in message else r"config\.json: ") as e:
        load_model(int4, progress=False)
    assert message in str(e.value)
    _one_sentence(str(e.value))


@pytest.mark.parametrize("change, message", [
    ({"fmt": "e5m2"}, "quantization_config.fmt is 'e5m2'; k2nb reads FP8 weights in e4m3"),
    ({"activation_scheme": "static"}, "quantization_config.activation_scheme is 'static'"),
    ({"weight_block_size": None}, "quantization_config.weight_block_size is missing; k2nb reads block FP8"),
    ({"weight_block_size": [128]}, "quantization_config.weight_block_size must be 2 positive integers"),
])
def test_unsupported_fp8_configs_name_the_key(fp8, change, message):
    qc = {**_quant_config(fp8), **change}
    edit_config(fp8, quantization_config={k: v for k, v in qc.items() if v is not None})
    with pytest.raises(ConfigError, match=message):
        load_model(fp8, progress=False)
