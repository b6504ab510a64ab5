"""A user turn: N reasoning paths over the conversation, voted into one answer; conversations and
the one-shot `think()`.

Parallel paths share one prefill of the prompt (the backend's fork), run one after another, and are
voted by `k2nb.agent.checks.tally` with weights from their checks. `Conversation` carries messages,
the chosen path's backend session and the tool namespace from turn to turn.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from k2nb.agent.checks import Vote, normalise_answer, tally
from k2nb.agent.executor import Executor, LocalExecutor
from k2nb.agent.loop import PathRun, attach_read_routing
from k2nb.agent.options import ThinkOptions, with_overrides
from k2nb.agent.trajectory import Check, Node, Observer, Trajectory
from k2nb.agent.verdict import Summary, summary
from k2nb.backends.base import Backend, Prompt
from k2nb.routing import Routing

Message = dict[str, Any]


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


@dataclass
class ThinkResult:
    """What a run returns. `answer` is the chosen path's final answer (None if it ended without)."""

    answer: str | None
    trajectory: Trajectory
    end_reason: str  # "answer", "budget:<name>" (budget:context too), "length", "cancelled", "error",
    # "context_full" (not even a forced answer fit the model's context; an error node says so)
    paths: list[PathResult]
    chosen: int  # index into paths
    votes: list[Vote]
    messages: list[Message]  # this turn's messages of the chosen path (user message first)
    # the model's own answer when its checks failed and the run withheld it (`answer` then says so)
    withheld: str | None = None

    @property
    def checks(self) -> list[Check]:
        return self.trajectory.checks

    @property
    def routing(self) -> Routing:
        """The routing of the tokens the chosen path generated, each labelled with its node."""
        return self.trajectory.routing(self.paths[self.chosen].node)

    def read_routing(self) -> Routing:
        """The routing of the prompt tokens the chosen path read: the question and the tool results
        fed back, where the backend reported it (the engine does)."""
        return self.trajectory.routing(self.paths[self.chosen].node, context=True)

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

    @property
    def verdict(self) -> Summary:
        """What the checks established (`k2nb.agent.verdict`): "4 of 4 checks passed", what failed,
        or "checks could not establish anything"; never a claim that the answer is true."""
        return summary(self.trajectory)

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape: answer, end_reason, tool_calls, checks, verdict, votes, trajectory."""
        return {
            "answer": self.answer,
            "withheld": self.withheld,
            "end_reason": self.end_reason,
            "tool_calls": self.tool_calls,
            "checks": [c.to_dict() for c in self.checks],
            "verdict": self.verdict.to_dict(),
            "votes": [
                {"answer": v.answer, "key": v.key, "weight": v.weight, "paths": v.paths} for v in self.votes
            ],
            "trajectory": self.trajectory.to_dict(),
        }


_VOTING_CHECKS = ("grounded", "used", "sourced", "quoted", "unit", "self_verify", "user")
# The opening of a withheld answer (ThinkOptions.failed_checks = "withhold"), by which a reader tells
# it from an answer (code reads ThinkResult.withheld).
WITHHELD_LEAD = "No checked answer:"


def _weight(checks: Sequence[Check], end_reason: str, answer: str | None) -> float:
    """Vote weight of a path: one vote, one more per passed verification, a quarter per failure."""
    if not answer:
        return 0.0
    passed = sum(c.status == "passed" for c in checks if c.kind in _VOTING_CHECKS)
    failed = sum(c.status == "failed" for c in checks if c.kind in _VOTING_CHECKS)
    weight = (1.0 + passed) * (0.25**failed)
    return weight if end_reason == "answer" else weight * 0.5


def _run_path(
    t: Trajectory,
    i: int,
    backend: Backend,
    executor: Executor,
    messages: list[Message],
    opts: ThinkOptions,
    started: float,
) -> PathResult:
    node = t.add("path", None, data={"index": i + 1, "seed": opts.path_seed(i)})
    run = PathRun(t, node, i, backend, executor, messages, opts, started)
    out, checks = run.run()
    weight = _weight(checks, out.end_reason, out.answer)
    status = "done" if out.answer else "failed"
    t.finish(node, status, end_reason=out.end_reason, answer=out.answer, weight=weight)
    return PathResult(
        i, node, out.answer, out.answer_node, out.end_reason, run.msgs, checks, weight,
        backend, executor, run.tool_calls, run.think_tokens,
    )  # fmt: skip


def _vote(t: Trajectory, results: list[PathResult]) -> tuple[list[Vote], int]:
    """The votes of the paths and the index of the chosen one; several paths get an agreement check."""
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
            evidence = f"{len(top.paths)} of {len(answered)} paths answer {top.key!r} ({split})"
            t.add_check("paths agree", status, evidence, t.root, "agreement", share=share)
        else:
            t.add_check("paths agree", "failed", "no path produced an answer", t.root, "agreement")
    return votes, chosen


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
    n_paths = opts.paths
    t = trajectory if trajectory is not None else Trajectory(prompt)
    if trajectory is not None and not t.root.text:
        t.root.text = prompt
    t.meta.update({"paths": n_paths, "temperature": opts.path_temperature, "seed": opts.seed})
    started = time.monotonic()
    base = [*history, {"role": "user", "content": prompt}]
    if n_paths > 1:  # one prefill of the prompt, shared by every fork
        try:
            backend.prefill(Prompt(base, executor.tool_schemas()))
            attach_read_routing(t, t.root, backend)
        except Exception as exc:  # noqa: BLE001 - a failed prefill only loses the sharing
            t.meta["prefill_error"] = f"{type(exc).__name__}: {exc}"
    results: list[PathResult] = []
    for i in range(n_paths):
        b = backend if n_paths == 1 else backend.fork()
        fork = getattr(executor, "fork", None)
        ex = executor if n_paths == 1 or fork is None else fork()
        results.append(_run_path(t, i, b, ex, list(base), opts, started))
        if results[-1].end_reason == "cancelled":
            break
    votes, chosen = _vote(t, results)
    best = results[chosen]
    answer, withheld = best.answer, None
    failed = [c.name for c in best.checks if c.status == "failed" and c.kind in opts.rollback_on]
    if answer and failed and opts.failed_checks == "withhold":
        answer, withheld = withheld_answer(answer, failed), answer
        t.meta["withheld"] = withheld
    t.meta["answer"] = answer
    t.meta["end_reason"] = best.end_reason
    t.meta["chosen_path"] = best.node.id
    t.finish(t.root, "done" if best.answer else "failed")
    return ThinkResult(answer, t, best.end_reason, results, chosen, votes, best.messages[len(history) :],
                       withheld)


def withheld_answer(answer: str, failed: Sequence[str]) -> str:
    """What a run says instead of an answer whose checks failed: the answer, quoted, and what failed."""
    names = list(dict.fromkeys(failed))
    noun = "check" if len(names) == 1 else "checks"
    return f"{WITHHELD_LEAD} the answer \"{answer.strip()}\" failed the {noun} {', '.join(names)}."


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

    def ask(self, prompt: str, options: ThinkOptions | None = None, **overrides: Any) -> ThinkResult:
        """One turn. `options` replaces the conversation's; keyword overrides (ThinkOptions or
        Budgets fields, e.g. ``tool_calls=8``) apply on top."""
        check_prompt(prompt)
        opts = with_overrides(options or self.options, overrides)
        t = Trajectory(prompt, meta={"turn": len(self.results) + 1})
        for obs in self.observers:
            t.subscribe(obs)
        result = run_turn(self.backend, self.executor, self.messages, prompt, opts, trajectory=t)
        best = result.paths[result.chosen]
        # the chosen path's session and namespace carry the conversation on
        self.backend, self.executor = best.backend, best.executor
        untaken = result.end_reason == "context_full" and not any(
            m["role"] == "assistant" for m in result.messages
        )
        if not untaken:  # a question the full context could not take is not kept to grow it further
            self.messages.extend(result.messages)
        self.results.append(result)
        return result


def check_prompt(prompt: str) -> None:
    """Refuse a prompt that is not valid text (a lone surrogate, e.g. from a `{var}` holding one):
    no tokenizer can encode it, so it is named here instead of failing inside the backend."""
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(
            f"the prompt has a character that is not valid text ({prompt[e.start]!r} at position {e.start}, "
            "a lone surrogate); remove it or encode it first"
        ) from None


def think(
    prompt: str,
    model: Any = None,
    tools: Sequence[Any] | None = None,
    paths: int | None = None,
    *,
    backend: Backend | None = None,
    executor: Executor | None = None,
    namespace: dict[str, Any] | None = None,
    python: bool = True,
    observers: Sequence[Observer] = (),
    options: ThinkOptions | None = None,
    endpoint: str | None = None,
    served_model: str | None = None,
    api_key_env: str | None = None,
    **overrides: Any,
) -> ThinkResult:
    """Answer `prompt` with the reasoning loop; returns `.answer`, `.trajectory`, `.routing`.

    `model` is a loaded `K2Model` or a checkpoint folder; `backend=` replaces it (e.g. a
    `ScriptedBackend`). `tools` are `@tool` functions added to the built-in `python` tool
    (`python=False` leaves it out). `options` are the run's settings; other keywords are
    `ThinkOptions` / `Budgets` fields applied on top (`tool_calls=8`, `think_tokens=2000`,
    `temperature=0.7`, `checks=[...]`, ...). `endpoint` runs a served model instead (an
    OpenAI-compatible server: vLLM, SGLang, a hosted API; `served_model` as it is named there, the
    key in the environment variable `api_key_env`).
    """
    if backend is None and endpoint is not None:
        from k2nb.backends.openai import connect

        backend = connect(endpoint, served_model, api_key_env)
    elif backend is None:
        from k2nb.backends.engine import engine_backend

        backend = engine_backend(model)
    conv = Conversation(
        backend, executor, tools=tools or (), python=python, namespace=namespace, observers=observers
    )
    if paths is not None:
        overrides["paths"] = paths
    return conv.ask(prompt, options, **overrides)


__all__ = [
    "Conversation",
    "PathResult",
    "ThinkResult",
    "run_turn",
    "think",
]
