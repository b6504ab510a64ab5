"""Option parsing of the magics and `{var}` interpolation of prompts.

A bad option is one line (`UsageError: %%k2think: argument --paths: invalid int value: 'x'`), not an
argparse exit or a traceback.
"""

from __future__ import annotations

import argparse
import math
import re
import shlex
import string
from collections.abc import Mapping
from typing import Any

from IPython.core.error import UsageError

from k2nb.magics.approval import APPROVAL_MODES


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (options: %k2nb help)")

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        raise UsageError(message or f"{self.prog}: stopped")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def temperature(text: str) -> float:
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def paths(text: str) -> int:
    from k2nb.agent.options import MAX_PATHS

    value = _positive_int(text)
    if value > MAX_PATHS:
        raise argparse.ArgumentTypeError(
            f"at most {MAX_PATHS} (each path is a whole run of the model), not {value}"
        )
    return value


def seconds(text: str) -> float:
    """A time limit: more than 0 seconds (0 or less would silently mean no limit, so it is refused)."""
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {text}")
    return value


# How `%k2nb set KEY VALUE` reads each setting; the %%k2think options use the same functions.
SETTING_TYPES: dict[str, Any] = {
    "approve": str,
    "cells": bool,
    "dashboard": bool,
    "timeout": seconds,
    "throttle": seconds,
    "paths": paths,
    "max_tool_calls": _non_negative_int,
    "max_think_tokens": _positive_int,
    "temperature": temperature,
    "seed": int,
    "failed_checks": str,
}


def think_parser() -> _Parser:
    p = _Parser(prog="%%k2think", add_help=False)
    p.add_argument(
        "--model", metavar="PATH", help="checkpoint folder (default: the loaded or embedded model)"
    )
    p.add_argument("--paths", type=paths, metavar="N", help="parallel reasoning paths, voted")
    p.add_argument("--max-tool-calls", type=_non_negative_int, metavar="N", help="tool-call budget")
    p.add_argument("--max-think-tokens", type=_positive_int, metavar="N", help="thinking-token budget")
    p.add_argument("--temperature", type=temperature, metavar="T")
    p.add_argument("--seed", type=int, metavar="S")
    p.add_argument("--failed-checks", metavar="withhold|answer",
                   help="an answer whose checks failed: withhold it and say so (default), or give it")
    p.add_argument("--endpoint", metavar="URL", help="a served model (OpenAI-compatible server)")
    p.add_argument("--served-model", metavar="NAME", help="its name on --endpoint")
    p.add_argument("--api-key-env", metavar="VAR", help="environment variable holding --endpoint's key")
    p.add_argument("--approve", choices=APPROVAL_MODES, help="run tool calls: auto, ask, never")
    p.add_argument("--timeout", type=seconds, metavar="SECONDS", help="time limit of one tool call")
    p.add_argument("--new", action="store_true", help="start a new conversation")
    p.add_argument("--no-cells", action="store_true", help="do not insert tool calls as cells")
    p.add_argument("--no-dashboard", action="store_true", help="no dashboard at the end")
    p.add_argument("--export", metavar="FILE.ipynb", help="write the run as a notebook")
    return p


def parse_line(parser: _Parser, line: str) -> argparse.Namespace:
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"{parser.prog}: {exc}") from None
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------------------------
# {var} interpolation

# `{name}`, `{name.attr}`, `{name[0]}`, with optional !r and :spec. `{{` and `}}` are literal braces.
_FIELD = re.compile(r"\{\{|\}\}|\{([A-Za-z_]\w*)((?:\.[A-Za-z_]\w*|\[[^\]{}]+\])*)(![rsa])?(:[^{}]*)?\}")


def interpolate(prompt: str, namespace: Mapping[str, Any]) -> str:
    """Fill `{var}` fields from `namespace`. A field whose name is not defined is left as written,
    so prompts with JSON or set literals need no escaping."""
    fmt = string.Formatter()

    def fill(m: re.Match[str]) -> str:
        whole = m.group(0)
        if whole == "{{":
            return "{"
        if whole == "}}":
            return "}"
        name = m.group(1)
        if name not in namespace:
            return whole
        try:
            return fmt.vformat(whole, (), {name: namespace[name]})
        except Exception:  # noqa: BLE001 - an unformattable field stays as written
            return whole

    return _FIELD.sub(fill, prompt)
