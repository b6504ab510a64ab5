"""The options of ``k2nb train-nano``, shared with ``python -m k2nb.nano.train``.

Kept out of ``train.py`` so that registering the CLI (on every ``k2nb`` call) does not import torch,
and out of ``cli.py`` so that ``train.py`` can use them without importing the command that runs it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DEFAULT_STEPS = 3800  # ≈ 1.2 s per step on 2 idle cores → ≈ 76 min of steps, ≈ 79 min in all


def add_train_args(parser: argparse.ArgumentParser) -> None:
    """--out, --steps, --seed, --no-resume and the continued-training options."""
    parser.add_argument("--out", required=True, type=Path,
                        help="model folder to write (scratch in DIR/training)")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-resume", action="store_true",
                        help="start over even if DIR/training/state.pt exists")
    add_continue_args(parser)


def add_continue_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--init", metavar="DIR", default="",
                        help="continue training from this model folder (its weights and tokenizer) instead "
                             "of from scratch, e.g. on a changed curriculum")
    parser.add_argument("--lr", type=float, help="peak learning rate (default 2e-3)")
    parser.add_argument("--warmup-steps", type=int, help="linear warmup steps (default 100)")


def continue_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainSettings overrides given by ``add_continue_args``'s options."""
    if args.init and not (Path(args.init) / "model.safetensors").is_file():
        raise SystemExit(f"--init {args.init}: no model.safetensors there; give a k2-nano model folder")
    given = {"init": str(args.init), "lr": args.lr, "warmup_steps": args.warmup_steps}
    return {k: v for k, v in given.items() if v not in (None, "")}
