"""Prefill + incremental decode over the latent cache, sampling, cancellation and routing capture.

    generate(model, ids, max_new_tokens, temperature=..., ...)     → GenerationResult
    generate_stream(model, ids, ...)                               → GenerationStream of GenerationStep
    Session(model).generate_stream(ids, ...)                       the same over a cache kept between calls
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from k2nb.routing import Routing, RoutingBuffer

from .config import ModelConfig
from .errors import GenerationError
from .model import K2Model, RoutingRecord


@dataclass(slots=True)
class GenerationStep:
    """One generated token at absolute `position`. ``experts`` (int32) and ``weights`` (float32):
    numpy ``[n_moe_layers, top_k]``, None without routing capture."""

    token_id: int
    position: int
    experts: np.ndarray | None
    weights: np.ndarray | None


@dataclass(slots=True)
class GenerationResult:
    """``routing``: the tokens this call ran (the prompt tokens it prefilled, ``n_prompt`` of them,
    then the generated ones) at their absolute positions; empty without routing capture."""

    ids: list[int]
    routing: Routing
    finish_reason: str  # "stop" | "length" | "cancelled"
    prompt_tokens: int = 0
    reused_tokens: int = 0  # prompt tokens whose cache came from an earlier call (not prefilled again)
    prefill_seconds: float = 0.0
    decode_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def decode_tokens_per_second(self) -> float:
        return len(self.ids) / self.decode_seconds if self.decode_seconds > 0 else 0.0


@dataclass(slots=True)
class SamplingOptions:
    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None

    def validate(self) -> None:
        if not (self.temperature >= 0.0):
            raise GenerationError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise GenerationError(f"top_k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise GenerationError(f"top_p must be in (0, 1], got {self.top_p}")


def sample(logits: torch.Tensor, opts: SamplingOptions, generator: torch.Generator | None) -> int:
    """Pick the next token from ``logits [vocab]`` (float32)."""
    if opts.temperature == 0.0:
        return int(logits.argmax())
    logits = logits / opts.temperature
    if opts.top_k is not None and opts.top_k < logits.shape[-1]:
        kth = logits.topk(opts.top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if opts.top_p is not None and opts.top_p < 1.0:
        sorted_logits, order = logits.sort(descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) > opts.top_p  # keep the smallest prefix reaching top_p
        logits = logits.masked_fill(torch.zeros_like(drop).scatter(0, order, drop), float("-inf"))
    probs = logits.softmax(-1)
    return int(torch.multinomial(probs.cpu(), 1, generator=generator))


def _as_ids(input_ids: Any) -> list[int]:
    if isinstance(input_ids, torch.Tensor):
        if input_ids.dim() == 2:
            if input_ids.shape[0] != 1:
                raise GenerationError(
                    f"generate takes one sequence, got a batch of {input_ids.shape[0]}; call it once per "
                    "prompt (parallel reasoning paths fork a session instead)")
            input_ids = input_ids[0]
        return [int(t) for t in input_ids.tolist()]
    ids = [int(t) for t in input_ids]
    return ids


class Session:
    """A latent cache plus the token ids it holds.

    Each ``generate_stream(prompt)`` reuses the longest common prefix of ``prompt`` and the cached ids,
    prefills only the rest, then decodes. A conversation that grows by appending (a tool loop) is
    therefore never re-encoded from the start, and a rollback only truncates.
    """

    def __init__(self, model: K2Model):
        self.model = model
        self.cache = model.new_cache()
        self.ids: list[int] = []  # ids whose latents are in the cache, in order

    def fork(self) -> Session:
        """An independent copy (for a parallel reasoning path sharing this prefix)."""
        other = Session.__new__(Session)
        other.model, other.cache, other.ids = self.model, self.cache.clone(), list(self.ids)
        return other

    def reset(self) -> None:
        self.cache.truncate(0)
        self.ids = []

    def generate_stream(self, input_ids: Any, max_new_tokens: int = 256, *, temperature: float = 0.0,
                        top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                        stop_ids: Sequence[int] | None = None, cancel: threading.Event | None = None,
                        capture_routing: bool = True) -> GenerationStream:
        opts = SamplingOptions(temperature, top_k, top_p, seed)
        opts.validate()
        if max_new_tokens < 0:
            raise GenerationError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        prompt = _as_ids(input_ids)
        if not prompt:
            raise GenerationError("the prompt is empty; generation needs at least one token")
        vocab = self.model.config.vocab_size
        bad = next((t for t in prompt if not 0 <= t < vocab), None)
        if bad is not None:
            raise GenerationError(f"token id {bad} is outside the vocabulary (size {vocab})")
        context = self.model.config.max_position_embeddings
        if len(prompt) >= context:
            raise GenerationError(f"the prompt is {len(prompt)} tokens, but the model's context is {context} "
                                  "(max_position_embeddings); start a new conversation or shorten it")
        if stop_ids is None:
            stop_ids = default_stop_ids(self.model)
        return GenerationStream(self, prompt, max_new_tokens, opts, set(stop_ids), cancel, capture_routing)


def default_stop_ids(model: K2Model) -> list[int]:
    """``<|im_end|>`` (when the model has a tokenizer) and the config's eos ids."""
    stops = list(model.config.eos_token_ids)
    tok = model.tokenizer
    if tok is not None:
        stops.extend(getattr(tok, "eos_ids", []) or [])
    return sorted(set(stops))


class GenerationStream:
    """Iterator of ``GenerationStep``; ``result`` is set when it ends (also on cancel or Ctrl-C)."""

    def __init__(self, session: Session, prompt: list[int], max_new_tokens: int, opts: SamplingOptions,
                 stop_ids: set[int], cancel: threading.Event | None, capture: bool):
        self.session, self.prompt, self.max_new_tokens = session, prompt, max_new_tokens
        self.opts, self.stop_ids, self.cancel, self.capture = opts, stop_ids, cancel, capture
        self.result: GenerationResult | None = None
        self._iter = self._run()

    def __iter__(self) -> Iterator[GenerationStep]:
        return self

    def __next__(self) -> GenerationStep:
        return next(self._iter)

    def _forward(self, ids: list[int], routing: RoutingBuffer,
                 prompt: bool) -> tuple[torch.Tensor, tuple[np.ndarray, np.ndarray] | None]:
        """Run `ids` on the cache: the next token's logits ``[vocab]`` and the last token's routing."""
        model, s = self.session.model, self.session
        record: RoutingRecord | None = [] if self.capture else None
        start = len(s.ids)  # absolute position of ids[0]
        x = torch.tensor([ids], device=model.device)
        logits = model(x, s.cache, record, last_only=True)[0, -1]  # [vocab]
        s.ids.extend(ids)
        if not record:
            return logits, None
        experts, weights = _to_host(record)  # [T, L, k] each
        routing.extend(np.arange(start, start + len(ids)), ids, experts, weights, prompt=prompt)
        return logits, (experts[-1], weights[-1])

    @torch.inference_mode()
    def _run(self) -> Iterator[GenerationStep]:
        s, cfg = self.session, self.session.model.config
        prompt = self.prompt
        # Reuse the cached prefix; at least one prompt token must run to produce logits.
        common = 0
        for a, b in zip(s.ids, prompt, strict=False):
            if a != b:
                break
            common += 1
        common = min(common, len(prompt) - 1)
        s.cache.truncate(common)
        del s.ids[common:]
        routing = _routing_buffer(cfg)
        generator = None
        if self.opts.seed is not None:
            generator = torch.Generator().manual_seed(self.opts.seed)
        out: list[int] = []
        reason = "cancelled"  # what the result says if the consumer closes the stream early
        t0 = time.perf_counter()
        t_prefill = 0.0
        try:
            if self.max_new_tokens == 0:
                reason = "length"
                return
            logits, _ = self._forward(prompt[common:], routing, prompt=True)
            t_prefill = time.perf_counter() - t0
            while not (self.cancel is not None and self.cancel.is_set()):
                tok = sample(logits, self.opts, generator)
                pos = len(s.ids)
                # Every generated token is run once, so its own routing is known and the cache ends
                # holding prompt + output (the next turn of a conversation reuses all of it).
                logits, last = self._forward([tok], routing, prompt=False)
                out.append(tok)
                experts, weights = last if last is not None else (None, None)
                yield GenerationStep(tok, pos, experts, weights)
                if tok in self.stop_ids:
                    reason = "stop"
                    break
                if len(out) >= self.max_new_tokens or len(s.ids) >= cfg.max_position_embeddings:
                    reason = "length"  # the step's budget, or the end of the model's context window
                    break
        except KeyboardInterrupt:
            reason = "cancelled"
        finally:
            # The cache only ever holds committed tokens (see LatentCache), so an interrupted forward
            # leaves it consistent; drop ids whose forward did not commit.
            del s.ids[s.cache.length:]
            self.result = GenerationResult(
                ids=out, routing=routing.view(), finish_reason=reason, prompt_tokens=len(prompt),
                reused_tokens=common, prefill_seconds=t_prefill,
                decode_seconds=max(time.perf_counter() - t0 - t_prefill, 0.0))

    def close(self) -> None:
        """End the stream early (the result then says "cancelled")."""
        self._iter.close()
        if self.result is None:  # closed before it started
            routing = _routing_buffer(self.session.model.config).view()
            self.result = GenerationResult([], routing, "cancelled", prompt_tokens=len(self.prompt))


def _routing_buffer(cfg: ModelConfig) -> RoutingBuffer:
    return RoutingBuffer(len(cfg.moe_layer_ids), cfg.num_experts_per_tok, tuple(cfg.moe_layer_ids),
                         cfg.n_routed_experts)


def _to_host(record: RoutingRecord) -> tuple[np.ndarray, np.ndarray]:
    """One forward's routing, per MoE layer (weights [T, k] f32, ids [T, k]) → experts [T, L, k] int32
    and weights [T, L, k] float32 on the host, in one device→host copy (the weights' bits travel as
    int32 beside the ids)."""
    ids = torch.stack([r[1] for r in record], dim=1).to(torch.int32)  # [T, L, k]
    weights = torch.stack([r[0] for r in record], dim=1).to(torch.float32)
    both = torch.stack((ids, weights.view(torch.int32))).cpu().numpy()  # [2, T, L, k]
    return both[0], both[1].view(np.float32)


def generate_stream(model: K2Model, input_ids: Any, max_new_tokens: int = 256,
                    **options: Any) -> GenerationStream:
    """Stream `GenerationStep` s on a fresh `Session`; after the loop ``stream.result`` holds the ids,
    routing and finish reason. Options as `Session.generate_stream`: temperature, top_k, top_p, seed,
    stop_ids, cancel, capture_routing."""
    return Session(model).generate_stream(input_ids, max_new_tokens, **options)


def generate(model: K2Model, input_ids: Any, max_new_tokens: int = 256, **options: Any) -> GenerationResult:
    """Generate up to `max_new_tokens` tokens (greedy unless ``temperature`` > 0); returns ids, routing
    and why it stopped. Options as `generate_stream`."""
    stream = generate_stream(model, input_ids, max_new_tokens, **options)
    for _ in stream:
        pass
    assert stream.result is not None
    return stream.result
