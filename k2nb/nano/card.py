"""The model card (README.md) of a trained k2-nano: architecture, data, training, metrics, limits."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from k2nb.engine.model import K2Model
    from k2nb.nano.train import TrainSettings


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
