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

from k2nb.engine.chat import (
    IM_END,
    encode_pieces,
    message_from_events,
    parse_complete,
    render_pieces,
    tool_call_id,
)
from k2nb.engine.config import ModelConfig
from k2nb.engine.generate import Session
from k2nb.engine.loader import save_checkpoint
from k2nb.engine.model import K2Model
from k2nb.engine.routing import update_selection_bias
from k2nb.engine.tokenizer import load_tokenizer
from k2nb.nano import curriculum
from k2nb.nano.cli_args import add_continue_args, continue_overrides
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

    steps: int = 3800  # ≈ 1.2 s per step on 2 idle cores → ≈ 76 min of steps, ≈ 79 min in all
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
            stream = session.generate_stream(prompt, max_new_tokens, temperature=0.0, stop_ids=stop,
                                             capture_routing=False)
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


def train_nano(out_dir: str | Path, steps: int = 3800, seed: int = 0, *, config: dict[str, Any] | None = None,
               batch_size: int = 8, seq_len: int = 768, n_problems: int | None = None, resume: bool = True,
               progress: bool = True, write_final: bool = True, **overrides: Any) -> dict[str, Any]:
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

    if s.init:  # continued training: the starting model's tokenizer, so that its ids mean the same
        import shutil

        for name in ("tokenizer.json", "tokenizer_config.json"):
            if (Path(s.init) / name).is_file():
                shutil.copyfile(Path(s.init) / name, out / name)
    if not (out / "tokenizer.json").is_file():
        train_tokenizer(out, vocab_size=config["vocab_size"], n_problems=s.tokenizer_problems, seed=seed)
    tokenizer = load_tokenizer(out)
    n_problems = n_problems or problems_for(s.steps * s.batch_size, s.seq_len)
    train_rows, held_rows = build_data(tokenizer, s, n_problems, scratch / "data.npz")
    t_data = time.time() - t_start

    model = build_model(config, tokenizer.vocab_size, tokenizer.special_tokens[IM_END], seed)
    if s.init:
        from k2nb.engine.loader import load_model

        try:
            model.load_state_dict(load_model(s.init, progress=False).state_dict())
        except RuntimeError as e:  # shape or name mismatch: another architecture than this config
            first = str(e).splitlines()[0]
            raise ValueError(f"--init {s.init}: its model does not have the shape of the config being "
                             f"trained, so training cannot continue from it ({first})") from e
    model.train()
    opt = _optimizer(model, s)
    step, log = 0, []
    state_path = scratch / "state.pt"
    if resume and state_path.is_file():
        state = torch.load(state_path, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, log = state["step"], state["log"]
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])
        np.random.set_state(state["numpy_rng"])

    from tqdm.auto import tqdm

    bar = tqdm(total=s.steps, initial=step, disable=not progress, desc="k2-nano", unit="step")
    tokens_seen = 0
    t_loop = time.time()
    last_eval: tuple[float, float] | None = None
    while step < s.steps:
        ids, mask, seg = _batch(train_rows, step, s)
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
        step += 1
        tokens_seen += ids.numel() - ids.shape[0]
        rate = tokens_seen / (time.time() - t_loop)
        entry: dict[str, Any] = {"step": step, "loss": round(loss_value, 4), "lr": lr,
                                 "target_acc": round(n_correct / max(1, n_targets), 4), "tok_s": round(rate)}
        if step % s.eval_every == 0 or step == s.steps:
            last_eval = heldout_loss(model, held_rows, s)
            entry["heldout_loss"], entry["heldout_acc"] = round(last_eval[0], 4), round(last_eval[1], 4)
            entry["max_load"] = [round(float(m.expert_load.max() / m.expert_load.mean()), 2)
                                 for m in model.moe_layers()]
        log.append(entry)
        postfix = {"loss": f"{loss_value:.3f}", "tok/s": f"{rate:.0f}"}
        if last_eval:
            postfix["held"] = f"{last_eval[0]:.3f}"
        bar.set_postfix(postfix)
        bar.update(1)
        if step % s.ckpt_every == 0 or step == s.steps:
            _save_state(state_path, model, opt, step, s, log)
    bar.close()
    with (scratch / "log.jsonl").open("w") as f:
        for entry in log:
            f.write(json.dumps(entry) + "\n")

    summary: dict[str, Any] = {
        "steps": s.steps, "seed": s.seed, "train_conversations": train_rows.n_conversations,
        "train_rows": len(train_rows.ids), "row_fill": round(train_rows.fill, 3),
        "tokens_per_step": s.batch_size * s.seq_len, "tokens_per_second": round(tokens_seen / max(1e-9,
                                                                                  time.time() - t_loop)),
        "data_seconds": round(t_data, 1), "final_train_loss": log[-1]["loss"] if log else None,
        "heldout_loss": last_eval[0] if last_eval else None,
        "heldout_target_acc": last_eval[1] if last_eval else None,
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


def write_model_card(out: Path, model: K2Model, s: TrainSettings, summary: dict[str, Any],
                     log: list[dict]) -> None:
    cfg = model.config
    total, active = cfg.parameter_counts()
    qe = summary.get("quick_eval") or {}
    evals = [e for e in log if "heldout_loss" in e]
    curve = "\n".join(f"| {e['step']} | {e['loss']:.3f} | {e['heldout_loss']:.3f} | {e['heldout_acc']:.3f} |"
                      for e in evals)
    cont = f" --init {s.init} --lr {s.lr:g} --warmup-steps {s.warmup_steps}" if s.init else ""
    cont_note = (f"\nContinued training: it starts from the weights and tokenizer of the model in `{s.init}` "
                 "and trains on the curriculum of this commit.") if s.init else ""
    card = f"""# k2-nano

A {total / 1e6:.1f} M-parameter model of the **Kimi K2 architecture** (`model_type: kimi_k2`), trained by
k2nb's own recipe on a synthetic curriculum so that k2nb runs end to end on a laptop with no network
and no GPU. It thinks, calls a `python` tool, verifies with a second call, and answers — in the K2
Thinking chat format. It is a teaching and testing model, not a general assistant.

## Architecture
- hidden {cfg.hidden_size}, {cfg.num_hidden_layers} layers (layer 0 dense MLP {cfg.intermediate_size}, then
  MoE), vocab {cfg.vocab_size}
- MLA: {cfg.num_attention_heads} heads, q LoRA rank {cfg.q_lora_rank}, KV latent {cfg.kv_lora_rank},
  nope/rope/v head dims {cfg.qk_nope_head_dim}/{cfg.qk_rope_head_dim}/{cfg.v_head_dim}, rope theta
  {cfg.rope_theta:g}, no YaRN
- MoE: {cfg.n_routed_experts} routed experts (width {cfg.moe_intermediate_size}),
  top-{cfg.num_experts_per_tok}, {cfg.n_shared_experts} shared expert, sigmoid scores, `noaux_tc`
  selection bias trained with the aux-loss-free update (rate {s.bias_update_rate}), normalised
  top-k weights × {cfg.routed_scaling_factor}
- {total:,} parameters, {active:,} active per token; `model.safetensors` {summary.get('checkpoint_mb')} MB
  (float32)

## Data
`k2nb.nano.curriculum` (seed {s.seed}): nine problem families (arithmetic word problems, percentages and
discounts, compound interest, unit conversion, dates and durations, list statistics, string and list
manipulation, questions about a DataFrame or list already in the namespace, and stat-then-operation
combinations). Every conversation was produced by running its code: plan → `python` call → real
output → verification call → answer. Variants: misspelled-name errors followed by a fix (in the
computation, or in the first inspection of the user's data), a mis-copied number or letter caught by
the verification, a wrong DataFrame column followed by inspection, multi-turn follow-ups.
Loss only on the assistant tokens of the last turn; deliberate mistakes are context, never
targets. {summary['train_conversations']:,} training conversations packed into {summary['train_rows']:,}
rows of {s.seq_len + 1} tokens ({summary['row_fill']:.0%} filled). Byte-level BPE of {cfg.vocab_size}
tokens, single-digit number tokens, one token per letter inside quotes, the 12 K2 markers as special
tokens.

## Training
AdamW (betas 0.9/0.95, weight decay {s.weight_decay}), peak LR {s.lr}, {s.warmup_steps} warmup steps,
cosine to {s.min_lr_ratio:g}×, batch {s.batch_size} × {s.seq_len} tokens, {s.steps} steps, float32 on
{s.threads} CPU threads: {summary['tokens_per_second']:,} tokens/s,
{summary.get('wall_seconds', 0) / 60:.1f} min in total.
Command: `k2nb train-nano --out DIR --steps {s.steps} --seed {s.seed}{cont}`
(or `python -m k2nb.nano.train --out DIR --steps {s.steps} --seed {s.seed}{cont}`).{cont_note}

| step | train loss | held-out loss | held-out next-token acc. |
|---|---|---|---|
{curve}

## Metrics (held-out problems: unseen phrasings, number tuples and combinations)
Greedy tool loop (`k2nb.nano.train.quick_eval`, {qe.get('problems', 0)} problems, every family):
accuracy {qe.get('accuracy', float('nan')):.1%} (numbers within 0.01 absolute or 1e-4 relative),
valid tool calls {qe.get('valid_tool_calls', float('nan')):.1%}, runs with a verification call
{qe.get('verification_rate', float('nan')):.1%}. `k2nb eval` reports the full set.

## Limits
- Knows only the curriculum's kinds of questions; anything else gets a confident, wrong-looking
  imitation of one of them. English only. No knowledge of the world.
- Copies numbers into code; long numbers (many digits) and long lists are where it slips.
- Expects the `python` tool's output format of k2nb (stdout, last value, short tracebacks).
- Context is trained up to {s.seq_len} tokens; longer conversations degrade.
"""
    (out / "README.md").write_text(card)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train k2-nano (k2nb's embedded model) on 2 CPU cores.")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--steps", type=int, default=3800)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--no-resume", action="store_true")
    parser.add_argument("--bench", action="store_true", help="time the steps; write no model folder")
    add_continue_args(parser)  # --init, --lr, --warmup-steps
    args = parser.parse_args(argv)
    summary = train_nano(args.out, args.steps, args.seed, batch_size=args.batch_size,
                         resume=not args.no_resume, write_final=not args.bench, **continue_overrides(args))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
