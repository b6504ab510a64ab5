"""`k2nb demo`: the engine end to end on a random K2-architecture checkpoint it writes itself."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

# K2 Thinking's architecture at toy width: MLA with q-LoRA and YaRN, first layer dense, sigmoid
# noaux_tc routing with a selection bias, 1 shared expert.
DEMO_CONFIG = {
    "model_type": "kimi_k2", "vocab_size": 1024, "hidden_size": 128, "intermediate_size": 384,
    "moe_intermediate_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4, "n_routed_experts": 32,
    "num_experts_per_tok": 4, "n_shared_experts": 1, "first_k_dense_replace": 1, "moe_layer_freq": 1,
    "n_group": 1, "topk_group": 1, "topk_method": "noaux_tc", "scoring_func": "sigmoid",
    "norm_topk_prob": True, "routed_scaling_factor": 2.827, "q_lora_rank": 64, "kv_lora_rank": 64,
    "qk_nope_head_dim": 32, "qk_rope_head_dim": 16, "v_head_dim": 32, "rms_norm_eps": 1e-5,
    "rope_theta": 50000.0, "max_position_embeddings": 4096, "tie_word_embeddings": False,
    "rope_scaling": {"type": "yarn", "factor": 4.0, "beta_fast": 1.0, "beta_slow": 1.0, "mscale": 1.0,
                     "mscale_all_dim": 1.0, "original_max_position_embeddings": 1024},
    "bos_token_id": 1, "eos_token_id": 2,
}


def write_random_checkpoint(folder: Path, seed: int = 0) -> Path:
    import torch

    from .engine import K2Model, ModelConfig, save_checkpoint

    with torch.device("cpu"):
        model = K2Model(ModelConfig.from_dict(DEMO_CONFIG)).init_weights(std=0.05, seed=seed)
    for moe in model.moe_layers():  # a visible, non-zero selection bias, as a trained model has
        moe.gate.e_score_correction_bias.normal_(0, 0.05, generator=torch.Generator().manual_seed(seed))
    return save_checkpoint(model, folder)


def cmd_demo(args: argparse.Namespace) -> int:
    from .cli import cmd_inspect
    from .engine import generate_stream, load_model

    with tempfile.TemporaryDirectory() as tmp:
        folder = write_random_checkpoint(Path(tmp) / "k2-random", seed=args.seed)
        print(f"wrote a random K2-architecture checkpoint to {folder}\n")
        cmd_inspect(argparse.Namespace(path=str(folder), json=False))
        model = load_model(folder, progress=False)
        prompt = list(range(10, 10 + args.prompt))
        print(f"\nstreaming {args.new} tokens after a {len(prompt)}-token prompt "
              f"(random weights: the tokens mean nothing, the routing is real)")
        stream = generate_stream(model, prompt, max_new_tokens=args.new, temperature=1.0, seed=args.seed,
                                 stop_ids=[])
        t0 = time.perf_counter()
        for step in stream:
            if step.position < len(prompt) + 6:
                experts = " ".join(f"L{lid}:{sorted(e.tolist())}" for lid, e in
                                   zip(model.config.moe_layer_ids, step.experts, strict=True))
                print(f"  token {step.token_id:4d} at {step.position:3d} → {experts}")
        res = stream.result
        dt = time.perf_counter() - t0
        print(f"  ... {len(res.ids)} tokens in {dt:.2f}s ({len(res.ids) / dt:.1f} tok/s), "
              f"finish_reason={res.finish_reason}")
        routing = res.routing
        print(f"\nrouting: {routing}")
        for lid, top, bal in zip(routing.moe_layer_ids, routing.top_experts(3), routing.load_balance(),
                                 strict=True):
            print(f"  layer {lid}: most used experts {top}, max/mean load {bal:.2f}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the engine end to end on a random checkpoint it writes")
    p.add_argument("--prompt", type=int, default=32, help="prompt length in tokens")
    p.add_argument("--new", type=int, default=48, help="tokens to generate")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)
