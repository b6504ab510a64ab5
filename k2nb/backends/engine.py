"""The local engine as a backend: a k2nb `K2Model` in this process, one engine `Session` per path.

The session keeps the latent cache of the conversation, so each step prefills only what is new;
the chat format (K2's by default) renders the prompt and parses the output into events; every
generated token comes with its routing, and the routing of the prompt tokens a step read is kept
for `read_routing()`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from k2nb.backends.base import BackendBase, GenerationOptions, Prompt, TurnStream
from k2nb.backends.formatted import IncrementalPrompt, TextToken, parse_turn, prompt_tail
from k2nb.engine.errors import TokenizerError
from k2nb.formats.base import ChatFormat, Piece
from k2nb.formats.k2 import K2_FORMAT
from k2nb.routing import Routing


class EngineBackend(BackendBase):
    """`k2nb.engine` as a Backend. `model` is a loaded `K2Model` with a tokenizer
    (`model.tokenizer`, or pass `tokenizer=`)."""

    def __init__(
        self, model: Any, *, tokenizer: Any = None, session: Any = None, fmt: ChatFormat = K2_FORMAT
    ):
        from k2nb.engine import Session

        self.model = model
        self.format = fmt
        self.tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
        if self.tokenizer is None:
            raise TokenizerError(
                "the model has no tokenizer; put tiktoken.model or tokenizer.json in the checkpoint folder "
                "or pass tokenizer= to EngineBackend"
            )
        self.session = session if session is not None else Session(model)
        self._prompt: IncrementalPrompt[int] = IncrementalPrompt(fmt, self._encode)
        self.last_result: Any = None  # the engine's GenerationResult of the last stream
        self.read: Routing | None = None

    def _encode(self, pieces: list[Piece]) -> list[int]:
        return self.format.encode(self.tokenizer, pieces)

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        base = self._prompt.update(prompt.messages, prompt.tools)
        return base + self._encode(prompt_tail(self.format, prompt))

    def context(self, prompt: Prompt) -> tuple[int, int] | None:
        """The prompt's length in tokens and the model's context window (max_position_embeddings)."""
        return len(self.prompt_ids(prompt)), int(self.model.config.max_position_embeddings)

    def prefill(self, prompt: Prompt) -> None:
        """Run the prompt through the session once, so forks share its cache (paths=N)."""
        stream = self.session.generate_stream(self.prompt_ids(prompt), max_new_tokens=1)
        for _ in stream:
            pass
        self.read = _prompt_routing(stream.result)

    def stream(
        self, prompt: Prompt, options: GenerationOptions, cancel: threading.Event | None = None
    ) -> TurnStream:
        engine_stream = self.session.generate_stream(
            self.prompt_ids(prompt),
            max_new_tokens=options.max_new_tokens,
            temperature=options.temperature,
            top_k=options.top_k,
            top_p=options.top_p,
            seed=options.seed,
            cancel=cancel,
        )
        return parse_turn(self.format, prompt, self._tokens(engine_stream, cancel))

    def _tokens(self, stream: Any, cancel: threading.Event | None) -> Iterator[TextToken]:
        decoder = self.tokenizer.stream_decoder()
        is_special = self.tokenizer.is_special
        try:
            for step in stream:
                special = is_special(step.token_id)
                if special:
                    pending = decoder.flush()  # bytes of an unfinished character end before a marker
                    if pending:
                        yield TextToken(pending, False)
                text = decoder.feed(step.token_id)
                yield TextToken(text, special, step.token_id, step.position, step.experts, step.weights)
            result = stream.result
            stopped = result is not None and result.finish_reason == "cancelled"
            if stopped and not (cancel is not None and cancel.is_set()):
                # The engine caught Ctrl-C / the stop button inside a forward and ended cleanly (its
                # cache stays consistent); pass the interrupt on so the loop ends the run as cancelled
                # instead of taking the stop for the end of a step.
                raise KeyboardInterrupt
            tail = decoder.flush()
            if tail:
                yield TextToken(tail, False)
        finally:
            stream.close()  # a consumer that stops early (a budget) ends the engine's loop too
            self.last_result = stream.result
            self.read = _prompt_routing(stream.result)

    def fork(self) -> EngineBackend:
        other = EngineBackend.__new__(EngineBackend)
        other.model, other.tokenizer, other.format = self.model, self.tokenizer, self.format
        other.session = self.session.fork()
        other._prompt = self._prompt.fork()
        other.last_result = other.read = None
        return other


def _prompt_routing(result: Any) -> Routing | None:
    """The prompt part of an engine GenerationResult's routing (None if not captured)."""
    routing = getattr(result, "routing", None)
    if routing is None or not routing.n_prompt or len(routing) < routing.n_prompt:
        return None
    return routing.slice(0, routing.n_prompt)


def engine_backend(model: Any = None) -> EngineBackend:
    """A backend over the local engine: `model` is a loaded K2Model, a checkpoint folder, a shipped
    model's name, or None for the default shipped model (k2-nano)."""
    from k2nb.models import resolve_model_arg

    model = resolve_model_arg(model)
    if isinstance(model, str) or hasattr(model, "__fspath__"):
        from k2nb.engine import load_model

        model = load_model(model, progress=False)
    return EngineBackend(model)


__all__ = ["EngineBackend", "engine_backend"]
