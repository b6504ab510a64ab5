"""A conversation being built: its messages, and the namespace its python calls run in."""

from __future__ import annotations

import json
from typing import Any

from k2nb.formats.k2 import tool_call_id
from k2nb.nano.curriculum.python_tool import run_python


class Conversation:
    """Builds the message list and runs the calls in one namespace, as a notebook kernel would."""

    def __init__(self, setup: str) -> None:
        self.namespace: dict[str, Any] = {}
        if setup:
            exec(setup, self.namespace)
        self.messages: list[dict[str, Any]] = []
        self.no_loss: list[int] = []  # indices of messages with a deliberate mistake
        self.n_calls = 0
        self.given = ""  # the "Given: ..." line that opens the next call's reasoning (render.given_line)

    def call(self, think: str, code: str, *, train: bool = True) -> str:
        """An assistant message calling python with ``code``, and the tool's real output; returns it."""
        if self.given:
            think, self.given = f"{self.given} {think}", ""
        call_id = tool_call_id("python", self.n_calls)
        self.n_calls += 1
        if not train:
            self.no_loss.append(len(self.messages))
        self.messages.append({
            "role": "assistant", "content": "", "reasoning_content": think,
            "tool_calls": [{"id": call_id, "type": "function",
                            "function": {"name": "python", "arguments": json.dumps({"code": code})}}],
        })
        out = run_python(code, self.namespace, self.n_calls)
        self.messages.append({"role": "tool", "tool_call_id": call_id, "name": "python", "content": out})
        return out

    def answer(self, think: str, content: str) -> None:
        self.messages.append({"role": "assistant", "content": content, "reasoning_content": think})


def agrees(out: str, v_out: str) -> bool:
    """Whether a check's output confirms ``out``: True, the same text, or the same number."""
    if v_out in (out, "True"):
        return True
    try:  # 59 and 59.0 agree; 47.33 and 47.32 do not (that trace is resampled)
        return float(out) == float(v_out)
    except ValueError:
        return False
