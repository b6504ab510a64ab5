"""What a served model supports — tool calls, separated reasoning, routing — found by asking.

`/v1/models` says who serves the model and its context length (vLLM); one short chat request with a
tool declared (`probe`, 16 tokens) shows the rest: a server without tool support refuses it, a
reasoning parser returns `reasoning` / `reasoning_content`, and vLLM with
`--enable-return-routed-experts` fills `routed_experts`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_PROBE_TOOL = {
    "type": "function",
    "function": {
        "name": "python",
        "description": "Run Python code and return what it prints.",
        "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
    },
}


@dataclass
class Capabilities:
    """Each field: True / False, or None when the probe could not tell."""

    tools: bool | None = None
    reasoning: bool | None = None
    routing: bool | None = None
    note: str = ""  # why something is unknown or missing, in one sentence

    def lines(self) -> list[str]:
        def word(v: bool | None, yes: str, no: str) -> str:
            return "unknown" if v is None else (yes if v else no)

        out = [
            "tool calls: " + word(self.tools, "yes", "no (vLLM: --enable-auto-tool-choice "
                                  "--tool-call-parser kimi_k2)"),
            "reasoning:  " + word(self.reasoning, "separated by the server", "not separated in a short "
                                  "reply (vLLM: --reasoning-parser kimi_k2)"),
            "routing:    " + word(self.routing, "reported", "not reported (vLLM on a GPU: "
                                  "--enable-return-routed-experts)"),
        ]
        if self.note:
            out.append(self.note)
        return out


def probe(backend: Any) -> Capabilities:
    """One short greedy request to `backend`'s server (an `OpenAIBackend`); never raises."""
    caps = Capabilities()
    body: dict[str, Any] = {"return_token_ids": True} if backend.server == "vllm" else {}
    if backend.request_routing:
        body["return_routed_experts"] = True
    try:
        r = backend._client().chat.completions.create(
            model=backend.model, messages=[{"role": "user", "content": "What is 2 + 3?"}],
            tools=[_PROBE_TOOL], max_tokens=16, temperature=0, extra_body=body or None)
    except Exception as exc:  # noqa: BLE001 - a refusal is an answer here
        text = str(getattr(exc, "message", "") or exc).lower()
        if getattr(exc, "status_code", None) == 400 and "tool" in text:
            caps.tools = False
        caps.note = f"the probe request failed ({type(exc).__name__}); what it could not show is unknown"
        return caps
    data = r.model_dump() if hasattr(r, "model_dump") else dict(r)
    caps.tools = True
    choice = (data.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    content = message.get("content") or ""
    if reasoning:
        caps.reasoning = True
    elif content.lstrip().startswith("<think>"):
        caps.reasoning = False
    routed = choice.get("routed_experts") or data.get("prompt_routed_experts") or data.get("routed_experts")
    caps.routing = bool(routed)
    return caps
