"""Where the turns of a reasoning path come from.

`base.py` is the protocol (`Backend`, `StreamChunk`, `Prompt`, `GenerationOptions`, `TurnStream`);
`engine.py` is the local engine (a model in this process), `openai.py` a served model (vLLM, SGLang,
a hosted API; the server's deltas mapped to events by `served.py`), `scripted.py` the test double
that plays written turns; `formatted.py` is what backends that run a chat format themselves share.
"""

from k2nb.backends.base import Backend, BackendBase, GenerationOptions, Prompt, StreamChunk, TurnStream
from k2nb.backends.engine import EngineBackend, engine_backend
from k2nb.backends.openai import OpenAIBackend, ServerError
from k2nb.backends.scripted import ScriptedBackend, Turn

__all__ = [
    "Backend",
    "BackendBase",
    "EngineBackend",
    "GenerationOptions",
    "OpenAIBackend",
    "Prompt",
    "ScriptedBackend",
    "ServerError",
    "StreamChunk",
    "Turn",
    "TurnStream",
    "engine_backend",
]
