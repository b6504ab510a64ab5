"""The k2-nano training recipe: tokenizer → curriculum → packed rows → AdamW on a small kimi_k2 model.

``train_nano(out_dir, steps, seed)`` is the whole recipe (the CLI ``k2nb train-nano`` calls it;
``python -m k2nb.nano.train --out DIR`` does the same). ``out_dir`` ends up as an HF-layout model
folder (config.json, model.safetensors, tokenizer.json, tokenizer_config.json, README.md) that
``k2nb.engine.load_model`` loads; scratch state (the encoded data, the resumable checkpoint, the
log) lives in ``out_dir/training/`` and is not part of the model.

Sizing (2 CPU cores, float32, torch.set_num_threads(2)): see ``NANO_CONFIG`` and the model card.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from k2nb.engine.config import ModelConfig
from k2nb.engine.generate import Session
from k2nb.engine.loader import save_checkpoint
from k2nb.engine.model import K2Model
from k2nb.engine.routing import update_selection_bias
from k2nb.engine.tokenizer import load_tokenizer
from k2nb.events import message_from_events
from k2nb.formats.k2 import IM_END, encode_pieces, parse_complete, render_pieces, tool_call_id
from k2nb.nano import curriculum
from k2nb.nano.card import write_model_card
from k2nb.nano.cli_args import DEFAULT_STEPS, add_train_args, continue_overrides
from k2nb.nano.data import PackedRows, encode_all, pack
from k2nb.nano.tokenizer_train import VOCAB_SIZE, train_tokenizer

# The shipped architecture: K2's shape at 1/37 width. MLA with a q LoRA and a 64-dim latent, a dense
# first layer, then MoE layers with 16 routed experts (top-2, sigmoid scores, selection bias,
# normalised top-k weights × 2.5) and one shared expert. ~5.3 M parameters (21 MB in float32),
# ~1.7 M active per token. No YaRN: conversations are < 1k tokens.
NANO_CONFIG: dict[str, Any] = {
    "architectures": ["DeepseekV3ForCausalLM"],
    "model_type": "kimi_k2",
    "vocab_size": VOCAB_SIZE,
    "hidden_size": 192,
    "intermediate_size": 512,
    "moe_intermediate_size": 128,
    "num_hidden_layers": 4,
    "first_k_dense_replace": 1,
    "moe_layer_freq": 1,
    "num_attention_heads": 4,
    "q_lora_rank": 96,
    "kv_lora_rank": 64,
    "qk_nope_head_dim": 32,
    "qk_rope_head_dim": 16,
    "v_head_dim": 32,
    "n_routed_experts": 16,
    "num_experts_per_tok": 2,
    "n_shared_experts": 1,
    "n_group": 1,
    "topk_group": 1,
    "topk_method": "noaux_tc",
    "scoring_func": "sigmoid",
    "norm_topk_prob": True,
    "routed_scaling_factor": 2.5,
    "hidden_act": "silu",
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "rope_scaling": None,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": False,
    "attention_bias": False,
}

# For tests: the same architecture small enough to train a few steps in seconds.
TINY_CONFIG: dict[str, Any] = dict(
    NANO_CONFIG, hidden_size=64, intermediate_size=128, moe_intermediate_size=32, num_hidden_layers=2,
    num_attention_heads=2, q_lora_rank=32, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=8,
    v_head_dim=16,
)


@dataclass(slots=True)
class TrainSettings:
    """Everything that determines a run (saved with the checkpoint and in the model card)."""

    steps: int = DEFAULT_STEPS
    seed: int = 0
    batch_size: int = 8
    seq_len: int = 768  # p99 conversation ≈ 550 tokens, max ≈ 700: whole conversations fit, ~92 % fill
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    bias_update_rate: float = 1e-3  # aux-loss-free balancing step (DeepSeek-V3 uses 1e-3)
    eval_every: int = 250
    eval_rows: int = 96
    ckpt_every: int = 250
    n_heldout: int = 400
    tokenizer_problems: int = 20000
    threads: int = 2
    quick_eval_problems: int = 27  # greedy tool-loop runs on held-out problems (3 per family) for the card
    init: str = ""  # continue from this model folder's weights and tokenizer ("" = from scratch)


# ---------------------------------------------------------------------------------------------
# Model


def init_weights(model: K2Model, std: float = 0.02) -> None:
    """GPT-2 style init (the engine builds modules for loading, so weights start uninitialised):
    N(0, std) for matrices and embeddings, output projections scaled by 1/sqrt(2·layers) so the
    residual stream does not grow with depth, norms at one, selection biases at zero."""
    n_layers = model.config.num_hidden_layers
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.fill_(1.0)  # RMSNorm weights (there are no linear biases in this config)
            elif name.endswith(("o_proj.weight", "down_proj.weight", "experts.w2")):
                p.normal_(0.0, std / math.sqrt(2 * n_layers))
            else:
                p.normal_(0.0, std)
        for moe in model.moe_layers():
            moe.gate.e_score_correction_bias.zero_()


def build_model(config: dict[str, Any], vocab_size: int, eos_id: int, seed: int) -> K2Model:
    d = dict(config, vocab_size=vocab_size, eos_token_id=eos_id, bos_token_id=None, pad_token_id=None)
    torch.manual_seed(seed)
    model = K2Model(ModelConfig.from_dict(d, source="k2-nano config"))
    init_weights(model)
    return model


def masked_loss(model: K2Model, rows: torch.Tensor, targets: torch.Tensor,
                segments: torch.Tensor | None = None) -> tuple[torch.Tensor, int, int]:
    """Mean cross-entropy over target positions. rows ``[B, L+1]`` ids, targets ``[B, L+1]`` 0/1 flags
    (flag t: token t is predicted from positions < t), segments ``[B, L+1]`` the packed conversation
    of each position (None: one causal sequence per row). Returns (loss, n_targets, n_correct)."""
    inputs, labels = rows[:, :-1], rows[:, 1:].long()  # [B, L]
    mask = targets[:, 1:].bool()  # [B, L]
    logits = model(inputs, segments=None if segments is None else segments[:, :-1])  # [B, L, V]
    sel = logits[mask]  # [N, V]
    gold = labels[mask]  # [N]
    loss = F.cross_entropy(sel, gold)
    correct = int((sel.argmax(-1) == gold).sum())
    return loss, int(mask.sum()), correct


def lr_at(step: int, s: TrainSettings) -> float:
    """Linear warmup, then cosine from lr down to lr·min_lr_ratio at the last step."""
    if step < s.warmup_steps:
        return s.lr * (step + 1) / s.warmup_steps
    progress = (step - s.warmup_steps) / max(1, s.steps - s.warmup_steps)
    return s.lr * (s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _optimizer(model: K2Model, s: TrainSettings) -> torch.optim.Optimizer:
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed_tokens" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2 or "embed_tokens" in n]
    return torch.optim.AdamW([{"params": decay, "weight_decay": s.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=s.lr, betas=(0.9, 0.95))


# ---------------------------------------------------------------------------------------------
# Data


def problems_for(n_rows: int, seq_len: int) -> int:
    """Training conversations needed for ``n_rows`` rows: ~343 tokens each (measured), ~92 % fill."""
    return max(64, int(n_rows * seq_len * 0.92 / 343) + 1)


def build_data(tokenizer: Any, s: TrainSettings, n_problems: int, cache: Path | None) -> tuple[PackedRows,
                                                                                             PackedRows]:
    """Training rows from ``n_problems`` seeded curriculum problems and held-out rows, cached as npz."""
    if cache is not None and cache.is_file():
        z = np.load(cache)
        if (int(z["n_problems"]) == n_problems and int(z["seed"]) == s.seed and int(z["seq_len"]) == s.seq_len
                and "train_seg" in z.files):
            train = PackedRows(z["train_ids"], z["train_loss"], z["train_seg"], int(z["train_n"]), 0,
                               int(z["train_tokens"]))
            held = PackedRows(z["held_ids"], z["held_loss"], z["held_seg"], int(z["held_n"]), 0,
                              int(z["held_tokens"]))
            return train, held
    pad = tokenizer.special_tokens[IM_END]
    train_p = curriculum.generate(n_problems, seed=s.seed, split="train")
    held_p = [curriculum.make_problem(f"{s.seed}:{i}", "heldout") for i in range(s.n_heldout)]
    train = pack(encode_all(tokenizer, train_p), s.seq_len, pad, seed=s.seed)
    held = pack(encode_all(tokenizer, held_p), s.seq_len, pad, seed=s.seed)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, n_problems=n_problems, seed=s.seed, seq_len=s.seq_len,
                 train_ids=train.ids, train_loss=train.loss, train_seg=train.seg,
                 train_n=train.n_conversations, train_tokens=train.n_tokens,
                 held_ids=held.ids, held_loss=held.loss, held_seg=held.seg,
                 held_n=held.n_conversations, held_tokens=held.n_tokens)
    return train, held


def _batch(rows: PackedRows, step: int, s: TrainSettings) -> tuple[torch.Tensor, ...]:
    """Rows for ``step``: epoch e visits the rows in a permutation seeded by (seed, e), so a resumed run
    sees exactly the batches an uninterrupted one would."""
    n = len(rows.ids)
    start = step * s.batch_size
    idx = []
    for k in range(start, start + s.batch_size):
        epoch, pos = divmod(k, n)
        perm = np.random.default_rng([s.seed, epoch]).permutation(n)
        idx.append(perm[pos])
    return (torch.from_numpy(rows.ids[idx]).long(), torch.from_numpy(rows.loss[idx]),
            torch.from_numpy(rows.seg[idx]))


@torch.no_grad()
def heldout_loss(model: K2Model, held: PackedRows, s: TrainSettings) -> tuple[float, float]:
    """(mean target cross-entropy, next-token accuracy on targets) over the first ``eval_rows`` rows."""
    model.eval()
    total, n_total, n_correct = 0.0, 0, 0
    for i in range(0, min(len(held.ids), s.eval_rows), s.batch_size):
        ids = torch.from_numpy(held.ids[i:i + s.batch_size]).long()
        mask = torch.from_numpy(held.loss[i:i + s.batch_size])
        loss, n, c = masked_loss(model, ids, mask, torch.from_numpy(held.seg[i:i + s.batch_size]))
        total += float(loss) * n
        n_total += n
        n_correct += c
    model.train()
    return total / max(1, n_total), n_correct / max(1, n_total)


# ---------------------------------------------------------------------------------------------
# A small tool loop, to put real held-out numbers in the model card.


MIN_ROOM = 16  # tokens of context a step needs ("The answer is 9396 tickets." and its end marker)


@torch.no_grad()
def quick_eval(model: K2Model, tokenizer: Any, problems: list[curriculum.Problem], max_calls: int = 6,
               max_new_tokens: int = 160) -> dict[str, float]:
    """Greedy runs of the think → python → observe loop on ``problems`` (their setup code run first).
    Returns accuracy (``curriculum.answer_matches``), the share of tool calls whose arguments parse as
    JSON with a ``code`` string, and the share of runs that made ≥ 2 calls (a verification step)."""
    model.eval()
    stop = [tokenizer.special_tokens[IM_END]]
    n_ok = n_calls = n_valid = n_verified = 0
    for p in problems:
        ns: dict[str, Any] = {}
        if p.setup:
            exec(p.setup, ns)
        messages = [dict(m) for m in p.prompt_messages]
        calls_here = 0
        answer = ""
        session = Session(model)  # the tool loop only appends: each step prefills just the new tokens
        for _ in range(max_calls + 1):
            prompt = encode_pieces(tokenizer, render_pieces(messages, p.tools, add_generation_prompt=True))
            room = model.config.max_position_embeddings - len(prompt)
            if room < MIN_ROOM:  # a run that loops on calls until the context is full has no answer
                break
            stream = session.generate_stream(prompt, min(max_new_tokens, room), temperature=0.0,
                                             stop_ids=stop, capture_routing=False)
            for _step in stream:
                pass
            text = tokenizer.decode(stream.result.ids)
            message = message_from_events(parse_complete(text))
            messages.append(message)
            if not message.get("tool_calls"):
                answer = message.get("content") or ""
                break
            for call in message["tool_calls"]:
                if not call.get("id"):  # a malformed call (an undertrained model): name it as the loop would
                    call["id"] = tool_call_id("python", calls_here)
                calls_here += 1
                try:
                    code = json.loads(call["function"]["arguments"])["code"]
                    valid = isinstance(code, str)
                except (ValueError, KeyError, TypeError):
                    valid, code = False, None
                n_valid += valid
                result = (curriculum.run_python(code, ns, calls_here) if valid
                          else "Error: arguments are not JSON with a 'code' string.")
                messages.append({"role": "tool", "tool_call_id": call["id"], "name": "python",
                                 "content": result})
        n_calls += calls_here
        n_verified += calls_here >= 2
        n_ok += curriculum.answer_matches(p.answer, answer)
    model.train()
    n = max(1, len(problems))
    return {"accuracy": n_ok / n, "valid_tool_calls": n_valid / max(1, n_calls),
            "verification_rate": n_verified / n, "problems": len(problems)}


# ---------------------------------------------------------------------------------------------
# The run


def _save_state(path: Path, model: K2Model, opt: torch.optim.Optimizer, step: int, s: TrainSettings,
                log: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                "settings": asdict(s), "log": log, "torch_rng": torch.get_rng_state(),
                "python_rng": random.getstate(), "numpy_rng": np.random.get_state()}, tmp)
    tmp.replace(path)  # atomic: an interrupted save never leaves a broken checkpoint


def train_nano(out_dir: str | Path, steps: int = DEFAULT_STEPS, seed: int = 0, *,
               config: dict[str, Any] | None = None, batch_size: int = 8, seq_len: int = 768,
               n_problems: int | None = None, resume: bool = True, progress: bool = True,
               write_final: bool = True, **overrides: Any) -> dict[str, Any]:
    """Train k2-nano into ``out_dir`` (see the module docstring). Returns a summary dict (losses,
    tokens/s, wall time, quick-eval numbers). Rerunning with the same arguments resumes from
    ``out_dir/training/state.pt`` when it exists (and ``resume``)."""
    s = TrainSettings(steps=steps, seed=seed, batch_size=batch_size, seq_len=seq_len, **overrides)
    config = config or NANO_CONFIG
    torch.set_num_threads(s.threads)
    out = Path(out_dir)
    scratch = out / "training"
    scratch.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    tokenizer = _tokenizer(out, s, config)
    n_problems = n_problems or problems_for(s.steps * s.batch_size, s.seq_len)
    train_rows, held_rows = build_data(tokenizer, s, n_problems, scratch / "data.npz")
    t_data = time.time() - t_start

    model = _starting_model(config, tokenizer, s)
    opt = _optimizer(model, s)
    state_path = scratch / "state.pt"
    step, log = _resume(state_path, model, opt) if resume and state_path.is_file() else (0, [])
    run = _train(model, opt, train_rows, held_rows, s, state_path, step, log, progress)
    with (scratch / "log.jsonl").open("w") as f:
        for entry in log:
            f.write(json.dumps(entry) + "\n")

    summary: dict[str, Any] = {
        "steps": s.steps, "seed": s.seed, "train_conversations": train_rows.n_conversations,
        "train_rows": len(train_rows.ids), "row_fill": round(train_rows.fill, 3),
        "tokens_per_step": s.batch_size * s.seq_len,
        "tokens_per_second": round(run.tokens / max(1e-9, time.time() - run.started)),
        "data_seconds": round(t_data, 1), "final_train_loss": log[-1]["loss"] if log else None,
        "heldout_loss": run.last_eval[0] if run.last_eval else None,
        "heldout_target_acc": run.last_eval[1] if run.last_eval else None,
        "parameters": model.num_parameters(), "active_parameters": model.config.parameter_counts()[1],
    }
    if write_final:
        save_checkpoint(model, out)
        if s.quick_eval_problems:
            probs = curriculum.heldout_problems(s.quick_eval_problems, seed=seed + 1234)
            summary["quick_eval"] = quick_eval(model, tokenizer, probs)
        summary["wall_seconds"] = round(time.time() - t_start, 1)
        summary["checkpoint_mb"] = round((out / "model.safetensors").stat().st_size / 2**20, 2)
        write_model_card(out, model, s, summary, log)
    (scratch / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _tokenizer(out: Path, s: TrainSettings, config: dict[str, Any]) -> Any:
    """The tokenizer in ``out``: the starting model's (continued training, so that its ids mean the
    same), the one a resumed run trained, or a new one trained on the curriculum."""
    if s.init:
        import shutil

        for name in ("tokenizer.json", "tokenizer_config.json"):
            if (Path(s.init) / name).is_file():
                shutil.copyfile(Path(s.init) / name, out / name)
    if not (out / "tokenizer.json").is_file():
        train_tokenizer(out, vocab_size=config["vocab_size"], n_problems=s.tokenizer_problems, seed=s.seed)
    return load_tokenizer(out)


def _starting_model(config: dict[str, Any], tokenizer: Any, s: TrainSettings) -> K2Model:
    """A freshly initialised model, or (``s.init``) the weights of the model to continue from."""
    model = build_model(config, tokenizer.vocab_size, tokenizer.special_tokens[IM_END], s.seed)
    if s.init:
        from k2nb.engine.loader import load_model

        try:
            model.load_state_dict(load_model(s.init, progress=False).state_dict())
        except RuntimeError as e:  # shape or name mismatch: another architecture than this config
            first = str(e).splitlines()[0]
            raise ValueError(f"--init {s.init}: its model does not have the shape of the config being "
                             f"trained, so training cannot continue from it ({first})") from e
    model.train()
    return model


def _resume(path: Path, model: K2Model, opt: torch.optim.Optimizer) -> tuple[int, list[dict]]:
    """Load the checkpoint of an interrupted run (weights, optimizer, random states); (step, log)."""
    state = torch.load(path, weights_only=False)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    random.setstate(state["python_rng"])
    np.random.set_state(state["numpy_rng"])
    return state["step"], state["log"]


@dataclass(slots=True)
class _RunStats:
    started: float  # time.time() when the steps began
    tokens: int = 0  # input tokens of the steps run
    last_eval: tuple[float, float] | None = None  # (held-out loss, held-out next-token accuracy)


def _train(model: K2Model, opt: torch.optim.Optimizer, train_rows: PackedRows, held_rows: PackedRows,
           s: TrainSettings, state_path: Path, step: int, log: list[dict], progress: bool) -> _RunStats:
    """The steps from ``step`` to ``s.steps``, appending to ``log``; checkpoints every ckpt_every."""
    from tqdm.auto import tqdm

    bar = tqdm(total=s.steps, initial=step, disable=not progress, desc="k2-nano", unit="step")
    run = _RunStats(time.time())
    while step < s.steps:
        entry = _step(model, opt, train_rows, step, s)
        step += 1
        run.tokens += entry.pop("tokens")
        entry["tok_s"] = round(run.tokens / (time.time() - run.started))
        if step % s.eval_every == 0 or step == s.steps:
            run.last_eval = heldout_loss(model, held_rows, s)
            loss, acc = run.last_eval
            entry["heldout_loss"], entry["heldout_acc"] = round(loss, 4), round(acc, 4)
            entry["max_load"] = [round(float(m.expert_load.max() / m.expert_load.mean()), 2)
                                 for m in model.moe_layers()]
        log.append(entry)
        postfix = {"loss": f"{entry['loss']:.3f}", "tok/s": f"{entry['tok_s']:.0f}"}
        if run.last_eval:
            postfix["held"] = f"{run.last_eval[0]:.3f}"
        bar.set_postfix(postfix)
        bar.update(1)
        if step % s.ckpt_every == 0 or step == s.steps:
            _save_state(state_path, model, opt, step, s, log)
    bar.close()
    return run


def _step(model: K2Model, opt: torch.optim.Optimizer, rows: PackedRows, step: int,
          s: TrainSettings) -> dict[str, Any]:
    """One optimizer step on the batch of ``step``; its log entry (and "tokens": inputs seen)."""
    ids, mask, seg = _batch(rows, step, s)
    lr = lr_at(step, s)
    for group in opt.param_groups:
        group["lr"] = lr
    loss, n_targets, n_correct = masked_loss(model, ids, mask, seg)
    loss_value = loss.item()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip)
    opt.step()
    update_selection_bias(model.moe_layers(), s.bias_update_rate)
    return {"step": step + 1, "loss": round(loss_value, 4), "lr": lr,
            "target_acc": round(n_correct / max(1, n_targets), 4), "tokens": ids.numel() - ids.shape[0]}


def main(argv: list[str] | None = None) -> None:
    """``python -m k2nb.nano.train``: the options of ``k2nb train-nano``, plus --batch-size and --bench."""
    parser = argparse.ArgumentParser(description="Train k2-nano (k2nb's embedded model) on 2 CPU cores.")
    add_train_args(parser)  # --out, --steps, --seed, --no-resume, --init, --lr, --warmup-steps
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2,
                        help="torch CPU threads (1 is faster when other jobs share the cores)")
    parser.add_argument("--bench", action="store_true", help="time the steps; write no model folder")
    args = parser.parse_args(argv)
    summary = train_nano(args.out, args.steps, args.seed, batch_size=args.batch_size,
                         resume=not args.no_resume, write_final=not args.bench, threads=args.threads,
                         **continue_overrides(args))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
