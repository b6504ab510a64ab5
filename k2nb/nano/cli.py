"""The k2-nano commands: ``k2nb eval`` and ``k2nb train-nano`` (registered by ``k2nb.cli``).

Heavy imports (torch, the engine, the agent) happen inside the commands: ``register`` runs on every
``k2nb`` call.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from k2nb.nano.cli_args import add_train_args, continue_overrides
from k2nb.nano.eval.injection import INJECT_MODES
from k2nb.nano.eval.metrics import CONDITIONS
from k2nb.nano.eval.runner import DEFAULT_CONDITIONS, DEFAULT_LIMIT, DEFAULT_PATHS

SPLITS = ("heldout", "train", "paraphrase")


def shipped_model() -> Path:
    return Path(__file__).resolve().parent.parent / "models" / "k2-nano"


def model_path(arg: str | None) -> Path:
    """The model folder of ``--model`` (default: the shipped k2-nano); a clear error without weights."""
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


def parse_conditions(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [n for n in names if n not in CONDITIONS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"--conditions {text!r}: give some of {','.join(CONDITIONS)} "
                                         "separated by commas")
    return [c for c in CONDITIONS if c in names]  # the report's order, whatever the order given


def eval_conditions(args: argparse.Namespace) -> list[str]:
    """``--conditions``, else the split's default; ``--no-scaling`` drops the sampled paths."""
    chosen = args.conditions or list(DEFAULT_CONDITIONS[args.split])
    return [c for c in chosen if not (c == "paths" and args.no_scaling)]


def eval_problems(args: argparse.Namespace) -> list:
    """The problems of ``--split``: generated ones (``--limit`` default 27), or the paraphrase file's
    questions (all of them unless ``--limit``)."""
    from k2nb.nano import curriculum
    from k2nb.nano.eval.paraphrase import QuestionFileError, paraphrase_problems

    if args.questions and args.split != "paraphrase":
        raise QuestionFileError(f"--questions {args.questions}: a question file is read by --split "
                                "paraphrase only; add --split paraphrase")
    if args.split == "paraphrase":
        return paraphrase_problems(args.limit, args.questions)
    limit = DEFAULT_LIMIT if args.limit is None else args.limit
    return curriculum.eval_problems(limit, seed=1234 + args.seed, split=args.split)


def cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from k2nb.agent import tool
    from k2nb.backends.engine import EngineBackend
    from k2nb.engine import load_model
    from k2nb.nano.eval import PARAPHRASE_FILE, evaluate, format_report, lookup_price, write_report

    path = model_path(args.model)
    problems = eval_problems(args)  # before loading the model: a bad question file fails at once
    conditions = eval_conditions(args)
    torch.set_num_threads(args.threads)
    model = load_model(path, progress=False)
    model.eval()
    questions = str(args.questions or PARAPHRASE_FILE) if args.split == "paraphrase" else ""
    report = evaluate(problems, lambda i, p, c: EngineBackend(model), paths=args.paths, seed=args.seed,
                      inject=args.inject, conditions=conditions, n_experts=model.config.n_routed_experts,
                      moe_layers=list(model.config.moe_layer_ids), progress=not args.no_progress,
                      model=str(path), split=args.split,
                      extra_tools=[tool(lookup_price)] if args.extra_tool else [], tokenizer=model.tokenizer,
                      questions=questions)
    write_report(report, Path(args.out))
    print(json.dumps(report, indent=2, default=str) if args.json else format_report(report))
    return 0


def cmd_train_nano(args: argparse.Namespace) -> int:
    from k2nb.nano.train import train_nano

    overrides = continue_overrides(args)
    summary = train_nano(args.out, args.steps, args.seed, resume=not args.no_resume, **overrides)
    print(json.dumps(summary, indent=2))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate k2-nano on the held-out curriculum through the reasoning loop")
    p.add_argument("--model", help="model folder (default: the shipped k2-nano)")
    p.add_argument("--limit", type=int, default=None,
                   help=f"problems, families in round-robin (default {DEFAULT_LIMIT}; --split paraphrase: "
                        "every question)")
    p.add_argument("--paths", type=parse_paths, default=list(DEFAULT_PATHS),
                   help="path counts of the test-time-scaling curve (default 1,2,4,8)")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")
    p.add_argument("--out", default="k2nb-eval",
                   help="folder for eval.json and scaling.png (default k2nb-eval)")
    p.add_argument("--seed", type=int, default=0, help="selects the held-out problems and the sampling seeds")
    p.add_argument("--inject", choices=INJECT_MODES, default="nameerror",
                   help="how the first python call of the recovery runs fails (default nameerror)")
    p.add_argument("--no-scaling", action="store_true", help="skip the sampled multi-path runs")
    p.add_argument("--conditions", type=parse_conditions, default=None,
                   help="conditions to run, of tools,injected,no_tools,paths (default: all four; "
                        "--split paraphrase: tools)")
    p.add_argument("--extra-tool", action="store_true",
                   help="declare a second tool beside python (lookup_price, which no problem needs), as a "
                        "user's own tool would be: how much the model depends on the exact declarations")
    p.add_argument("--split", choices=SPLITS, default="heldout",
                   help="heldout (default): unseen phrasings and numbers; train: the training phrasings with "
                        "fresh numbers, to measure how much of the held-out gap is new wording; paraphrase: "
                        "questions written by hand in users' words, some unanswerable")
    p.add_argument("--questions", default=None,
                   help="question file of --split paraphrase (default: tests/data/paraphrase.jsonl of the "
                        "k2nb source tree); one JSON object a line, see docs/k2-nano.md")
    # One thread: a k2-nano decode step is many tiny ops, so a second thread only adds sync cost. Measured
    # on the 2-core box while training ran: 120 tokens took 0.6 s of CPU with 1 thread, 21.5 s with 2.
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_eval)

    t = sub.add_parser("train-nano", help="train k2-nano (resumable; ~80 min on 2 CPU cores)")
    add_train_args(t)  # --out, --steps, --seed, --no-resume, --init, --lr, --warmup-steps
    t.set_defaults(func=cmd_train_nano)
