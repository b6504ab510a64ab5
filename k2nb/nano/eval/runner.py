"""Running the eval: every problem under every condition, through the real reasoning loop.

Each run executes the problem's ``setup`` code first in the tool's namespace (the DataFrame or list
the question is about), then asks the question with the problem's earlier messages (a system prompt)
as history. Accuracy vs paths uses the first k paths of the ``paths`` run for every k: the loop seeds
path i with ``seed + 1000·i`` and runs each path on its own fork of the prompt's session, so the first
k paths of an 8-path run are the paths a k-path run would sample; voting them is what ``paths=k``
would return. One 8-path run per problem thus gives the whole curve at 8/15 of the cost of separate
runs.

The problems are generated ones (``curriculum.eval_problems``) or the hand-written questions of the
paraphrase split (``paraphrase.paraphrase_problems``): both have a family, kind, question, setup,
answer and prompt messages, and a paraphrase question may have no answer (``answerable`` False).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from k2nb.nano.eval.experts import RoutingTally
from k2nb.nano.eval.injection import FailFirstCall
from k2nb.nano.eval.metrics import CONDITIONS, TOLERANCE, EvalProblem, RunRecord, record_of
from k2nb.nano.eval.report import summarise

if TYPE_CHECKING:
    from k2nb.agent import Budgets, ThinkResult
    from k2nb.backends.base import Backend

# 27 problems = 3 per family, as the model card's quick_eval. On 2 CPU cores each problem costs about
# 11 loop runs (3 greedy + 8 sampled paths); see docs/k2-nano.md for the measured wall time.
DEFAULT_LIMIT = 27
DEFAULT_PATHS = (1, 2, 4, 8)
SCALING_TEMPERATURE = 1.0

# The conditions a split runs unless told otherwise: on the paraphrase split the question is whether
# the model reads the question; recovery, no-tools accuracy and scaling are the generated split's.
DEFAULT_CONDITIONS = {"heldout": CONDITIONS, "train": CONDITIONS, "paraphrase": ("tools",)}

BackendFactory = Callable[[int, EvalProblem, str], "Backend"]


def eval_budgets(paths: int = 1) -> Budgets:
    """Budgets of one eval run. A curriculum step is < 100 tokens; the limits only stop a sampled
    path that rambles or loops on tool calls, so the eval cannot run away. The loop's wall budget
    covers all paths of a run, hence 60 s per path."""
    from k2nb.agent import Budgets

    return Budgets(think_tokens_per_step=192, think_tokens=1024, tool_calls=8, wall_s=60.0 * paths, steps=12,
                   new_tokens_per_step=320, final_answer_tokens=48)


def lookup_price(item: str) -> float:
    """Look up the list price of an item in the shop's catalogue.

    Args:
        item: the item's name.
    """
    return 9.99


def run_problem(problem: EvalProblem, backend: Backend, *, condition: str = "tools", paths: int = 1,
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


def evaluate(problems: Sequence[EvalProblem], backend_for: BackendFactory, *,
             paths: Sequence[int] = DEFAULT_PATHS, seed: int = 0, inject: str = "nameerror",
             conditions: Sequence[str] = CONDITIONS, n_experts: int = 0, moe_layers: Sequence[int] = (),
             budgets: Budgets | None = None, progress: bool = True, model: str = "",
             split: str = "heldout", extra_tools: Sequence[Any] = (),
             tokenizer: Any = None, questions: str = "") -> dict[str, Any]:
    """Run every problem under every condition and return the report (see ``report.summarise``).
    ``backend_for(i, problem, condition)`` gives a fresh Backend (a fresh engine session) per run;
    ``tokenizer`` (with ``decode(ids)``) gives the texts of generated tokens for the expert summary;
    ``questions`` names the paraphrase file the problems came from (kept in the settings)."""
    from tqdm.auto import tqdm

    ks = sorted(set(int(k) for k in paths))
    started = time.monotonic()
    records: list[RunRecord] = []
    tally = RoutingTally(n_experts, list(moe_layers))
    decode = _decoder(tokenizer)
    walls = {c: 0.0 for c in conditions}
    bar = tqdm(total=len(problems) * len(conditions), desc="k2nb eval", unit="run", disable=not progress)
    for condition in conditions:
        for i, p in enumerate(problems):
            bar.set_postfix_str(f"{condition} {p.family}")
            multi = condition == "paths"
            t0 = time.monotonic()
            result = run_problem(p, backend_for(i, p, condition), condition=condition,
                                 paths=max(ks) if multi else 1,
                                 temperature=SCALING_TEMPERATURE if multi else 0.0, seed=seed * 100_003 + i,
                                 inject=inject, budgets=budgets, extra_tools=extra_tools)
            dt = time.monotonic() - t0
            walls[condition] += dt
            records.append(record_of(i, p, condition, result, dt, ks if multi else ()))
            if condition == "tools":
                tally.add(result, decode)
            bar.update(1)
    bar.close()
    settings = {"model": model, "split": split, "limit": len(problems), "paths": ks, "seed": seed,
                "inject": inject, "extra_tools": [t.name for t in extra_tools],
                "scaling_temperature": SCALING_TEMPERATURE, "greedy_temperature": 0.0,
                "tolerance": TOLERANCE, "budgets": asdict(budgets or eval_budgets()),
                "wall_s_budget_per_path": (budgets or eval_budgets()).wall_s,
                "conditions": list(conditions)}
    if questions:
        settings["questions"] = questions
    return summarise(records, tally, settings, walls, time.monotonic() - started)


def _decoder(tokenizer: Any) -> Callable[[int], str] | None:
    """Token id -> its text alone (special ids: their marker), memoised; None without a tokenizer."""
    if tokenizer is None:
        return None
    texts: dict[int, str] = {}

    def decode(token_id: int) -> str:
        if token_id not in texts:
            texts[token_id] = tokenizer.decode([token_id])
        return texts[token_id]
    return decode
