"""Quantized checkpoints for the tests, written the way their publishers write them.

- `k2_thinking_int4`: K2 Thinking's layout — routed experts INT4 packed by compressed-tensors' own
  compressor (`PackedQuantizationCompressor`, scales from its min-max `calculate_qparams`), the rest
  bfloat16, the router's selection bias float32, `model_type` kimi_k2, the config's
  `quantization_config` dumped by the package's `QuantizationConfig`.
- `deepseek_fp8`: DeepSeek-V3 / K2-Instruct's layout — every linear but lm_head e4m3 with a float32
  `weight_scale_inv` per block, `quant_method` fp8.
- `ct_fp8_block`: compressed-tensors' "float-quantized" FP8_BLOCK preset, through its own compressor.

Each also writes a dense reference folder holding the *decompressed* weights (by the package's
decompressor / dequantizer), which transformers loads.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from conftest import make_hf_checkpoint, tiny_v3_config
from safetensors.torch import load_file, save_file

EXPERT_LINEAR = re.compile(r"mlp\.experts\.\d+\.(gate|up|down)_proj\.weight$")
K2_IGNORE = ["lm_head", "re:.*self_attn.*", "re:.*shared_experts.*",
             r"re:.*mlp\.(gate|up|gate_up|down)_proj.*"]


def _write(folder: Path, tensors: dict, config: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / "model.safetensors"),
              metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


def _dense_source(tmp: Path, seed: int, **overrides) -> tuple[dict, dict]:
    src = tmp / "source"
    make_hf_checkpoint(src, tiny_v3_config(**overrides), seed=seed)
    return load_file(src / "model.safetensors"), json.loads((src / "config.json").read_text())


def int4_scheme(group_size: int = 32):
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme

    return QuantizationScheme(targets=["Linear"], weights=QuantizationArgs(
        num_bits=4, type="int", strategy="group", group_size=group_size, symmetric=True, dynamic=False))


def ct_quantization_config(scheme, fmt: str, ignore: list[str]) -> dict:
    """A quantization_config exactly as compressed-tensors writes it into config.json."""
    from compressed_tensors.quantization import QuantizationConfig, QuantizationStatus

    qc = QuantizationConfig(config_groups={"group_0": scheme}, format=fmt, ignore=ignore,
                            quantization_status=QuantizationStatus.COMPRESSED)
    return json.loads(json.dumps({**qc.model_dump(), "quant_method": "compressed-tensors"}))


def ct_int4_compress(w: torch.Tensor, scheme) -> dict[str, torch.Tensor]:
    """The package's own pack-quantized tensors of one linear (min-max scales, its quantizer)."""
    from compressed_tensors.compressors.pack_quantized.base import PackedQuantizationCompressor
    from compressed_tensors.quantization.utils.helpers import calculate_qparams

    groups = w.unflatten(-1, (-1, scheme.weights.group_size))
    scale, zp = calculate_qparams(groups.amin(-1), groups.amax(-1), scheme.weights)
    return PackedQuantizationCompressor.compress({"weight": w, "weight_scale": scale,
                                                  "weight_zero_point": zp}, scheme)


def ct_int4_decompress(tensors: dict[str, torch.Tensor], scheme) -> torch.Tensor:
    from compressed_tensors.compressors.pack_quantized.base import PackedQuantizationCompressor

    return PackedQuantizationCompressor.decompress(dict(tensors), scheme)["weight"]


def k2_thinking_int4(tmp: Path, seed: int = 0, **overrides) -> tuple[Path, Path]:
    """(INT4 folder in K2 Thinking's layout, dense reference folder of its decompressed weights)."""
    tensors, config = _dense_source(tmp, seed, **overrides)
    scheme = int4_scheme()
    packed, dense = {}, {}
    for name, t in tensors.items():
        if EXPERT_LINEAR.search(name):
            parts = ct_int4_compress(t.to(torch.bfloat16), scheme)
            packed.update({f"{name.removesuffix('.weight')}.{k}": v for k, v in parts.items()})
            dense[name] = ct_int4_decompress(parts, scheme).float()
        else:
            keep = torch.float32 if name.endswith("e_score_correction_bias") else torch.bfloat16
            packed[name] = t.to(keep)
            dense[name] = packed[name].float()
    k2 = {**config, "model_type": "kimi_k2", "torch_dtype": "bfloat16",
          "quantization_config": ct_quantization_config(scheme, "pack-quantized", K2_IGNORE)}
    return _write(tmp / "int4", packed, k2), _write(tmp / "int4_decompressed", dense, config)


def deepseek_fp8(tmp: Path, seed: int = 0, block: tuple[int, int] = (128, 128),
                 **overrides) -> tuple[Path, Path]:
    """(block-FP8 folder in DeepSeek-V3's layout, dense reference dequantized by compressed-tensors'
    `FP8BlockDequantizer`)."""
    from compressed_tensors.entrypoints.convert.converters.fp8block_dequantizer import FP8BlockDequantizer

    from k2nb.engine.ops import fp8

    tensors, config = _dense_source(tmp, seed, **overrides)
    packed = {}
    for name, t in tensors.items():
        if name.endswith(".weight") and t.dim() == 2 and not name.endswith(
                ("embed_tokens.weight", "mlp.gate.weight", "lm_head.weight")):
            w = fp8.quantize(t, block)
            packed[name], packed[name.removesuffix("weight") + "weight_scale_inv"] = w.weight, w.scale_inv
        else:
            packed[name] = t.to(torch.float32 if name.endswith("e_score_correction_bias") else torch.bfloat16)
    targets = [n.removesuffix(".weight_scale_inv") for n in packed if n.endswith("weight_scale_inv")]
    dequantizer = FP8BlockDequantizer(targets=targets, weight_block_size=block, dtype=torch.float32)
    dense = {k: v.float() for k, v in dequantizer.process(dict(packed)).items()}
    qc = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
          "weight_block_size": list(block)}
    return (_write(tmp / "fp8", packed, {**config, "quantization_config": qc, "torch_dtype": "bfloat16"}),
            _write(tmp / "fp8_dequantized", dense, config))


def ct_fp8_block(tmp: Path, seed: int = 0, **overrides) -> tuple[Path, Path]:
    """(compressed-tensors float-quantized FP8_BLOCK folder, dense reference of its decompressed
    weights), routed experts only (K2 Thinking's ignore list), written by the package's compressor."""
    from compressed_tensors.compressors.naive_quantized.base import FloatQuantizationCompressor
    from compressed_tensors.quantization.quant_scheme import preset_name_to_scheme
    from compressed_tensors.quantization.utils.helpers import calculate_qparams

    tensors, config = _dense_source(tmp, seed, **overrides)
    scheme = preset_name_to_scheme("FP8_BLOCK", ["Linear"])
    bo, bi = scheme.weights.block_structure
    packed, dense = {}, {}
    for name, t in tensors.items():
        if EXPERT_LINEAR.search(name):
            w = t.to(torch.bfloat16)
            out, inp = w.shape
            blocks = torch.nn.functional.pad(w.float(), (0, -inp % bi, 0, -out % bo))
            amax = blocks.unflatten(0, (-1, bo)).unflatten(-1, (-1, bi)).abs().amax((1, 3))
            scale, zp = calculate_qparams(-amax, amax, scheme.weights)
            parts = FloatQuantizationCompressor.compress(
                {"weight": w, "weight_scale": scale.to(torch.bfloat16), "weight_zero_point": zp}, scheme)
            packed.update({f"{name.removesuffix('.weight')}.{k}": v for k, v in parts.items()})
            dense[name] = FloatQuantizationCompressor.decompress(dict(parts), scheme)["weight"].float()
        else:
            keep = torch.float32 if name.endswith("e_score_correction_bias") else torch.bfloat16
            packed[name] = t.to(keep)
            dense[name] = packed[name].float()
    qc = ct_quantization_config(scheme, "float-quantized", K2_IGNORE)
    return (_write(tmp / "ct_fp8", packed, {**config, "quantization_config": qc}),
            _write(tmp / "ct_fp8_decompressed", dense, config))


def transformers_model(folder: Path):
    """transformers' DeepseekV3ForCausalLM on a dense folder, float32, router float32."""
    import transformers
    from transformers import DeepseekV3ForCausalLM

    transformers.logging.set_verbosity_error()
    return DeepseekV3ForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
