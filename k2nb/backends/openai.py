"""A served model as a backend: any OpenAI-compatible `/v1/chat/completions` endpoint (vLLM, SGLang,
Moonshot's API, ...), streamed with the official `openai` package (imported lazily: `pip install
k2nb[served]`). See docs/served.md for what each server supports.

The server renders the chat template and parses the output, so this backend maps its deltas to
`k2nb.events`: `reasoning_content` (Moonshot, SGLang) or `reasoning` (newer vLLM) → `ThinkingDelta`;
the first content or tool-call delta after them → `ThinkingEnd`; `content` → `AnswerDelta`; tool-call
deltas → `ToolCallStart` / `ToolCallArgsDelta`, and a `ToolCallDone` per call when the stream ends
(arguments checked by the K2 parser's `parse_arguments`: malformed is a `ParseError`, never an
exception); finish_reason "length" → `End("length")`, else `End("stop")`. Servers report no token ids
or positions: chunks carry `token_id=None`. Each assistant message is sent back with its
`reasoning_content` (Moonshot's API rejects a tool-call message without it).

A forced answer (`Prompt.forced_reasoning`, a thinking budget ran out) is a final assistant message
holding that reasoning, which the server continues: vLLM with `continue_final_message: true,
add_generation_prompt: false` (documented); SGLang with the same fields (unverified); Moonshot in
partial mode, `"partial": true` on that message (documented for `content`; after `reasoning_content`
unverified). While forced, reasoning deltas are answer text: a reasoning parser that did not see the
closing marker in the output would report the answer as reasoning.

Routing (vLLM's and SGLang's reports, `routing_from_vllm` / `routing_from_sglang`) carries no weights:
each chosen expert gets 1/top_k. Faults are a `ServerError` of one sentence; the API key is read from
the variable `api_key_env` names and never appears in a repr, message or log.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import numpy as np

from k2nb.backends.base import BackendBase, GenerationOptions, Prompt, StreamChunk, TurnStream
from k2nb.engine.errors import K2nbError
from k2nb.events import (
    AnswerDelta,
    End,
    Event,
    ParseError,
    ThinkingDelta,
    ThinkingEnd,
    ToolCallArgsDelta,
    ToolCallDone,
    ToolCallStart,
)
from k2nb.formats.k2.markers import TOOL_CALLS_SECTION_BEGIN
from k2nb.formats.k2.parser import parse_arguments
from k2nb.routing import UNTRACED_TOKEN, Routing

__all__ = ["OpenAIBackend", "ServerError", "routing_from_sglang", "routing_from_vllm"]

# The message fields a chat-completions server reads; anything else a message holds is k2nb's own.
_MESSAGE_KEYS = ("role", "content", "reasoning_content", "tool_calls", "tool_call_id", "name")
_NO_KEY = "EMPTY"  # what vLLM / SGLang expect when they were started without --api-key


class ServerError(K2nbError):
    """The server could not be reached, refused the request, or broke the stream (one sentence)."""


# --------------------------------------------------------------------------------------------
# routing reported by servers


def _routing(experts: np.ndarray, start: int, n_prompt: int, n_experts: int) -> Routing:
    """A record of `experts` ``[T, L, K]`` at positions ``start..``; weights 1/K (servers send none)."""
    experts = experts.astype(np.int32)
    n, _, k = experts.shape
    weights = np.full(experts.shape, 1.0 / k if k else 0.0, np.float32)
    tokens = np.full(n, UNTRACED_TOKEN, np.int64)
    return Routing(np.arange(start, start + n), tokens, experts, weights, (), n_experts, n_prompt)


def _as_experts(value: Any, what: str) -> np.ndarray:
    a = np.asarray(value)
    if a.ndim != 3 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{what} is not an integer array [tokens, layers, top_k] (shape {a.shape})")
    return a


def routing_from_vllm(
    payload: Mapping[str, Any], choice: int = 0, n_experts: int = 0
) -> tuple[Routing | None, Routing | None]:
    """(prompt, generated) routing from a vLLM response (or its last stream chunk) with
    `--enable-return-routed-experts`: `prompt_routed_experts` (response level) and
    `choices[choice].routed_experts`, int16 expert ids ``[tokens, moe_layers, top_k]``.

    Positions count from 0 over the prompt, then continue over the generated tokens; token ids are
    not reported (UNTRACED_TOKEN) and neither are weights (1/top_k each). `n_experts` (0: the
    highest id seen + 1) labels the records. Either part is None when the payload lacks it.
    """
    prompt = payload.get("prompt_routed_experts")
    choices = payload.get("choices") or []
    gen = choices[choice].get("routed_experts") if len(choices) > choice else None
    p = _as_experts(prompt, "prompt_routed_experts") if prompt is not None else None
    g = _as_experts(gen, "routed_experts") if gen is not None else None
    if p is not None and g is not None and p.shape[1:] != g.shape[1:]:
        raise ValueError(f"prompt_routed_experts {p.shape} and routed_experts {g.shape} differ in shape")
    if not n_experts:
        n_experts = max((int(a.max()) + 1 for a in (p, g) if a is not None and a.size), default=0)
    n_prompt = len(p) if p is not None else int((payload.get("usage") or {}).get("prompt_tokens") or 0)
    return (
        _routing(p, 0, len(p), n_experts) if p is not None else None,
        _routing(g, n_prompt, 0, n_experts) if g is not None else None,
    )


def routing_from_sglang(
    payload: Mapping[str, Any], n_layers: int, top_k: int, n_prompt: int | None = None, n_experts: int = 0
) -> tuple[Routing | None, Routing | None]:
    """(prompt, generated) routing from an SGLang response with `--enable-return-routed-experts` and
    `return_routed_experts: true`: `routed_experts`, base64 of int32 expert ids ``[tokens, moe_layers,
    top_k]`` over the prompt and the generated tokens, looked for in the payload, its first choice
    and their `meta_info` (the field's place in chat responses is unverified here).

    The flat ids need the model's shape (`n_layers` MoE layers, `top_k`); the first `n_prompt` tokens
    (default: `usage.prompt_tokens`, else none) are the prompt. No token ids, no weights (1/top_k).
    """
    raw = _find_field(payload, "routed_experts")
    if raw is None:
        return None, None
    if not isinstance(raw, str):
        raise ValueError("routed_experts is not a base64 string")
    flat = np.frombuffer(base64.b64decode(raw), dtype="<i4")
    if n_layers <= 0 or top_k <= 0 or flat.size % (n_layers * top_k):
        raise ValueError(f"routed_experts holds {flat.size} ids, not a multiple of {n_layers} × {top_k}")
    experts = flat.reshape(-1, n_layers, top_k)
    if n_prompt is None:
        n_prompt = int((payload.get("usage") or {}).get("prompt_tokens") or 0)
    n_prompt = min(n_prompt, len(experts))
    n_experts = n_experts or (int(experts.max()) + 1 if experts.size else 0)
    prompt = _routing(experts[:n_prompt], 0, n_prompt, n_experts) if n_prompt else None
    gen = _routing(experts[n_prompt:], n_prompt, 0, n_experts) if len(experts) > n_prompt else None
    return prompt, gen


def _find_field(payload: Mapping[str, Any], name: str) -> Any:
    choices = payload.get("choices")
    first = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    for where in (payload, first, payload.get("meta_info"), first.get("meta_info")):
        if isinstance(where, dict) and where.get(name) is not None:
            return where[name]
    return None


# --------------------------------------------------------------------------------------------
# deltas → events


@dataclass
class _Call:
    id: str | None = None
    name: str | None = None
    args: list[str] = field(default_factory=list)
    index: int | None = None  # our index, given when the call starts (its name is known)


class _DeltaMapper:
    """One turn's server chunks (as dicts) → events. Unknown fields are ignored; a field of the wrong
    type is a ParseError; the calls are completed by `finish`."""

    def __init__(self, forced: bool, first_call_number: int):
        self.forced = forced
        self.thinking_open = not forced  # a forced turn starts with its thinking closed
        self.first_call_number = first_call_number
        self.calls: dict[Any, _Call] = {}
        self.n_started = 0
        self.finish_reason: str | None = None
        self.warned_markers = False
        self.last: dict[str, Any] = {}  # the last chunk that carried routing or usage

    def feed(self, chunk: Mapping[str, Any]) -> list[Event]:
        out: list[Event] = []
        if (
            chunk.get("usage")
            or _find_field(chunk, "routed_experts") is not None
            or chunk.get("prompt_routed_experts") is not None
        ):
            # usage may come in a chunk of its own after the routing: merge, keeping reported choices
            self.last.update((k, v) for k, v in chunk.items() if v is not None and (k != "choices" or v))
        choices = chunk.get("choices")
        if choices is None:
            return out
        if not isinstance(choices, list):
            problem = "The server sent a chunk whose choices are not a list; it was ignored."
            return [ParseError(problem, str(chunk)[:500])]
        for choice in choices[:1]:  # one completion is asked for (n=1)
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                self._delta(delta, out)
            if isinstance(choice.get("finish_reason"), str):
                self.finish_reason = choice["finish_reason"]
        return out

    def _delta(self, delta: Mapping[str, Any], out: list[Event]) -> None:
        reasoning = delta.get("reasoning_content")
        if reasoning is None:
            reasoning = delta.get("reasoning")
        if _text_field(reasoning, "reasoning", out):
            if self.forced:
                out.append(AnswerDelta(reasoning))
            else:
                out.append(ThinkingDelta(reasoning))
        content = delta.get("content")
        if _text_field(content, "content", out):
            self._close_thinking(out)
            out.append(AnswerDelta(content))
            if TOOL_CALLS_SECTION_BEGIN in content and not self.warned_markers:
                self.warned_markers = True
                out.append(
                    ParseError(
                        "The server returned tool-call markers as text: it parses no tool calls (vLLM: start "
                        "it with --enable-auto-tool-choice --tool-call-parser kimi_k2).",
                        content[:500],
                    )
                )
        calls = delta.get("tool_calls")
        if calls is not None:
            if not isinstance(calls, list):
                out.append(
                    ParseError(
                        "The server sent tool_calls that are not a list; they were ignored.", str(calls)[:500]
                    )
                )
                return
            for c in calls:
                if isinstance(c, dict):
                    self._call_delta(c, out)

    def _close_thinking(self, out: list[Event]) -> None:
        if self.thinking_open:
            self.thinking_open = False
            out.append(ThinkingEnd())

    def _call_delta(self, c: Mapping[str, Any], out: list[Event]) -> None:
        key = c.get("index", len(self.calls))
        key = key if isinstance(key, (int, str)) else repr(key)
        call = self.calls.setdefault(key, _Call())
        fn = c.get("function") if isinstance(c.get("function"), dict) else {}
        if isinstance(c.get("id"), str) and c["id"] and call.id is None:
            call.id = c["id"]
        name = fn.get("name")
        if isinstance(name, str) and name and call.name is None:
            call.name = name
        args = fn.get("arguments")
        if isinstance(args, str) and args:
            call.args.append(args)
        if call.index is None and call.name is not None:
            self._close_thinking(out)
            call.index = self.n_started
            self.n_started += 1
            call.id = call.id or f"functions.{call.name}:{self.first_call_number + call.index}"
            out.append(ToolCallStart(call.index, call.id, call.name))
            if call.args:  # fragments that came before the name
                out.append(ToolCallArgsDelta(call.index, "".join(call.args)))
        elif call.index is not None and isinstance(args, str) and args:
            out.append(ToolCallArgsDelta(call.index, args))

    def finish(self, cut: bool) -> list[Event]:
        """The calls, completed, and End: "length" when the server said so or the stream was cut."""
        out: list[Event] = []
        for call in self.calls.values():
            arguments = "".join(call.args)
            if call.index is None:  # never named: report it after the named ones
                call.index = self.n_started
                self.n_started += 1
            call_id = call.id or f"call_{call.index}"
            if call.name is None:
                parsed, problem = None, "has no function name"
            else:
                parsed, problem = parse_arguments(arguments)
            out.append(ToolCallDone(call.index, call_id, call.name or "", arguments, parsed))
            if problem is not None:
                out.append(ParseError(f"Tool call {call_id!r} {problem}.", arguments))
        stopped = self.finish_reason not in (None, "length") and not cut  # closed early: cut off
        out.append(End("stop" if stopped else "length"))
        return out


def _text_field(value: Any, name: str, out: list[Event]) -> bool:
    """True when `value` is text to emit; a non-text value is reported once as a ParseError."""
    if value is None or value == "":
        return False
    if isinstance(value, str):
        return True
    problem = f"The server sent a {name} delta that is not text; it was ignored."
    out.append(ParseError(problem, repr(value)[:500]))
    return False


# --------------------------------------------------------------------------------------------
# the backend


def _api_base(url: str) -> str:
    """The API base the client wants: a bare host (`http://h:8000`) gets `/v1`, a path is kept."""
    url = url.rstrip("/")
    return url + "/v1" if urlparse(url).path in ("", "/") else url


class OpenAIBackend(BackendBase):
    """Turns from a chat-completions server. `api_key_env` names the environment variable that holds
    the key (read at each request, held only by the client; never in a repr, message or log); None
    sends no real key (a local vLLM / SGLang).
    `timeout_s` bounds the wait for each piece of the response (connect, first byte, every chunk);
    `max_retries` is the client's own bounded retry with backoff on connection errors, 429 and 5xx
    before a stream starts (none once it streams). `continuation` is how a forced answer continues
    the reasoning ("vllm" or "partial", see the module docstring). `request_routing` asks SGLang for
    routing (`return_routed_experts`); `moe_shape` = (MoE layers, top_k) decodes it. `extra_body`
    is sent with every request."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str | None = None,
        *,
        timeout_s: float = 120.0,
        max_retries: int = 2,
        continuation: str | None = None,
        request_routing: bool = False,
        moe_shape: tuple[int, int] | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ):
        if continuation is None:
            continuation = "partial" if "moonshot" in (urlparse(base_url).hostname or "") else "vllm"
        if continuation not in ("vllm", "partial"):
            raise ValueError(f"continuation must be 'vllm' or 'partial', not {continuation!r}")
        self.base_url = _api_base(base_url)
        self.model = model
        self.api_key_env = api_key_env
        if api_key_env:
            _KEY_VARS.add(api_key_env)
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.continuation = continuation
        self.request_routing = request_routing
        self.moe_shape = moe_shape
        self.extra_body = dict(extra_body or {})
        self.read: Routing | None = None
        self.last_routing: Routing | None = None  # routing of the tokens the last stream generated
        self.last_usage: dict[str, Any] | None = None
        self._seen = 0  # tokens of the conversation an earlier request already reported routing for
        self._client_obj: Any = None
        self._client_key: str | None = None

    def __repr__(self) -> str:
        key = f", api_key_env={self.api_key_env!r}" if self.api_key_env else ""
        return f"OpenAIBackend({self.base_url!r}, model={self.model!r}{key})"

    # ---- client -------------------------------------------------------------------------------
    def _key(self) -> str:
        if self.api_key_env is None:
            return _NO_KEY
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ServerError(
                f"the environment variable {self.api_key_env} that should hold the API key "
                f"for {self.base_url} is not set"
            )
        return key

    def _client(self) -> Any:
        key = self._key()
        digest = hashlib.sha256(key.encode()).hexdigest()  # the backend keeps no copy of the key
        if self._client_obj is None or digest != self._client_key:  # the variable changed
            try:
                import openai
            except ImportError:
                need = "served models need the openai package: pip install 'k2nb[served]'"
                raise ServerError(need) from None
            self._client_obj = openai.OpenAI(
                base_url=self.base_url, api_key=key, timeout=self.timeout_s, max_retries=self.max_retries
            )
            self._client_key = digest
        return self._client_obj

    def served_models(self) -> list[str] | None:
        """The model ids `/v1/models` lists (None when it does not answer)."""
        try:
            return [m.id for m in self._client().models.list()]
        except Exception:  # noqa: BLE001 - a server without the listing is not a fault here
            return None

    # ---- requests -----------------------------------------------------------------------------
    def request(self, prompt: Prompt, options: GenerationOptions) -> dict[str, Any]:
        """The keyword arguments of `chat.completions.create` for this turn."""
        messages = [{k: m[k] for k in _MESSAGE_KEYS if k in m} for m in prompt.messages]
        body: dict[str, Any] = dict(self.extra_body)
        if prompt.forced_reasoning is not None:
            last: dict[str, Any] = {
                "role": "assistant",
                "content": "",
                "reasoning_content": prompt.forced_reasoning,
            }
            if self.continuation == "partial":
                last["partial"] = True
            else:
                body.update(continue_final_message=True, add_generation_prompt=False)
            messages.append(last)
        if options.top_k is not None:
            body["top_k"] = options.top_k  # not an OpenAI field: vLLM and SGLang read it from the body
        if self.request_routing:
            body["return_routed_experts"] = True
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": options.max_new_tokens,
            "temperature": options.temperature,
        }
        if prompt.tools:
            kwargs["tools"] = list(prompt.tools)
        if options.top_p is not None:
            kwargs["top_p"] = options.top_p
        if options.seed is not None:
            kwargs["seed"] = options.seed
        if body:
            kwargs["extra_body"] = body
        return kwargs

    def stream(
        self, prompt: Prompt, options: GenerationOptions, cancel: threading.Event | None = None
    ) -> TurnStream:
        self.read = self.last_routing = None  # until this request reports its own
        turn = _ServedTurn(self, prompt, options, cancel)
        return TurnStream(turn.chunks(), turn.finish)

    def fork(self) -> OpenAIBackend:
        other = OpenAIBackend.__new__(OpenAIBackend)
        other.__dict__.update(self.__dict__)  # the client is shared: the server keeps no state per path
        other.read = other.last_routing = None
        return other

    # ---- routing ------------------------------------------------------------------------------
    def _take_routing(self, last: Mapping[str, Any]) -> None:
        """Keep what the last request reported: the prompt tokens not reported before as `read`, the
        generated ones as `last_routing`. A malformed report is dropped (routing is a view)."""
        self.read = self.last_routing = None
        usage = last.get("usage") if isinstance(last.get("usage"), dict) else None
        self.last_usage = usage
        try:
            if last.get("prompt_routed_experts") is not None or _vllm_choice_routing(last):
                prompt, gen = routing_from_vllm(last)
            elif self.moe_shape is not None and _find_field(last, "routed_experts") is not None:
                prompt, gen = routing_from_sglang(last, *self.moe_shape)
            else:
                prompt, gen = None, None
        except (ValueError, TypeError):
            prompt, gen = None, None
        n_prompt = len(prompt) if prompt is not None else int((usage or {}).get("prompt_tokens") or 0)
        start = self._seen if n_prompt >= self._seen else 0  # shorter: a rollback dropped messages
        if prompt is not None and start < len(prompt):
            self.read = prompt.slice(start, len(prompt))
        self.last_routing = gen
        if n_prompt:
            generated = len(gen) if gen is not None else int((usage or {}).get("completion_tokens") or 0)
            self._seen = n_prompt + generated


def _vllm_choice_routing(payload: Mapping[str, Any]) -> bool:
    choices = payload.get("choices")
    return bool(
        isinstance(choices, list)
        and choices
        and isinstance(choices[0], dict)
        and isinstance(choices[0].get("routed_experts"), list)
    )


def _first_call_number(messages: Sequence[Mapping[str, Any]]) -> int:
    """K2 numbers calls over the conversation (`functions.NAME:IDX`): ids made up for calls the
    server sent without one continue that count."""
    return sum(len(m.get("tool_calls") or []) for m in messages if m.get("role") == "assistant")


# --------------------------------------------------------------------------------------------
# one streamed turn, and what can go wrong with it


class _ServedTurn:
    """One request: opens the stream when first iterated, maps its chunks, turns every failure into
    a ServerError (or, for a stream line that is not JSON, a ParseError that ends the turn)."""

    def __init__(
        self,
        backend: OpenAIBackend,
        prompt: Prompt,
        options: GenerationOptions,
        cancel: threading.Event | None,
    ):
        self.b, self.prompt, self.options, self.cancel = backend, prompt, options, cancel
        self.mapper = _DeltaMapper(prompt.forced_reasoning is not None, _first_call_number(prompt.messages))
        self.cut = False
        self.failed = False
        self.n_chunks = 0
        self.stream: Any = None

    def chunks(self) -> Iterator[StreamChunk]:
        try:
            yield from self._chunks()
        except ServerError:
            self.failed = True
            raise
        finally:
            if self.stream is not None:
                self.stream.close()  # closes the HTTP response: the server stops generating
            self.b._take_routing(self.mapper.last)

    def _chunks(self) -> Iterator[StreamChunk]:
        try:
            client = self.b._client()
            self.stream = client.chat.completions.create(**self.b.request(self.prompt, self.options))
        except Exception as exc:  # noqa: BLE001 - every failure becomes one sentence
            raise self._fault(exc, streaming=False) from None
        it = iter(self.stream)
        while True:
            if self.cancel is not None and self.cancel.is_set():
                self.cut = True
                return
            try:
                raw = next(it)
            except StopIteration:
                break
            except ValueError as exc:  # json.JSONDecodeError: a data line that is not JSON
                self.cut = True
                doc = getattr(exc, "doc", "")
                yield StreamChunk(
                    [
                        ParseError(
                            f"The server at {self.b.base_url} sent a stream line that is not JSON; "
                            "the turn ended.",
                            _redact(str(doc)[:500]),
                        )
                    ]
                )
                return
            except Exception as exc:  # noqa: BLE001
                raise self._fault(exc, streaming=True) from None
            self.n_chunks += 1
            events = self.mapper.feed(_as_dict(raw))
            if events:
                yield StreamChunk(events)
        if self.mapper.finish_reason is None:
            raise ServerError(
                _redact(
                    f"the stream from {self.b.base_url} ended after {self.n_chunks} chunks without a finish "
                    "reason (the connection was cut mid-turn)"
                )
            )

    def finish(self) -> list[Event]:
        if self.failed:  # what a broken stream left half-sent is not completed
            return [End("length")]
        return self.mapper.finish(self.cut)

    # ---- faults -------------------------------------------------------------------------------
    def _fault(self, exc: BaseException, streaming: bool) -> ServerError:
        import openai

        url, t, r = self.b.base_url, self.b.timeout_s, self.b.max_retries
        if isinstance(exc, ServerError):
            return exc
        if isinstance(exc, openai.APIStatusError):
            return ServerError(_redact(self._status_sentence(exc)))
        cause = _root_cause(exc)
        if isinstance(exc, openai.APITimeoutError) or "timeout" in type(exc).__name__.lower():
            where = (
                f"in the middle of the stream, after {self.n_chunks} chunks"
                if streaming
                else f"before answering, after {r} retries"
            )
            text = (
                f"the server at {url} sent nothing for {t:g} s {where} (read timeout); raise "
                "timeout_s= or check the server"
            )
        elif isinstance(exc, (openai.APIConnectionError, OSError)) or _is_network(exc):
            if streaming:
                text = f"the connection to {url} dropped mid-stream after {self.n_chunks} chunks ({cause})"
            elif any(s in cause.lower() for s in _DNS_WORDS):
                text = f"could not resolve the host of {url} ({cause}); check the URL"
            else:
                text = f"could not connect to {url} ({cause}); is the server running and the URL right?"
        elif isinstance(exc, openai.APIError):  # an error event inside the stream
            text = f"the server at {url} reported an error mid-stream: {_one_line(exc.message)}"
        else:
            text = f"the request to {url} failed: {type(exc).__name__}: {_one_line(str(exc))}"
        return ServerError(_redact(text))

    def _status_sentence(self, exc: Any) -> str:
        url, model, code, r = self.b.base_url, self.b.model, exc.status_code, self.b.max_retries
        msg = _server_message(exc)
        if code in (401, 403):
            if self.b.api_key_env:
                return (
                    f"the server at {url} refused the API key from the environment variable "
                    f"{self.b.api_key_env} (HTTP {code}: {msg})"
                )
            return (
                f"the server at {url} asks for an API key (HTTP {code}: {msg}); pass api_key_env= "
                "naming the environment variable that holds it"
            )
        if code == 404:
            served = self.b.served_models()
            if served is not None and model not in served:
                listed = ", ".join(repr(m) for m in served) or "no models"
                return f"the server at {url} does not serve the model {model!r}; it serves {listed}"
            return (
                f"the server at {url} answered 404 for the model {model!r} ({msg}); is the URL the "
                "API's base (often ending in /v1)?"
            )
        if code == 429:
            return (
                f"the server at {url} is rate limiting (HTTP 429) and still was after {r} retries with "
                f"backoff ({msg}); wait and run again"
            )
        if code >= 500:
            return f"the server at {url} failed with HTTP {code} after {r} retries with backoff ({msg})"
        if code in (400, 422) and self.prompt.tools and "tool" in msg.lower():
            return (
                f"the server at {url} takes no tool calls for the model {model!r} ({msg}); vLLM needs "
                "--enable-auto-tool-choice --tool-call-parser kimi_k2"
            )
        return f"the server at {url} rejected the request (HTTP {code}: {msg})"


def _as_dict(chunk: Any) -> dict[str, Any]:
    """A stream chunk as plain data, extra fields (reasoning, routing) included."""
    if isinstance(chunk, dict):
        return chunk
    try:
        return chunk.model_dump(warnings=False)
    except Exception:  # noqa: BLE001 - a chunk the client could not even build is skipped
        return {}


def _server_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        text = inner.get("message") or inner.get("detail") or str(inner)
    else:
        text = getattr(exc, "message", None) or str(exc)
    return _one_line(str(text))


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split()).rstrip(".")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _root_cause(exc: BaseException) -> str:
    """The innermost cause's message (the socket's own words: refused, name not known, ...)."""
    seen: set[int] = set()
    while (exc.__cause__ or exc.__context__) is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return _one_line(str(exc) or type(exc).__name__)


def _is_network(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    return module.split(".")[0] in ("httpx", "httpx2", "httpcore", "h11", "urllib3")


def _redact(text: str) -> str:
    """`text` without any API key this process holds in a variable a backend named (defence in
    depth: a server may echo the key in its error body)."""
    for var in _KEY_VARS:
        key = os.environ.get(var)
        if key and len(key) >= 4:
            text = text.replace(key, "***")
    return text


_DNS_WORDS = ("name or service", "nodename", "name resolution", "getaddrinfo")
_KEY_VARS: set[str] = set()  # every api_key_env a backend was given
