"""The ``k2nb`` command: inspect checkpoints, think in a terminal, train and evaluate k2-nano."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from .engine.errors import K2nbError


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TB"


def _human_count(n: float) -> str:
    for unit, div in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return str(int(n))


def inspect_checkpoint(path: str) -> dict:
    """Summary of a checkpoint folder from its config (no weights are read; file sizes are)."""
    from pathlib import Path

    from .engine.config import ModelConfig
    from .engine.loader import weight_bytes

    cfg = ModelConfig.from_file(path)
    total, active = cfg.parameter_counts()
    qc = cfg.quantization_config
    files = sorted(Path(path).glob("*.safetensors")) if Path(path).is_dir() else []
    rs = cfg.rope_scaling
    return {
        "path": str(path),
        "model_type": cfg.model_type,
        "layers": cfg.num_hidden_layers,
        "hidden_size": cfg.hidden_size,
        "heads": cfg.num_attention_heads,
        "attention": (f"MLA q_lora_rank={cfg.q_lora_rank} kv_lora_rank={cfg.kv_lora_rank} "
                      f"qk_nope/rope/v={cfg.qk_nope_head_dim}/{cfg.qk_rope_head_dim}/{cfg.v_head_dim}"),
        "moe": (f"{len(cfg.moe_layer_ids)} MoE layers (first {cfg.first_k_dense_replace} dense), "
                f"{cfg.n_routed_experts} routed experts top-{cfg.num_experts_per_tok} + "
                f"{cfg.n_shared_experts} shared, moe_intermediate {cfg.moe_intermediate_size}"),
        "routing": (f"{cfg.scoring_func} {cfg.topk_method} groups {cfg.n_group}/{cfg.topk_group} "
                    f"norm_topk_prob={cfg.norm_topk_prob} scale={cfg.routed_scaling_factor}"),
        "rope": (f"theta {cfg.rope_theta:g}" + (f", yarn factor {rs.factor:g} (original "
                 f"{rs.original_max_position_embeddings})" if rs else "")),
        "context": cfg.max_position_embeddings,
        "vocab_size": cfg.vocab_size,
        "parameters_total": total,
        "parameters_active_per_token": active,
        "format": _weight_format(cfg),
        # loaded in each compute dtype (packed linears stay packed), and with every weight dense
        "memory_bytes": {"bfloat16": weight_bytes(cfg, "bfloat16"), "float32": weight_bytes(cfg, "float32"),
                         "dense_bfloat16": total * 2},
        "file_bytes": sum(f.stat().st_size for f in files) if files else None,
        "quantization": None if qc is None else {"method": qc.method, "format": qc.format,
                                                 "group_size": qc.group_size or None,
                                                 "block": list(qc.block) if qc.block[0] else None},
        "kv_cache_bytes_per_token": {"bfloat16": cfg.kv_cache_bytes_per_token(2),
                                     "float32": cfg.kv_cache_bytes_per_token(4)},
    }


def _weight_format(cfg) -> str:
    qc = cfg.quantization_config
    if qc is None:
        return f"dense ({cfg.torch_dtype or 'dtype not stated'})"
    if qc.format == "int4":
        return (f"INT4 {qc.method} pack-quantized, symmetric, group {qc.group_size}, ignoring "
                f"{', '.join(qc.ignore) or 'nothing'}; the rest {cfg.torch_dtype or 'unquantized'}")
    where = ("the linears with a weight_scale_inv (every one but lm_head by the family's convention)"
             if qc.from_checkpoint else f"targets minus ignore ({', '.join(qc.ignore) or 'nothing'})")
    return f"FP8 e4m3, block {qc.block[0]}×{qc.block[1]} ({qc.method}): {where}"


def cmd_inspect(args: argparse.Namespace) -> int:
    info = inspect_checkpoint(args.path)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    kv = info["kv_cache_bytes_per_token"]
    mem = info["memory_bytes"]
    lines = [
        f"checkpoint   {info['path']}",
        f"model_type   {info['model_type']}, {info['layers']} layers, hidden {info['hidden_size']}, "
        f"{info['heads']} heads, vocab {info['vocab_size']}, context {info['context']}",
        f"attention    {info['attention']}",
        f"moe          {info['moe']}",
        f"routing      {info['routing']}",
        f"rope         {info['rope']}",
        f"parameters   {_human_count(info['parameters_total'])} total, "
        f"{_human_count(info['parameters_active_per_token'])} active per token",
        f"weights      {info['format']}",
        f"memory       {_human_bytes(mem['bfloat16'])} in bfloat16, "
        f"{_human_bytes(mem['float32'])} in float32"
        + (f" (dense: {_human_bytes(mem['dense_bfloat16'])} in bfloat16)" if info["quantization"] else ""),
        *([f"files        {_human_bytes(info['file_bytes'])} of safetensors"] if info["file_bytes"] else []),
        f"kv cache     {kv['bfloat16']:,} B/token in bfloat16 ({_human_bytes(kv['bfloat16'] * 1000)} per 1k "
        f"tokens), {kv['float32']:,} B/token in float32",
    ]
    print("\n".join(lines))
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="k2nb", description="Kimi-K2-architecture thinking MoE models, "
                                 "in the terminal and in Jupyter.")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("inspect", help="summarise a checkpoint folder (config, parameters, memory, KV cache)")
    p.add_argument("path", help="checkpoint folder in Hugging Face layout")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_inspect)
    for module in _SUBCOMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return ap


# Subcommands that live beside their layer; each module has ``register(subparsers)``:
# demo, think, kernel + lab, eval + train-nano (k2nb.nano.cli), widen-mla, quantize.
_SUBCOMMAND_MODULES = ("k2nb.demo", "k2nb.terminal", "k2nb.kernels.cli", "k2nb.nano.cli",
                       "k2nb.engine.mla_width", "k2nb.engine.quantize")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except K2nbError as e:
        print(f"k2nb: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("k2nb: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
