"""`k2nb eval`: k2-nano on the held-out curriculum, through the real reasoning loop and `python` tool.

Every problem of ``curriculum.heldout_problems(limit)`` (families in round-robin, unseen phrasings,
number tuples and combinations) is run under four conditions, each with the problem's ``setup`` code
run first in the tool's namespace (the DataFrame or list the question is about):

- ``tools``     greedy, one path, the python tool: accuracy, valid tool calls, verification;
- ``injected``  the same, but the first python call fails (`FailFirstCall`): recovery;
- ``no_tools``  greedy, one path, no tool declared (``python=False``): what the model knows alone;
- ``paths``     ``max(paths)`` sampled paths at temperature 1.0, voted by the loop's verified voting
                (a path's vote weighs 1 + its passed checks, ×¼ per failed check).

Accuracy vs paths uses the first k paths of the ``paths`` run for every k: the loop seeds path i with
``seed + 1000·i`` and runs each path on its own fork of the prompt's session, so the first k paths of
an 8-path run are the paths a k-path run would sample; voting them is what ``paths=k`` would return.
One 8-path run per problem thus gives the whole curve at 8/15 of the cost of separate runs.

Definitions (the report states them too):

- correct: ``curriculum.answer_matches`` — the first number after "The answer is" within 0.01
  absolute or 1e-4 relative of the answer Python computed (outputs are printed with round(..., 2));
  strings (dates, words) must match exactly, quotes around them aside ('trepxe' = trepxe).
- valid tool call: parsed by the chat parser without error, names a declared tool, and its
  arguments are a JSON object with a string ``code`` (the python tool's schema).
- verification step: a python call of the chosen path that ran without error after an earlier
  successful call, and (i) checks — an ``assert`` or an output of True/False — or (ii) recomputes —
  different code whose output's last number (or whole text) equals an earlier successful output's,
  or (iii) is announced as a check by the reasoning just before it (the loop's ``is_verification``
  word rule). The report counts which rule fired.
- recovery: among runs whose first python call was failed by the injection, the share that called
  python again afterwards, got a successful result and reached the correct answer.

The expert-specialisation summary classifies every generated token of the ``tools`` runs by its
text (from the tokenizer, via the backend's stream) and its trajectory channel: ``tool_marker`` (the
five tool-call markers), ``marker`` (other K2 markers: think, im_end), ``digit``, ``code`` (other
tokens of a tool call: the call id and JSON arguments), ``word`` (tokens with a letter, in thinking
or the answer), ``other`` (punctuation, spaces). Per class and MoE layer it lists the experts chosen
most, with their lift over the expert's overall share; per layer, the load balance max/mean.

Heavy imports (torch, the agent) happen inside functions: ``register`` runs on every ``k2nb`` call.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import json
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from k2nb.nano import curriculum
from k2nb.nano.cli_args import add_continue_args

if TYPE_CHECKING:
    from k2nb.agent import Backend, Budgets, Executor, Observation, ThinkResult, ToolCallRequest
    from k2nb.agent.backend import GenerationOptions, Prompt, TokenChunk
    from k2nb.agent.trajectory import Node, Trajectory

# 27 problems = 3 per family, as the model card's quick_eval. On 2 CPU cores each problem costs about
# 11 loop runs (3 greedy + 8 sampled paths); see docs/k2-nano.md for the measured wall time.
DEFAULT_LIMIT = 27
DEFAULT_PATHS = (1, 2, 4, 8)
SCALING_TEMPERATURE = 1.0
CONDITIONS = ("tools", "injected", "no_tools", "paths")
TOLERANCE = (
    f"numbers: within {curriculum.ABS_TOL} absolute or {curriculum.REL_TOL} relative of the answer "
    "(first number after 'The answer is'); strings: exact, surrounding quotes ignored"
)
TOOL_MARKERS = frozenset({
    "<|tool_calls_section_begin|>", "<|tool_calls_section_end|>", "<|tool_call_begin|>",
    "<|tool_call_argument_begin|>", "<|tool_call_end|>",
    "<|tool_call_section_begin|>", "<|tool_call_section_end|>",  # the singular variants K2 also emits
})
TOKEN_CLASSES = ("digit", "word", "code", "tool_marker", "marker", "other")
# Issue 4's targets on the held-out set: (report field, minimum).
TARGETS = {
    "accuracy": 0.95,
    "valid_tool_call_rate": 0.995,
    "verification_rate": 0.95,
    "recovery_rate": 0.80,
}


def eval_budgets(paths: int = 1) -> Budgets:
    """Budgets of one eval run. A curriculum step is < 100 tokens; the limits only stop a sampled
    path that rambles or loops on tool calls, so the eval cannot run away. The loop's wall budget
    covers all paths of a run, hence 60 s per path."""
    from k2nb.agent import Budgets

    return Budgets(think_tokens_per_step=192, think_tokens=1024, tool_calls=8, wall_s=60.0 * paths, steps=12,
                   new_tokens_per_step=320, final_answer_tokens=48)


# ---------------------------------------------------------------------------------------------
# The injected tool failure


class FailFirstCall:
    """An Executor that fails the first ``python`` call and runs every later one through ``inner``.

    ``mode="nameerror"`` (default): the model's code is run by the real python tool on a scratch copy
    of the namespace from which the first name the code reads is removed (from the globals and, for
    a builtin such as ``print``, from the builtins), so the observation is a genuine NameError
    traceback in the tool's own format, and the real namespace is untouched. ``mode="transient"``: the
    code is not run and the observation says the kernel was busy. Forks (parallel paths) fail their
    own first call.
    """

    def __init__(self, inner: Executor, mode: str = "nameerror"):
        if mode not in ("nameerror", "transient"):
            raise ValueError(f"inject mode must be 'nameerror' or 'transient', not {mode!r}")
        self.inner, self.mode = inner, mode
        self.failed: str | None = None  # the call id that was failed

    def tool_schemas(self) -> list[dict[str, Any]]:
        return self.inner.tool_schemas()

    def fork(self) -> FailFirstCall:
        fork = getattr(self.inner, "fork", None)
        return FailFirstCall(fork() if fork is not None else self.inner, self.mode)

    def execute(self, call: ToolCallRequest) -> Observation:
        if self.failed is not None or call.name != "python":
            return self.inner.execute(call)
        code = (call.parsed or {}).get("code")
        if not isinstance(code, str):
            return self.inner.execute(call)  # a malformed call fails on its own; inject on a real one
        self.failed = call.id
        obs = self._nameerror(call, code) if self.mode == "nameerror" else None
        if obs is None:
            from k2nb.agent import Observation

            sentence = "the python kernel was busy and the code did not run; run it again"
            obs = Observation(call.id, call.name, f"error: {sentence}", ok=False, error_kind="tool_error",
                              error=sentence)
        obs.data["injected"] = self.mode
        return obs

    def _nameerror(self, call: ToolCallRequest, code: str) -> Observation | None:
        from k2nb.agent.executor import python_observation
        from k2nb.agent.python_tool import PythonTool

        name = first_loaded_name(code)
        namespace = getattr(self.inner, "namespace", None)
        if name is None or namespace is None:
            return None
        scratch = dict(namespace)
        scratch.pop(name, None)
        if hasattr(builtins, name):
            scratch["__builtins__"] = {k: v for k, v in vars(builtins).items() if k != name}
        tool = PythonTool(scratch)
        result = tool.run(code)
        if result.ename != "NameError":  # the name was bound before it was read: fall back
            return None
        return python_observation(call, result, tool.model_text(result))


def first_loaded_name(code: str) -> str | None:
    """The first name (in source order) that ``code`` reads without having bound it first."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    bound: set[str] = set()
    nodes = sorted((n for n in ast.walk(tree) if isinstance(n, (ast.Name, ast.alias))),
                   key=lambda n: (getattr(n, "lineno", 0), getattr(n, "col_offset", 0)))
    for n in nodes:
        if isinstance(n, ast.alias):
            bound.add((n.asname or n.name).split(".")[0])
        elif isinstance(n.ctx, ast.Store):
            bound.add(n.id)
        elif n.id not in bound:
            return n.id
    return None


# ---------------------------------------------------------------------------------------------
# Token texts, for the expert-specialisation summary


class TextRecordingBackend:
    """Passes a Backend through and remembers each generated token id's text (special tokens arrive
    as their marker strings). Forks share the table. The loop itself is unchanged."""

    def __init__(self, inner: Backend, texts: dict[int, str] | None = None):
        self.inner = inner
        self.texts: dict[int, str] = texts if texts is not None else {}
        if hasattr(inner, "prefill"):
            self.prefill = inner.prefill  # the loop shares one prefill among forks when it exists

    def stream(self, prompt: Prompt, options: GenerationOptions, cancel: Any = None) -> Iterator[TokenChunk]:
        for chunk in self.inner.stream(prompt, options, cancel):
            if chunk.token_id is not None and chunk.text:
                self.texts[chunk.token_id] = chunk.text
            yield chunk

    def fork(self) -> TextRecordingBackend:
        return TextRecordingBackend(self.inner.fork(), self.texts)


def classify_token(text: str, channel: str) -> str:
    """One of TOKEN_CLASSES for a generated token's text and the trajectory node kind it went to."""
    from k2nb.engine.chat import PARSER_MARKERS

    if text in TOOL_MARKERS:
        return "tool_marker"
    if text in PARSER_MARKERS or (text.startswith("<|") and text.endswith("|>")):
        return "marker"
    stripped = text.strip()
    if stripped and stripped.isdigit():
        return "digit"
    if channel == "tool_call":
        return "code"
    if any(ch.isalpha() for ch in text):
        return "word"
    return "other"


@dataclass
class RoutingTally:
    """Expert selections per token class and MoE layer, accumulated over runs."""

    n_experts: int
    layers: list[int]  # the model's MoE layer ids, for labels
    counts: dict[str, Any] = field(default_factory=dict)  # class -> [L, E] int array
    tokens: dict[str, int] = field(default_factory=dict)

    def add(self, result: ThinkResult, texts: dict[int, str]) -> None:
        import numpy as np

        r = result.routing
        if len(r) == 0:
            return
        for tok, experts, kind in zip(r.tokens.tolist(), r.experts, r.kinds, strict=True):
            cls = classify_token(texts.get(int(tok), ""), kind)
            if cls not in self.counts:
                self.counts[cls] = np.zeros((experts.shape[0], self.n_experts), dtype=np.int64)
            c = self.counts[cls]  # [L, E]
            for layer in range(experts.shape[0]):
                c[layer, experts[layer]] += 1
            self.tokens[cls] = self.tokens.get(cls, 0) + 1

    def summary(self, top: int = 3) -> dict[str, Any]:
        import numpy as np

        if not self.counts:
            return {"n_experts": self.n_experts, "layers": self.layers, "classes": {}, "load_balance": []}
        total = sum(self.counts.values())  # [L, E]
        overall = total / np.maximum(total.sum(axis=1, keepdims=True), 1)  # [L, E] share of selections
        classes: dict[str, Any] = {}
        for cls in TOKEN_CLASSES:
            if cls not in self.counts:
                continue
            c = self.counts[cls]
            share = c / np.maximum(c.sum(axis=1, keepdims=True), 1)  # [L, E]
            per_layer = []
            for li in range(c.shape[0]):
                order = np.argsort(-c[li], kind="stable")[:top]
                per_layer.append({
                    "layer": self.layers[li] if li < len(self.layers) else li,
                    "top": [{"expert": int(e), "share": round(float(share[li, e]), 4),
                             # lift: how much more often the class picks it than tokens overall do
                             "lift": round(float(share[li, e] / overall[li, e]), 2)}
                            for e in order if c[li, e] > 0],
                })
            classes[cls] = {"tokens": self.tokens[cls], "layers": per_layer}
        balance = []
        for li in range(total.shape[0]):
            mean = total[li].sum() / self.n_experts
            balance.append({"layer": self.layers[li] if li < len(self.layers) else li,
                            "max_over_mean": round(float(total[li].max() / mean), 3) if mean else None,
                            "unused_experts": int((total[li] == 0).sum())})
        return {"n_experts": self.n_experts, "layers": self.layers, "classes": classes,
                "load_balance": balance}


# ---------------------------------------------------------------------------------------------
# Reading a run


@dataclass(slots=True)
class CallView:
    """One tool call of the chosen path, as the metrics see it."""

    name: str
    code: str | None
    valid: bool
    ran: bool  # an observation exists (calls cut by a budget never ran)
    ok: bool
    output: str
    thinking_before: str
    injected: bool


def chosen_calls(result: ThinkResult) -> list[CallView]:
    """The chosen path's tool calls in order (all its attempts), with the reasoning just before each."""
    t = result.trajectory
    path = result.paths[result.chosen].node
    calls: list[CallView] = []
    for attempt in t.children(path, "attempt"):
        thinking = ""
        for node in t.children(attempt):
            if node.kind == "thinking":
                thinking = node.text
            elif node.kind == "tool_call":
                calls.append(_call_view(t, node, thinking))
    return calls


def _call_view(t: Trajectory, node: Node, thinking: str) -> CallView:
    parsed = node.data.get("parsed")
    name = node.data.get("name") or ""
    code = parsed.get("code") if isinstance(parsed, dict) else None
    declared = name in t.meta.get("eval_tools", ("python",))
    valid = not node.data.get("parse_error") and declared and isinstance(code, str)
    obs = next(iter(t.children(node, "observation")), None)
    return CallView(
        name, code if isinstance(code, str) else None, bool(valid), obs is not None,
        bool(obs is not None and obs.data.get("ok")), (obs.text if obs is not None else "").strip(), thinking,
        bool(obs is not None and obs.data.get("data", {}).get("injected")),
    )


_LAST_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")


def _same_value(a: str, b: str) -> bool:
    if a == b:
        return True
    na, nb = _LAST_NUMBER.findall(a.replace(",", "")), _LAST_NUMBER.findall(b.replace(",", ""))
    if not na or not nb:
        return False
    return math.isclose(float(na[-1]), float(nb[-1]), rel_tol=curriculum.REL_TOL, abs_tol=curriculum.ABS_TOL)


def verification_rule(calls: Sequence[CallView]) -> str | None:
    """"check", "recompute" or "announced" for the first verification step (module docstring), or None."""
    from k2nb.agent.checks import _VERIFY_WORDS

    earlier: list[CallView] = []
    for c in calls:
        if not (c.name == "python" and c.ran and c.ok):
            continue
        if earlier:
            if (c.code and re.search(r"\bassert\b", c.code)) or c.output in ("True", "False"):
                return "check"
            if c.output and any(c.code != e.code and _same_value(c.output, e.output) for e in earlier):
                return "recompute"
            last_sentence = c.thinking_before.strip().split("\n")[-1][-200:]
            if _VERIFY_WORDS.search(last_sentence):
                return "announced"
        earlier.append(c)
    return None


def is_correct(problem: curriculum.Problem, answer: str | None) -> bool:
    return bool(answer) and curriculum.answer_matches(problem.answer, answer or "")


# ---------------------------------------------------------------------------------------------
# Running


BackendFactory = Callable[[int, curriculum.Problem, str], "Backend"]


def run_problem(problem: curriculum.Problem, backend: Backend, *, condition: str = "tools", paths: int = 1,
                temperature: float | None = None, seed: int = 0, inject: str = "nameerror",
                budgets: Budgets | None = None, extra_tools: Sequence[Any] = ()) -> ThinkResult:
    """One problem under one condition through ``run_turn``: setup code first, then the question with
    the problem's earlier messages (system prompt) as history. ``extra_tools`` are declared beside
    ``python`` (as a user's own tools would be) in the conditions that have tools."""
    from k2nb.agent import LocalExecutor, ThinkOptions, run_turn
    from k2nb.agent.trajectory import Trajectory

    namespace: dict[str, Any] = {"__name__": "__main__"}
    if problem.setup:
        exec(problem.setup, namespace)
    tools = list(extra_tools) if condition != "no_tools" else []
    executor: Any = LocalExecutor(tools, python=condition != "no_tools", namespace=namespace)
    if condition == "injected":
        executor = FailFirstCall(executor, inject)
    *history, question = problem.prompt_messages
    opts = ThinkOptions(budgets=budgets or eval_budgets(paths), paths=paths, seed=seed,
                        temperature=0.0 if temperature is None else temperature)
    t = Trajectory(question["content"], meta={"eval_tools": [s["function"]["name"]
                                                             for s in executor.tool_schemas()]})
    return run_turn(backend, executor, history, question["content"], opts, trajectory=t)


def vote_prefix(result: ThinkResult, k: int) -> str | None:
    """The answer ``paths=k`` would return: the loop's tally over the first k paths."""
    from k2nb.agent.checks import tally

    votes = tally((r.index, r.answer, r.weight) for r in result.paths[:k])
    if not votes:
        return None
    first = votes[0].paths[0]
    return next(r.answer for r in result.paths if r.index == first)


@dataclass(slots=True)
class RunRecord:
    """One (problem, condition) run, as kept in the report."""

    problem: int
    family: str
    condition: str
    answer: str | None
    expected: Any
    correct: bool
    end_reason: str
    tool_calls: int
    valid_tool_calls: int
    verification: str | None
    injected: bool = False
    recovered: bool = False
    retried: bool = False
    path_answers: list[str | None] = field(default_factory=list)
    path_correct: list[bool] = field(default_factory=list)
    vote_correct: dict[int, bool] = field(default_factory=dict)
    wall_s: float = 0.0
    kind: str = ""  # the sub-family, e.g. "percent.discount"


def record_of(i: int, problem: curriculum.Problem, condition: str, result: ThinkResult, wall_s: float,
              ks: Sequence[int] = ()) -> RunRecord:
    calls = chosen_calls(result)
    rec = RunRecord(i, problem.family, condition, result.answer, problem.answer,
                    is_correct(problem, result.answer), result.end_reason, len(calls),
                    sum(c.valid for c in calls), verification_rule(calls), wall_s=round(wall_s, 3),
                    kind=problem.kind)
    if condition == "injected":
        failed_at = next((j for j, c in enumerate(calls) if c.injected), None)
        rec.injected = failed_at is not None
        after = calls[failed_at + 1:] if failed_at is not None else []
        rec.retried = any(c.name == "python" for c in after)
        rec.recovered = rec.retried and any(c.ok for c in after) and rec.correct
    if condition == "paths":
        rec.path_answers = [r.answer for r in result.paths]
        rec.path_correct = [is_correct(problem, r.answer) for r in result.paths]
        rec.vote_correct = {k: is_correct(problem, vote_prefix(result, k)) for k in ks}
    return rec


def evaluate(problems: Sequence[curriculum.Problem], backend_for: BackendFactory, *,
             paths: Sequence[int] = DEFAULT_PATHS, seed: int = 0, inject: str = "nameerror",
             conditions: Sequence[str] = CONDITIONS, n_experts: int = 0, moe_layers: Sequence[int] = (),
             budgets: Budgets | None = None, progress: bool = True, model: str = "",
             split: str = "heldout", extra_tools: Sequence[Any] = ()) -> dict[str, Any]:
    """Run every problem under every condition and return the report (see `summarise`).
    ``backend_for(i, problem, condition)`` gives a fresh Backend (a fresh engine session) per run."""
    from tqdm.auto import tqdm

    ks = sorted(set(int(k) for k in paths))
    started = time.monotonic()
    records: list[RunRecord] = []
    texts: dict[int, str] = {}
    tally = RoutingTally(n_experts, list(moe_layers))
    walls = {c: 0.0 for c in conditions}
    bar = tqdm(total=len(problems) * len(conditions), desc="k2nb eval", unit="run", disable=not progress)
    for condition in conditions:
        for i, p in enumerate(problems):
            bar.set_postfix_str(f"{condition} {p.family}")
            backend = TextRecordingBackend(backend_for(i, p, condition), texts)
            multi = condition == "paths"
            t0 = time.monotonic()
            result = run_problem(p, backend, condition=condition, paths=max(ks) if multi else 1,
                                 temperature=SCALING_TEMPERATURE if multi else 0.0,
                                 seed=seed * 100_003 + i, inject=inject, budgets=budgets,
                                 extra_tools=extra_tools)
            dt = time.monotonic() - t0
            walls[condition] += dt
            records.append(record_of(i, p, condition, result, dt, ks if multi else ()))
            if condition == "tools":
                if not tally.n_experts:
                    tally.n_experts = _n_experts_seen(result)
                tally.add(result, texts)
            bar.update(1)
    bar.close()
    settings = {"model": model, "split": split, "limit": len(problems), "paths": ks, "seed": seed,
                "inject": inject, "extra_tools": [t.name for t in extra_tools],
                "scaling_temperature": SCALING_TEMPERATURE, "greedy_temperature": 0.0,
                "tolerance": TOLERANCE, "budgets": asdict(budgets or eval_budgets()),
                "wall_s_budget_per_path": (budgets or eval_budgets()).wall_s}
    return summarise(records, tally, settings, walls, time.monotonic() - started)


def _n_experts_seen(result: ThinkResult) -> int:
    r = result.routing
    return int(r.experts.max()) + 1 if len(r) else 0


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 6) if den else None  # 6 places: the text report rounds once, not twice


def summarise(records: Sequence[RunRecord], tally: RoutingTally, settings: dict[str, Any],
              walls: dict[str, float], wall_s: float) -> dict[str, Any]:
    """The report: every metric with its numerator and denominator, per-family accuracy, the
    scaling curve, the expert summary, the targets, timings and the per-run records."""
    by = {c: [r for r in records if r.condition == c] for c in CONDITIONS}
    tools, injected, no_tools, multi = by["tools"], by["injected"], by["no_tools"], by["paths"]
    n_calls = sum(r.tool_calls for r in tools)
    n_valid = sum(r.valid_tool_calls for r in tools)
    rules = {rule: sum(r.verification == rule for r in tools) for rule in ("check", "recompute", "announced")}
    n_injected = sum(r.injected for r in injected)
    solved = {r.problem for r in tools if r.correct}
    hit_solved = [r for r in injected if r.injected and r.problem in solved]
    all_valid = sum(r.valid_tool_calls == r.tool_calls for r in tools)
    ks = settings["paths"]
    report: dict[str, Any] = {
        "settings": settings,
        "n_problems": len({r.problem for r in records}),
        "accuracy": _rate(sum(r.correct for r in tools), len(tools)),
        "accuracy_by_family": {
            fam: _rate(sum(r.correct for r in tools if r.family == fam), sum(r.family == fam for r in tools))
            for fam in dict.fromkeys(r.family for r in tools)
        },
        # which sub-families the misses come from, most first: where to look in the traces
        "misses_by_kind": {c: dict(Counter(r.kind for r in by[c] if not r.correct).most_common())
                           for c in ("tools", "injected") if by[c]},
        "valid_tool_call_rate": _rate(n_valid, n_calls),
        # one runaway run can emit dozens of broken calls, so say how many runs had only valid ones
        "tool_calls": {"total": n_calls, "valid": n_valid,
                       "per_run": round(n_calls / len(tools), 3) if tools else None,
                       "runs_all_valid": _rate(all_valid, len(tools))},
        "verification_rate": _rate(sum(r.verification is not None for r in tools), len(tools)),
        "verification_rules": rules,
        "recovery_rate": _rate(sum(r.recovered for r in injected), n_injected),
        "recovery": {"runs": len(injected), "injected": n_injected,
                     "retried": sum(r.retried for r in injected),
                     "recovered": sum(r.recovered for r in injected),
                     "accuracy": _rate(sum(r.correct for r in injected), len(injected)),
                     # recovery is capped by accuracy; this separates "cannot recover" from "cannot solve"
                     "recovered_when_solved": _rate(sum(r.recovered for r in hit_solved), len(hit_solved))},
        "accuracy_no_tools": _rate(sum(r.correct for r in no_tools), len(no_tools)),
        "scaling": {
            "temperature": settings["scaling_temperature"],
            "paths": ks,
            "accuracy": [_rate(sum(r.vote_correct.get(k, False) for r in multi), len(multi)) for k in ks],
            "pass_at_k": [_rate(sum(any(r.path_correct[:k]) for r in multi), len(multi)) for k in ks],
            "mean_path_accuracy": _rate(sum(sum(r.path_correct) for r in multi),
                                        sum(len(r.path_correct) for r in multi)),
        },
        "end_reasons": {c: _count(r.end_reason for r in by[c]) for c in CONDITIONS if by[c]},
        "experts": tally.summary(),
        "wall_s": round(wall_s, 1),
        "wall_s_by_condition": {c: round(w, 1) for c, w in walls.items()},
        "definitions": {
            "correct": TOLERANCE,
            "valid_tool_call": "parsed without error, names a declared tool, arguments a JSON object with "
                               "a string 'code'",
            "verification": "a successful python call after an earlier successful one that (i) asserts or "
                            "outputs True/False, (ii) recomputes: other code, same output value, or (iii) "
                            "is announced as a check by the reasoning just before it",
            "recovery": "first python call failed by injection; the model called python again, got a "
                        "successful result and answered correctly (over runs where the injection fired); "
                        "recovered_when_solved: the same over problems the tools run answered correctly",
            "scaling": "first k of the max(paths) sampled paths, voted with the loop's verified weights",
        },
    }
    acc = report["scaling"]["accuracy"]
    report["targets"] = {
        name: {"target": goal, "value": report[name],
               "met": report[name] is not None and report[name] >= goal}
        for name, goal in TARGETS.items()
    }
    if len(acc) >= 2 and acc[0] is not None and acc[-1] is not None:
        report["targets"]["voting_beats_one_path"] = {"target": f"accuracy@{ks[-1]} > accuracy@{ks[0]}",
                                                      "value": [acc[0], acc[-1]], "met": acc[-1] > acc[0]}
    report["runs"] = [asdict(r) for r in records]
    return report


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out


# ---------------------------------------------------------------------------------------------
# Output


def plot_scaling(report: dict[str, Any], path: Path) -> Path:
    """The test-time-scaling curve: voted accuracy and pass@k vs paths, greedy and no-tools lines."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    s = report["scaling"]
    ks = s["paths"]
    fig = Figure(figsize=(6, 4), dpi=120)
    ax = fig.add_subplot()
    ax.plot(ks, [a if a is not None else float("nan") for a in s["accuracy"]], "o-", label="voted answer")
    ax.plot(ks, [a if a is not None else float("nan") for a in s["pass_at_k"]], "s--", alpha=0.7,
            label="any path correct (pass@k)")
    if report.get("accuracy") is not None:
        ax.axhline(report["accuracy"], color="green", ls=":",
                   label=f"greedy, 1 path ({report['accuracy']:.0%})")
    if report.get("accuracy_no_tools") is not None:
        ax.axhline(report["accuracy_no_tools"], color="gray", ls=":",
                   label=f"no tools ({report['accuracy_no_tools']:.0%})")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"reasoning paths (temperature {s['temperature']:g}, verified voting)")
    ax.set_ylabel(f"{split_words(report)} accuracy")
    ax.set_title(f"k2-nano test-time scaling ({report['n_problems']} {split_words(report)} problems)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    return path


def split_words(report: dict[str, Any]) -> str:
    """How the report's problem set is named in its text and plot."""
    return "held-out" if report["settings"].get("split", "heldout") == "heldout" else "training-phrasing"


def has_scaling(report: dict[str, Any]) -> bool:
    """Whether the sampled multi-path runs ran (not under ``--no-scaling``)."""
    return any(a is not None for a in report["scaling"]["accuracy"])


def write_report(report: dict[str, Any], out: Path) -> dict[str, Path]:
    """``eval.json`` and, when the multi-path runs ran, ``scaling.png``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "eval.json"}
    if has_scaling(report):
        paths["png"] = plot_scaling(report, out / "scaling.png")
    report["files"] = {k: str(v) for k, v in paths.items()}
    paths["json"].write_text(json.dumps(report, indent=2, default=str) + "\n")
    return paths


def format_report(report: dict[str, Any]) -> str:
    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.1%}"

    rec, tc, s = report["recovery"], report["tool_calls"], report["scaling"]
    lines = [
        f"k2nb eval: {report['n_problems']} {split_words(report)} problems, "
        f"model {report['settings']['model']}"
        + "".join(f", tool {n} declared beside python" for n in report["settings"].get("extra_tools", [])),
        f"  accuracy (greedy, python tool)   {pct(report['accuracy'])}   "
        f"[{report['definitions']['correct']}]",
        f"  valid tool calls                 {pct(report['valid_tool_call_rate'])}   "
        f"({tc['valid']}/{tc['total']}, {tc['per_run']} per run; "
        f"{pct(tc['runs_all_valid'])} of runs all valid)",
        f"  runs with a verification step    {pct(report['verification_rate'])}   "
        + ", ".join(f"{k} {v}" for k, v in report["verification_rules"].items()),
        f"  recovery after injected failure  {pct(report['recovery_rate'])}   "
        f"({rec['recovered']}/{rec['injected']} injected, {rec['retried']} retried; "
        f"accuracy {pct(rec['accuracy'])}; {pct(rec['recovered_when_solved'])} of solved problems)",
        f"  accuracy without tools           {pct(report['accuracy_no_tools'])}",
        f"  paths (T={s['temperature']:g}, voted)              "
        + "  ".join(f"{k}: {pct(a)}" for k, a in zip(s["paths"], s["accuracy"], strict=True))
        + "   pass@k " + "  ".join(pct(a) for a in s["pass_at_k"]),
        "  by family                        "
        + "  ".join(f"{f} {pct(a)}" for f, a in report["accuracy_by_family"].items()),
        "  misses (tools) by kind           "
        + ("  ".join(f"{k} {n}" for k, n in report["misses_by_kind"].get("tools", {}).items()) or "none"),
        "  load balance max/mean            "
        + "  ".join(f"L{b['layer']} {b['max_over_mean']}" for b in report["experts"]["load_balance"]),
    ]
    for cls, info in report["experts"]["classes"].items():
        # e.g. "L1 e5 31% (3.4×)": expert 5 takes 31 % of the class's layer-1 picks, 3.4× its overall rate
        tops = "; ".join(f"L{lay['layer']} " + ", ".join(f"e{t['expert']} {t['share']:.0%} ({t['lift']:g}×)"
                                                        for t in lay["top"][:2]) for lay in info["layers"])
        lines.append(f"  experts for {cls:<12} {info['tokens']:>5} tok  {tops}")
    for name, t in report["targets"].items():
        met = "met" if t["met"] else "NOT met"
        lines.append(f"  target {name:<22} {met} ({t['value']} vs {t['target']})")
    lines.append(f"  wall time {report['wall_s']:.0f} s ("
                 + ", ".join(f"{c} {w:.0f} s" for c, w in report["wall_s_by_condition"].items()) + ")")
    if "files" in report:
        lines.append("  wrote " + " and ".join(report["files"].values())
                     + ("" if "png" in report["files"] else " (no scaling plot: --no-scaling)"))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# CLI: `k2nb eval` and `k2nb train-nano`


def shipped_model() -> Path:
    return Path(__file__).resolve().parent.parent / "models" / "k2-nano"


def _model_path(arg: str | None) -> Path:
    from k2nb.engine.errors import CheckpointError

    path = Path(arg) if arg else shipped_model()
    if not (path / "model.safetensors").is_file():
        if arg:
            raise CheckpointError(f"--model {arg}: no model.safetensors there; pass a k2-nano folder "
                                  "(e.g. the --out of `k2nb train-nano`)")
        raise CheckpointError(f"the shipped k2-nano is not in {path} yet; pass --model DIR (e.g. "
                              "runs/k2-nano after `k2nb train-nano --out runs/k2-nano`)")
    return path


def parse_paths(text: str) -> list[int]:
    try:
        ks = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        ks = []
    if not ks or ks[0] < 1:
        raise argparse.ArgumentTypeError(f"--paths {text!r}: give path counts ≥ 1 separated by commas, "
                                         "e.g. 1,2,4,8")
    return ks


def lookup_price(item: str) -> float:
    """Look up the list price of an item in the shop's catalogue.

    Args:
        item: the item's name.
    """
    return 9.99


def cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from k2nb.agent import EngineBackend, tool
    from k2nb.engine import load_model

    path = _model_path(args.model)
    torch.set_num_threads(args.threads)
    model = load_model(path, progress=False)
    model.eval()
    problems = curriculum.eval_problems(args.limit, seed=1234 + args.seed, split=args.split)
    conditions = [c for c in CONDITIONS if not (c == "paths" and args.no_scaling)]
    report = evaluate(problems, lambda i, p, c: EngineBackend(model), paths=args.paths, seed=args.seed,
                      inject=args.inject, conditions=conditions, n_experts=model.config.n_routed_experts,
                      moe_layers=list(model.config.moe_layer_ids), progress=not args.no_progress,
                      model=str(path), split=args.split,
                      extra_tools=[tool(lookup_price)] if args.extra_tool else [])
    write_report(report, Path(args.out))
    print(json.dumps(report, indent=2, default=str) if args.json else format_report(report))
    return 0


def cmd_train_nano(args: argparse.Namespace) -> int:
    from k2nb.nano.cli_args import continue_overrides
    from k2nb.nano.train import train_nano

    overrides = continue_overrides(args)
    summary = train_nano(args.out, args.steps, args.seed, resume=not args.no_resume, **overrides)
    print(json.dumps(summary, indent=2))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate k2-nano on the held-out curriculum through the reasoning loop")
    p.add_argument("--model", help="model folder (default: the shipped k2-nano)")
    p.add_argument("--limit", type=int, default=DEFAULT_LIMIT,
                   help=f"held-out problems, families in round-robin (default {DEFAULT_LIMIT})")
    p.add_argument("--paths", type=parse_paths, default=list(DEFAULT_PATHS),
                   help="path counts of the test-time-scaling curve (default 1,2,4,8)")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")
    p.add_argument("--out", default="k2nb-eval",
                   help="folder for eval.json and scaling.png (default k2nb-eval)")
    p.add_argument("--seed", type=int, default=0, help="selects the held-out problems and the sampling seeds")
    p.add_argument("--inject", choices=("nameerror", "transient"), default="nameerror",
                   help="how the first python call of the recovery runs fails (default nameerror)")
    p.add_argument("--no-scaling", action="store_true", help="skip the sampled multi-path runs")
    p.add_argument("--extra-tool", action="store_true",
                   help="declare a second tool beside python (lookup_price, which no problem needs), as a "
                        "user's own tool would be: how much the model depends on the exact declarations")
    p.add_argument("--split", choices=("heldout", "train"), default="heldout",
                   help="heldout (default): unseen phrasings and numbers; train: the training phrasings with "
                        "fresh numbers, to measure how much of the held-out gap is new wording")
    # One thread: a k2-nano decode step is many tiny ops, so a second thread only adds sync cost. Measured
    # on the 2-core box while training ran: 120 tokens took 0.6 s of CPU with 1 thread, 21.5 s with 2.
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_eval)

    t = sub.add_parser("train-nano", help="train k2-nano (resumable; ~80 min on 2 CPU cores)")
    t.add_argument("--out", required=True, type=Path, help="model folder to write (scratch in DIR/training)")
    t.add_argument("--steps", type=int, default=3800)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--no-resume", action="store_true", help="start over even if DIR/training/state.pt exists")
    add_continue_args(t)  # --init, --lr, --warmup-steps
    t.set_defaults(func=cmd_train_nano)
