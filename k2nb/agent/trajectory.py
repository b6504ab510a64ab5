"""The Trajectory: the tree of what one run did (think, call, observe, verify, answer), each node with
its token span, timings, status and the expert routing of its tokens, plus the run's checks.

Layout the loop builds (the tree accepts any parent, this is the convention views rely on):

    root                         the question
      path        (paths=N)      one per parallel path, data: seed, vote
        attempt   (rollback)     one per attempt, data: after (last good node), reason
          thinking | tool_call | verification | answer | error     steps, in order
            observation          child of the tool_call it answers

Routing per node is a `k2nb.routing.RoutingBuffer` (the project's one routing record, grown token
by token) and is serialised as base64 of the raw bytes, so `from_json(to_json())` gives back the
same bits. `Trajectory.routing(under)` gathers it into one `Routing` with each token's node.
"""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from k2nb.routing import Routing, RoutingBuffer

NodeKind = Literal[
    "root", "path", "attempt", "thinking", "tool_call", "observation", "verification", "answer", "error"
]
NODE_KINDS: tuple[str, ...] = NodeKind.__args__  # type: ignore[attr-defined]
NodeStatus = Literal["running", "done", "failed", "cancelled", "rolled_back"]
CheckStatus = Literal["pending", "passed", "failed"]
EventType = Literal["node_added", "node_updated", "node_finished", "check_added", "check_updated"]

FORMAT_VERSION = 1


# ---------------------------------------------------------------------------------------------
# nodes, checks, events


@dataclass(slots=True)
class Node:
    """One step of a run. `span` is [start, end) in the token stream of the node's path; `data`
    holds kind-specific JSON-compatible fields (tool_call: call_id, name, arguments; observation:
    the Observation record; ...)."""

    id: str
    kind: str
    parent: str | None
    text: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    status: str = "running"
    started_at: float = 0.0  # time.time() seconds
    finished_at: float | None = None
    span: tuple[int, int] | None = None
    routing: RoutingBuffer | None = None
    # Routing of the context the model *read* for this node, not generated: the prompt (root) or a
    # tool result fed back (observation). Kept apart from `routing`, which is generated tokens only.
    context: RoutingBuffer | None = None
    children: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at

    @property
    def n_tokens(self) -> int:
        return 0 if self.span is None else self.span[1] - self.span[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "parent": self.parent,
            "children": list(self.children),
            "text": self.text,
            "data": self.data,
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "span": list(self.span) if self.span is not None else None,
            "routing": self.routing.view().to_dict() if self.routing is not None else None,
            "context": self.context.view().to_dict() if self.context is not None else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Node:
        return cls(
            id=d["id"],
            kind=d["kind"],
            parent=d["parent"],
            text=d["text"],
            data=d["data"],
            status=d["status"],
            started_at=d["started_at"],
            finished_at=d["finished_at"],
            span=tuple(d["span"]) if d["span"] is not None else None,  # type: ignore[arg-type]
            routing=_buffer(d["routing"]),
            context=_buffer(d.get("context")),
            children=list(d["children"]),
        )


def _buffer(d: dict[str, Any] | None) -> RoutingBuffer | None:
    return None if d is None else RoutingBuffer.of(Routing.from_dict(d))


@dataclass(slots=True)
class Check:
    """A verdict about the run: built in (`args`, `grounded`, `used`, `self_verify`, `agreement`) or a
    user's.
    `node` is the node it concerns; `evidence` says why, in words a reader can check."""

    id: str
    name: str
    status: str = "pending"
    evidence: str = ""
    node: str | None = None
    kind: str = "user"
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "evidence": self.evidence,
            "node": self.node,
            "kind": self.kind,
            "data": self.data,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Check:
        return cls(**d)


@dataclass(slots=True)
class TrajectoryEvent:
    """What an observer receives. `delta` is the text appended by a node_updated, if any."""

    type: str
    trajectory: Trajectory
    node: Node | None = None
    check: Check | None = None
    delta: str = ""


Observer = Callable[[TrajectoryEvent], None]


def _jsonable(obj: Any) -> Any:
    """Fallback for json.dumps: numpy values become plain numbers and lists, the rest their repr."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    return repr(obj)


# ---------------------------------------------------------------------------------------------
# the tree


class Trajectory:
    """A run as a tree of `Node`s plus its `Check`s; mutations notify subscribed observers.

    Safe to read from another thread while the loop writes (mutations hold a lock; observers are
    called after it is released, in the writing thread).
    """

    def __init__(
        self,
        question: str = "",
        meta: dict[str, Any] | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ):
        self.meta: dict[str, Any] = dict(meta or {})
        self.nodes: dict[str, Node] = {}
        self.checks: list[Check] = []
        self.observer_errors: list[str] = []
        self._observers: list[Observer] = []
        self._lock = threading.RLock()
        self._next_node = 0
        self._next_check = 0
        self._clock = clock
        self.root = self._new("root", None, question)

    # --- building -----------------------------------------------------------------------------

    def _new(self, kind: str, parent: str | None, text: str, data: dict[str, Any] | None = None) -> Node:
        if kind not in NODE_KINDS:
            raise ValueError(f"node kind {kind!r} is not one of {', '.join(NODE_KINDS)}")
        node = Node(id=f"n{self._next_node}", kind=kind, parent=parent, text=text, data=dict(data or {}))
        node.started_at = self._clock()
        self._next_node += 1
        self.nodes[node.id] = node
        if parent is not None:
            self.nodes[parent].children.append(node.id)
        return node

    @property
    def question(self) -> str:
        return self.root.text

    def add(
        self,
        kind: str,
        parent: str | Node | None = None,
        text: str = "",
        data: dict[str, Any] | None = None,
        *,
        status: str = "running",
    ) -> Node:
        """A new node under `parent` (default: the root)."""
        with self._lock:
            pid = parent.id if isinstance(parent, Node) else (parent or self.root.id)
            if pid not in self.nodes:
                raise KeyError(f"trajectory has no node {pid!r}")
            node = self._new(kind, pid, text, data)
            node.status = status
            if status != "running":
                node.finished_at = node.started_at
        self._emit("node_added", node=node)
        return node

    def add_tool_call(
        self,
        parent: str | Node | None,
        call_id: str,
        name: str,
        arguments: str,
        parsed: dict[str, Any] | None = None,
    ) -> Node:
        """A tool_call node in the layout `to_notebook` and the views read (`text` = raw arguments)."""
        data = {"call_id": call_id, "name": name, "arguments": arguments, "parsed": parsed}
        return self.add("tool_call", parent, arguments, data)

    def add_observation(self, call_node: str | Node, observation: Any) -> Node:
        """The observation of a call, under its tool_call node; `observation` is an executor
        `Observation` (or its dict). Finished at once, failed when the call failed."""
        record = observation.to_dict() if hasattr(observation, "to_dict") else dict(observation)
        status = "done" if record.get("ok", True) else "failed"
        return self.add("observation", call_node, record.get("text", ""), record, status=status)

    def node(self, node_id: str | Node) -> Node:
        return node_id if isinstance(node_id, Node) else self.nodes[node_id]

    def append_text(self, node_id: str | Node, delta: str) -> None:
        if not delta:
            return
        with self._lock:
            node = self.node(node_id)
            node.text += delta
        self._emit("node_updated", node=node, delta=delta)

    def update(self, node_id: str | Node, *, text: str | None = None, **data: Any) -> Node:
        """Replace the text and/or merge keys into `data`."""
        with self._lock:
            node = self.node(node_id)
            if text is not None:
                node.text = text
            node.data.update(data)
        self._emit("node_updated", node=node)
        return node

    def add_token(
        self,
        node_id: str | Node,
        position: int,
        token_id: int,
        experts: Any = None,
        weights: Any = None,
        text: str = "",
    ) -> None:
        """Attribute one generated token (its text and routing) to a node; extends the node's span."""
        with self._lock:
            node = self.node(node_id)
            node.span = (
                (position, position + 1) if node.span is None else (min(node.span[0], position), position + 1)
            )
            if experts is not None:
                if node.routing is None:
                    shape = np.shape(experts)
                    node.routing = RoutingBuffer(shape[0], shape[1])
                node.routing.append(position, token_id, experts, weights)
            node.text += text
        self._emit("node_updated", node=node, delta=text)

    def fill_routing(self, under: str | Node, reported: Routing) -> int:
        """Give each node under `under` whose tokens have no routing yet the rows of `reported` at
        its span's positions (a server reports a turn's routing when the turn ends); returns the
        tokens given."""
        given = 0
        with self._lock:
            order = np.argsort(reported.positions, kind="stable")
            positions = reported.positions[order]
            for node in self.walk(self.node(under)):
                if node.span is None or node.routing is not None:
                    continue
                lo, hi = np.searchsorted(positions, node.span, side="left")
                if hi > lo:
                    rows = order[lo:hi]
                    node.routing = RoutingBuffer(reported.n_layers, reported.top_k, reported.moe_layer_ids,
                                                 reported.n_experts)
                    node.routing.extend(reported.positions[rows], reported.tokens[rows],
                                        reported.experts[rows], reported.weights[rows])
                    given += int(hi - lo)
        return given

    def add_context(self, node_id: str | Node, read: Routing) -> None:
        """Attribute the routing of context tokens the model read (not generated) to a node: the
        prompt to the root, a tool result fed back to its observation. Spans are not changed."""
        if len(read) == 0:
            return
        with self._lock:
            node = self.node(node_id)
            if node.context is None:
                node.context = RoutingBuffer(read.n_layers, read.top_k, read.moe_layer_ids, read.n_experts)
            node.context.extend(read.positions, read.tokens, read.experts, read.weights)
        self._emit("node_updated", node=node, delta="")

    def routing(self, under: str | Node | None = None, context: bool = False) -> Routing:
        """The routing of the tokens generated under `under` (default: the whole run), in tree order,
        each labelled with its node; with `context`, of the prompt tokens read instead (the
        question's, kept on the root, and the tool results fed back)."""
        start = self.root if under is None else self.node(under)
        nodes_in = list(self.walk(start))
        if context and start is not self.root:
            nodes_in.insert(0, self.root)
        parts = []
        for n in nodes_in:
            buf = n.context if context else n.routing
            if buf is not None and len(buf):
                r = buf.view()
                r.kinds, r.nodes = [n.kind] * len(r), [n.id] * len(r)
                parts.append(r)
        return Routing.concat(parts)

    def finish(self, node_id: str | Node, status: str = "done", **data: Any) -> Node:
        with self._lock:
            node = self.node(node_id)
            node.status = status
            node.finished_at = self._clock()
            node.data.update(data)
        self._emit("node_finished", node=node)
        return node

    def add_check(
        self,
        name: str,
        status: str = "pending",
        evidence: str = "",
        node: str | Node | None = None,
        kind: str = "user",
        **data: Any,
    ) -> Check:
        with self._lock:
            check = Check(
                id=f"c{self._next_check}",
                name=name,
                status=status,
                evidence=evidence,
                node=node.id if isinstance(node, Node) else node,
                kind=kind,
                data=data,
            )
            self._next_check += 1
            self.checks.append(check)
        self._emit("check_added", check=check)
        return check

    def update_check(
        self, check: Check, status: str | None = None, evidence: str | None = None, **data: Any
    ) -> Check:
        with self._lock:
            if status is not None:
                check.status = status
            if evidence is not None:
                check.evidence = evidence
            check.data.update(data)
        self._emit("check_updated", check=check)
        return check

    # --- observers ----------------------------------------------------------------------------

    def subscribe(self, observer: Observer) -> Callable[[], None]:
        """Call `observer(event)` on every change from now on; returns the unsubscribe function.

        An observer that raises does not stop the run: the error is kept in `observer_errors`
        and warned about once per observer.
        """
        self._observers.append(observer)
        return lambda: self._observers.remove(observer) if observer in self._observers else None

    def _emit(
        self, type_: str, node: Node | None = None, check: Check | None = None, delta: str = ""
    ) -> None:
        if not self._observers:
            return
        event = TrajectoryEvent(type_, self, node=node, check=check, delta=delta)
        for obs in list(self._observers):
            try:
                obs(event)
            except Exception as exc:  # noqa: BLE001 - a broken view must not end the run
                msg = f"observer {obs!r} raised {type(exc).__name__}: {exc}"
                if not any(e.startswith(f"observer {obs!r}") for e in self.observer_errors):
                    warnings.warn(msg, RuntimeWarning, stacklevel=2)
                self.observer_errors.append(msg)

    # --- reading ------------------------------------------------------------------------------

    def children(self, node_id: str | Node, kind: str | None = None) -> list[Node]:
        node = self.node(node_id)
        kids = [self.nodes[c] for c in node.children]
        return kids if kind is None else [k for k in kids if k.kind == kind]

    def walk(self, start: str | Node | None = None) -> Iterator[Node]:
        """Depth-first, children in creation order; iterative so 1,000-step runs do not recurse."""
        stack = [self.node(start) if start is not None else self.root]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(self.nodes[c] for c in reversed(node.children))

    def ancestors(self, node_id: str | Node) -> list[Node]:
        """From the root down to the node's parent."""
        out = []
        node = self.node(node_id)
        while node.parent is not None:
            node = self.nodes[node.parent]
            out.append(node)
        return out[::-1]

    def find(self, kind: str) -> list[Node]:
        return [n for n in self.nodes.values() if n.kind == kind]

    def checks_for(self, node_id: str | Node) -> list[Check]:
        nid = self.node(node_id).id
        return [c for c in self.checks if c.node == nid]

    @property
    def answer(self) -> str | None:
        """The chosen final answer: `meta['answer']` when the loop set one, else the last answer node."""
        if "answer" in self.meta:
            return self.meta["answer"]
        answers = [n for n in self.nodes.values() if n.kind == "answer"]
        return answers[-1].text if answers else None

    # --- serialisation ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "format": "k2nb.trajectory",
                "version": FORMAT_VERSION,
                "meta": self.meta,
                "root": self.root.id,
                "nodes": [n.to_dict() for n in self.nodes.values()],
                "checks": [c.to_dict() for c in self.checks],
            }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=_jsonable, ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trajectory:
        if d.get("format") != "k2nb.trajectory" or d.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"not a k2nb trajectory of version {FORMAT_VERSION} (format={d.get('format')!r}, "
                f"version={d.get('version')!r})"
            )
        t = cls.__new__(cls)
        t.meta = d["meta"]
        t.nodes = {n["id"]: Node.from_dict(n) for n in d["nodes"]}
        t.checks = [Check.from_dict(c) for c in d["checks"]]
        t.observer_errors = []
        t._observers = []
        t._lock = threading.RLock()
        t._clock = time.time
        t.root = t.nodes[d["root"]]
        t._next_node = 1 + max((int(k[1:]) for k in t.nodes if k[1:].isdigit()), default=-1)
        t._next_check = 1 + max((int(c.id[1:]) for c in t.checks if c.id[1:].isdigit()), default=-1)
        return t

    @classmethod
    def from_json(cls, text: str) -> Trajectory:
        return cls.from_dict(json.loads(text))

    def to_notebook(self) -> Any:
        """A real nbformat v4 notebook of the run (see `k2nb.agent.notebook_export`)."""
        from k2nb.agent.notebook_export import trajectory_to_notebook

        return trajectory_to_notebook(self)

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for n in self.nodes.values():
            counts[n.kind] = counts.get(n.kind, 0) + 1
        parts = ", ".join(f"{v} {k}" for k, v in counts.items())
        return f"<Trajectory {parts}; {len(self.checks)} checks>"
