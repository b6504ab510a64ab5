"""The routed-expert kernels at Kimi K2's shapes, and decode tok/s of a K2-shaped model, on one GPU.

    python bench/gpu_moe.py [--batches 1 4 16 64] [--sweep] [--moe-layers 2] [--json FILE]
    python bench/gpu_moe.py --smoke        # tiny shapes on the CPU (Triton's interpreter): the script runs

1. **MoE kernels** at hidden 7168, expert width 2048, 384 experts, top-8, for each batch: the Triton
   W4A16 kernel (compressed-tensors INT4, group 32), the Triton FP8-block and bf16 kernels, and the
   torch bf16 path (`ops.dense`) for comparison. A call's bytes are what it must read: the packed
   weights and scales of every *distinct* expert the batch routes to (plus activations). Time per call
   comes from a CUDA graph of calls over 8 different routings (no launch overhead, and a batch never
   finds the previous call's experts in L2); "eager" is the same calls launched one by one. GB/s is
   bytes / time; % peak is against the card's HBM bandwidth (H200: 4.8 TB/s) and % copy against a
   device-to-device copy measured here. The INT4 result is first checked against the torch INT4
   reference (`ops.int4`) at the same shape.
2. **--sweep**: other tilings of the INT4 kernel per batch; the fastest is printed (defaults live in
   `ops.triton_moe.moe_config`).
3. **Decode** tok/s of a random K2-shaped model (K2's attention and expert dims, 1 dense + N MoE
   layers, K2's vocabulary) through `k2nb.engine.generate`, in bf16, FP8 (every linear but lm_head
   block-FP8) and INT4 (routed experts INT4, the rest bf16, as K2 Thinking ships), with the bytes one
   token reads and the bandwidth that implies.

Exit status is non-zero on any error; a mismatch against the reference is an error.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

K2 = dict(hidden=7168, inter=2048, experts=384, top_k=8)
SMOKE = dict(hidden=64, inter=32, experts=8, top_k=2)
ROUTINGS = 8  # different routings per timed pass
# HBM bandwidth by device name (bytes/s): vendor figures
PEAK = [("H200", 4.8e12), ("H100 SXM", 3.35e12), ("H100 NVL", 3.9e12), ("H100 PCIe", 2.0e12),
        ("H100", 3.35e12), ("H800", 3.35e12), ("GH200", 4.0e12), ("B200", 8.0e12),
        ("A100-SXM4-80GB", 2.039e12), ("A100 80GB PCIe", 1.935e12), ("A100", 1.555e12), ("L40S", 0.864e12),
        ("L4", 0.3e12), ("RTX 4090", 1.008e12), ("A10", 0.6e12)]


@dataclass
class Row:
    section: str
    what: str
    batch: int | str
    us: float | None = None  # per call (graph)
    us_eager: float | None = None
    gbps: float | None = None
    pct_peak: float | None = None
    pct_copy: float | None = None
    note: str = ""


ROWS: list[Row] = []


def log(msg: str) -> None:
    print(msg, flush=True)


def size(nbytes: float) -> str:
    return f"{nbytes / 1e9:.2f} GB" if nbytes >= 1e8 else f"{nbytes / 1e6:.2f} MB"


# ---------------------------------------------------------------------------------------------------
# device


def device_info(torch: Any, dev: Any) -> tuple[str, float | None, float | None]:
    """(name, spec peak bytes/s or None, measured copy bytes/s or None)."""
    if dev.type != "cuda":
        return "cpu (Triton interpreter)", None, None
    name = torch.cuda.get_device_name(dev)
    peak = next((bw for key, bw in PEAK if key in name), None)
    x = torch.empty(2**30, dtype=torch.uint8, device=dev)  # 1 GiB
    y = torch.empty_like(x)
    for _ in range(3):
        y.copy_(x)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(10):
        y.copy_(x)
    end.record()
    torch.cuda.synchronize()
    copy = 2 * x.numel() * 10 / (start.elapsed_time(end) / 1e3)  # read + write
    del x, y
    return name, peak, copy


# ---------------------------------------------------------------------------------------------------
# weights and routings


def make_experts(torch: Any, fmt: str, e: int, h: int, inter: int, dev: Any, dtype: Any) -> tuple[Any, Any]:
    """Random stacked w13 [E, 2I, H] and w2 [E, H, I] in `fmt` ("int4", "fp8", "bf16")."""
    return (make_weight(torch, fmt, (e, 2 * inter, h), dev, dtype),
            make_weight(torch, fmt, (e, h, inter), dev, dtype))


def make_weight(torch: Any, fmt: str, shape: tuple[int, ...], dev: Any, dtype: Any) -> Any:
    from k2nb.engine.ops.fp8 import Fp8BlockWeight
    from k2nb.engine.ops.int4 import Int4Weight

    *lead, n, k = shape
    if fmt == "int4":  # every nibble value; scales sized for outputs of order 1
        packed = torch.empty(*lead, n, k // 8, dtype=torch.int32, device=dev).random_(-2**31, 2**31 - 1)
        scale = torch.empty(*lead, n, k // 32, dtype=dtype, device=dev).uniform_(0.5, 1.5) / (4.6 * k**0.5)
        return Int4Weight(packed, scale, 32, dtype)
    if fmt == "fp8":  # random e4m3 bytes with |value| < 1 (exponent bits masked: no NaN codes)
        w = torch.empty(*lead, n, k, dtype=torch.uint8, device=dev).random_(0, 256).bitwise_and_(0xB7)
        scale = torch.empty(*lead, -(-n // 128), -(-k // 128), dtype=torch.float32, device=dev)
        return Fp8BlockWeight(w.view(torch.float8_e4m3fn), scale.uniform_(0.5, 1.5).div_(0.4 * k**0.5),
                              (128, 128), dtype)
    return torch.randn(shape, dtype=dtype, device=dev).div_(k**0.5)


def weight_bytes(w: Any) -> int:
    return w.nbytes if hasattr(w, "packed") or hasattr(w, "scale_inv") else w.numel() * w.element_size()


def routings(torch: Any, t: int, e: int, k: int, dev: Any, n: int, seed: int) -> list[tuple[Any, Any]]:
    """n routings of t tokens: k distinct experts per token, uniform (what a balanced router gives)."""
    gen = torch.Generator(device=dev).manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.rand(t, e, generator=gen, device=dev).topk(k, dim=1).indices
        weights = torch.rand(t, k, generator=gen, device=dev).softmax(-1) * 2.8
        out.append((weights, ids))
    return out


# ---------------------------------------------------------------------------------------------------
# timing


def time_calls(torch: Any, dev: Any, calls: list[Callable[[], Any]], graph: bool) -> tuple[float, float]:
    """(seconds per call from a CUDA graph of all calls, seconds per call launched eagerly)."""
    for c in calls:  # compile and warm up
        c()
    if dev.type != "cuda":
        t0 = time.perf_counter()
        for c in calls:
            c()
        dt = (time.perf_counter() - t0) / len(calls)
        return dt, dt
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    eager = []
    for _ in range(3):
        start.record()
        for c in calls:
            c()
        end.record()
        torch.cuda.synchronize()
        eager.append(start.elapsed_time(end) / 1e3 / len(calls))
    if not graph:
        return min(eager), min(eager)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):  # fails on any host sync inside a call
        for c in calls:
            c()
    g.replay()
    torch.cuda.synchronize()
    replays = []
    for _ in range(5):
        start.record()
        g.replay()
        end.record()
        torch.cuda.synchronize()
        replays.append(start.elapsed_time(end) / 1e3 / len(calls))
    return statistics.median(replays), min(eager)


# ---------------------------------------------------------------------------------------------------
# 1. the MoE kernels


def bench_moe(torch: Any, dev: Any, shape: dict[str, int], batches: list[int], peak: float | None,
              copy: float | None, sweep: bool) -> None:
    formats = [("int4", "triton W4A16 (int4)"), ("fp8", "triton fp8-block"), ("bf16", "triton bf16"),
               ("bf16-torch", "torch bf16 (ops.dense)")]
    for fmt, label in formats:
        bench_format(torch, dev, shape, batches, peak, copy, sweep and fmt == "int4", fmt, label)
        if dev.type == "cuda":
            torch.cuda.empty_cache()  # this format's weights are gone with bench_format's frame


def bench_format(torch: Any, dev: Any, shape: dict[str, int], batches: list[int], peak: float | None,
                 copy: float | None, sweep: bool, fmt: str, label: str) -> None:
    from k2nb.engine.ops import dense, int4, triton_moe

    h, inter, e, k = shape["hidden"], shape["inter"], shape["experts"], shape["top_k"]
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float16  # the interpreter has no bf16
    wfmt = "bf16" if fmt.startswith("bf16") else fmt
    w13, w2 = make_experts(torch, wfmt, e, h, inter, dev, dtype)
    per_expert = (weight_bytes(w13) + weight_bytes(w2)) / e
    op_fmt = {"int4": "int4", "fp8": "fp8", "bf16": "dense"}[wfmt]
    if fmt == "int4":
        check_int4(torch, dev, w13, w2, dtype, h, e, k, int4, triton_moe)
    for t in batches:
        rs = routings(torch, t, e, k, dev, ROUTINGS, seed=t)
        x = torch.randn(t, h, dtype=dtype, device=dev)
        distinct = statistics.mean(len(torch.unique(ids).tolist()) for _, ids in rs)
        nbytes = distinct * per_expert + t * h * 2 * 2 + t * k * (inter + h) * 2 * 2
        if fmt == "bf16-torch":  # not graph-captured: its per-expert path reads counts on the host
            calls = [partial(dense.moe_experts, x, w, i, w13, w2) for w, i in rs]
        else:
            calls = [partial(triton_moe.fused_moe, x, w, i, w13, w2, op_fmt) for w, i in rs]
        with torch.inference_mode():
            graph_s, eager_s = time_calls(torch, dev, calls, graph=fmt != "bf16-torch")
        add_moe_row(label, t, nbytes, graph_s, eager_s, peak, copy,
                    f"{distinct:.1f} distinct experts, {size(nbytes)}")
        if sweep:
            sweep_int4(torch, dev, x, rs, w13, w2, t, e, nbytes, peak, copy, triton_moe)


def add_moe_row(label: str, t: int, nbytes: float, graph_s: float, eager_s: float, peak: float | None,
                copy: float | None, note: str) -> None:
    gbps = nbytes / graph_s
    row = Row("moe", label, t, graph_s * 1e6, eager_s * 1e6, gbps / 1e9,
              100 * gbps / peak if peak else None, 100 * gbps / copy if copy else None, note)
    ROWS.append(row)
    log(f"  {label:28s} T={t:<3d} {graph_s * 1e6:9.1f} us (eager {eager_s * 1e6:9.1f})  "
        f"{gbps / 1e9:7.0f} GB/s  " + (f"{row.pct_peak:5.1f} % of peak  " if row.pct_peak else "") + note)


def check_int4(torch: Any, dev: Any, w13: Any, w2: Any, dtype: Any, h: int, e: int, k: int, int4: Any,
               triton_moe: Any) -> None:
    """The Triton INT4 result against the torch INT4 reference at this shape: decode and a batch."""
    for t in (1, 16):
        weights, ids = routings(torch, t, e, k, dev, 1, seed=100 + t)[0]
        x = torch.randn(t, h, dtype=dtype, device=dev)
        with torch.inference_mode():
            ref = int4.moe_experts(x.float(), weights, ids, w13, w2)
            y = triton_moe.fused_moe(x, weights, ids, w13, w2, "int4").float()
        err = ((y - ref).abs().max() / ref.abs().max()).item()
        log(f"  check int4 T={t}: max |triton − torch reference| / max |reference| = {err:.2e}")
        if not err < 2e-2:
            raise SystemExit(f"FAILED: the Triton INT4 MoE differs from the torch reference by {err:.2e} "
                             f"at T={t}")


def sweep_int4(torch: Any, dev: Any, x: Any, rs: list[tuple[Any, Any]], w13: Any, w2: Any, t: int, e: int,
               nbytes: float, peak: float | None, copy: float | None, triton_moe: Any) -> None:
    from k2nb.engine.ops.triton_gemm import GemmConfig
    from k2nb.engine.ops.triton_moe import MoeConfig

    G = GemmConfig
    candidates = [MoeConfig(1, G("gemv", 1, bn13, bk, w), G("gemv", 1, bn2, bk, w))
                  for bn13, bn2, bk, w in ((64, 128, 256, 4), (32, 64, 256, 4), (64, 64, 256, 4),
                                           (128, 128, 256, 8), (64, 128, 512, 4), (32, 64, 128, 4))]
    candidates += [MoeConfig(4, G("gemv", 4, 32, 256), G("gemv", 4, 64, 256)),
                   MoeConfig(16, G("dot", 16, 64, 64), G("dot", 16, 64, 64)),
                   MoeConfig(16, G("dot", 16, 32, 128, 4, 4), G("dot", 16, 64, 128, 4, 4))]
    default = triton_moe.moe_config(t * rs[0][1].shape[1], e, "int4")
    best: tuple[float, Any] | None = None
    for cfg in candidates:
        try:
            with torch.inference_mode():
                calls = [partial(triton_moe.fused_moe, x, w, i, w13, w2, "int4", cfg) for w, i in rs]
                s, _ = time_calls(torch, dev, calls, graph=True)
        except Exception as exc:  # a tiling this card cannot run (shared memory, registers): say so
            log(f"    sweep T={t} {cfg}: failed ({type(exc).__name__}: {str(exc)[:120]})")
            continue
        log(f"    sweep T={t} {s * 1e6:8.1f} us {nbytes / s / 1e9:6.0f} GB/s  {cfg}"
            + ("   (default)" if cfg == default else ""))
        if best is None or s < best[0]:
            best = (s, cfg)
    if best is not None:
        add_moe_row("  best tiling (sweep)", t, nbytes, best[0], best[0], peak, copy, str(best[1]))


# ---------------------------------------------------------------------------------------------------
# 3. decode of a K2-shaped model


def k2_config(moe_layers: int, smoke: bool) -> dict[str, Any]:
    if smoke:
        return dict(model_type="kimi_k2", vocab_size=512, hidden_size=64, intermediate_size=128,
                    moe_intermediate_size=32, num_hidden_layers=1 + moe_layers, num_attention_heads=4,
                    num_key_value_heads=4,
                    n_routed_experts=8, num_experts_per_tok=2, n_shared_experts=1, first_k_dense_replace=1,
                    q_lora_rank=32, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=16, v_head_dim=16,
                    routed_scaling_factor=2.827, max_position_embeddings=4096, rope_theta=50000.0,
                    rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2)
    return dict(model_type="kimi_k2", vocab_size=163840, hidden_size=7168, intermediate_size=18432,
                moe_intermediate_size=2048, num_hidden_layers=1 + moe_layers, num_attention_heads=64,
                num_key_value_heads=64,
                n_routed_experts=384, num_experts_per_tok=8, n_shared_experts=1, first_k_dense_replace=1,
                q_lora_rank=1536, kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128,
                routed_scaling_factor=2.827, max_position_embeddings=4096, rope_theta=50000.0,
                rms_norm_eps=1e-5, bos_token_id=163584, eos_token_id=163586)


def build_model(torch: Any, cfg_dict: dict[str, Any], fmt: str, dev: Any, dtype: Any) -> Any:
    """A random K2-shaped model on `dev` with its weights in `fmt`, never allocated densely first."""
    from k2nb.engine.config import ModelConfig
    from k2nb.engine.model import K2Model, Linear
    cfg = ModelConfig.from_dict(cfg_dict)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device("meta"):
            model = K2Model(cfg)
    finally:
        torch.set_default_dtype(default)
    packed: list[tuple[Any, str, tuple[int, ...]]] = []  # (module, attribute, logical shape)
    if fmt in ("int4", "fp8"):
        packed += [(moe.experts, name, tuple(getattr(moe.experts, name).shape))
                   for moe in model.moe_layers() for name in ("w13", "w2")]  # the routed experts, stacked
    if fmt == "fp8":  # K2-Instruct / DeepSeek-V3: every other linear too, but the head
        packed += [(mod, "weight", tuple(mod.weight.shape)) for name, mod in model.named_modules()
                   if isinstance(mod, Linear) and name != "lm_head"]
    for mod, attr, _ in packed:
        delattr(mod, attr)  # so that to_empty allocates only what stays dense
    model.to_empty(device=dev)
    gen = torch.Generator(device=dev).manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            elif p.dim() == 1:
                p.zero_()
            else:
                p.normal_(0.0, 0.02 if p.shape[-1] < 4096 else 1.5 / p.shape[-1] ** 0.5, generator=gen)
        for b in model.buffers():
            b.zero_()
    for mod, attr, shape in packed:
        setattr(mod, attr, make_weight(torch, fmt, shape, dev, dtype))
    return model.eval()


def read_per_token(torch: Any, model: Any) -> float:
    """Bytes one decoded token reads: every weight but the embedding table and the unchosen experts."""
    cfg = model.config
    total = 0.0
    for name, mod in model.named_children():
        if name == "embed_tokens":
            total += cfg.hidden_size * mod.weight.element_size()
    for layer in model.layers:
        for name, mod in layer.named_children():
            if name == "mlp" and hasattr(mod, "experts"):
                experts = sum(weight_bytes(getattr(mod.experts, w)) for w in ("w13", "w2"))
                total += experts * cfg.num_experts_per_tok / cfg.n_routed_experts
                rest = [p for n, p in mod.named_parameters() if not n.startswith("experts.")]
            else:
                rest = list(mod.parameters())
            total += sum(p.numel() * p.element_size() for p in rest)
    total += sum(p.numel() * p.element_size() for p in model.norm.parameters())
    if model.lm_head is not None:
        total += weight_bytes(model.lm_head.weight)
    return total


def bench_decode(torch: Any, dev: Any, moe_layers: int, smoke: bool, peak: float | None, new: int) -> None:
    from k2nb.engine import generate
    from k2nb.engine.ops import weight_format

    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    cfg = k2_config(moe_layers, smoke)
    for fmt in ("bf16", "fp8", "int4"):
        model = build_model(torch, cfg, fmt, dev, dtype)
        prompt = list(range(3, 3 + 16))
        generate(model, prompt, max_new_tokens=4, stop_ids=[])  # compile, warm the caches
        result = generate(model, prompt, max_new_tokens=new, stop_ids=[])
        tps = result.decode_tokens_per_second
        nbytes = read_per_token(torch, model)
        gbps = nbytes * tps
        experts = weight_format(model.moe_layers()[0].experts.w13)
        note = (f"{cfg['num_hidden_layers']} layers ({moe_layers} MoE, experts {experts}), "
                f"{size(nbytes)} read per token, {size(model.nbytes())} of weights")
        ROWS.append(Row("decode", f"K2-shaped model, {fmt}", 1, 1e6 / tps, None, gbps / 1e9,
                        100 * gbps / peak if peak else None, None, f"{tps:.1f} tok/s; " + note))
        log(f"  decode {fmt:5s} {tps:8.1f} tok/s  {1e3 / tps:7.2f} ms/token  {gbps / 1e9:6.0f} GB/s  {note}")
        del model
        if dev.type == "cuda":
            torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------------


def summary(name: str, peak: float | None, copy: float | None) -> str:
    lines = [f"device: {name}; HBM peak {peak / 1e12:.2f} TB/s" if peak else f"device: {name}",
             f"measured device copy: {copy / 1e12:.2f} TB/s" if copy else "",
             f"{'section':7s} {'what':30s} {'batch':>5s} {'us/call':>9s} {'eager us':>9s} {'GB/s':>7s} "
             f"{'% peak':>6s} {'% copy':>6s}  note"]
    for r in ROWS:
        def f(v: float | None, spec: str) -> str:
            return format(v, spec) if v is not None else format("-", ">" + spec.split(".")[0])
        lines.append(f"{r.section:7s} {r.what:30s} {r.batch!s:>5s} {f(r.us, '9.1f')} {f(r.us_eager, '9.1f')} "
                     f"{f(r.gbps, '7.0f')} {f(r.pct_peak, '6.1f')} {f(r.pct_copy, '6.1f')}  {r.note}")
    return "\n".join(line for line in lines if line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--sweep", action="store_true", help="time other INT4 tilings per batch")
    ap.add_argument("--moe-layers", type=int, default=2, help="MoE layers of the decode model (+1 dense)")
    ap.add_argument("--new", type=int, default=32, help="tokens decoded per timed generation")
    ap.add_argument("--skip", nargs="*", default=[], choices=["moe", "decode"])
    ap.add_argument("--smoke", action="store_true",
                    help="tiny shapes on the CPU through Triton's interpreter")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    if args.smoke:
        os.environ["TRITON_INTERPRET"] = "1"  # before any kernel is defined
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    if args.smoke:
        dev, shape = torch.device("cpu"), SMOKE
        args.batches = [b for b in args.batches if b <= 4] or [1]
    elif not torch.cuda.is_available():
        raise SystemExit("FAILED: no CUDA device (use --smoke for the CPU check)")
    else:
        dev, shape = torch.device("cuda"), K2
    name, peak, copy = device_info(torch, dev)
    log(f"device {name}" + (f", HBM peak {peak / 1e12:.2f} TB/s" if peak else ", peak unknown")
        + (f", measured copy {copy / 1e12:.2f} TB/s" if copy else ""))
    if "moe" not in args.skip:
        log(f"MoE experts: hidden {shape['hidden']}, width {shape['inter']}, {shape['experts']} experts, "
            f"top-{shape['top_k']}")
        bench_moe(torch, dev, shape, args.batches, peak, copy, args.sweep)
    if "decode" not in args.skip:
        log("decode of a K2-shaped random model")
        bench_decode(torch, dev, args.moe_layers, args.smoke, peak, 8 if args.smoke else args.new)
    table = summary(name, peak, copy)
    print("\n" + table, flush=True)
    if args.json:
        rows = [asdict(r) for r in ROWS]
        args.json.write_text(json.dumps(dict(device=name, peak=peak, copy=copy, rows=rows), indent=1) + "\n")


if __name__ == "__main__":
    main()
