"""`k2nb eval`: k2-nano on the held-out curriculum, through the real reasoning loop and `python` tool.

Every problem of ``curriculum.eval_problems(limit)`` (families in round-robin, unseen phrasings,
number tuples and combinations) is run under four conditions (``runner``):

- ``tools``     greedy, one path, the python tool: accuracy, valid tool calls, verification;
- ``injected``  the same, but the first python call fails (``injection.FailFirstCall``): recovery;
- ``no_tools``  greedy, one path, no tool declared (``python=False``): what the model knows alone;
- ``paths``     ``max(paths)`` sampled paths at temperature 1.0, voted by the loop's verified voting
                (a path's vote weighs 1 + its passed checks, ×¼ per failed check).

``metrics`` defines what a run measures, ``experts`` the expert-specialisation summary of the
``tools`` runs, ``report`` the report (``eval.json``, ``scaling.png``, the text). The command line is
in ``k2nb.nano.cli``. Heavy imports (torch, the agent) happen inside functions.
"""

from k2nb.nano.eval.experts import TOKEN_CLASSES, TOOL_MARKERS, RoutingTally, classify_token
from k2nb.nano.eval.injection import FailFirstCall, first_loaded_name
from k2nb.nano.eval.metrics import (
    CONDITIONS,
    TOLERANCE,
    CallView,
    RunRecord,
    chosen_calls,
    is_correct,
    record_of,
    verification_rule,
    vote_prefix,
)
from k2nb.nano.eval.report import TARGETS, format_report, plot_scaling, summarise, write_report
from k2nb.nano.eval.runner import (
    DEFAULT_LIMIT,
    DEFAULT_PATHS,
    SCALING_TEMPERATURE,
    eval_budgets,
    evaluate,
    lookup_price,
    run_problem,
)

__all__ = [
    "CONDITIONS", "DEFAULT_LIMIT", "DEFAULT_PATHS", "SCALING_TEMPERATURE", "TARGETS", "TOKEN_CLASSES",
    "TOLERANCE", "TOOL_MARKERS", "CallView", "FailFirstCall", "RoutingTally", "RunRecord", "chosen_calls",
    "classify_token", "eval_budgets", "evaluate", "first_loaded_name", "format_report", "is_correct",
    "lookup_price", "plot_scaling", "record_of", "run_problem", "summarise", "verification_rule",
    "vote_prefix", "write_report",
]
