"""The interleaved reasoning loop: think → call tools → observe → … → answer, with budgets,
verification, rollback and parallel paths, recorded as a Trajectory.

One step = one assistant generation. The loop renders the conversation and the tool schemas,
streams the model through a `Backend`, feeds the text to the real `ChatStreamParser`, attributes each
token (and its routing) to the node its text went to, runs the calls of the step in order through an
`Executor`, and appends each result as a tool message under the model's own id. It ends with an
answer without tool calls, or when a budget runs out: then the think block is closed for the model
(budget forcing) and it is asked for its final answer, and the result records which budget ended it.

Nothing the model writes and nothing a tool does raises out of `run_turn`: malformed output becomes
error nodes and error observations, a failing backend ends the run with end_reason "error", and
Ctrl-C ends it with "cancelled" — the trajectory is kept in every case.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from k2nb.agent.backend import Backend, GenerationOptions, Prompt, TokenChunk
from k2nb.agent.checks import (
    CallRecord,
    Source,
    UserCheck,
    Vote,
    args_check,
    as_verdict,
    grounded,
    normalise_answer,
    numbers_used,
    self_verify,
    tally,
)
from k2nb.agent.executor import Executor, LocalExecutor, Observation, ToolCallRequest
from k2nb.agent.trajectory import Check, Node, Observer, Trajectory
from k2nb.engine.chat import (
    THINK_BEGIN,
    THINK_END,
    TOOL_CALLS_SECTION_BEGIN,
    AnswerDelta,
    ChatStreamParser,
    End,
    Event,
    ParseError,
    ThinkingDelta,
    ToolCallArgsDelta,
    ToolCallDone,
    ToolCallStart,
    message_from_events,
)

Message = dict[str, Any]

_SECTION_BEGIN = TOOL_CALLS_SECTION_BEGIN

# Observation error kinds that mean the model's call itself was wrong (the `args` check).
_BAD_CALL = frozenset({"invalid_json", "invalid_arguments", "malformed_call", "unknown_tool"})
# What the model reads after a failed check, before its next attempt (k2-nano's rollback traces in
# k2nb.nano.curriculum use the same words; tests/test_nano_curriculum.py ties the two).
ROLLBACK_MESSAGE = "A check of your answer failed. {reason}. Fix it and answer again."


@dataclass(slots=True)
class Budgets:
    """Limits of one path. None means unlimited. Thinking tokens count the tokens of think blocks."""

    think_tokens_per_step: int | None = 4096
    think_tokens: int | None = 32768
    tool_calls: int | None = 64
    wall_s: float | None = None  # whole run (all paths), seconds
    steps: int | None = 128  # assistant generations
    new_tokens_per_step: int = 8192
    final_answer_tokens: int = 512  # the forced answer after a budget ran out


BUDGET_SENTENCES = {
    "think_tokens_per_step": "I have used my thinking budget for this step",
    "think_tokens": "I have used my total thinking budget",
    "tool_calls": "I have used my tool-call budget",
    "wall_time": "I am out of time",
    "steps": "I have used my step budget",
    "new_tokens": "I ran out of room for this step",
}


@dataclass(slots=True)
class ThinkOptions:
    budgets: Budgets = field(default_factory=Budgets)
    temperature: float | None = None  # None: 0 for one path, 0.7 for several (they must differ)
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = 0
    paths: int = 1
    max_rollbacks: int = 2
    # Temperature of the attempts after a rollback, when the path's own is lower (a greedy path);
    # None keeps the path's. Off by default: on k2-nano, 0.7 changed no answer on 27 + 81 held-out
    # problems and lost one on another 81 (docs/k2-nano.md, session 9).
    retry_temperature: float | None = None
    checks: Sequence[UserCheck] = ()
    builtin_checks: tuple[str, ...] = ("args", "grounded", "used", "self_verify")
    rollback_on: tuple[str, ...] = ("grounded", "used", "self_verify", "user")
    cancel: threading.Event | None = None


@dataclass(slots=True)
class _Call:
    done: ToolCallDone
    node: Node
    parse_error: str | None = None


@dataclass(slots=True)
class _Step:
    """What one generation produced."""

    attempt: Node
    events: list[Event] = field(default_factory=list)
    thinking: Node | None = None
    answer: Node | None = None
    call_nodes: dict[int, Node] = field(default_factory=dict)
    calls: list[_Call] = field(default_factory=list)
    part: str | None = None  # "thinking" | "answer" | "calls": where the last text went
    pending: list[TokenChunk] = field(default_factory=list)  # tokens waiting for their node
    last_node: Node | None = None
    think_tokens: int = 0
    tokens: int = 0
    end: str | None = None  # the parser's End reason
    cut: str | None = None  # the budget (or "cancelled") that stopped the stream
    error: BaseException | None = None
    thinking_text: str = ""


@dataclass(slots=True)
class _Outcome:
    end_reason: str
    answer: str | None
    answer_node: Node | None


@dataclass
class PathResult:
    index: int
    node: Node
    answer: str | None
    answer_node: Node | None
    end_reason: str
    messages: list[Message]  # the path's conversation, history included
    checks: list[Check]
    weight: float
    backend: Backend
    executor: Executor
    tool_calls: int
    think_tokens: int


class _PathRun:
    """One reasoning path: attempts (rollbacks) of steps under a path node."""

    def __init__(
        self,
        traj: Trajectory,
        path_node: Node,
        index: int,
        backend: Backend,
        executor: Executor,
        messages: list[Message],
        opts: ThinkOptions,
        temperature: float,
        started: float,
    ):
        self.t, self.path_node, self.index = traj, path_node, index
        self.backend, self.executor, self.opts = backend, executor, opts
        self.b = opts.budgets
        self.msgs = messages
        # what the user said before this turn's question (a follow-up's "45 instead of 33" need not use 33)
        earlier = (m for m in messages[:-1] if m["role"] == "user")
        self._said_before = "\n".join(str(m.get("content") or "") for m in earlier)
        self.temperature = temperature
        self.started = started
        self.tools = executor.tool_schemas()
        self.records: list[tuple[int, CallRecord]] = []  # (index of the step's message, record)
        self.tool_calls = 0
        self.think_tokens = 0
        self.steps = 0
        self._positions = 0  # fallback positions for tokens the backend gives none
        # The node whose text the next step's prefilled prompt tokens are: the question at first,
        # then the step's first tool result (see _take_context).
        self._reader: Node | None = traj.root

    # --- budgets ------------------------------------------------------------------------------

    def _over_wall(self) -> bool:
        return self.b.wall_s is not None and time.monotonic() - self.started >= self.b.wall_s

    def _before_step(self) -> str | None:
        if self._over_wall():
            return "wall_time"
        if self.b.think_tokens is not None and self.think_tokens >= self.b.think_tokens:
            return "think_tokens"
        if self.b.steps is not None and self.steps >= self.b.steps:
            return "steps"
        if self.b.tool_calls is not None and self.tool_calls >= self.b.tool_calls:
            return "tool_calls"
        return None

    def _during_step(self, st: _Step) -> str | None:
        if self.opts.cancel is not None and self.opts.cancel.is_set():
            return "cancelled"
        if st.part in (None, "thinking"):
            if self.b.think_tokens_per_step is not None and st.think_tokens >= self.b.think_tokens_per_step:
                return "think_tokens_per_step"
            if self.b.think_tokens is not None and self.think_tokens >= self.b.think_tokens:
                return "think_tokens"
        if self._over_wall():
            return "wall_time"
        return None

    # --- one generation -----------------------------------------------------------------------

    def _step(self, attempt: Node, prefix: list[tuple[str, bool]], forced_note: str | None = None) -> _Step:
        st = _Step(attempt)
        parser = ChatStreamParser()
        if prefix:
            # The forced part of the message goes through the parser too, so the assistant message
            # rebuilt from the events holds it; its node is made here (it has no tokens).
            st.events += parser.feed("".join(text for text, _ in prefix))
            st.part = "answer"
            if forced_note:
                self.t.add("thinking", attempt, forced_note, {"forced": True}, status="done")
        seed = None if self.opts.seed is None else self.opts.seed + 1000 * self.index + self.steps
        max_new = self.b.final_answer_tokens if prefix else self.b.new_tokens_per_step
        options = GenerationOptions(max_new, self.temperature, self.opts.top_k, self.opts.top_p, seed)
        stream = None
        try:
            stream = iter(
                self.backend.stream(Prompt(self.msgs, self.tools, prefix), options, self.opts.cancel)
            )
            for chunk in stream:
                target = self._apply(st, parser.feed(chunk.text) if chunk.text else [])
                self._attribute(st, chunk, target)
                # Markers that end the think block emit no event of their own; they still end it.
                if st.part in (None, "thinking") and (
                    THINK_END in chunk.text or _SECTION_BEGIN in chunk.text
                ):
                    st.part = "after_thinking"
                st.tokens += 1
                if st.part in (None, "thinking"):
                    st.think_tokens += 1
                    self.think_tokens += 1
                cut = self._during_step(st) if not prefix else self._cancelled()
                if cut is not None:
                    st.cut = cut
                    break
            if st.cut is None and self._cancelled():
                st.cut = "cancelled"  # the backend saw the event first and stopped
        except KeyboardInterrupt:
            st.cut = "cancelled"
        except Exception as exc:  # noqa: BLE001 - the backend failing ends the run, not the program
            st.error = exc
            self.t.add(
                "error", attempt, f"the model backend failed: {type(exc).__name__}: {exc}", status="done"
            )
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
            self._take_context(attempt)
        self._apply(st, parser.finish())
        if st.pending and st.last_node is not None:
            self._attribute(st, None, st.last_node)
        for node in (st.thinking, st.answer):
            if node is not None and node.status == "running":
                self.t.finish(node)
        if st.answer is not None and st.calls:
            self.t.update(st.answer, interim=True)  # text before tool calls is not the final answer
        return st

    def _take_context(self, attempt: Node) -> None:
        """Give the routing of the prompt tokens this step prefilled (when the backend reports it) to
        the node they were: the question, the tool result(s) fed back, else the attempt (a forced
        answer's prompt). The results of a step with several calls all go to its first observation."""
        node, self._reader = self._reader or attempt, None
        _attach_context(self.t, node, self.backend)

    def _cancelled(self) -> str | None:
        return "cancelled" if self.opts.cancel is not None and self.opts.cancel.is_set() else None

    def _attribute(self, st: _Step, chunk: TokenChunk | None, target: Node | None) -> None:
        """Give a token (and those waiting) to `target`; a token whose text opened no node yet (a
        marker, an id) waits for the next node that receives text."""
        if chunk is not None and chunk.token_id is not None:
            st.pending.append(chunk)
        if target is None:
            return
        for c in st.pending:
            position = c.position if c.position is not None else self._positions
            self._positions = position + 1
            self.t.add_token(target, position, c.token_id or 0, c.experts, c.weights)
        st.pending.clear()

    def _apply(self, st: _Step, events: list[Event]) -> Node | None:
        target: Node | None = None
        t, attempt = self.t, st.attempt
        for i, ev in enumerate(events):
            st.events.append(ev)
            if isinstance(ev, ThinkingDelta):
                if st.thinking is None:
                    st.thinking = t.add("thinking", attempt)
                t.append_text(st.thinking, ev.text)
                st.thinking_text += ev.text
                st.part, target = "thinking", st.thinking
            elif isinstance(ev, AnswerDelta):
                self._close_thinking(st)
                if st.answer is None:
                    st.answer = t.add("answer", attempt)
                t.append_text(st.answer, ev.text)
                st.part, target = "answer", st.answer
            elif isinstance(ev, ToolCallStart):
                self._close_thinking(st)
                node = t.add_tool_call(attempt, ev.id, ev.name, "", None)
                st.call_nodes[ev.index] = node
                st.part, target = "calls", node
            elif isinstance(ev, ToolCallArgsDelta):
                node = st.call_nodes.get(ev.index)
                if node is not None:
                    t.append_text(node, ev.text)
                    target = node
            elif isinstance(ev, ToolCallDone):
                node = st.call_nodes.get(ev.index) or t.add_tool_call(attempt, ev.id, ev.name, "", None)
                nxt = events[i + 1] if i + 1 < len(events) else None
                problem = nxt.message if isinstance(nxt, ParseError) else None
                t.update(
                    node,
                    text=ev.arguments,
                    call_id=ev.id,
                    name=ev.name,
                    arguments=ev.arguments,
                    parsed=ev.parsed,
                )
                if problem is not None:
                    t.finish(node, "failed", parse_error=problem)
                else:
                    t.finish(node)
                st.calls.append(_Call(ev, node, problem))
                st.part, target = "calls", node
            elif isinstance(ev, ParseError):
                prev = events[i - 1] if i > 0 else None
                if not isinstance(prev, ToolCallDone):  # a call's own error is on its node
                    t.add(
                        "error",
                        attempt,
                        ev.message,
                        {"raw": ev.raw[:2000], "source": "parser"},
                        status="done",
                    )
            elif isinstance(ev, End):
                st.end = ev.reason
        if target is not None:
            st.last_node = target
        return target

    def _close_thinking(self, st: _Step) -> None:
        if st.thinking is not None and st.thinking.status == "running":
            self.t.finish(st.thinking)

    # --- tools --------------------------------------------------------------------------------

    def _execute(self, st: _Step, msg_index: int) -> bool:
        """Run the step's calls in order; True when the tool-call budget is used up."""
        limit = self.b.tool_calls
        for call in st.calls:
            ev = call.done
            req = ToolCallRequest(ev.id, ev.name, ev.arguments, ev.parsed)
            if limit is not None and self.tool_calls >= limit:
                sentence = f"not run: the tool-call budget ({limit} calls) is used up"
                obs = Observation(
                    ev.id, ev.name, f"error: {sentence}", ok=False, error_kind="tool_error", error=sentence
                )
                obs.data["skipped"] = True
            elif call.parse_error is not None:
                obs = Observation(
                    ev.id,
                    ev.name,
                    f"error: {call.parse_error}",
                    ok=False,
                    error_kind="malformed_call",
                    error=call.parse_error,
                )
                self.tool_calls += 1
            else:
                self.tool_calls += 1
                try:
                    obs = self.executor.execute(req)
                except Exception as exc:  # noqa: BLE001 - an executor bug is the tool's failure, not the run's
                    sentence = f"the executor failed on tool '{ev.name}': {type(exc).__name__}: {exc}"
                    obs = Observation(
                        ev.id,
                        ev.name,
                        f"error: {sentence}",
                        ok=False,
                        error_kind="tool_error",
                        error=sentence,
                    )
            obs_node = self.t.add_observation(call.node, obs)
            self._reader = self._reader or obs_node
            self.msgs.append({"role": "tool", "tool_call_id": ev.id, "name": ev.name, "content": obs.text})
            code = ev.parsed.get("code") if ev.parsed and ev.name == "python" else None
            rec = CallRecord(
                call_id=ev.id,
                name=ev.name,
                code=code if isinstance(code, str) else None,
                observation=obs.text,
                ok=obs.ok,
                node=call.node.id,
                observation_node=obs_node.id,
                thinking_before=st.thinking_text,
                valid_args=obs.error_kind not in _BAD_CALL,
                error=obs.error,
                arguments=ev.arguments if isinstance(ev.arguments, str) else "",
            )
            self.records.append((msg_index, rec))
        return limit is not None and self.tool_calls >= limit

    # --- an attempt ---------------------------------------------------------------------------

    def _attempt(self, attempt: Node) -> _Outcome:
        while True:
            budget = self._before_step()
            if budget is not None:
                return self._force_final(attempt, budget, None)
            st = self._step(attempt, [])
            self.steps += 1
            if st.error is not None:
                return _Outcome("error", None, None)
            if st.cut == "cancelled":
                return _Outcome("cancelled", _text(st.answer), st.answer)
            if st.cut is not None:
                if st.part in (None, "thinking"):
                    return self._force_final(attempt, st.cut, st)
                self.msgs.append(_without_calls(message_from_events(st.events)))
                return _Outcome(f"budget:{st.cut}", _text(st.answer), st.answer)
            if st.end == "length" and not st.calls and st.part in (None, "thinking"):
                return self._force_final(attempt, "new_tokens", st)
            self.msgs.append(message_from_events(st.events))
            if st.calls:
                if self._execute(st, len(self.msgs) - 1):
                    return self._force_final(attempt, "tool_calls", None)
                continue
            return _Outcome("answer" if st.end == "stop" else "length", _text(st.answer) or "", st.answer)

    def _force_final(self, attempt: Node, budget: str, partial: _Step | None) -> _Outcome:
        """Close the think block for the model (keeping its partial reasoning) and let it answer."""
        note = f"({BUDGET_SENTENCES.get(budget, budget)}, so I answer now with what I have.)"
        reasoning = (
            partial.thinking_text.rstrip() + "\n\n" if partial is not None and partial.thinking_text else ""
        )
        prefix = [(THINK_BEGIN, True), (reasoning + note, False), (THINK_END, True)]
        st = self._step(attempt, prefix, forced_note=note)
        self.steps += 1
        end = f"budget:{budget}"
        if st.error is not None:
            return _Outcome("error", None, None)
        if st.calls:
            self.t.add(
                "error",
                attempt,
                f"the model called tools after its budget ended ({len(st.calls)} calls); they were not run",
                status="done",
            )
            for call in st.calls:
                self.t.finish(call.node, "cancelled")
        self.msgs.append(_without_calls(message_from_events(st.events)))
        if st.cut == "cancelled":
            end = "cancelled"
        return _Outcome(end, _text(st.answer) or "", st.answer)

    # --- verification and rollback ------------------------------------------------------------

    def _verify(self, attempt: Node, out: _Outcome) -> list[Check]:
        t, opts = self.t, self.opts
        records = [r for _, r in self.records]
        checks: list[Check] = []
        if "args" in opts.builtin_checks and records:
            status, evidence = args_check(records)
            checks.append(t.add_check("valid arguments", status, evidence, attempt, kind="args"))
        answer = out.answer or ""
        if out.answer_node is None:
            return checks
        if "grounded" in opts.builtin_checks and self.tools:
            sources = [Source(r.observation, f"result of {r.call_id}", r.node) for r in records if r.ok]
            sources += [
                Source(str(m.get("content") or ""), "user message") for m in self.msgs if m["role"] == "user"
            ]
            status, evidence, data = grounded(answer, sources)
            checks.append(
                t.add_check(
                    "answer grounded in tool results", status, evidence, out.answer_node, "grounded", **data
                )
            )
        if "used" in opts.builtin_checks and self.tools:
            status, evidence, data = numbers_used(t.question, records, self._said_before)
            checks.append(
                t.add_check("question numbers used", status, evidence, out.answer_node, "used", **data)
            )
        if "self_verify" in opts.builtin_checks and self.tools:
            status, evidence, node = self_verify(records)
            checks.append(
                t.add_check(
                    "model's own verification", status, evidence, node or out.answer_node, "self_verify"
                )
            )
        for fn in opts.checks:
            name = getattr(fn, "__name__", repr(fn))
            previous = t.meta.get("answer", _MISSING)
            t.meta["answer"] = answer  # what `trajectory.answer` shows the check
            try:
                verdict = as_verdict(fn(t.question, t))
                status, evidence = ("passed" if verdict.passed else "failed"), verdict.evidence
            except Exception as exc:  # noqa: BLE001 - a broken check is a failed check, not a crash
                status, evidence = "failed", f"the check raised {type(exc).__name__}: {exc}"
            finally:
                if previous is _MISSING:
                    t.meta.pop("answer", None)
                else:
                    t.meta["answer"] = previous
            checks.append(t.add_check(name, status, evidence, out.answer_node, "user"))
        return checks

    def _rollback_cut(self, failed: list[Check]) -> int:
        """Index of the first message to drop: the step that holds the earliest failing node."""
        cut = len(self.msgs)
        for check in failed:
            if check.kind == "self_verify":
                hit = next((i for i, r in self.records if r.node == check.node), None)
                if hit is not None:
                    cut = min(cut, hit)
                    continue
            # the answer (or the user's verdict on it) failed: drop the final message
            last = max(
                (i for i, m in enumerate(self.msgs) if m["role"] == "assistant"), default=len(self.msgs)
            )
            cut = min(cut, last)
        return cut

    def run(self) -> tuple[_Outcome, list[Check]]:
        n = 1
        attempt = self.t.add("attempt", self.path_node, data={"index": n})
        while True:
            out = self._attempt(attempt)
            checks = self._verify(attempt, out) if out.end_reason not in ("error", "cancelled") else []
            failed = [c for c in checks if c.status == "failed" and c.kind in self.opts.rollback_on]
            if (
                not failed
                or n > self.opts.max_rollbacks
                or not out.end_reason == "answer"
                or self._before_step()
            ):
                self.t.finish(
                    attempt,
                    "done"
                    if out.end_reason in ("answer",) or out.end_reason.startswith("budget")
                    else "failed",
                )
                return out, checks
            cut = self._rollback_cut(failed)
            del self.msgs[cut:]
            self.records = [(i, r) for i, r in self.records if i < cut]
            reason = "; ".join(f"{c.name}: {c.evidence}" for c in failed)
            self.msgs.append(
                {
                    "role": "user",
                    "content": ROLLBACK_MESSAGE.format(reason=reason),
                }
            )
            self.t.finish(attempt, "rolled_back", failed_checks=[c.id for c in failed])
            n += 1
            if self.opts.retry_temperature is not None:
                self.temperature = max(self.temperature, self.opts.retry_temperature)
            after = self.records[-1][1].observation_node if self.records else None
            attempt = self.t.add(
                "attempt", self.path_node,
                data={"index": n, "after": after, "reason": reason, "temperature": self.temperature},
            )


_MISSING = object()


def _text(node: Node | None) -> str | None:
    return None if node is None else node.text.strip()


def _without_calls(message: Message) -> Message:
    """The message without tool calls that were never answered (after a budget ended)."""
    message = dict(message)
    message.pop("tool_calls", None)
    return message


# ---------------------------------------------------------------------------------------------
# a turn: paths, votes, result


@dataclass
class RunRouting:
    """Routing of every generated token of the chosen path, in generation order."""

    positions: np.ndarray  # [T]
    tokens: np.ndarray  # [T]
    experts: np.ndarray  # [T, L, K]
    weights: np.ndarray  # [T, L, K]
    nodes: list[str]  # node id per token
    kinds: list[str]  # node kind per token

    def expert_counts(self, n_experts: int | None = None) -> np.ndarray:
        """[L, E] how often each expert was chosen, per MoE layer."""
        if len(self.tokens) == 0:
            return np.zeros((0, n_experts or 0), dtype=np.int64)
        n = n_experts or int(self.experts.max()) + 1
        layers = self.experts.shape[1]
        counts = np.zeros((layers, n), dtype=np.int64)
        for layer in range(layers):
            counts[layer] = np.bincount(self.experts[:, layer, :].ravel(), minlength=n)[:n]
        return counts

    def top_experts(self, n: int = 3) -> list[list[tuple[int, int]]]:
        """Per MoE layer, the `n` most used experts as (expert, count)."""
        out = []
        for row in self.expert_counts():
            order = np.argsort(-row, kind="stable")[:n]
            out.append([(int(e), int(row[e])) for e in order if row[e] > 0])
        return out

    def __len__(self) -> int:
        return len(self.tokens)


def _attach_context(t: Trajectory, node: Node, backend: Any) -> None:
    """Give the routing of the prompt tokens the backend last prefilled (if it reports any) to `node`."""
    ctx = getattr(backend, "last_context", None)
    if ctx is not None and len(ctx):
        t.add_context(node, ctx.positions, ctx.token_ids, ctx.experts, ctx.weights)


def collect_routing(t: Trajectory, under: Node, context: bool = False) -> RunRouting:
    """The routing of the tokens generated under `under`; with `context`, of the prompt tokens read
    instead (the question's, kept on the root, and the tool results fed back)."""
    nodes_in = list(t.walk(under))
    if context and under is not t.root:
        nodes_in.insert(0, t.root)
    routed = [(n, n.context if context else n.routing) for n in nodes_in]
    parts = [(n, r) for n, r in routed if r is not None and len(r)]
    if not parts:
        empty = np.zeros((0, 0, 0), dtype=np.int32)
        return RunRouting(
            np.zeros(0, np.int64), np.zeros(0, np.int32), empty, empty.astype(np.float32), [], []
        )
    nodes: list[str] = []
    kinds: list[str] = []
    for n, r in parts:
        nodes += [n.id] * len(r)
        kinds += [n.kind] * len(r)
    return RunRouting(
        np.concatenate([r.positions for _, r in parts]),
        np.concatenate([r.tokens for _, r in parts]),
        np.concatenate([r.experts for _, r in parts]),
        np.concatenate([r.weights for _, r in parts]),
        nodes,
        kinds,
    )


@dataclass
class ThinkResult:
    """What a run returns. `answer` is the chosen path's final answer (None if it ended without)."""

    answer: str | None
    trajectory: Trajectory
    end_reason: str  # "answer", "budget:<name>", "length", "cancelled", "error"
    paths: list[PathResult]
    chosen: int  # index into paths
    votes: list[Vote]
    messages: list[Message]  # this turn's messages of the chosen path (user message first)

    @property
    def checks(self) -> list[Check]:
        return self.trajectory.checks

    @property
    def routing(self) -> RunRouting:
        return collect_routing(self.trajectory, self.paths[self.chosen].node)

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """The chosen path's calls: id, name, arguments, ok."""
        out = []
        for node in self.trajectory.walk(self.paths[self.chosen].node):
            if node.kind == "tool_call":
                obs = next(iter(self.trajectory.children(node, "observation")), None)
                out.append(
                    {
                        "id": node.data.get("call_id"),
                        "name": node.data.get("name"),
                        "arguments": node.data.get("arguments"),
                        "ok": bool(obs is not None and obs.data.get("ok")),
                        "observation": obs.text if obs is not None else None,
                    }
                )
        return out

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape: answer, end_reason, tool_calls, checks, votes, trajectory."""
        return {
            "answer": self.answer,
            "end_reason": self.end_reason,
            "tool_calls": self.tool_calls,
            "checks": [c.to_dict() for c in self.checks],
            "votes": [
                {"answer": v.answer, "key": v.key, "weight": v.weight, "paths": v.paths} for v in self.votes
            ],
            "trajectory": self.trajectory.to_dict(),
        }


_VOTING_CHECKS = ("grounded", "used", "self_verify", "user")


def _weight(checks: Sequence[Check], end_reason: str, answer: str | None) -> float:
    """Vote weight of a path: one vote, one more per passed verification, a quarter per failure."""
    if not answer:
        return 0.0
    passed = sum(c.status == "passed" for c in checks if c.kind in _VOTING_CHECKS)
    failed = sum(c.status == "failed" for c in checks if c.kind in _VOTING_CHECKS)
    weight = (1.0 + passed) * (0.25**failed)
    return weight if end_reason == "answer" else weight * 0.5


def run_turn(
    backend: Backend,
    executor: Executor,
    history: Sequence[Message],
    prompt: str,
    options: ThinkOptions | None = None,
    *,
    trajectory: Trajectory | None = None,
) -> ThinkResult:
    """One user turn: `paths` reasoning paths over `history` + the prompt, voted into one answer."""
    opts = options or ThinkOptions()
    n_paths = max(1, opts.paths)
    temperature = opts.temperature if opts.temperature is not None else (0.0 if n_paths == 1 else 0.7)
    t = trajectory if trajectory is not None else Trajectory(prompt)
    if trajectory is not None and not t.root.text:
        t.root.text = prompt
    t.meta.update({"paths": n_paths, "temperature": temperature, "seed": opts.seed})
    started = time.monotonic()
    base = [*history, {"role": "user", "content": prompt}]
    if n_paths > 1:
        prefill = getattr(backend, "prefill", None)
        if prefill is not None:  # one prefill of the prompt, shared by every fork
            try:
                prefill(Prompt(base, executor.tool_schemas()))
                _attach_context(t, t.root, backend)
            except Exception as exc:  # noqa: BLE001 - a failed prefill only loses the sharing
                t.meta["prefill_error"] = f"{type(exc).__name__}: {exc}"
    results: list[PathResult] = []
    for i in range(n_paths):
        b = backend if n_paths == 1 else backend.fork()
        fork = getattr(executor, "fork", None)
        ex = executor if n_paths == 1 or fork is None else fork()
        node = t.add(
            "path", None, data={"index": i + 1, "seed": None if opts.seed is None else opts.seed + 1000 * i}
        )
        run = _PathRun(t, node, i, b, ex, list(base), opts, temperature, started)
        out, checks = run.run()
        weight = _weight(checks, out.end_reason, out.answer)
        t.finish(
            node,
            "done" if out.answer else "failed",
            end_reason=out.end_reason,
            answer=out.answer,
            weight=weight,
        )
        results.append(
            PathResult(
                i,
                node,
                out.answer,
                out.answer_node,
                out.end_reason,
                run.msgs,
                checks,
                weight,
                b,
                ex,
                run.tool_calls,
                run.think_tokens,
            )
        )
        if out.end_reason == "cancelled":
            break
    votes = tally((r.index, r.answer, r.weight) for r in results)
    chosen = votes[0].paths[0] if votes else 0
    chosen = next((j for j, r in enumerate(results) if r.index == chosen), 0)
    for r in results:
        t.update(r.node, vote=normalise_answer(r.answer) if r.answer else None)
    if len(results) > 1:
        answered = [r for r in results if r.answer]
        if votes and answered:
            top = votes[0]
            share = len(top.paths) / len(answered)
            split = ", ".join(f"{v.key!r}: {len(v.paths)} (weight {v.weight:g})" for v in votes)
            status = "passed" if share > 0.5 else "failed"
            t.add_check(
                "paths agree",
                status,
                f"{len(top.paths)} of {len(answered)} paths answer {top.key!r} ({split})",
                t.root,
                "agreement",
                share=share,
            )
        else:
            t.add_check("paths agree", "failed", "no path produced an answer", t.root, "agreement")
    best = results[chosen]
    t.meta["answer"] = best.answer
    t.meta["end_reason"] = best.end_reason
    t.meta["chosen_path"] = best.node.id
    t.finish(t.root, "done" if best.answer else "failed")
    return ThinkResult(best.answer, t, best.end_reason, results, chosen, votes, best.messages[len(history) :])


# ---------------------------------------------------------------------------------------------
# conversations and the one-shot entry point


class Conversation:
    """Messages kept across turns (multi-turn), one executor namespace, one backend session.

    `ask(prompt)` runs a turn and appends the chosen path's messages; reasoning is kept in them as
    the K2 format requires (the renderer drops it from finished turns).
    """

    def __init__(
        self,
        backend: Backend,
        executor: Executor | None = None,
        *,
        tools: Sequence[Any] = (),
        python: bool = True,
        namespace: dict[str, Any] | None = None,
        system: str | None = None,
        options: ThinkOptions | None = None,
        observers: Sequence[Observer] = (),
    ):
        self.backend = backend
        self.executor: Executor = (
            executor if executor is not None else LocalExecutor(tools, python=python, namespace=namespace)
        )
        self.messages: list[Message] = [{"role": "system", "content": system}] if system else []
        self.options = options or ThinkOptions()
        self.observers = list(observers)
        self.results: list[ThinkResult] = []

    def ask(self, prompt: str, **overrides: Any) -> ThinkResult:
        opts = _with_overrides(self.options, overrides)
        t = Trajectory(prompt, meta={"turn": len(self.results) + 1})
        for obs in self.observers:
            t.subscribe(obs)
        result = run_turn(self.backend, self.executor, self.messages, prompt, opts, trajectory=t)
        best = result.paths[result.chosen]
        # the chosen path's session and namespace carry the conversation on
        self.backend, self.executor = best.backend, best.executor
        self.messages.extend(result.messages)
        self.results.append(result)
        return result


_BUDGET_FIELDS = {f for f in Budgets.__dataclass_fields__}
_OPTION_FIELDS = {f for f in ThinkOptions.__dataclass_fields__}


def _with_overrides(opts: ThinkOptions, overrides: Mapping[str, Any]) -> ThinkOptions:
    """ThinkOptions with keyword overrides; budget fields may be given flat (tool_calls=8)."""
    budgets = {k: v for k, v in overrides.items() if k in _BUDGET_FIELDS}
    rest = {k: v for k, v in overrides.items() if k in _OPTION_FIELDS}
    unknown = set(overrides) - set(budgets) - set(rest)
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(sorted(unknown))}; see ThinkOptions and Budgets")
    out = replace(opts, **rest)
    if budgets:
        out = replace(out, budgets=replace(out.budgets, **budgets))
    return out


def think(
    prompt: str,
    model: Any = None,
    tools: Sequence[Any] | None = None,
    paths: int = 1,
    *,
    backend: Backend | None = None,
    executor: Executor | None = None,
    namespace: dict[str, Any] | None = None,
    python: bool = True,
    observers: Sequence[Observer] = (),
    **options: Any,
) -> ThinkResult:
    """Answer `prompt` with the reasoning loop; returns `.answer`, `.trajectory`, `.routing`.

    `model` is a loaded `K2Model` or a checkpoint folder; `backend=` replaces it (e.g. a
    `ScriptedBackend`). `tools` are `@tool` functions added to the built-in `python` tool
    (`python=False` leaves it out). Other keywords are `ThinkOptions` / `Budgets` fields
    (`tool_calls=8`, `think_tokens=2000`, `temperature=0.7`, `checks=[...]`, ...).
    """
    if backend is None:
        backend = _engine_backend(model)
    conv = Conversation(
        backend, executor, tools=tools or (), python=python, namespace=namespace, observers=observers
    )
    return conv.ask(prompt, paths=paths, **options)


def _engine_backend(model: Any) -> Backend:
    """A backend over the local engine: `model` is a loaded K2Model, a checkpoint folder, a shipped
    model's name, or None for the default shipped model (k2-nano)."""
    from k2nb.agent.backend import EngineBackend
    from k2nb.models import resolve_model_arg

    model = resolve_model_arg(model)
    if isinstance(model, str) or hasattr(model, "__fspath__"):
        from k2nb.engine import load_model

        model = load_model(model, progress=False)
    return EngineBackend(model)


__all__ = [
    "Budgets",
    "Conversation",
    "PathResult",
    "RunRouting",
    "ThinkOptions",
    "ThinkResult",
    "run_turn",
    "think",
]
