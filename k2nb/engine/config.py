"""The architecture of a K2-family checkpoint, read strictly from its ``config.json``.

One dataclass is the single source of truth for what a model is. Anything k2nb cannot run exactly is a
``ConfigError`` naming the key, never a silent default.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

SUPPORTED_MODEL_TYPES = ("kimi_k2", "deepseek_v3", "deepseek_v2")
TOPK_METHODS = ("noaux_tc", "greedy", "group_limited_greedy")
SCORING_FUNCS = ("sigmoid", "softmax")

# Keys every config must state: defaults for these would silently change the architecture.
_REQUIRED = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim",
)
# Keys that only matter when the model has MoE layers.
_REQUIRED_MOE = ("n_routed_experts", "num_experts_per_tok", "moe_intermediate_size")


@dataclass(frozen=True)
class RopeScaling:
    """YaRN parameters (the only scaling the family uses)."""

    factor: float
    original_max_position_embeddings: int
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    mscale: float | None = None
    mscale_all_dim: float | None = None


@dataclass(frozen=True)
class QuantizationConfig:
    """A checkpoint's ``quantization_config``, as far as k2nb runs it.

    ``format`` is the ops format of the quantized linears: "int4" (compressed-tensors
    pack-quantized, symmetric, ``group_size`` columns per scale) or "fp8" (e4m3 values, one scale per
    ``block`` = (rows, columns)). ``scale_name`` is the checkpoint's suffix for the scales
    (``weight_scale``; DeepSeek's FP8 says ``weight_scale_inv``). Which linears are quantized:
    compressed-tensors names them by ``targets`` minus ``ignore`` (`quantizes`); DeepSeek's FP8
    config names none, so there the checkpoint's scale tensors say (``from_checkpoint``). ``raw`` is
    the dict as read, written back unchanged.
    """

    method: str  # quant_method: "compressed-tensors" | "fp8"
    format: str  # "int4" | "fp8"
    scale_name: str
    group_size: int = 0
    block: tuple[int, int] = (0, 0)
    targets: tuple[str, ...] = ("Linear",)
    ignore: tuple[str, ...] = ()
    from_checkpoint: bool = False
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def quantizes(self, module: str) -> bool:
        """Whether the linear named ``module`` (HF name, e.g. ``model.layers.3.mlp.experts.7.up_proj``)
        is quantized by the config's targets and ignore list (compressed-tensors' matching:
        ``re:`` prefixes a regex matched at the start, a plain string is the exact name or the class
        name ``Linear``, which every linear k2nb quantizes is)."""
        return (any(_module_matches(module, t) for t in self.targets)
                and not any(_module_matches(module, t) for t in self.ignore))


def _module_matches(module: str, pattern: str) -> bool:
    if pattern.startswith("re:"):
        return re.match(pattern[3:], module) is not None
    return pattern in (module, "Linear")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a DeepSeek-V2/V3 / Kimi-K2 model (names follow the HF config keys)."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int
    q_lora_rank: int | None = None
    model_type: str = "kimi_k2"
    n_routed_experts: int = 0
    num_experts_per_tok: int = 0
    moe_intermediate_size: int = 0
    n_shared_experts: int = 0
    first_k_dense_replace: int = 0
    moe_layer_freq: int = 1
    n_group: int = 1
    topk_group: int = 1
    topk_method: str = "noaux_tc"
    scoring_func: str = "sigmoid"
    norm_topk_prob: bool = True
    routed_scaling_factor: float = 1.0
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_scaling: RopeScaling | None = None
    max_position_embeddings: int = 4096
    num_nextn_predict_layers: int = 0  # multi-token-prediction layers stored after the decoder layers
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    bos_token_id: int | None = None
    eos_token_ids: tuple[int, ...] = ()
    pad_token_id: int | None = None
    torch_dtype: str | None = None
    quantization_config: QuantizationConfig | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    # ---- derived ------------------------------------------------------------------------------
    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    def is_moe_layer(self, i: int) -> bool:
        return (self.n_routed_experts > 0 and i >= self.first_k_dense_replace
                and i % self.moe_layer_freq == 0)

    @property
    def moe_layer_ids(self) -> list[int]:
        return [i for i in range(self.num_hidden_layers) if self.is_moe_layer(i)]

    @property
    def softmax_scale(self) -> float:
        scale = self.qk_head_dim ** -0.5
        rs = self.rope_scaling
        if rs is not None and rs.mscale_all_dim:
            m = yarn_mscale(rs.factor, rs.mscale_all_dim)
            scale *= m * m
        return scale

    def kv_cache_bytes_per_token(self, dtype_bytes: int = 2) -> int:
        """Bytes of the latent cache per token: normalised c_kv + rotated k_pe, every layer."""
        return (self.kv_lora_rank + self.qk_rope_head_dim) * self.num_hidden_layers * dtype_bytes

    def parameter_counts(self) -> tuple[int, int]:
        """(total, active per token) parameter counts, MTP layers excluded."""
        d, h = self.hidden_size, self.num_attention_heads
        q = (d * self.q_lora_rank + self.q_lora_rank + self.q_lora_rank * h * self.qk_head_dim
             if self.q_lora_rank else d * h * self.qk_head_dim)
        attn = (q + d * (self.kv_lora_rank + self.qk_rope_head_dim) + self.kv_lora_rank
                + self.kv_lora_rank * h * (self.qk_nope_head_dim + self.v_head_dim)
                + h * self.v_head_dim * d)
        norms = 2 * d
        dense_mlp = 3 * d * self.intermediate_size
        expert = 3 * d * self.moe_intermediate_size
        total = active = 0
        for i in range(self.num_hidden_layers):
            base = attn + norms
            if self.is_moe_layer(i):
                shared = expert * self.n_shared_experts
                gate = self.n_routed_experts * d
                total += base + shared + gate + expert * self.n_routed_experts
                active += base + shared + gate + expert * self.num_experts_per_tok
            else:
                total += base + dense_mlp
                active += base + dense_mlp
        emb = self.vocab_size * d
        head = 0 if self.tie_word_embeddings else self.vocab_size * d
        total += emb + head + d
        active += emb + head + d
        return total, active

    # ---- (de)serialisation ----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config.json") -> ModelConfig:
        """Parse an HF config dict. ``source`` names the file in error messages."""
        r = _Reader(d, source)
        mt = d.get("model_type")
        if mt not in SUPPORTED_MODEL_TYPES:
            raise r.err(f"model_type {mt!r} is not supported; k2nb runs {', '.join(SUPPORTED_MODEL_TYPES)}")
        n_routed = r.get_int("n_routed_experts", minimum=0) if d.get("n_routed_experts") is not None else 0
        required = _REQUIRED + (_REQUIRED_MOE if n_routed else ())
        for key in required:
            if d.get(key) is None:
                raise r.err(f"required key {key!r} is missing")
        hidden_act = d.get("hidden_act", "silu")
        if hidden_act != "silu":
            raise r.err(f"hidden_act {hidden_act!r} is not supported; the family uses 'silu'")
        routing = _routing_fields(r, mt, n_routed)
        sizes = _size_fields(r, n_routed)
        eos = d.get("eos_token_id")
        eos_ids = tuple(eos) if isinstance(eos, list) else (() if eos is None else (int(eos),))

        known = {f.name for f in dataclasses.fields(cls)}
        return cls(
            **sizes,
            model_type=mt,
            n_routed_experts=n_routed,
            **routing,
            norm_topk_prob=bool(d.get("norm_topk_prob", False)),
            routed_scaling_factor=r.get_num("routed_scaling_factor", 1.0, positive=True),
            rms_norm_eps=r.get_num("rms_norm_eps", 1e-6, positive=True),
            rope_theta=_rope_theta(r),
            rope_scaling=_parse_rope(r),
            tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
            attention_bias=bool(d.get("attention_bias", False)),
            bos_token_id=d.get("bos_token_id"),
            eos_token_ids=eos_ids,
            pad_token_id=d.get("pad_token_id"),
            torch_dtype=d.get("torch_dtype") or d.get("dtype"),
            quantization_config=parse_quantization(d.get("quantization_config"), r.source),
            extra={k: v for k, v in d.items() if k not in known},
        )

    @classmethod
    def from_file(cls, path: str | Path) -> ModelConfig:
        path = Path(path)
        if path.is_dir():
            path = path / "config.json"
        if not path.is_file():
            raise ConfigError(f"{path}: config.json not found; a checkpoint folder needs one")
        try:
            d = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(d, dict):
            raise ConfigError(f"{path}: expected a JSON object")
        return cls.from_dict(d, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        """An HF-style config dict that ``from_dict`` and transformers both read."""
        d: dict[str, Any] = {
            "architectures": ["DeepseekV2ForCausalLM" if self.model_type == "deepseek_v2"
                              else "DeepseekV3ForCausalLM"],
        }
        for f in dataclasses.fields(self):
            if f.name in ("extra", "rope_scaling", "eos_token_ids", "quantization_config"):
                continue
            d[f.name] = getattr(self, f.name)
        d["hidden_act"] = "silu"
        d["eos_token_id"] = (list(self.eos_token_ids) if len(self.eos_token_ids) != 1
                             else self.eos_token_ids[0])
        if self.rope_scaling is not None:
            d["rope_scaling"] = {"type": "yarn", **dataclasses.asdict(self.rope_scaling)}
        else:
            d["rope_scaling"] = None
        if self.quantization_config is not None:
            d["quantization_config"] = self.quantization_config.raw
        return d


def yarn_mscale(factor: float, mscale: float = 1.0) -> float:
    """YaRN attention temperature correction: 0.1·m·ln f + 1 for f > 1."""
    return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0


class _Reader:
    """Typed reads of a config dict, with errors that name the file and the key (``prefix`` names
    the object a nested dict came from, e.g. ``rope_scaling.``)."""

    def __init__(self, d: dict[str, Any], source: str, prefix: str = ""):
        self.d, self.source, self.prefix = d, source, prefix

    def err(self, msg: str) -> ConfigError:
        return ConfigError(f"{self.source}: {msg}")

    def get_int(self, key: str, default: int | None = None, minimum: int | None = None) -> int:
        v = self.d.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.err(f"'{self.prefix}{key}' must be an integer, got {v!r}")
        if minimum is not None and v < minimum:
            raise self.err(f"{self.prefix}{key} must be >= {minimum}, got {v}")
        return v

    def get_num(self, key: str, default: float | None, positive: bool = False) -> float:
        v = self.d.get(key, default)
        if v is None:
            v = default
        return self.check_num(key, v, positive)

    def check_num(self, key: str, v: Any, positive: bool = False) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self.err(f"'{self.prefix}{key}' must be a finite number, got {v!r}")
        if positive and v <= 0:
            raise self.err(f"{self.prefix}{key} must be > 0, got {v!r}")
        return float(v)


def _size_fields(r: _Reader, n_routed: int) -> dict[str, Any]:
    """The dimensions and layer counts: integers, positive (or, where 0 means none, non-negative)."""
    pos = {key: r.get_int(key, minimum=1) for key in _REQUIRED}
    if pos["qk_rope_head_dim"] % 2:
        raise r.err(f"qk_rope_head_dim must be even, got {pos['qk_rope_head_dim']}")
    d = r.d
    return {
        **pos,
        "q_lora_rank": r.get_int("q_lora_rank", minimum=1) if d.get("q_lora_rank") is not None else None,
        "moe_intermediate_size": r.get_int("moe_intermediate_size", minimum=1) if n_routed else 0,
        "n_shared_experts": r.get_int("n_shared_experts", minimum=0) if d.get("n_shared_experts") else 0,
        "first_k_dense_replace": r.get_int("first_k_dense_replace", 0, minimum=0),
        "moe_layer_freq": r.get_int("moe_layer_freq", 1, minimum=1),
        "max_position_embeddings": r.get_int("max_position_embeddings", 4096, minimum=1),
        "num_nextn_predict_layers": r.get_int("num_nextn_predict_layers", 0, minimum=0),
    }


def _rope_theta(r: _Reader) -> float:
    """``rope_theta``, or transformers 5's ``rope_parameters.rope_theta``; finite and positive."""
    if r.d.get("rope_theta") is not None or not isinstance(r.d.get("rope_parameters"), dict):
        return r.get_num("rope_theta", 10000.0, positive=True)
    return _Reader(r.d["rope_parameters"], r.source, "rope_parameters.").get_num(
        "rope_theta", 10000.0, positive=True)


def _routing_fields(r: _Reader, mt: str, n_routed: int) -> dict[str, Any]:
    """topk_method, scoring_func, n_group, topk_group and num_experts_per_tok, checked together."""
    d = r.d
    topk_method = d.get("topk_method") or ("noaux_tc" if mt != "deepseek_v2" else "greedy")
    if topk_method not in TOPK_METHODS:
        raise r.err(f"topk_method {topk_method!r} is not supported; expected one of {TOPK_METHODS}")
    scoring = d.get("scoring_func") or ("sigmoid" if topk_method == "noaux_tc" else "softmax")
    if scoring not in SCORING_FUNCS:
        raise r.err(f"scoring_func {scoring!r} is not supported; expected one of {SCORING_FUNCS}")
    if topk_method == "noaux_tc" and scoring != "sigmoid":
        raise r.err("topk_method 'noaux_tc' requires scoring_func 'sigmoid'")

    n_group = r.get_int("n_group", 1, minimum=1) if d.get("n_group") is not None else 1
    topk_group = r.get_int("topk_group", 1, minimum=1) if d.get("topk_group") is not None else 1
    top_k = r.get_int("num_experts_per_tok", 0) if n_routed else 0
    if n_routed:
        if n_routed % n_group:
            raise r.err(f"n_routed_experts {n_routed} is not divisible by n_group {n_group}")
        if not 1 <= topk_group <= n_group:
            raise r.err(f"topk_group {topk_group} must be between 1 and n_group {n_group}")
        if not 1 <= top_k <= n_routed:
            raise r.err(f"num_experts_per_tok {top_k} must be between 1 and n_routed_experts {n_routed}")
        if top_k > topk_group * (n_routed // n_group):
            raise r.err(f"num_experts_per_tok {top_k} exceeds the experts in the {topk_group} kept groups")
    return {"topk_method": topk_method, "scoring_func": scoring, "n_group": n_group,
            "topk_group": topk_group, "num_experts_per_tok": top_k}


def _parse_rope(r: _Reader) -> RopeScaling | None:
    # Older configs say rope_scaling {"type": "yarn", ...}; transformers 5 writes rope_parameters
    # {"rope_type": "yarn" | "default", "rope_theta": ...}.
    d, err = r.d, r.err
    rs, prefix = d.get("rope_scaling"), "rope_scaling."
    if rs is None and isinstance(d.get("rope_parameters"), dict):
        rs, prefix = d["rope_parameters"], "rope_parameters."
    if not rs:
        return None
    if not isinstance(rs, dict):
        raise err(f"rope_scaling must be an object or null, got {rs!r}")
    kind = rs.get("type") or rs.get("rope_type")
    if kind in (None, "default"):
        return None
    if kind != "yarn":
        raise err(f"rope_scaling type {kind!r} is not supported; the family uses 'yarn'")
    for key in ("factor", "original_max_position_embeddings"):
        if rs.get(key) is None:
            raise err(f"{prefix}{key} is required for yarn")
    y = _Reader(rs, r.source, prefix)
    mscale, mscale_all_dim = rs.get("mscale"), rs.get("mscale_all_dim")
    return RopeScaling(
        factor=y.get_num("factor", None, positive=True),
        original_max_position_embeddings=y.get_int("original_max_position_embeddings", minimum=1),
        beta_fast=y.get_num("beta_fast", 32.0, positive=True),
        beta_slow=y.get_num("beta_slow", 1.0, positive=True),
        mscale=y.check_num("mscale", mscale) if mscale is not None else None,
        mscale_all_dim=y.check_num("mscale_all_dim", mscale_all_dim) if mscale_all_dim is not None else None,
    )


# ---- quantization_config ----------------------------------------------------------------------

QUANT_METHODS = ("compressed-tensors", "fp8")
_QC = "quantization_config"


def parse_quantization(qc: Any, source: str) -> QuantizationConfig | None:
    """``quantization_config`` → the typed record (None when absent), or a ``ConfigError`` naming the
    key k2nb cannot run."""
    if qc is None or qc == {}:
        return None
    if not isinstance(qc, dict):
        raise ConfigError(f"{source}: {_QC} must be an object, got {qc!r}")
    method = qc.get("quant_method")
    if method == "compressed-tensors":
        return _compressed_tensors(qc, _QuantReader(source))
    if method == "fp8":
        return _deepseek_fp8(qc, _QuantReader(source))
    raise ConfigError(f"{source}: {_QC}.quant_method {method!r} is not supported; k2nb loads "
                      f"{' and '.join(repr(m) for m in QUANT_METHODS)} checkpoints (INT4 pack-quantized, "
                      "block FP8)")


class _QuantReader:
    """Errors that name ``quantization_config.<key>`` in the file."""

    def __init__(self, source: str):
        self.source = source

    def err(self, key: str, msg: str) -> ConfigError:
        return ConfigError(f"{self.source}: {_QC}.{key} {msg}")

    def positive_ints(self, key: str, v: Any, n: int) -> tuple[int, ...]:
        if (not isinstance(v, list | tuple) or len(v) != n
                or not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v)):
            raise self.err(key, f"must be {n} positive integers, got {v!r}")
        return tuple(v)

    def patterns(self, key: str, v: Any) -> tuple[str, ...]:
        """A list of module names / ``re:`` regexes, each regex checked to compile."""
        if v is None:
            return ()
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise self.err(key, f"must be a list of module names or 're:' patterns, got {v!r}")
        for x in v:
            if x.startswith("re:"):
                try:
                    re.compile(x[3:])
                except re.error as e:
                    raise self.err(key, f"entry {x!r} is not a valid regular expression ({e})") from None
        return tuple(v)


def _compressed_tensors(qc: dict[str, Any], r: _QuantReader) -> QuantizationConfig:
    status = qc.get("quantization_status", "compressed")
    if status != "compressed":
        raise r.err("quantization_status", f"is {status!r}; k2nb reads checkpoints whose weights are "
                    "stored compressed ('compressed')")
    for key, what in (("sparsity_config", "sparse"), ("transform_config", "transformed (rotated)")):
        if qc.get(key):
            raise r.err(key, f"is set; {what} weights are not supported")
    if qc.get("kv_cache_scheme"):
        raise r.err("kv_cache_scheme", "is set; a quantized KV cache is not supported (k2nb caches "
                    "MLA's latents in the compute dtype)")
    groups = qc.get("config_groups")
    if not isinstance(groups, dict) or not groups:
        raise r.err("config_groups", f"must name at least one scheme, got {groups!r}")
    schemes: set[tuple[str, int, tuple[int, int]]] = set()
    targets: list[str] = []
    for name, g in groups.items():
        where = f"config_groups.{name}"
        if not isinstance(g, dict) or not isinstance(g.get("weights"), dict):
            raise r.err(where, "must be an object with a 'weights' scheme")
        fmt_key = f"{where}.format" if g.get("format") else "format"
        scheme = _weights_scheme(g["weights"], g.get("format") or qc.get("format"), where, fmt_key, r)
        _check_activations(g, scheme[0], where, r)
        schemes.add(scheme)
        targets += r.patterns(f"{where}.targets", g.get("targets"))
    if len(schemes) > 1:
        raise r.err("config_groups", "hold different weight schemes; k2nb runs one scheme per checkpoint")
    fmt, group_size, block = schemes.pop()
    return QuantizationConfig(method="compressed-tensors", format=fmt, scale_name="weight_scale",
                              group_size=group_size, block=block, targets=tuple(targets),
                              ignore=r.patterns("ignore", qc.get("ignore")), raw=qc)


def _weights_scheme(w: dict[str, Any], fmt: Any, where: str, fmt_key: str,
                    r: _QuantReader) -> tuple[str, int, tuple[int, int]]:
    """(format, group size, block) of one group's ``weights``; what k2nb cannot run names its key."""
    key = f"{where}.weights"
    if w.get("symmetric", True) is not True:
        raise r.err(f"{key}.symmetric", "is false; asymmetric weights (zero points) are not supported")
    if w.get("dynamic", False):
        raise r.err(f"{key}.dynamic", "is true; weights quantized at run time are not supported")
    if fmt == "pack-quantized":
        for k, want in (("num_bits", 4), ("type", "int"), ("strategy", "group")):
            if w.get(k) != want:
                raise r.err(f"{key}.{k}", f"is {w.get(k)!r}; k2nb reads pack-quantized weights with "
                            "num_bits 4, type 'int', strategy 'group'")
        if w.get("actorder") not in (None, "static"):
            raise r.err(f"{key}.actorder", f"is {w['actorder']!r}; activation-ordered groups (g_idx) "
                        "are not supported")
        g = w.get("group_size")
        if isinstance(g, bool) or not isinstance(g, int) or g <= 0 or g % 8:
            raise r.err(f"{key}.group_size", f"must be a positive multiple of 8, got {g!r}")
        return "int4", g, (0, 0)
    if fmt == "float-quantized":
        for k, want in (("num_bits", 8), ("type", "float"), ("strategy", "block")):
            if w.get(k) != want:
                raise r.err(f"{key}.{k}", f"is {w.get(k)!r}; k2nb reads float-quantized weights as "
                            "block FP8: num_bits 8, type 'float', strategy 'block'")
        bo, bi = r.positive_ints(f"{key}.block_structure", w.get("block_structure"), 2)
        return "fp8", 0, (bo, bi)
    raise r.err(fmt_key, f"{fmt!r} is not supported; k2nb reads 'pack-quantized' (INT4) and "
                "'float-quantized' (block FP8) compressed-tensors checkpoints")


def _check_activations(g: dict[str, Any], fmt: str, where: str, r: _QuantReader) -> None:
    """Weight-only INT4 has no activation scheme; FP8 may quantize activations dynamically, which k2nb
    does not apply (it computes in the model's dtype), but static input scales it cannot ignore."""
    if g.get("output_activations") is not None:
        raise r.err(f"{where}.output_activations", "is set; output quantization is not supported")
    act = g.get("input_activations")
    if act is None:
        return
    if fmt != "fp8" or not isinstance(act, dict) or not act.get("dynamic"):
        raise r.err(f"{where}.input_activations", "is set; k2nb runs weight-only INT4 and block FP8 "
                    "with dynamic (or no) activation quantization")


def _deepseek_fp8(qc: dict[str, Any], r: _QuantReader) -> QuantizationConfig:
    """DeepSeek-V3 / Kimi-K2-Instruct: ``{"quant_method": "fp8", "fmt": "e4m3", "activation_scheme":
    "dynamic", "weight_block_size": [128, 128]}``; the quantized linears are those with a
    ``weight_scale_inv`` in the checkpoint."""
    if qc.get("fmt", "e4m3") != "e4m3":
        raise r.err("fmt", f"is {qc['fmt']!r}; k2nb reads FP8 weights in e4m3")
    if qc.get("activation_scheme", "dynamic") != "dynamic":
        raise r.err("activation_scheme", f"is {qc['activation_scheme']!r}; static activation scales are "
                    "not supported ('dynamic' is)")
    if qc.get("weight_block_size") is None:
        raise r.err("weight_block_size", "is missing; k2nb reads block FP8 (per-tensor FP8 is not "
                    "supported)")
    block = r.positive_ints("weight_block_size", qc["weight_block_size"], 2)
    return QuantizationConfig(method="fp8", format="fp8", scale_name="weight_scale_inv",
                              block=(block[0], block[1]), from_checkpoint=True,
                              ignore=r.patterns("modules_to_not_convert", qc.get("modules_to_not_convert")),
                              raw=qc)
