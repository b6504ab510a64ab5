"""One generation of a path, written into the trajectory: events become nodes, tokens get their node.

A `Step` collects what one assistant generation produced: its events (the assistant message is
rebuilt from them), the thinking / answer / tool-call nodes they opened, the calls to run, and
where the output is (thinking, after thinking, answer, calls) so budgets know what to count.
A token whose events opened no node yet (a marker, a call id) waits for the next node with text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from k2nb.agent.trajectory import Node, Trajectory
from k2nb.backends.base import StreamChunk
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


@dataclass(slots=True)
class Call:
    done: ToolCallDone
    node: Node
    parse_error: str | None = None


@dataclass(slots=True)
class Step:
    """What one generation produced."""

    attempt: Node
    events: list[Event] = field(default_factory=list)
    thinking: Node | None = None
    answer: Node | None = None
    call_nodes: dict[int, Node] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    part: str | None = None  # "thinking" | "after_thinking" | "answer" | "calls": where output is
    pending: list[StreamChunk] = field(default_factory=list)  # tokens waiting for their node
    last_node: Node | None = None
    think_tokens: int = 0
    tokens: int = 0
    end: str | None = None  # the End event's reason
    cut: str | None = None  # the budget (or "cancelled") that stopped the stream
    error: BaseException | None = None
    thinking_text: str = ""

    @property
    def thinking_open(self) -> bool:
        return self.part in (None, "thinking")


def apply_events(t: Trajectory, st: Step, events: list[Event]) -> Node | None:
    """Write `events` into the trajectory under the step's attempt; the node the last text went to."""
    target: Node | None = None
    attempt = st.attempt
    for i, ev in enumerate(events):
        st.events.append(ev)
        if isinstance(ev, ThinkingDelta):
            if st.thinking is None:
                st.thinking = t.add("thinking", attempt)
            t.append_text(st.thinking, ev.text)
            st.thinking_text += ev.text
            st.part, target = "thinking", st.thinking
        elif isinstance(ev, ThinkingEnd):
            if st.thinking_open:
                st.part = "after_thinking"
        elif isinstance(ev, AnswerDelta):
            _close_thinking(t, st)
            if st.answer is None:
                st.answer = t.add("answer", attempt)
            t.append_text(st.answer, ev.text)
            st.part, target = "answer", st.answer
        elif isinstance(ev, ToolCallStart):
            _close_thinking(t, st)
            node = t.add_tool_call(attempt, ev.id, ev.name, "", None)
            st.call_nodes[ev.index] = node
            st.part, target = "calls", node
        elif isinstance(ev, ToolCallArgsDelta):
            node = st.call_nodes.get(ev.index)
            if node is not None:
                t.append_text(node, ev.text)
                target = node
        elif isinstance(ev, ToolCallDone):
            nxt = events[i + 1] if i + 1 < len(events) else None
            target = _call_done(t, st, ev, nxt.message if isinstance(nxt, ParseError) else None)
        elif isinstance(ev, ParseError):
            prev = events[i - 1] if i > 0 else None
            if not isinstance(prev, ToolCallDone):  # a call's own error is on its node
                data = {"raw": ev.raw[:2000], "source": "parser"}
                t.add("error", attempt, ev.message, data, status="done")
        elif isinstance(ev, End):
            st.end = ev.reason
    if target is not None:
        st.last_node = target
    return target


def _call_done(t: Trajectory, st: Step, ev: ToolCallDone, problem: str | None) -> Node:
    node = st.call_nodes.get(ev.index) or t.add_tool_call(st.attempt, ev.id, ev.name, "", None)
    t.update(node, text=ev.arguments, call_id=ev.id, name=ev.name, arguments=ev.arguments, parsed=ev.parsed)
    if problem is not None:
        t.finish(node, "failed", parse_error=problem)
    else:
        t.finish(node)
    st.calls.append(Call(ev, node, problem))
    st.part = "calls"
    return node


def _close_thinking(t: Trajectory, st: Step) -> None:
    if st.thinking is not None and st.thinking.status == "running":
        t.finish(st.thinking)


def attribute(t: Trajectory, st: Step, chunk: StreamChunk | None, target: Node | None, position: int) -> int:
    """Give a token (and those waiting) to `target`; returns the next fallback position (for tokens
    the backend reports no position for)."""
    if chunk is not None and chunk.token_id is not None:
        st.pending.append(chunk)
    if target is None:
        return position
    for c in st.pending:
        at = c.position if c.position is not None else position
        position = at + 1
        t.add_token(target, at, c.token_id or 0, c.experts, c.weights)
    st.pending.clear()
    return position


def finish_step(t: Trajectory, st: Step, position: int) -> int:
    """After the stream: tokens still waiting go to the last node; open nodes are finished."""
    if st.pending and st.last_node is not None:
        position = attribute(t, st, None, st.last_node, position)
    for node in (st.thinking, st.answer):
        if node is not None and node.status == "running":
            t.finish(node)
    if st.answer is not None and st.calls:
        t.update(st.answer, interim=True)  # text before tool calls is not the final answer
    return position
