"""One reasoning path: think → call tools → observe → … → answer, checked, with rollbacks.

A step is one assistant generation: the loop asks the `Backend` for the turn, writes its events into
the trajectory (`k2nb.agent.step`), runs the step's calls in order through an `Executor` and appends
each result as a tool message under the model's own id. An attempt ends with an answer without tool
calls, or when a budget runs out: then the thinking is closed for the model (budget forcing: the
backend's format knows how) and it is asked for its final answer, and the outcome records which
budget ended it. An answer whose checks pass ends the path; a failed check rolls it back and retries.

The model's context is a budget too, where the backend knows its window: a step may generate only
what leaves a forced answer its `final_answer_tokens`; with less room than a tool round the model
answers now (end "budget:context"), and when not even a forced answer fits the path ends with
"context_full" and a note saying so, instead of a prompt the model cannot take.

Nothing the model writes and nothing a tool does raises out of here: malformed output becomes error
nodes and error observations, a failing backend ends the path with end_reason "error", and Ctrl-C
ends it with "cancelled" — the trajectory is kept in every case. The loop reads only events: it
knows no chat format and no marker.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from k2nb.agent.checks import CallRecord
from k2nb.agent.executor import Executor, Observation, ToolCallRequest
from k2nb.agent.guard import cut_middle
from k2nb.agent.options import BUDGET_SENTENCES, ThinkOptions
from k2nb.agent.step import Step, apply_events, attribute, finish_step
from k2nb.agent.trajectory import Check, Node, Trajectory
from k2nb.agent.verify import ROLLBACK_MESSAGE, Evidence, Outcome, rollback_cut, verify
from k2nb.backends.base import Backend, Prompt
from k2nb.events import ThinkingDelta, ThinkingEnd, message_from_events

Message = dict[str, Any]

# Observation error kinds that mean the model's call itself was wrong (the `args` check).
_BAD_CALL = frozenset({"invalid_json", "invalid_arguments", "malformed_call", "unknown_tool"})
# Context budget (backends that know their window): a step starts only with room for itself and
# then a forced answer; less room than this cannot hold a tool call and its result (a k2-nano
# curriculum step is 40-100 tokens), so the model answers instead.
MIN_STEP_TOKENS = 128
# The shortest forced answer worth asking for ("The answer is 9396 tickets." and its end marker);
# with less room the path ends with a note that the context is full.
MIN_ANSWER_TOKENS = 16
# A tool result longer than this is measured against the room the context has left after it (and
# cut to fit); shorter ones cannot crowd out a forced answer by themselves.
MIN_CUT_CHARS = 200
CONTEXT_CUT_NOTE = "[the output was cut: the conversation's context is nearly full]"


class PathRun:
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
        started: float,
    ):
        self.t, self.path_node, self.index = traj, path_node, index
        self.backend, self.executor, self.opts = backend, executor, opts
        self.b = opts.budgets
        self.msgs = messages
        # what the user said before this turn's question (a follow-up's "45 instead of 33" need not use 33)
        earlier = (m for m in messages[:-1] if m["role"] == "user")
        self._said_before = "\n".join(str(m.get("content") or "") for m in earlier)
        # the tool results of earlier turns: numbers a follow-up's code may reuse (the `sourced` check)
        results = (m for m in messages if m["role"] == "tool")
        self._earlier_results = "\n".join(str(m.get("content") or "") for m in results)
        self.temperature = opts.path_temperature
        self.started = started
        self.tools = executor.tool_schemas()
        self.records: list[tuple[int, CallRecord]] = []  # (index of the step's message, record)
        self.tool_calls = 0
        self.think_tokens = 0
        self.steps = 0
        self.stopped = False  # the stop button came during a tool call
        self._positions = 0  # fallback positions for tokens the backend gives none
        self._attempt_from = 0  # index in records of the current attempt's first call
        # The node whose text the next step's prefilled prompt tokens are: the question at first,
        # then the step's first tool result (see _take_read_routing).
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

    def _during_step(self, st: Step) -> str | None:
        if self._cancelled():
            return "cancelled"
        if st.thinking_open:
            if self.b.think_tokens_per_step is not None and st.think_tokens >= self.b.think_tokens_per_step:
                return "think_tokens_per_step"
            if self.b.think_tokens is not None and self.think_tokens >= self.b.think_tokens:
                return "think_tokens"
        if self._over_wall():
            return "wall_time"
        return None

    def _cancelled(self) -> str | None:
        return "cancelled" if self.opts.cancel is not None and self.opts.cancel.is_set() else None

    # --- the context budget -------------------------------------------------------------------

    def _context(self, forced: str | None = None) -> tuple[int, int] | None:
        """(prompt tokens, context window) of the next step, None where the backend cannot tell (then
        a prompt past the window is the backend's error, which ends the path cleanly)."""
        measure = getattr(self.backend, "context", None)
        if measure is None:
            return None
        try:
            return measure(Prompt(self.msgs, self.tools, forced))
        except Exception:  # noqa: BLE001 - the step itself will meet (and report) what failed here
            return None

    def _step_room(self) -> int | None:
        """Tokens the next step may generate and still leave a forced answer its full budget (None:
        unknown). The forced answer's prompt is measured with the note it would carry."""
        ctx = self._context(f"({BUDGET_SENTENCES['context']}, so I answer now with what I have.)")
        if ctx is None:
            return None
        forced_prompt, window = ctx
        return window - forced_prompt - self.b.final_answer_tokens

    def _answer_room(self, forced: str) -> int | None:
        """Tokens a forced answer holding `forced` as its reasoning may generate (None: unknown)."""
        ctx = self._context(forced)
        return None if ctx is None else min(self.b.final_answer_tokens, ctx[1] - ctx[0])

    def _fit_result(self, obs_node: Node) -> None:
        """Cut the tool result just appended so that a forced answer still fits after it: one
        printed DataFrame must not take the conversation past the window. The trajectory keeps the
        whole result; the model reads its head and tail around a note of what was cut."""
        msg = self.msgs[-1]
        text = str(msg["content"])
        for _ in range(3):  # tokens per char vary: re-measure after each cut
            room = self._step_room()
            if room is None or room >= 0:
                return
            probe = self._context()
            if probe is None:
                return
            # the result's share of the prompt, in chars per token of this very result
            del self.msgs[-1]
            without = self._context()
            self.msgs.append(msg)
            result_tokens = probe[0] - (without[0] if without else probe[0])
            if result_tokens <= 0:
                return
            keep = int(len(text) * (result_tokens + room) / result_tokens) - MIN_CUT_CHARS // 4
            text = cut_middle(text, keep) if keep > 0 else CONTEXT_CUT_NOTE
            # a new message, not an edit: the backend's prompt cache knows messages by identity
            self.msgs[-1] = msg = {**msg, "content": text}
            obs_node.data["cut_to_context"] = len(text)
            if keep <= 0:
                return

    def _context_full(self, attempt: Node) -> Outcome:
        """End the path: not even a forced answer fits. The conversation and trajectory are kept."""
        used, window = self._context() or (0, 0)
        sentence = f"the context is full ({used:,} of {window:,} tokens); start a new conversation"
        self.t.add("error", attempt, sentence, {"context": [used, window]}, status="done")
        return Outcome("context_full", None, None)

    # --- one generation -----------------------------------------------------------------------

    def _step(
        self,
        attempt: Node,
        forced: str | None = None,
        forced_note: str | None = None,
        max_new: int | None = None,
    ) -> Step:
        """One generation; with `forced`, the turn starts with its thinking closed, holding that text;
        `max_new` caps its tokens below the budget's (the room the context has left)."""
        st = Step(attempt)
        if forced is not None:
            # The loop records the forced part itself: the message rebuilt from the events holds it,
            # and its node (which has no tokens) says why.
            st.events += [ThinkingDelta(forced), ThinkingEnd()]
            st.part = "answer"
            if forced_note:
                self.t.add("thinking", attempt, forced_note, {"forced": True}, status="done")
        options = self.opts.step_options(self.index, self.steps, self.temperature, forced is not None)
        if max_new is not None and max_new < options.max_new_tokens:
            options = dataclasses.replace(options, max_new_tokens=max_new)
        stream = None
        try:
            stream = self.backend.stream(Prompt(self.msgs, self.tools, forced), options, self.opts.cancel)
            for chunk in stream:
                target = apply_events(self.t, st, chunk.events)
                self._positions = attribute(self.t, st, chunk, target, self._positions)
                st.tokens += 1
                if st.thinking_open:
                    st.think_tokens += 1
                    self.think_tokens += 1
                cut = self._during_step(st) if forced is None else self._cancelled()
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
            closing = _close(stream)
            self._take_read_routing(attempt)
        apply_events(self.t, st, closing)
        self._positions = finish_step(self.t, st, self._positions)
        attach_generated_routing(self.t, attempt, self.backend)  # once every token has its node
        return st

    def _take_read_routing(self, attempt: Node) -> None:
        """Give the routing of the prompt tokens this step read (when the backend reports it) to the
        node they were: the question, the tool result(s) fed back, else the attempt (a forced
        answer's prompt). The results of a step with several calls all go to its first observation."""
        node, self._reader = self._reader or attempt, None
        attach_read_routing(self.t, node, self.backend)

    # --- tools --------------------------------------------------------------------------------

    def _execute(self, st: Step, msg_index: int) -> bool:
        """Run the step's calls in order; True when the tool-call budget is used up. A stop during a
        call (the executor sets the cancel event, or raises KeyboardInterrupt) runs no more calls."""
        limit = self.b.tool_calls
        for call in st.calls:
            if self.stopped:
                break
            ev = call.done
            if limit is not None and self.tool_calls >= limit:
                obs = _refused(ev.id, ev.name, f"not run: the tool-call budget ({limit} calls) is used up")
                obs.data["skipped"] = True
            elif call.parse_error is not None:
                obs = _refused(ev.id, ev.name, call.parse_error, kind="malformed_call")
                self.tool_calls += 1
            else:
                self.tool_calls += 1
                try:
                    obs = self.executor.execute(ToolCallRequest(ev.id, ev.name, ev.arguments, ev.parsed))
                except KeyboardInterrupt as exc:  # the stop button, where no cancel event was given
                    self.stopped = True
                    obs = getattr(exc, "observation", None) or _refused(
                        ev.id, ev.name, "the run was stopped while this call ran", kind="interrupted"
                    )
                except Exception as exc:  # noqa: BLE001 - an executor bug is the tool's failure, not the run's
                    sentence = f"the executor failed on tool '{ev.name}': {type(exc).__name__}: {exc}"
                    obs = _refused(ev.id, ev.name, sentence)
            obs_node = self.t.add_observation(call.node, obs)
            self._reader = self._reader or obs_node
            content = valid_text(obs.text)
            self.msgs.append({"role": "tool", "tool_call_id": ev.id, "name": ev.name, "content": content})
            if len(content) > MIN_CUT_CHARS:
                self._fit_result(obs_node)
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
            self.stopped = self.stopped or self._cancelled() is not None
        return limit is not None and self.tool_calls >= limit

    # --- an attempt ---------------------------------------------------------------------------

    def _attempt(self, attempt: Node) -> Outcome:
        while True:
            budget = self._before_step()
            if budget is not None:
                return self._force_final(attempt, budget, None)
            room = self._step_room()
            if room is not None and room < MIN_STEP_TOKENS:
                return self._force_final(attempt, "context", None)
            st = self._step(attempt, max_new=room)
            self.steps += 1
            if st.error is not None:
                return Outcome("error", None, None)
            if st.cut == "cancelled":
                return Outcome("cancelled", _text(st.answer), st.answer)
            if st.cut is not None:
                if st.thinking_open:
                    return self._force_final(attempt, st.cut, st)
                self.msgs.append(_without_calls(message_from_events(st.events)))
                return Outcome(f"budget:{st.cut}", _text(st.answer), st.answer)
            if st.end == "length" and not st.calls and st.thinking_open:
                capped = room is not None and room < self.b.new_tokens_per_step
                return self._force_final(attempt, "context" if capped else "new_tokens", st)
            self.msgs.append(message_from_events(st.events))
            if st.calls:
                budget_used = self._execute(st, len(self.msgs) - 1)
                if self.stopped:
                    return Outcome("cancelled", None, None)
                if budget_used:
                    return self._force_final(attempt, "tool_calls", None)
                continue
            return Outcome("answer" if st.end == "stop" else "length", _text(st.answer) or "", st.answer)

    def _force_final(self, attempt: Node, budget: str, partial: Step | None) -> Outcome:
        """Close the thinking for the model (keeping its partial reasoning) and let it answer; when
        the context has no room for that, end the path with a note saying so."""
        note = f"({BUDGET_SENTENCES.get(budget, budget)}, so I answer now with what I have.)"
        reasoning = (
            partial.thinking_text.rstrip() + "\n\n" if partial is not None and partial.thinking_text else ""
        )
        forced, room = reasoning + note, self._answer_room(reasoning + note)
        if reasoning and room is not None and room < MIN_ANSWER_TOKENS:
            forced, room = note, self._answer_room(note)  # the note alone may still fit
        if room is not None and room < min(self.b.final_answer_tokens, MIN_ANSWER_TOKENS):
            return self._context_full(attempt)
        st = self._step(attempt, forced=forced, forced_note=note, max_new=room)
        self.steps += 1
        end = f"budget:{budget}"
        if st.error is not None:
            return Outcome("error", None, None)
        if st.calls:
            sentence = (
                f"the model called tools after its budget ended ({len(st.calls)} calls); they were not run"
            )
            self.t.add("error", attempt, sentence, status="done")
            for call in st.calls:
                self.t.finish(call.node, "cancelled")
        self.msgs.append(_without_calls(message_from_events(st.events)))
        if st.cut == "cancelled":
            end = "cancelled"
        return Outcome(end, _text(st.answer) or "", st.answer)

    # --- verification and rollback ------------------------------------------------------------

    def run(self) -> tuple[Outcome, list[Check]]:
        n = 1
        attempt = self.t.add("attempt", self.path_node, data={"index": n})
        while True:
            out = self._attempt(attempt)
            checks: list[Check] = []
            if out.end_reason not in ("error", "cancelled", "context_full"):
                evidence = Evidence(
                    [r for _, r in self.records], self.msgs, self._said_before, bool(self.tools),
                    self._earlier_results, self._attempt_from,
                )
                checks = verify(self.t, self.opts, attempt, out, evidence)
            failed = [c for c in checks if c.status == "failed" and c.kind in self.opts.rollback_on]
            if not failed or n > self.opts.max_rollbacks or out.end_reason != "answer" or self._before_step():
                ok = out.end_reason == "answer" or out.end_reason.startswith("budget")
                self.t.finish(attempt, "done" if ok else "failed")
                return out, checks
            cut = rollback_cut(failed, self.records, self.msgs)
            del self.msgs[cut:]
            self.records = [(i, r) for i, r in self.records if i < cut]
            self._attempt_from = len(self.records)
            reason = "; ".join(f"{c.name}: {c.evidence}" for c in failed)
            self.msgs.append({"role": "user", "content": ROLLBACK_MESSAGE.format(reason=reason)})
            self.t.finish(attempt, "rolled_back", failed_checks=[c.id for c in failed])
            n += 1
            if self.opts.retry_temperature is not None:
                self.temperature = max(self.temperature, self.opts.retry_temperature)
            after = self.records[-1][1].observation_node if self.records else None
            attempt = self.t.add(
                "attempt",
                self.path_node,
                data={"index": n, "after": after, "reason": reason, "temperature": self.temperature},
            )


def attach_generated_routing(t: Trajectory, attempt: Node, backend: Backend) -> None:
    """Routing a server reported when the turn ended goes to the step's nodes by token position;
    the run then notes that it holds chosen experts only (servers send no weights)."""
    reported = backend.generated_routing()
    if reported is not None and len(reported) and t.fill_routing(attempt, reported):
        t.meta["routing_reported_by"] = "server"


def attach_read_routing(t: Trajectory, node: Node, backend: Backend) -> None:
    """Give the routing of the prompt tokens the backend last read (if it reports any) to `node`."""
    read = backend.read_routing()
    if read is not None and len(read):
        t.add_context(node, read)


def _close(stream: Any) -> list:
    """End a turn's stream; the events what was generated still completes (none if it never began)."""
    return stream.close() if stream is not None else []


def valid_text(text: str) -> str:
    """`text` with lone surrogates (a tool may print one) replaced, so the next prompt can be encoded."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


def _refused(call_id: str, name: str, sentence: str, kind: str = "tool_error") -> Observation:
    return Observation(call_id, name, f"error: {sentence}", ok=False, error_kind=kind, error=sentence)


def _text(node: Node | None) -> str | None:
    return None if node is None else node.text.strip()


def _without_calls(message: Message) -> Message:
    """The message without tool calls that were never answered (after a budget ended)."""
    message = dict(message)
    message.pop("tool_calls", None)
    return message
