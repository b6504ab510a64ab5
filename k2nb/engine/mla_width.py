"""Widen a model's MLA to another latent / rope width without changing what it computes.

Served engines take MLA at the family's own width only (vLLM's CPU MLA kernel: ``kv_lora_rank`` 512
+ ``qk_rope_head_dim`` 64). A smaller model — k2-nano — is moved to that shape by an exact transform
of its weights, so every served engine loads the folder as it is and gives the same logits:

- **latent** ``R → R'``: the latent rows of ``kv_a_proj_with_mqa`` are scaled by ``c = sqrt(R'/R)``
  and zero rows appended; ``kv_a_layernorm``'s weight is divided by ``c``. The RMS over R' dims of
  ``c·x`` padded with zeros equals the RMS over R dims of ``x`` (eps included), so the normalised
  latent is the old one, zero-padded; ``kv_b_proj`` gets zero columns for the new dims.
- **rope** ``d → d'`` (``d' = f·d``, f an integer): K2 rotates interleaved pairs ``(2i, 2i+1)`` at
  θ_i = base^(-2i/d). Old pair i goes to new pair ``f·i``, whose θ is the same; every other pair is
  zero in the queries and the shared rope key, so it adds nothing to a score. With YaRN scaling the
  frequencies are compared after mapping and the transform is refused if any differs.
- **softmax scale**: it is ``qk_head_dim^-0.5`` (times YaRN's mscale²); the queries are multiplied
  by ``old_scale / new_scale`` so every score is unchanged.

Up to float rounding of the two scale factors, the new model's logits are the old model's.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from pathlib import Path

import torch

from .config import ModelConfig
from .errors import K2nbError
from .model import MLA, K2Model
from .rope import inv_frequencies

SERVED_KV_LORA_RANK = 512  # the family's latent width (K2, DeepSeek-V3), the only one vLLM-CPU takes
SERVED_ROPE_DIM = 64


def widened_config(cfg: ModelConfig, kv_lora_rank: int = SERVED_KV_LORA_RANK,
                   qk_rope_head_dim: int = SERVED_ROPE_DIM) -> ModelConfig:
    """``cfg`` at the new MLA width; a one-sentence error if no exact transform exists."""
    R, d = cfg.kv_lora_rank, cfg.qk_rope_head_dim
    if kv_lora_rank < R:
        raise K2nbError(f"kv_lora_rank {kv_lora_rank} is smaller than the model's {R}; "
                        "widening only adds latent dims")
    if qk_rope_head_dim < d or qk_rope_head_dim % d or qk_rope_head_dim % 2:
        raise K2nbError(f"qk_rope_head_dim {qk_rope_head_dim} must be an even multiple of the "
                        f"model's {d}, so each rope pair keeps its frequency")
    new = dataclasses.replace(cfg, kv_lora_rank=kv_lora_rank, qk_rope_head_dim=qk_rope_head_dim)
    old_freq, old_mag = inv_frequencies(cfg)
    new_freq, new_mag = inv_frequencies(new)
    f = qk_rope_head_dim // d
    if old_mag != new_mag or not torch.equal(new_freq[::f], old_freq):
        raise K2nbError("this model's rope scaling (rope_scaling in config.json) gives other "
                        f"frequencies at qk_rope_head_dim {qk_rope_head_dim}; no exact widening exists")
    return new


def _rope_rows(d: int, d_new: int) -> torch.Tensor:
    """For each old rope dim (interleaved pairs), its index among the new rope dims ``[d]``."""
    f = d_new // d
    pair = torch.arange(d) // 2
    return pair * f * 2 + torch.arange(d) % 2


def _widened_attention(old: MLA, cfg: ModelConfig, wide: ModelConfig) -> dict[str, torch.Tensor]:
    """The widened tensors of one attention module, by their names inside it."""
    H, dn, dv = cfg.num_attention_heads, cfg.qk_nope_head_dim, cfg.v_head_dim
    R, d, R2, d2 = cfg.kv_lora_rank, cfg.qk_rope_head_dim, wide.kv_lora_rank, wide.qk_rope_head_dim
    rope = _rope_rows(d, d2)
    q_factor = cfg.softmax_scale / wide.softmax_scale
    c = math.sqrt(R2 / R)
    out = {name: t.detach().clone() for name, t in old.state_dict().items()}

    # queries: [H*(dn+d), in] → [H*(dn+d2), in], nope rows kept, rope rows placed, all × q_factor
    q_name = "q_b_proj.weight" if cfg.q_lora_rank else "q_proj.weight"
    wq = out[q_name].view(H, dn + d, -1)
    wq2 = wq.new_zeros(H, dn + d2, wq.shape[-1])
    wq2[:, :dn] = wq[:, :dn]
    wq2[:, dn + rope] = wq[:, dn:]
    out[q_name] = (wq2 * q_factor).reshape(H * (dn + d2), -1)

    # shared latent + rope key: [R+d, D] → [R2+d2, D] (and the bias, if any)
    for name in ("kv_a_proj_with_mqa.weight", "kv_a_proj_with_mqa.bias"):
        if name in out:
            t = out[name]
            rows = t.new_zeros((R2 + d2,) + t.shape[1:])
            rows[:R] = t[:R] * c
            rows[R2 + rope] = t[R:]
            out[name] = rows
    norm = out["kv_a_layernorm.weight"].new_ones(R2)  # padded dims are zero before and after it
    norm[:R] = out["kv_a_layernorm.weight"] / c
    out["kv_a_layernorm.weight"] = norm

    wkv = out["kv_b_proj.weight"]  # [H*(dn+dv), R] → [H*(dn+dv), R2]
    out["kv_b_proj.weight"] = torch.cat((wkv, wkv.new_zeros(H * (dn + dv), R2 - R)), dim=1)
    return out


@torch.no_grad()
def widen_mla(model: K2Model, kv_lora_rank: int = SERVED_KV_LORA_RANK,
              qk_rope_head_dim: int = SERVED_ROPE_DIM, model_type: str | None = None) -> K2Model:
    """A new model at the given MLA width computing the same logits as ``model`` (which is unchanged).
    ``model_type`` optionally renames the family in its config."""
    cfg = model.config
    wide = widened_config(cfg, kv_lora_rank, qk_rope_head_dim)
    if model_type is not None:
        wide = dataclasses.replace(wide, model_type=model_type)
    state = {name: t.detach().clone() for name, t in model.state_dict().items()}
    for prefix, module in model.named_modules():
        if isinstance(module, MLA):
            for name, t in _widened_attention(module, cfg, wide).items():
                state[f"{prefix}.{name}"] = t
    with torch.device("meta"):
        out = K2Model(wide)
    out.load_state_dict(state, assign=True)
    if getattr(model, "tokenizer", None) is not None:
        out.tokenizer = model.tokenizer
    return out.eval()


def widen_checkpoint(src: str | os.PathLike, dst: str | os.PathLike,
                     kv_lora_rank: int = SERVED_KV_LORA_RANK, qk_rope_head_dim: int = SERVED_ROPE_DIM,
                     model_type: str | None = None) -> Path:
    """Write ``src`` (an HF folder) widened into ``dst``: weights, config, and every other file
    (tokenizer, chat template, model card) copied. ``model_type`` optionally renames the family
    (``deepseek_v3`` is the name transformers, vLLM and SGLang know for this architecture)."""
    from .loader import load_model, save_checkpoint

    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve():
        raise K2nbError(f"{dst}: write the widened model to another folder than its source")
    model = load_model(src, device="cpu")
    wide = widen_mla(model, kv_lora_rank, qk_rope_head_dim, model_type)
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and f.name != "config.json" and not f.name.startswith("model"):
            shutil.copy2(f, dst / f.name)
    save_checkpoint(wide, dst, dtype=model.dtype)
    _keep_config_extras(src / "config.json", dst / "config.json")
    return dst


def _keep_config_extras(src: Path, dst: Path) -> None:
    """Carry the source config's keys the engine does not model (generation defaults, a user's
    notes), with the derived width keys updated."""
    old = json.loads(src.read_text())
    new = json.loads(dst.read_text())
    for key, value in old.items():
        new.setdefault(key, value)
    if "head_dim" in old:  # transformers' DeepseekV3Config stores the rope width under this name too
        new["head_dim"] = new["qk_rope_head_dim"]
    new.pop("qk_head_dim", None)  # derived; a stale copy would disagree with the new widths
    dst.write_text(json.dumps(new, indent=2) + "\n")


def register(sub) -> None:
    """``k2nb widen-mla SRC DST``."""
    p = sub.add_parser("widen-mla", help="write a checkpoint at another MLA latent / rope width, "
                       "computing the same logits (the served engines' shape: 512 + 64)")
    p.add_argument("src", help="checkpoint folder in Hugging Face layout")
    p.add_argument("dst", help="folder to write (weights, config and the other files of src)")
    p.add_argument("--kv-lora-rank", type=int, default=SERVED_KV_LORA_RANK)
    p.add_argument("--rope-dim", type=int, default=SERVED_ROPE_DIM, help="qk_rope_head_dim")
    p.add_argument("--model-type", default=None,
                   help="rename the family in config.json (e.g. deepseek_v3, which served engines know)")
    p.set_defaults(func=lambda a: print(widen_checkpoint(a.src, a.dst, a.kv_lora_rank, a.rope_dim,
                                                         a.model_type)) or 0)
