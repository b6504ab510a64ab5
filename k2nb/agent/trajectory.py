"""The Trajectory: the tree of what one run did (think, call, observe, verify, answer), each node with
its token span, timings, status and the expert routing of its tokens, plus the run's checks.

Layout the loop builds (the tree accepts any parent, this is the convention views rely on):

    root                         the question
      path        (paths=N)      one per parallel path, data: seed, vote
        attempt   (rollback)     one per attempt, data: after (last good node), reason
          thinking | tool_call | verification | answer | error     steps, in order
            observation          child of the tool_call it answers

Routing per node is stored as arrays — experts int32 [T, n_moe_layers, top_k], weights float32
[T, n_moe_layers, top_k], token ids and positions [T] — and serialised as base64 of the raw bytes,
so `from_json(to_json())` gives back the same bits.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

NodeKind = Literal[
    "root", "path", "attempt", "thinking", "tool_call", "observation", "verification", "answer", "error"
]
NODE_KINDS: tuple[str, ...] = NodeKind.__args__  # type: ignore[attr-defined]
NodeStatus = Literal["running", "done", "failed", "cancelled", "rolled_back"]
CheckStatus = Literal["pending", "passed", "failed"]
EventType = Literal["node_added", "node_updated", "node_finished", "check_added", "check_updated"]

FORMAT_VERSION = 1


# ---------------------------------------------------------------------------------------------
# routing of a node's tokens


def _pack(a: np.ndarray) -> dict[str, Any]:
    a = np.ascontiguousarray(a)
    return {
        "dtype": a.dtype.str,
        "shape": list(a.shape),
        "b64": base64.b64encode(a.tobytes()).decode("ascii"),
    }


def _unpack(d: dict[str, Any]) -> np.ndarray:
    raw = base64.b64decode(d["b64"])
    return np.frombuffer(raw, dtype=np.dtype(d["dtype"])).reshape(d["shape"]).copy()


class NodeRouting:
    """Expert ids and weights of each token of one node, in growable arrays (amortised O(1) append)."""

    __slots__ = ("_positions", "_tokens", "_experts", "_weights", "n")

    def __init__(self, n_layers: int, top_k: int, capacity: int = 16):
        self._positions = np.zeros(capacity, dtype=np.int64)
        self._tokens = np.zeros(capacity, dtype=np.int32)
        self._experts = np.zeros((capacity, n_layers, top_k), dtype=np.int32)
        self._weights = np.zeros((capacity, n_layers, top_k), dtype=np.float32)
        self.n = 0

    @property
    def n_layers(self) -> int:
        return self._experts.shape[1]

    @property
    def top_k(self) -> int:
        return self._experts.shape[2]

    @property
    def positions(self) -> np.ndarray:  # [T]
        return self._positions[: self.n]

    @property
    def tokens(self) -> np.ndarray:  # [T]
        return self._tokens[: self.n]

    @property
    def experts(self) -> np.ndarray:  # [T, L, K]
        return self._experts[: self.n]

    @property
    def weights(self) -> np.ndarray:  # [T, L, K]
        return self._weights[: self.n]

    def append(self, position: int, token_id: int, experts: Any, weights: Any) -> None:
        e = np.asarray(experts)
        w = np.asarray(weights)
        if e.shape != self._experts.shape[1:] or w.shape != self._weights.shape[1:]:
            raise ValueError(
                f"routing of token at position {position} has shapes {e.shape}/{w.shape}, expected "
                f"{self._experts.shape[1:]} (n_moe_layers, top_k)"
            )
        if self.n == len(self._tokens):
            self._grow()
        i = self.n
        self._positions[i] = position
        self._tokens[i] = token_id
        self._experts[i] = e
        self._weights[i] = w
        self.n += 1

    def extend(self, positions: Any, token_ids: Any, experts: Any, weights: Any) -> None:
        """Append T tokens at once: positions and ids ``[T]``, experts and weights ``[T, L, K]``."""
        e, w = np.asarray(experts), np.asarray(weights)
        n = len(e)
        if e.shape[1:] != self._experts.shape[1:] or w.shape != e.shape:
            raise ValueError(
                f"routing of {n} tokens has shapes {e.shape}/{w.shape}, expected [T, "
                f"{self.n_layers}, {self.top_k}] (n_moe_layers, top_k)"
            )
        while self.n + n > len(self._tokens):
            self._grow()
        sl = slice(self.n, self.n + n)
        self._positions[sl], self._tokens[sl] = positions, token_ids
        self._experts[sl], self._weights[sl] = e, w
        self.n += n

    def _grow(self) -> None:
        cap = max(2 * len(self._tokens), 16)
        for name in ("_positions", "_tokens", "_experts", "_weights"):
            old = getattr(self, name)
            new = np.zeros((cap, *old.shape[1:]), dtype=old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_layers": self.n_layers,
            "top_k": self.top_k,
            "positions": _pack(self.positions),
            "tokens": _pack(self.tokens),
            "experts": _pack(self.experts),
            "weights": _pack(self.weights),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NodeRouting:
        r = cls(d["n_layers"], d["top_k"], capacity=0)
        r._positions = _unpack(d["positions"])
        r._tokens = _unpack(d["tokens"])
        r._experts = _unpack(d["experts"])
        r._weights = _unpack(d["weights"])
        r.n = len(r._tokens)
        return r

    def __len__(self) -> int:
        return self.n


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
    routing: NodeRouting | None = None
    # Routing of the context the model *read* for this node, not generated: the prompt (root) or a
    # tool result fed back (observation). Kept apart from `routing`, which is generated tokens only.
    context: NodeRouting | None = None
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
            "routing": self.routing.to_dict() if self.routing is not None else None,
            "context": self.context.to_dict() if self.context is not None else None,
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
            routing=NodeRouting.from_dict(d["routing"]) if d["routing"] is not None else None,
            context=NodeRouting.from_dict(d["context"]) if d.get("context") is not None else None,
            children=list(d["children"]),
        )


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
                    node.routing = NodeRouting(shape[0], shape[1])
                node.routing.append(position, token_id, experts, weights)
            node.text += text
        self._emit("node_updated", node=node, delta=text)

    def add_context(
        self, node_id: str | Node, positions: Any, token_ids: Any, experts: Any, weights: Any
    ) -> None:
        """Attribute the routing of context tokens the model read (not generated) to a node: the
        prompt to the root, a tool result fed back to its observation. Spans are not changed."""
        if len(positions) == 0:
            return
        with self._lock:
            node = self.node(node_id)
            if node.context is None:
                shape = np.shape(experts)
                node.context = NodeRouting(shape[1], shape[2])
            node.context.extend(positions, token_ids, experts, weights)
        self._emit("node_updated", node=node, delta="")

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
