"""Quantized checkpoints as published: INT4 pack-quantized (K2 Thinking) and block FP8 (DeepSeek-V3,
K2-Instruct; compressed-tensors FP8_BLOCK), checked against compressed-tensors (the format's
reference) and transformers (the model's), and kept packed in memory."""

from __future__ import annotations

import json

import pytest
import torch
from quant_checkpoints import (
    EXPERT_LINEAR,
    ct_fp8_block,
    ct_int4_compress,
    ct_int4_decompress,
    deepseek_fp8,
    int4_scheme,
    k2_thinking_int4,
    transformers_model,
)
from safetensors.torch import load_file

from k2nb.engine import hf_tensors, load_model, ops, save_checkpoint
from k2nb.engine.ops import dense, fp8, int4, int4_cpu
from k2nb.engine.quantize import k2_thinking_quantization_config, quantize_checkpoint

pytest.importorskip("compressed_tensors")
IDS = torch.randint(0, 320, (2, 40), generator=torch.Generator().manual_seed(5))


def _compare_with_transformers(folder, reference, atol=1e-4):
    """k2nb on the packed folder (float32 compute, exact) vs transformers on the decompressed weights."""
    model = load_model(folder, dtype="float32", progress=False, exact=True)
    ref = transformers_model(reference)
    with torch.no_grad():
        expected = ref(IDS).logits
    got = model.logits(IDS)
    assert (got - expected).abs().max().item() < atol * expected.abs().max().item()
    return model


# ---- the packing, against compressed-tensors ---------------------------------------------------

def test_int4_packing_is_compressed_tensors_bit_for_bit():
    from compressed_tensors.compressors.pack_quantized.helpers import pack_to_int32, unpack_from_int32

    q = torch.randint(-8, 8, (3, 24, 96), dtype=torch.int8, generator=torch.Generator().manual_seed(0))
    words = int4.pack(q)
    assert words.dtype == torch.int32 and words.shape == (3, 24, 12)
    assert torch.equal(words, pack_to_int32(q, 4))
    assert torch.equal(int4.unpack(words).to(torch.int8) - 8, q)
    assert torch.equal(unpack_from_int32(words, 4, torch.Size((3, 24, 96))), q)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_int4_dequantize_is_the_decompressors(dtype):
    scheme = int4_scheme()
    w = torch.randn(40, 128, generator=torch.Generator().manual_seed(1)).to(dtype) * 0.05
    parts = ct_int4_compress(w, scheme)
    theirs = ct_int4_decompress(parts, scheme)  # computed in the scale's dtype
    ours = int4.dequantize(parts["weight_packed"], parts["weight_scale"], 32, theirs.dtype)
    assert torch.equal(ours, theirs)


def test_k2nb_quantizer_rounds_to_nearest_with_min_max_scales():
    w = torch.randn(16, 64, generator=torch.Generator().manual_seed(2))
    q = int4.quantize(w, 32)
    groups = w.unflatten(-1, (-1, 32))
    assert torch.equal(q.scale, (groups.abs().amax(-1) / 7.5).to(torch.bfloat16))
    err = (q.dequantize(torch.float32) - w).unflatten(-1, (-1, 32)).abs()
    # half a step, and at the group's max (7.5 steps, clamped to +7) half a step of the bfloat16-rounded
    # scale: at most 7.5 · 2⁻⁸ steps more
    assert (err <= q.scale.float()[..., None] * (0.5 + 7.5 / 256) + 1e-6).all()


# ---- INT4: K2 Thinking's layout -----------------------------------------------------------------

@pytest.fixture(scope="module")
def k2_int4(tmp_path_factory):
    return k2_thinking_int4(tmp_path_factory.mktemp("k2_int4"))


def test_compressed_tensors_int4_loads_and_matches_transformers_on_its_decompressed_weights(k2_int4):
    folder, reference = k2_int4
    model = _compare_with_transformers(folder, reference)
    cfg = model.config
    assert cfg.model_type == "kimi_k2" and cfg.quantization_config.format == "int4"
    for moe in model.moe_layers():  # packed, stacked, in place of the dense experts
        w13, w2 = moe.experts.w13, moe.experts.w2
        assert isinstance(w13, int4.Int4Weight) and w13.packed.dtype == torch.int32
        assert w13.shape == (16, 64, 64) and w13.packed.shape == (16, 64, 8)
        assert w13.scale.shape == (16, 64, 2)
        assert w13.scale.dtype == torch.bfloat16 and w2.shape == (16, 64, 32)
    attn = model.layers[1].self_attn.q_b_proj.weight  # the ignore list keeps attention dense
    assert isinstance(attn, torch.Tensor) and attn.dtype == torch.float32


def test_int4_in_bfloat16_compute(k2_int4):
    folder, reference = k2_int4
    model = load_model(folder, dtype="bfloat16", progress=False)
    assert model.dtype == torch.bfloat16 and model.layers[1].mlp.experts.w13.dtype == torch.bfloat16
    with torch.no_grad():
        expected = transformers_model(reference)(IDS).logits
    got = model.logits(IDS)
    assert torch.nn.functional.cosine_similarity(got.flatten(), expected.flatten(), dim=0) > 0.99


@pytest.mark.parametrize("dtype, exact, fmt, scale_bytes", [
    ("float32", True, "int4", 2),  # the published layout: a bfloat16 scale per group of 32
    ("float32", False, "int4_cpu", 4),  # torch's CPU int4 layout: (scale, zero) per group
    ("bfloat16", False, "int4_cpu", 4),
])
def test_int4_weights_stay_packed_in_memory(k2_int4, dtype, exact, fmt, scale_bytes):
    folder, reference = k2_int4
    packed = load_model(folder, dtype=dtype, progress=False, exact=exact)
    plain = load_model(reference, dtype=dtype, progress=False)
    experts = [m for moe in packed.moe_layers() for m in (moe.experts.w13, moe.experts.w2)]
    assert {e.format for e in experts} == {fmt}
    assert sum(e.nbytes for e in experts) == sum(e.numel() for e in experts) * (0.5 + scale_bytes / 32)
    dense_experts = sum(m.numel() * plain.dtype.itemsize for m in experts)
    assert plain.nbytes() - packed.nbytes() == dense_experts - sum(e.nbytes for e in experts)
    assert packed.num_parameters() == plain.num_parameters()


def test_the_cpu_int4_layout_converts_back_exactly_and_computes_the_same_products():
    g = torch.Generator().manual_seed(4)
    w = int4.quantize(torch.randn(3, 96, 256, generator=g) * 0.1, 32, dtype=torch.bfloat16)
    cpu = ops.prepare(w)
    assert isinstance(cpu, int4_cpu.Int4CpuWeight) and cpu.tiles.dtype == torch.uint8
    back = cpu.to_int4()
    assert torch.equal(back.packed, w.packed) and torch.equal(back.scale, w.scale)
    x = torch.randn(4, 256, generator=g).to(torch.bfloat16)
    expected = x.float() @ w.dequantize(torch.float32)[2].T
    got = int4_cpu._matmul(x, *cpu.experts()[2], 32).float()
    assert (got - expected).abs().max() < 0.02 * expected.abs().max()  # bfloat16 activations and output
    # float32 compute takes the kernel too (its input rounded to bfloat16)
    assert ops.prepare(int4.quantize(torch.randn(48, 64), 32, dtype=torch.float32)).format == "int4_cpu"
    # what the CPU kernel does not take stays in the published layout: 40 rows, float32 scales
    assert ops.prepare(int4.quantize(torch.randn(40, 64), 32, dtype=torch.bfloat16)).format == "int4"
    f32_scales = int4.quantize(torch.randn(48, 64), 32, scale_dtype=torch.float32, dtype=torch.float32)
    assert ops.prepare(f32_scales).format == "int4"


def test_a_packed_model_saves_as_it_was_published(k2_int4, tmp_path):
    folder, _ = k2_int4
    model = load_model(folder, dtype="bfloat16", progress=False)
    published = load_file(folder / "model.safetensors")
    ours = dict(hf_tensors(model))
    assert sorted(ours) == sorted(published)
    for name, t in published.items():
        if not name.endswith("weight_shape"):  # ours is int64, as compressed-tensors writes it
            assert torch.equal(ours[name], t), name
        assert ours[name].tolist() == t.tolist() if name.endswith("weight_shape") else True
    save_checkpoint(model, tmp_path / "again", dtype=torch.bfloat16)
    again = load_file(tmp_path / "again" / "model.safetensors")
    assert sorted(again) == sorted(published)
    assert torch.equal(again["model.layers.2.mlp.experts.3.up_proj.weight_packed"],
                       published["model.layers.2.mlp.experts.3.up_proj.weight_packed"])
    reloaded = load_model(tmp_path / "again", dtype="bfloat16", progress=False)
    assert torch.equal(reloaded.logits(IDS), model.logits(IDS))


def test_int4_experts_agree_with_dense_experts_on_their_dequantized_weights():
    g = torch.Generator().manual_seed(3)
    w13 = int4.quantize(torch.randn(8, 64, 96, generator=g) * 0.1, 32, dtype=torch.float32)
    w2 = int4.quantize(torch.randn(8, 96, 32, generator=g) * 0.1, 32, dtype=torch.float32)
    x = torch.randn(5, 96, generator=g)
    ids = torch.stack([torch.randperm(8, generator=g)[:3] for _ in range(5)])
    weights = torch.rand(5, 3, generator=g)
    expected = dense.moe_experts(x, weights, ids, w13.dequantize(), w2.dequantize())
    assert torch.allclose(ops.moe_experts(x, weights, ids, w13, w2), expected, atol=1e-5)


# ---- k2nb quantize: written in K2 Thinking's format ---------------------------------------------

@pytest.fixture(scope="module")
def quantized(k2_like, tmp_path_factory):
    src, _ = k2_like
    return src, quantize_checkpoint(src, tmp_path_factory.mktemp("quantized") / "int4", dtype=torch.bfloat16)


def test_quantize_writes_what_the_decompressor_reads_back(quantized):
    from compressed_tensors.quantization import QuantizationConfig

    src, out = quantized
    config = json.loads((out / "config.json").read_text())
    assert config["quantization_config"] == k2_thinking_quantization_config()
    scheme = QuantizationConfig.model_validate(config["quantization_config"]).config_groups["group_0"]
    written, source = load_file(out / "model.safetensors"), load_file(src / "model.safetensors")
    experts = [n for n in source if EXPERT_LINEAR.search(n)]
    assert experts and not any(n in written for n in experts)
    for name in experts:
        module = name.removesuffix(".weight")
        parts = {k: written[f"{module}.{k}"] for k in ("weight_packed", "weight_scale", "weight_shape")}
        theirs = ct_int4_decompress(parts, scheme)
        assert parts["weight_shape"].tolist() == list(source[name].shape)
        assert torch.equal(int4.dequantize(parts["weight_packed"], parts["weight_scale"], 32, theirs.dtype),
                           theirs)
        # within about half a step (bfloat16 scale and product rounding add a little)
        assert (theirs.float() - source[name]).abs().max() <= parts["weight_scale"].float().max() * 0.56
    kept = [n for n in source if not EXPERT_LINEAR.search(n)]
    float32 = ("e_score_correction_bias", "mlp.gate.weight")  # the router stays float32
    assert all(written[n].dtype == (torch.float32 if n.endswith(float32) else torch.bfloat16) for n in kept)


def test_quantized_checkpoint_matches_transformers_on_the_decompressed_weights(quantized, tmp_path):
    from safetensors.torch import save_file

    _, out = quantized
    scheme = int4_scheme()
    written = load_file(out / "model.safetensors")
    dense_t = {}
    for name, t in written.items():
        module, _, suffix = name.rpartition(".")
        if suffix == "weight_packed":
            parts = {k: written[f"{module}.{k}"] for k in ("weight_packed", "weight_scale", "weight_shape")}
            dense_t[f"{module}.weight"] = ct_int4_decompress(parts, scheme).float()
        elif suffix not in ("weight_scale", "weight_shape"):
            dense_t[name] = t.float()
    ref = tmp_path / "decompressed"
    ref.mkdir()
    save_file(dense_t, str(ref / "model.safetensors"))
    config = json.loads((out / "config.json").read_text())
    del config["quantization_config"]
    (ref / "config.json").write_text(json.dumps(config))
    _compare_with_transformers(out, ref)


# ---- block FP8 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("block", [(128, 128), (16, 32)])
def test_deepseek_fp8_loads_and_matches_transformers_on_its_dequantized_weights(block, tmp_path):
    folder, reference = deepseek_fp8(tmp_path, block=block)
    model = _compare_with_transformers(folder, reference)
    attn = model.layers[0].self_attn.kv_b_proj.weight
    assert isinstance(attn, fp8.Fp8BlockWeight) and attn.weight.dtype == torch.float8_e4m3fn
    w13, w2 = model.layers[1].mlp.experts.w13, model.layers[1].mlp.experts.w2
    # 32 gate + 32 up rows: one 128-row block would mix them, so the stack keeps a scale per row
    assert w13.block == ((1, 128) if block == (128, 128) else (16, 32)) and w13.checkpoint_block == block
    assert w2.block == block  # one projection: nothing to mix
    assert not isinstance(model.lm_head.weight, fp8.Fp8BlockWeight)
    ours = dict(hf_tensors(model))
    for name, t in load_file(folder / "model.safetensors").items():
        if t.dtype == torch.float8_e4m3fn:  # compare the bytes (float8 has no equality kernel on every build)
            assert torch.equal(ours[name].view(torch.uint8), t.view(torch.uint8)), name
        else:
            assert torch.equal(ours[name], t.to(ours[name].dtype)), name


def test_compressed_tensors_fp8_block_loads_and_matches_its_decompressed_weights(tmp_path):
    folder, reference = ct_fp8_block(tmp_path)
    model = _compare_with_transformers(folder, reference)
    assert model.config.quantization_config.scale_name == "weight_scale"
    assert model.layers[2].mlp.experts.w2.scale_inv.dtype == torch.bfloat16


# ---- k2nb inspect / k2nb quantize on the command line ---------------------------------------------

def test_inspect_reports_the_format_and_the_real_bytes(k2_int4, tmp_path):
    from k2nb.cli import inspect_checkpoint

    folder, reference = k2_int4
    info = inspect_checkpoint(folder)
    assert info["quantization"] == {"method": "compressed-tensors", "format": "int4", "group_size": 32,
                                    "block": None}
    assert info["format"].startswith("INT4 compressed-tensors pack-quantized, symmetric, group 32")
    exact = load_model(folder, dtype="float32", progress=False, exact=True)  # the published layout
    assert info["memory_bytes"]["float32"] == exact.nbytes()
    # bfloat16 on the CPU: the experts in torch's int4 layout, which adds a zero point per scale
    on_cpu = load_model(folder, dtype="bfloat16", progress=False)
    zeros = sum(m.numel() // 32 * 2 for moe in on_cpu.moe_layers() for m in (moe.experts.w13, moe.experts.w2))
    assert info["memory_bytes"]["bfloat16"] == on_cpu.nbytes() - zeros
    dense = inspect_checkpoint(reference)
    assert info["parameters_total"] == dense["parameters_total"]
    assert info["memory_bytes"]["dense_bfloat16"] == dense["parameters_total"] * 2
    assert info["file_bytes"] == (folder / "model.safetensors").stat().st_size
    fp8_folder, _ = deepseek_fp8(tmp_path, block=(16, 32))  # row blocks that stack (see ops/fp8.py)
    fp8_info = inspect_checkpoint(fp8_folder)
    assert fp8_info["quantization"]["block"] == [16, 32] and fp8_info["format"].startswith("FP8 e4m3")
    assert fp8_info["memory_bytes"]["bfloat16"] == load_model(fp8_folder, dtype="bfloat16",
                                                               progress=False).nbytes()


def test_k2_thinking_sized_int4_is_under_a_third_of_its_bf16_bytes():
    """From the config alone: K2 Thinking's shape with its own quantization_config is the ≈594 GB it
    ships as, 0.29× its bf16 weights."""
    from k2nb.engine.config import ModelConfig
    from k2nb.engine.loader import weight_bytes

    k2 = dict(model_type="kimi_k2", vocab_size=163840, hidden_size=7168, intermediate_size=18432,
              moe_intermediate_size=2048, num_hidden_layers=61, num_attention_heads=64, n_routed_experts=384,
              num_experts_per_tok=8, n_shared_experts=1, first_k_dense_replace=1, q_lora_rank=1536,
              kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128,
              torch_dtype="bfloat16")
    dense = weight_bytes(ModelConfig.from_dict(k2))
    int4_bytes = weight_bytes(ModelConfig.from_dict({**k2, "quantization_config":
                                                     k2_thinking_quantization_config()}))
    assert 590e9 < int4_bytes < 600e9 and int4_bytes / dense < 0.3


def test_quantize_command_line(k2_like, tmp_path):
    import subprocess
    import sys

    src, _ = k2_like
    out = subprocess.run([sys.executable, "-m", "k2nb", "quantize", str(src), str(tmp_path / "q"),
                          "--dtype", "bfloat16"], capture_output=True, text=True)
    assert out.returncode == 0 and "routed experts INT4, group 32" in out.stdout
    assert load_model(tmp_path / "q", progress=False).config.quantization_config.format == "int4"
    again = subprocess.run([sys.executable, "-m", "k2nb", "quantize", str(tmp_path / "q"),
                            str(tmp_path / "qq")], capture_output=True, text=True)
    assert again.returncode == 2
    assert "is already quantized (quant_method 'compressed-tensors')" in again.stderr
    text = subprocess.run([sys.executable, "-m", "k2nb", "inspect", str(tmp_path / "q")],
                          capture_output=True, text=True, check=True).stdout
    assert "weights      INT4 compressed-tensors pack-quantized" in text and "files" in text
