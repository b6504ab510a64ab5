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

import hashlib
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

import numpy as np

from k2nb.backends.base import BackendBase, GenerationOptions, Prompt, StreamChunk, TurnStream
from k2nb.backends.served import DeltaMapper, find_field, routing_from_sglang, routing_from_vllm
from k2nb.engine.errors import K2nbError
from k2nb.events import (
    End,
    Event,
    ParseError,
)
from k2nb.routing import Routing

__all__ = ["OpenAIBackend", "ServerError", "connect", "routing_from_sglang", "routing_from_vllm"]

# The message fields a chat-completions server reads; anything else a message holds is k2nb's own.
_MESSAGE_KEYS = ("role", "content", "reasoning_content", "tool_calls", "tool_call_id", "name")
_NO_KEY = "EMPTY"  # what vLLM / SGLang expect when they were started without --api-key


class ServerError(K2nbError):
    """The server could not be reached, refused the request, or broke the stream (one sentence)."""


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
        self.tokens_used = {"prompt_tokens": 0, "completion_tokens": 0}  # over every request it sent
        self._seen = 0  # tokens of the conversation an earlier request already reported routing for
        self._client_obj: Any = None
        self._client_key: str | None = None
        self.served: list[str] | None = None  # what /v1/models listed (asked once)
        self.served_context: dict[str, int] = {}  # max_model_len per model, where vLLM lists it
        self.served_by: dict[str, str] = {}  # owned_by per model ("vllm", "sglang", an API's org)
        self.capabilities: Any = None  # a capabilities.Capabilities once probed (`connect` does)

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
        """The model ids `/v1/models` lists (None when it does not answer); keeps the context length
        vLLM lists with each (`max_model_len`)."""
        try:
            listing = list(self._client().models.list())
        except Exception:  # noqa: BLE001 - a server without the listing is not a fault here
            return None
        for m in listing:
            n = (getattr(m, "model_extra", None) or {}).get("max_model_len")
            if isinstance(n, int) and n > 0:
                self.served_context[m.id] = n
            if isinstance(getattr(m, "owned_by", None), str):
                self.served_by[m.id] = m.owned_by
        self.served = [m.id for m in listing]
        return self.served

    def describe(self) -> list[str]:
        """What is connected, for `%k2model`: the server, its models and what it supports."""
        who = self.server
        ctx = self.context_window
        head = f"{self.model} at {self.base_url}" + (f", served by {who}" if who else "")
        if ctx:
            head += f", context {ctx:,} tokens"
        lines = [head]
        if self.served:
            lines.append("the server serves: " + ", ".join(self.served))
        if self.capabilities is not None:
            lines.extend(self.capabilities.lines())
        return lines

    @property
    def server(self) -> str | None:
        """Who serves the model, as `/v1/models` says (`owned_by`: "vllm", "sglang", …)."""
        self.context_window  # noqa: B018 - asks /v1/models once
        return self.served_by.get(self.model)

    @property
    def context_window(self) -> int | None:
        """Tokens of prompt + output the server takes for this model, when it says (vLLM does)."""
        if self.served is None:
            self.served_models()  # once; a server without the listing leaves it unknown
            if self.served is None:
                self.served = []
        return self.served_context.get(self.model)

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
        if self.server == "vllm":
            # the generated token ids with every chunk: they show where vLLM dropped a `</think>` it
            # did not parse (see DeltaMapper), and cost nothing
            body.setdefault("return_token_ids", True)
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            # vLLM refuses a max_tokens beyond the model's context (and caps prompt + output itself)
            "max_tokens": min(options.max_new_tokens, self.context_window or options.max_new_tokens),
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

    def generated_routing(self) -> Routing | None:
        return self.last_routing

    def fork(self) -> OpenAIBackend:
        other = OpenAIBackend.__new__(OpenAIBackend)
        other.__dict__.update(self.__dict__)  # the client is shared: the server keeps no state per path
        other.read = other.last_routing = None
        return other

    # ---- routing ------------------------------------------------------------------------------
    def _take_routing(self, last: Mapping[str, Any], generated: Sequence[int] = ()) -> None:
        """Keep what the last request reported: the prompt tokens not reported before as `read`, the
        generated ones as `last_routing` (with their ids, when the stream carried them). A malformed
        report is dropped (routing is a view)."""
        self.read = self.last_routing = None
        usage = last.get("usage") if isinstance(last.get("usage"), dict) else None
        self.last_usage = usage
        for key in self.tokens_used:
            n = (usage or {}).get(key)
            self.tokens_used[key] += n if isinstance(n, int) and n > 0 else 0
        try:
            if last.get("prompt_routed_experts") is not None or _vllm_choice_routing(last):
                prompt, gen = routing_from_vllm(last)
            elif self.moe_shape is not None and find_field(last, "routed_experts") is not None:
                prompt, gen = routing_from_sglang(last, *self.moe_shape)
            else:
                prompt, gen = None, None
        except (ValueError, TypeError):
            prompt, gen = None, None
        n_prompt = len(prompt) if prompt is not None else int((usage or {}).get("prompt_tokens") or 0)
        start = self._seen if n_prompt >= self._seen else 0  # shorter: a rollback dropped messages
        if prompt is not None and start < len(prompt):
            self.read = prompt.slice(start, len(prompt))
        if gen is not None and len(generated) == len(gen):
            gen.tokens = np.asarray(generated, dtype=np.int64)
        self.last_routing = gen
        if n_prompt:
            generated = len(gen) if gen is not None else int((usage or {}).get("completion_tokens") or 0)
            self._seen = n_prompt + generated


def connect(url: str, model: str | None = None, api_key_env: str | None = None, *,
            probe: bool = False, **kw: Any) -> OpenAIBackend:
    """A backend for the server at `url`: `model` as served there, or the only one it lists.

    Checks the connection at once (one `/v1/models` request), so a wrong URL, key or model name is
    one sentence here rather than at the first turn. `probe` also sends one 16-token request to see
    what the server supports (`backend.capabilities`)."""
    backend = OpenAIBackend(url, model or "", api_key_env, **kw)
    backend._key()  # an unset key variable is named before any request
    served = backend.served_models()
    if served is None:
        if model:
            return backend  # some servers (hosted APIs) do not list models; the first turn will tell
        raise ServerError(
            f"the server at {backend.base_url} does not answer /models; is it running, and is it "
            "OpenAI-compatible? Give the model name too if it lists none"
        )
    if model and model not in served:
        raise ServerError(
            f"the server at {backend.base_url} serves {', '.join(served) or 'no model'}, not {model!r}"
        )
    if not model:
        if len(served) != 1:
            raise ServerError(
                f"the server at {backend.base_url} serves {', '.join(served) or 'no model'}; "
                "say which one (--served-model NAME)"
            )
        backend.model = served[0]
    if probe:
        from k2nb.backends.capabilities import probe as ask

        backend.capabilities = ask(backend)
    return backend


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
        self.mapper = DeltaMapper(prompt.forced_reasoning is not None, _first_call_number(prompt.messages))
        self.cut = False
        self.failed = False
        self.n_chunks = 0
        self.stream: Any = None
        self.n_prompt: int | None = None  # from vLLM's `prompt_token_ids` (return_token_ids)
        self.generated: list[int] = []  # the token ids the server reported, in order

    def chunks(self) -> Iterator[StreamChunk]:
        try:
            yield from self._chunks()
        except ServerError:
            self.failed = True
            raise
        finally:
            if self.stream is not None:
                self.stream.close()  # closes the HTTP response: the server stops generating
            self.b._take_routing(self.mapper.last, self.generated)

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
            data = _as_dict(raw)
            events = self.mapper.feed(data)
            ids = self._token_ids(data)
            if not ids:
                if events:
                    yield StreamChunk(events)
                continue
            for k, token in enumerate(ids):  # the chunk's events go with its first token
                position = self.n_prompt + len(self.generated) if self.n_prompt is not None else None
                self.generated.append(token)
                yield StreamChunk(events if k == 0 else [], token_id=token, position=position)
        if self.mapper.finish_reason is None:
            raise ServerError(
                _redact(
                    f"the stream from {self.b.base_url} ended after {self.n_chunks} chunks without a finish "
                    "reason (the connection was cut mid-turn)"
                )
            )

    def _token_ids(self, data: Mapping[str, Any]) -> list[int]:
        """The generated token ids a vLLM chunk carries (`return_token_ids`); the first chunk also
        has the prompt's, whose count places the generated tokens."""
        prompt = data.get("prompt_token_ids")
        if self.n_prompt is None and isinstance(prompt, list):
            self.n_prompt = len(prompt)
        choices = data.get("choices")
        ids = choices[0].get("token_ids") if isinstance(choices, list) and choices and isinstance(
            choices[0], dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, int) and i >= 0 for i in ids):
            return []
        return ids

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
