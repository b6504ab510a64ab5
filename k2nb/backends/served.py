"""What a served model's stream carries, mapped to k2nb's records: chat-completion deltas → events
(`DeltaMapper`), and the routing reports of vLLM and SGLang → `Routing` (no weights are reported:
each chosen expert gets 1/top_k).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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
from k2nb.formats.k2.markers import THINK_BEGIN, THINK_END, TOOL_CALLS_SECTION_BEGIN
from k2nb.formats.k2.parser import parse_arguments
from k2nb.routing import UNTRACED_TOKEN, Routing

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
    raw = find_field(payload, "routed_experts")
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


def find_field(payload: Mapping[str, Any], name: str) -> Any:
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


class DeltaMapper:
    """One turn's server chunks (as dicts) → events. Unknown fields are ignored; a field of the wrong
    type is a ParseError; the calls are completed by `finish`.

    Reasoning the server did not separate: vLLM's kimi_k2 reasoning parser takes reasoning as ended
    when the prompt holds a `</think>` (every K2 conversation after its first assistant message
    does), so it streams the next turn's thinking as `content` that starts with the literal
    `<think>`, and drops the `</think>` token from the text. Such content is thinking, up to a
    `</think>` in the text, a tool call, or a chunk that carries token ids (`return_token_ids`) but
    no text: the dropped marker."""

    def __init__(self, forced: bool, first_call_number: int):
        self.forced = forced
        self.thinking_open = not forced  # a forced turn starts with its thinking closed
        self.first_call_number = first_call_number
        self.calls: dict[Any, _Call] = {}
        self.n_started = 0
        self.finish_reason: str | None = None
        self.warned_markers = False
        self.unparsed_thinking = False  # thinking is arriving as content (see the class docstring)
        self.seen_text = False
        self.last: dict[str, Any] = {}  # the last chunk that carried routing or usage

    def feed(self, chunk: Mapping[str, Any]) -> list[Event]:
        out: list[Event] = []
        if (
            chunk.get("usage")
            or find_field(chunk, "routed_experts") is not None
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
                if self.unparsed_thinking and choice.get("token_ids") and not (
                    delta.get("content") or delta.get("tool_calls")
                ):
                    self._close_thinking(out)  # a token with no text: the marker the server dropped
            if isinstance(choice.get("finish_reason"), str):
                self.finish_reason = choice["finish_reason"]
        return out

    def _delta(self, delta: Mapping[str, Any], out: list[Event]) -> None:
        reasoning = delta.get("reasoning_content")
        if reasoning is None:
            reasoning = delta.get("reasoning")
        if _text_field(reasoning, "reasoning", out):
            self.seen_text = True
            if self.forced:
                out.append(AnswerDelta(reasoning))
            else:
                out.append(ThinkingDelta(reasoning))
        content = delta.get("content")
        if _text_field(content, "content", out):
            if self.thinking_open and not self.seen_text and content.startswith(THINK_BEGIN):
                self.unparsed_thinking = True
                content = content[len(THINK_BEGIN):]
            self.seen_text = True
            if self.unparsed_thinking:
                thinking, end, content = content.partition(THINK_END)
                if thinking:
                    out.append(ThinkingDelta(thinking))
                if end:
                    self._close_thinking(out)
            if content:
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
        self.unparsed_thinking = False
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
