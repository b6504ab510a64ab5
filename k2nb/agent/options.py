"""The settings of a run, in one place each with one default: budgets, sampling, paths, checks.

`ThinkOptions` is what the magics, the CLI, `k2nb.think(...)` and the eval build, and what the loop
reads; `GenerationOptions` (the per-step sampling a backend receives) is derived from it here.
A bad value is refused when the options are made, in one sentence naming the option.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from k2nb.agent.checks import UserCheck
from k2nb.backends.base import GenerationOptions

# Above this many parallel paths a run is refused: each path is a whole run of the model, so 1,000
# paths is minutes to hours of work that was almost certainly a typo.
MAX_PATHS = 64
# The temperature of several paths when none is given: they must differ to be worth voting over.
MULTI_PATH_TEMPERATURE = 0.7
# What a run returns for an answer whose checks failed (ThinkOptions.failed_checks).
FAILED_CHECKS = ("withhold", "answer")


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

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"budget {f.name} must be a finite number or None, not {value!r}")
            if value < 0 or (value == 0 and f.name in ("new_tokens_per_step", "final_answer_tokens")):
                raise ValueError(f"budget {f.name} must be positive, not {value!r}")


BUDGET_SENTENCES = {
    "think_tokens_per_step": "I have used my thinking budget for this step",
    "think_tokens": "I have used my total thinking budget",
    "tool_calls": "I have used my tool-call budget",
    "wall_time": "I am out of time",
    "steps": "I have used my step budget",
    "new_tokens": "I ran out of room for this step",
    "context": "I am running out of room in this conversation",
}


@dataclass(slots=True)
class ThinkOptions:
    budgets: Budgets = field(default_factory=Budgets)
    temperature: float | None = None  # None: 0 for one path, MULTI_PATH_TEMPERATURE for several
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = 0
    paths: int = 1
    max_rollbacks: int = 2
    # Temperature of the attempts after a rollback, when the path's own is lower (a greedy path);
    # None keeps the path's. Off by default: measured on k2-nano's held-out sets, sampled retries
    # fixed no answer that greedy retries missed (docs/history/k2-nano-journal.md).
    retry_temperature: float | None = None
    checks: Sequence[UserCheck] = ()
    builtin_checks: tuple[str, ...] = ("args", "grounded", "used", "sourced", "quoted", "unit", "self_verify")
    rollback_on: tuple[str, ...] = ("grounded", "used", "sourced", "quoted", "unit", "self_verify", "user")
    # An answer whose checks (those of `rollback_on`) still fail once the rollbacks are spent:
    # "withhold" returns a sentence saying so instead (the model's answer stays in the trajectory
    # and in `ThinkResult.withheld`); "answer" returns it as it is.
    failed_checks: str = "withhold"
    cancel: threading.Event | None = None

    def __post_init__(self) -> None:
        for name in ("temperature", "retry_temperature", "top_p"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, int | float) or not math.isfinite(value) or value < 0
            ):
                raise ValueError(f"{name} must be a finite number of 0 or more, not {value!r}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], not {self.top_p!r}")
        if self.top_k is not None and (not isinstance(self.top_k, int) or self.top_k < 1):
            raise ValueError(f"top_k must be a whole number of 1 or more, not {self.top_k!r}")
        if (
            isinstance(self.paths, bool)
            or not isinstance(self.paths, int)
            or not 1 <= self.paths <= MAX_PATHS
        ):
            raise ValueError(
                f"paths must be a whole number from 1 to {MAX_PATHS}, not {self.paths!r} "
                "(each path is a whole run of the model)"
            )
        if self.failed_checks not in FAILED_CHECKS:
            raise ValueError(
                f"failed_checks must be one of {', '.join(FAILED_CHECKS)}, not {self.failed_checks!r}"
            )
        if not isinstance(self.max_rollbacks, int) or self.max_rollbacks < 0:
            raise ValueError(f"max_rollbacks must be 0 or more, not {self.max_rollbacks!r}")

    @property
    def path_temperature(self) -> float:
        """The sampling temperature of every path of this run."""
        if self.temperature is not None:
            return float(self.temperature)
        return 0.0 if self.paths == 1 else MULTI_PATH_TEMPERATURE

    def path_seed(self, path: int) -> int | None:
        return None if self.seed is None else self.seed + 1000 * path

    def step_options(self, path: int, step: int, temperature: float, forced: bool) -> GenerationOptions:
        """The sampling of step `step` of path `path` (a forced answer gets its own token budget)."""
        seed = None if self.seed is None else self.seed + 1000 * path + step
        max_new = self.budgets.final_answer_tokens if forced else self.budgets.new_tokens_per_step
        return GenerationOptions(max_new, temperature, self.top_k, self.top_p, seed)


_BUDGET_FIELDS = frozenset(f.name for f in fields(Budgets))
_OPTION_FIELDS = frozenset(f.name for f in fields(ThinkOptions))


def with_overrides(opts: ThinkOptions, overrides: Mapping[str, Any]) -> ThinkOptions:
    """`opts` with keyword overrides; budget fields may be given flat (``tool_calls=8``)."""
    budgets = {k: v for k, v in overrides.items() if k in _BUDGET_FIELDS}
    rest = {k: v for k, v in overrides.items() if k in _OPTION_FIELDS}
    unknown = set(overrides) - set(budgets) - set(rest)
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(sorted(unknown))}; see ThinkOptions and Budgets")
    out = replace(opts, **rest)
    if budgets:
        out = replace(out, budgets=replace(out.budgets, **budgets))
    return out
