"""The live view of a `%%k2think` run: progress, thinking (collapsible), calls, the answer as Markdown.

An observer of the run's Trajectory. It is called in the loop's thread after every change, so it
must cost next to nothing: it only marks itself dirty and re-renders when `interval_s` has passed
(and once at the end). Each part is one display updated in place through its display_id — not an
Output widget, which re-sends every earlier output on each append.
"""

from __future__ import annotations

import html
import time
from typing import Any

from k2nb.agent.trajectory import Trajectory, TrajectoryEvent

_GENERATED = ("thinking", "answer", "tool_call", "verification", "error")
_THINK_CHARS = 6000  # thinking shown live (the tail); the whole text is in the trajectory
_MUTED = "color:#555;font-size:90%"
_THINK_STYLE = "white-space:pre-wrap;color:#555;border-left:2px solid #ddd;padding-left:8px"


class LiveView:
    """Renders one run into the running cell's output. `display` is IPython.display.display (or a
    stand-in with the same `display_id=True` / `.update` protocol)."""

    def __init__(self, display: Any = None, *, interval_s: float = 0.25, cell_mode: str = "none"):
        if display is None:
            from IPython.display import display as display_fn

            display = display_fn
        self._display = display
        self.interval_s = interval_s
        self.cell_mode = cell_mode
        self.trajectory: Trajectory | None = None
        self.started = time.monotonic()
        self.n_tokens = 0
        self.n_calls = 0
        self.status = "starting"
        self._last = 0.0
        self._dirty = False
        self._progress = display(self._progress_bundle(), raw=True, display_id=True)
        self._transcript = display(self._transcript_bundle(), raw=True, display_id=True)
        self._answer: Any = None  # created when the first answer text arrives (below any inline cells)
        self.renders = 0

    # -- observer ---------------------------------------------------------------------------------

    def __call__(self, event: TrajectoryEvent) -> None:
        self.trajectory = event.trajectory
        node = event.node
        if event.type == "node_updated" and event.delta and node is not None and node.kind in _GENERATED:
            self.n_tokens += 1
        elif event.type == "node_added" and node is not None and node.kind == "tool_call":
            self.n_calls += 1
        if node is not None and node.kind in ("thinking", "answer", "tool_call"):
            self.status = {"thinking": "thinking", "answer": "answering", "tool_call": "calling a tool"}[
                node.kind
            ]
        self._dirty = True
        now = time.monotonic()
        if now - self._last >= self.interval_s:
            self.render()

    # -- rendering --------------------------------------------------------------------------------

    def render(self) -> None:
        self._last = time.monotonic()
        self._dirty = False
        self.renders += 1
        self._progress.update(self._progress_bundle(), raw=True)
        self._transcript.update(self._transcript_bundle(), raw=True)
        answer = self._answer_text()
        if answer:
            bundle = {"text/markdown": answer, "text/plain": answer}
            if self._answer is None:
                self._answer = self._display(bundle, raw=True, display_id=True)
            else:
                self._answer.update(bundle, raw=True)

    def finish(self, end_reason: str, reason: str | None = None) -> None:
        """The run ended; `reason` says why it failed (shown after the status, also as plain text)."""
        self.status = {"answer": "done", "cancelled": "stopped"}.get(end_reason, end_reason)
        if reason:
            self.status += f": {reason}"
        self.render()

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def progress_text(self) -> str:
        el = self.elapsed_s
        rate = self.n_tokens / el if el > 0 else 0.0
        return (
            f"k2nb · {self.status} · {self.n_tokens} tokens · {self.n_calls} tool call(s) · "
            f"{rate:.1f} tok/s · {el:.1f} s"
        )

    def _progress_bundle(self) -> dict[str, str]:
        text = self.progress_text()
        return {
            "text/plain": text,
            "text/html": f"<div class='k2nb-progress' style='{_MUTED}'>{html.escape(text)}</div>",
        }

    def _answer_text(self) -> str:
        t = self.trajectory
        if t is None:
            return ""
        if "withheld" in t.meta:  # the run ended and its checks failed: it says so instead
            return str(t.meta.get("answer") or "")
        answers = [n for n in t.walk() if n.kind == "answer" and n.status != "rolled_back"]
        return answers[-1].text.strip() if answers else ""

    def _transcript_bundle(self) -> dict[str, str]:
        t = self.trajectory
        if t is None:
            return {"text/plain": "", "text/html": "<div class='k2nb-transcript'></div>"}
        parts_html: list[str] = []
        parts_text: list[str] = []
        for node in t.walk():
            if node.kind == "thinking" and node.text.strip():
                text = node.text if len(node.text) <= _THINK_CHARS else "…" + node.text[-_THINK_CHARS:]
                running = node.status == "running"
                parts_html.append(
                    f"<details {'open' if running else ''} class='k2nb-thinking'>"
                    f"<summary style='color:#7c4dff'>thinking{' …' if running else ''} "
                    f"({node.n_tokens} tokens)</summary>"
                    f"<div style='{_THINK_STYLE}'>"
                    f"{html.escape(text)}</div></details>"
                )
                parts_text.append("thinking: " + text[-200:])
            elif node.kind == "tool_call":
                name = node.data.get("name", "?")
                parsed = node.data.get("parsed") or {}
                code = parsed.get("code") if isinstance(parsed, dict) else None
                obs = next(iter(t.children(node, "observation")), None)
                where = {"cells": "as a cell below", "inline": "shown below"}.get(self.cell_mode, "")
                head = f"→ {html.escape(name)}" + (
                    f" <span style='color:#888'>({where})</span>" if where else ""
                )
                body = (
                    f"<pre style='margin:2px 0'>{html.escape(code)}</pre>"
                    if code and self.cell_mode == "none"
                    else ""
                )
                result = ""
                if obs is not None:
                    ok = (obs.data or {}).get("ok", True)
                    mark = "✓" if ok else "✗"
                    brief = (obs.text or "").strip().splitlines()
                    brief_s = brief[-1][:200] if brief else ""
                    result = (
                        f"<div style='color:{'#2e7d32' if ok else '#c62828'}'>{mark} "
                        f"{html.escape(brief_s)}</div>"
                    )
                parts_html.append(f"<div class='k2nb-call'>{head}{body}{result}</div>")
                parts_text.append(f"-> {name}")
            elif node.kind == "verification" and node.text.strip():
                parts_html.append(
                    f"<div class='k2nb-verify'>verify: {html.escape(node.text[:300])}</div>"
                )
            elif node.kind == "error":
                parts_html.append(f"<div style='color:#c62828'>error: {html.escape(node.text[:300])}</div>")
            elif node.kind == "attempt" and node.data.get("reason"):
                parts_html.append(
                    f"<div style='color:#e65100'>↺ retry: {html.escape(str(node.data['reason']))}</div>"
                )
        return {
            "text/plain": "\n".join(parts_text),
            "text/html": "<div class='k2nb-transcript'>" + "".join(parts_html) + "</div>",
        }
