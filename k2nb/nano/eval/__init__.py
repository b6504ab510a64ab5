"""`k2nb eval`: k2-nano on the held-out curriculum, through the real reasoning loop and `python` tool.

Every problem of ``curriculum.eval_problems(limit)`` (families in round-robin, unseen phrasings,
number tuples and combinations), or every hand-written question of the paraphrase split
(``paraphrase``: users' words, some with nothing to compute), is run under up to four conditions
(``runner``):

- ``tools``     greedy, one path, the python tool: accuracy, valid tool calls, verification;
- ``injected``  the same, but the first python call fails (``injection.FailFirstCall``): recovery;
- ``no_tools``  greedy, one path, no tool declared (``python=False``): what the model knows alone;
- ``paths``     ``max(paths)`` sampled paths at temperature 1.0, voted by the loop's verified voting
                (a path's vote weighs 1 + its passed checks, ×¼ per failed check).

``metrics`` defines what a run measures (correct, abstained, confident wrong, …), ``confusion`` which
family a run looked like, ``experts`` the expert-specialisation summary of the ``tools`` runs,
``report`` the report (``eval.json``, ``scaling.png``, the text). The command line is in
``k2nb.nano.cli``. Heavy imports (torch, the agent) happen inside functions.
"""

from k2nb.nano.eval.confusion import confusion_table, family_of_code, looked_like
from k2nb.nano.eval.experts import TOKEN_CLASSES, TOOL_MARKERS, RoutingTally, classify_token
from k2nb.nano.eval.injection import FailFirstCall, first_loaded_name
from k2nb.nano.eval.metrics import (
    ABSTENTION,
    CONDITIONS,
    TOLERANCE,
    CallView,
    EvalProblem,
    RunRecord,
    chosen_calls,
    is_abstention,
    is_confident_wrong,
    is_correct,
    record_of,
    verification_rule,
    vote_prefix,
)
from k2nb.nano.eval.paraphrase import (
    PARAPHRASE_FILE,
    Question,
    QuestionFileError,
    load_questions,
    paraphrase_problems,
    reference_value,
)
from k2nb.nano.eval.report import (
    MAX_TARGETS,
    SPLIT_TARGETS,
    TARGETS,
    format_report,
    plot_scaling,
    summarise,
    write_report,
)
from k2nb.nano.eval.runner import (
    DEFAULT_CONDITIONS,
    DEFAULT_LIMIT,
    DEFAULT_PATHS,
    SCALING_TEMPERATURE,
    eval_budgets,
    evaluate,
    lookup_price,
    run_problem,
)

__all__ = [
    "ABSTENTION", "CONDITIONS", "DEFAULT_CONDITIONS", "DEFAULT_LIMIT", "DEFAULT_PATHS", "MAX_TARGETS",
    "PARAPHRASE_FILE", "SCALING_TEMPERATURE", "SPLIT_TARGETS", "TARGETS", "TOKEN_CLASSES", "TOLERANCE",
    "TOOL_MARKERS", "CallView", "EvalProblem", "FailFirstCall", "Question", "QuestionFileError",
    "RoutingTally", "RunRecord", "chosen_calls", "classify_token", "confusion_table", "eval_budgets",
    "evaluate", "family_of_code", "first_loaded_name", "format_report", "is_abstention",
    "is_confident_wrong", "is_correct", "load_questions", "looked_like", "lookup_price",
    "paraphrase_problems", "plot_scaling", "record_of", "reference_value", "run_problem", "summarise",
    "verification_rule", "vote_prefix", "write_report",
]
