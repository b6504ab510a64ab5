"""The k2-nano curriculum: seeded problem families rendered as complete K2 tool-loop conversations.

Every problem is a *recipe* — a question template, number slots and code templates, drawn from a
family's table (``families``, read by ``generator``) — that is turned into OpenAI-style message dicts
by actually running the code (``render``). Held-out split (``split``): the last phrasing templates of
every sub-family are reserved for it, number tuples are assigned to one split by a stable hash, and a
few (statistic, operation) pairs of the "combo" family never appear in training.

Variants teach recovery: a first call with a misspelled name (NameError, run for real) followed by the
fixed call; a first call with a mis-copied number whose verification disagrees, followed by a
recomputation (``recoveries``); a DataFrame column guessed wrong (KeyError) followed by an inspection;
multi-turn follow-ups ("What if it were 45 instead of 37?") and rollbacks (``variants``). Assistant
messages that contain a deliberate mistake are listed in ``Problem.no_loss`` so that training never
teaches the mistake itself. ``answers`` matches a model's answer against the computed one.

Questions in people's own words come from a grammar (``grammar``: roles → clause choices with
synonyms, shuffled clause orders, question / imperative / statement forms, distractor clauses,
numbers written as ``1,250``) in the ``words`` and ``tables`` families; ``abstain`` teaches saying
"I can't tell what to compute from this question." when a number is missing. Training draws
families by ``TRAIN_MIX``; the held-out split draws the nine template families only.

Modules: spec (the table vocabulary), slots (samplers), grammar, families/ (the tables), generator,
phrasing, split, python_tool, conversation, render, recoveries, variants, problems, answers.
"""

from k2nb.nano.curriculum.answers import ABS_TOL, REL_TOL, answer_matches, extract_answer
from k2nb.nano.curriculum.families import ALL_FAMILIES, FAMILIES, HELDOUT_COMBOS, TRAIN_MIX, roles_of
from k2nb.nano.curriculum.families.abstain import ABSTAIN
from k2nb.nano.curriculum.problems import eval_problems, generate, heldout_problems, make_problem
from k2nb.nano.curriculum.python_tool import AGENT_PYTHON_TOOL, PYTHON_TOOL, TOOL_SETS, TOOLS, run_python
from k2nb.nano.curriculum.render import SYSTEM_PROMPTS, given_line
from k2nb.nano.curriculum.slots import ITEMS, NAMES, WORDS
from k2nb.nano.curriculum.spec import CurriculumError, Problem, Recipe, Step
from k2nb.nano.curriculum.variants import (
    QUOTED_CHECK,
    RETRY_SAYS,
    RETRY_UNQUOTES,
    ROLLBACK_MESSAGE,
    SELF_VERIFY_CHECK,
    USED_CHECK,
)

__all__ = [
    "ABSTAIN", "ABS_TOL", "AGENT_PYTHON_TOOL", "ALL_FAMILIES", "FAMILIES", "HELDOUT_COMBOS", "ITEMS", "NAMES",
    "PYTHON_TOOL", "QUOTED_CHECK", "REL_TOL", "TRAIN_MIX",
    "RETRY_SAYS", "RETRY_UNQUOTES", "ROLLBACK_MESSAGE", "SELF_VERIFY_CHECK", "SYSTEM_PROMPTS", "TOOLS",
    "TOOL_SETS",
    "USED_CHECK", "WORDS", "CurriculumError", "Problem", "Recipe", "Step", "answer_matches", "eval_problems",
    "extract_answer", "generate", "given_line", "heldout_problems", "make_problem", "roles_of", "run_python",
]
