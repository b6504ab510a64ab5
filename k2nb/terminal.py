"""`k2nb think` in a terminal: the reasoning loop with a streaming view as one more observer."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any, TextIO

from .engine.errors import K2nbError

# ANSI styles; used only when the stream is a terminal.
_STYLES = {"think": "\033[2m", "call": "\033[1;36m", "obs": "\033[33m", "answer": "\033[1m",
           "pass": "\033[32m", "fail": "\033[31m", "reset": "\033[0m"}
_STATUS_MARK = {"passed": "✓", "failed": "✗", "pending": "…"}


class TerminalView:
    """Streams a run: thinking (dimmed), tool calls and observations (highlighted), checks, answer.

    It is a trajectory observer, so it sees exactly what the notebook views see. Plain text when the
    stream is not a terminal (pipes, CI logs).
    """

    def __init__(self, out: TextIO | None = None, color: bool | None = None):
        self.out = out or sys.stdout
        self.color = self.out.isatty() if color is None else color
        self._open: str | None = None  # id of the node whose text is being streamed
        self._lock = threading.Lock()

    def _style(self, name: str, text: str) -> str:
        return f"{_STYLES[name]}{text}{_STYLES['reset']}" if self.color else text

    def _close_stream(self) -> None:
        if self._open is not None:
            self.out.write("\n")
            self._open = None

    def __call__(self, ev: Any) -> None:
        with self._lock:
            self._handle(ev)
            self.out.flush()

    def _handle(self, ev: Any) -> None:
        node = ev.node
        if ev.type == "node_added" and node is not None:
            if node.kind in ("path", "attempt") and node.data.get("index", 1) > 1 or (
                    node.kind == "attempt" and node.data.get("reason")):
                self._close_stream()
                what = node.kind if not node.data.get("reason") else f"retry ({node.data['reason']})"
                self.out.write(self._style("call", f"── {what} {node.data.get('index', '')}") + "\n")
            elif node.kind in ("thinking", "answer"):
                self._close_stream()
                label = "thinking" if node.kind == "thinking" else "answer"
                self.out.write(self._style("think" if node.kind == "thinking" else "answer", f"[{label}] "))
                self._open = node.id
                if node.text:
                    self._write_delta(node, node.text)
            elif node.kind == "observation":  # observations arrive whole
                self._close_stream()
                ok = node.data.get("ok", True)
                text = node.text if len(node.text) <= 1200 else node.text[:1200] + " …"
                self.out.write(self._style("obs" if ok else "fail", "← ") + text.replace("\n", "\n  ") + "\n")
            elif node.kind == "error":
                self._close_stream()
                self.out.write(self._style("fail", f"! {node.text}") + "\n")
        elif ev.type == "node_updated" and node is not None and ev.delta and node.id == self._open:
            self._write_delta(node, ev.delta)
        elif ev.type == "node_finished" and node is not None:
            if node.id == self._open:
                self._close_stream()
            elif node.kind == "tool_call":
                self._close_stream()
                name = node.data.get("name") or "?"
                args = node.data.get("parsed") or {}
                body = args.get("code") if isinstance(args, dict) and "code" in args else node.text
                self.out.write(self._style("call", f"→ {name}") + "\n")
                for line in str(body).splitlines() or [""]:
                    self.out.write(self._style("call", "  │ ") + line + "\n")
        elif ev.type in ("check_added", "check_updated") and ev.check is not None:
            self._close_stream()
            c = ev.check
            style = {"passed": "pass", "failed": "fail"}.get(c.status, "think")
            what = "not established" if c.status == "pending" else c.status
            self.out.write(self._style(style, f"{_STATUS_MARK.get(c.status, '?')} check {c.name} {what}: ")
                           + f"{c.evidence}\n")

    def _write_delta(self, node: Any, text: str) -> None:
        self.out.write(self._style("think" if node.kind == "thinking" else "answer", text))


def routing_summary(result: Any, top: int = 3) -> list[str]:
    """One line per MoE layer: its most used experts over the chosen path's generated tokens."""
    routing = result.routing
    if len(routing) == 0:
        return []
    lines = [f"routing: {len(routing)} generated tokens; most used experts per MoE layer (expert×count)"]
    for i, experts in enumerate(routing.top_experts(top)):
        lines.append(f"  MoE layer {i}: " + ", ".join(f"{e}×{n}" for e, n in experts))
    return lines


def cmd_think(args: argparse.Namespace) -> int:
    from .agent import ThinkOptions, think, with_overrides
    from .agent.verdict import summary

    flags = {"paths": args.paths, "tool_calls": args.max_tool_calls, "think_tokens": args.max_think_tokens,
             "temperature": args.temperature, "seed": args.seed, "failed_checks": args.failed_checks}
    try:
        options = with_overrides(ThinkOptions(), {k: v for k, v in flags.items() if v is not None})
    except (TypeError, ValueError) as e:  # a bad option is a usage error, not a crash
        raise K2nbError(f"bad option: {e}") from None
    view = TerminalView(sys.stderr if args.json else sys.stdout)
    observers = [] if args.json else [view]
    served = {"endpoint": args.endpoint, "served_model": args.served_model, "api_key_env": args.api_key_env}
    result = think(args.question, model=args.model, python=not args.no_tools, **served,
                   observers=observers, options=options)
    if args.export:
        import nbformat

        nbformat.write(result.trajectory.to_notebook(), args.export)
    if args.json:
        print(json.dumps(result.to_dict(), default=str))
        return 0
    out = sys.stdout
    out.write("\n")
    if len(result.paths) > 1:
        for v in result.votes:
            out.write(f"vote: {v.answer!r} weight {v.weight:.2f} from paths {v.paths}\n")
    out.write(view._style("answer", f"answer: {result.answer}") + "\n")
    out.write(f"end: {result.end_reason}; tool calls: {len(result.tool_calls)}\n")
    out.write(f"checks: {summary(result.trajectory).text}\n")
    for line in routing_summary(result):
        out.write(line + "\n")
    if args.export:
        out.write(f"exported the run as a notebook: {args.export}\n")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("think", help="answer a question with the reasoning loop, streaming it")
    p.add_argument("question")
    p.add_argument("--model", default=None, help="checkpoint folder (default: the shipped k2-nano)")
    p.add_argument("--paths", type=int, default=None, help="parallel reasoning paths, voted (default 1)")
    p.add_argument("--max-tool-calls", type=int, default=None)
    p.add_argument("--max-think-tokens", type=int, default=None)
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--failed-checks", metavar="withhold|answer", default=None,
                   help="an answer whose checks failed: withhold it and say so (default), or give it")
    p.add_argument("--endpoint", metavar="URL", help="a served model: an OpenAI-compatible server")
    p.add_argument("--served-model", metavar="NAME", help="its name on --endpoint (default: the one served)")
    p.add_argument("--api-key-env", metavar="VAR", help="environment variable holding --endpoint's API key")
    p.add_argument("--no-tools", action="store_true", help="answer without the python tool")
    p.add_argument("--json", action="store_true", help="print one JSON object (answer, tool_calls, "
                   "checks, trajectory)")
    p.add_argument("--export", metavar="FILE.ipynb", help="write the run as a notebook")
    p.set_defaults(func=cmd_think)
