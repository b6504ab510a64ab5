"""k2nb's engine vs transformers' DeepseekV3ForCausalLM on the same random "mini" checkpoint.

Prints prefill and decode tokens/s of both with their ratios, KV-cache bytes per token of both, and the
cost of routing capture (decode with capture on vs off), all from one run.

    python bench/engine_vs_transformers.py [--device cpu|cuda] [--dtype float32|bfloat16]
                                           [--prompt 256] [--new 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

MINI = dict(vocab_size=4096, hidden_size=512, intermediate_size=1408, moe_intermediate_size=256,
            num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=8, n_routed_experts=64,
            num_experts_per_tok=6, n_shared_experts=2, first_k_dense_replace=1, n_group=1, topk_group=1,
            q_lora_rank=256, kv_lora_rank=128, qk_nope_head_dim=64, qk_rope_head_dim=32, v_head_dim=64,
            routed_scaling_factor=2.5, norm_topk_prob=True, max_position_embeddings=4096,
            rope_theta=50000.0, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeats):
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import transformers
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

    from k2nb.engine import generate, load_model

    transformers.logging.set_verbosity_error()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    torch.manual_seed(0)
    ref = DeepseekV3ForCausalLM(DeepseekV3Config(**MINI)).eval()
    with torch.no_grad():
        for name, b in ref.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.normal_(0, 0.1)
    with tempfile.TemporaryDirectory() as tmp:
        ref.save_pretrained(tmp)
        ours = load_model(tmp, device=device, dtype=dtype, progress=False)
    ref = ref.to(device=device, dtype=dtype)
    for mod in ref.modules():  # keep transformers' router in float32, as its loader would
        if mod.__class__.__name__ == "DeepseekV3TopkRouter":
            mod.float()
    P, N = args.prompt, args.new
    gen = torch.Generator().manual_seed(1)
    prompt = torch.randint(3, MINI["vocab_size"], (1, P), generator=gen).to(device)

    # ---- prefill -------------------------------------------------------------------------------
    def ours_prefill():
        with torch.inference_mode():
            ours(prompt, ours.new_cache(capacity=P + N), last_only=True)

    def ref_prefill():
        with torch.inference_mode():
            ref(prompt, use_cache=True, logits_to_keep=1)

    ours_prefill(), ref_prefill()  # warm up
    t_ours_pf, t_ref_pf = timed(ours_prefill, device, args.repeats), timed(ref_prefill, device, args.repeats)

    # ---- decode (greedy, N tokens after the prompt; prefill time subtracted) --------------------
    def ours_gen(capture=True):
        return generate(ours, prompt[0], max_new_tokens=N, stop_ids=[], capture_routing=capture)

    def ref_gen():
        with torch.inference_mode():
            return ref.generate(prompt, max_new_tokens=N, min_new_tokens=N, do_sample=False,
                                pad_token_id=0, eos_token_id=None)

    ours_gen(), ref_gen()
    t_ours_gen = timed(ours_gen, device, args.repeats)
    t_ref_gen = timed(ref_gen, device, args.repeats)
    t_off = timed(lambda: ours_gen(False), device, args.repeats)
    t_on = timed(ours_gen, device, args.repeats)
    same = ours_gen().ids == ref_gen()[0, P:].tolist()
    ours_dec = N / max(t_ours_gen - t_ours_pf, 1e-9)
    ref_dec = N / max(t_ref_gen - t_ref_pf, 1e-9)

    # ---- KV bytes per token --------------------------------------------------------------------
    ours_kv = ours.new_cache().nbytes_per_token()
    with torch.inference_mode():
        out = ref(prompt, use_cache=True, logits_to_keep=1)
    cache_tensors = [t for t in torch.utils._pytree.tree_leaves(
        [[getattr(layer, a, None) for a in ("keys", "values")] for layer in out.past_key_values.layers])
        if isinstance(t, torch.Tensor)]
    ref_kv = sum(t.numel() * t.element_size() for t in cache_tensors) // P

    print(f"config: mini (hidden 512, 8 layers, 64 experts top-6, 2 shared, q_lora 256, kv_lora 128), "
          f"{args.device} {args.dtype}, threads {torch.get_num_threads()}, prompt {P}, new {N}, "
          f"median of {args.repeats}")
    print(f"greedy outputs identical: {same}")
    print(f"{'':28}{'k2nb':>12}{'transformers':>15}{'ratio':>9}")
    print(f"{'prefill tokens/s':28}{P / t_ours_pf:12.1f}{P / t_ref_pf:15.1f}{t_ref_pf / t_ours_pf:8.2f}x")
    print(f"{'decode tokens/s':28}{ours_dec:12.1f}{ref_dec:15.1f}{ours_dec / ref_dec:8.2f}x")
    print(f"{'KV cache bytes/token':28}{ours_kv:12d}{ref_kv:15d}{ref_kv / ours_kv:8.2f}x")
    print(f"routing capture overhead (whole generate, capture on vs off): "
          f"{(t_on / t_off - 1) * 100:+.1f}%  ({t_on:.3f}s vs {t_off:.3f}s)")


if __name__ == "__main__":
    main()
