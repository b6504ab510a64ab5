"""Does the notebook's live view slow generation down? tokens/s of one run in a real kernel with the
`%%k2think` live view (displays updated over ZMQ) ÷ tokens/s of the same run headless. Goal ≥ 0.9.

    python bench/notebook_overhead.py                      # scripted model at a simulated speed
    python bench/notebook_overhead.py --model runs/k2-nano # a real checkpoint with a tokenizer

The scripted model emits K2-format text token by token with `--token-ms` of "compute" per token, so
the ratio measures exactly what the view adds per token (its observer call and throttled renders).
With `--model`, both runs use the engine on that checkpoint (greedy, same seed, same budget).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

SETUP = r"""
import json, time
from k2nb.magics import state
from k2nb.agent import Conversation
from k2nb.backends.scripted import ScriptedBackend, Turn

MODEL = {model!r}
TOKEN_S = {token_ms} / 1000.0
THINK = " ".join(["I am thinking about the question step by step."] * {repeat})

def backend():
    if MODEL:
        from k2nb.backends.engine import EngineBackend
        from k2nb.engine import load_model
        global _model
        try:
            _model
        except NameError:
            _model = load_model(MODEL)
        return EngineBackend(_model)
    from k2nb.backends.base import TurnStream
    class Slow(ScriptedBackend):
        def stream(self, prompt, options, cancel=None):
            turn = super().stream(prompt, options, cancel)
            def slow():
                for chunk in turn:
                    time.sleep(TOKEN_S)   # the model's compute per token
                    yield chunk
            return TurnStream(slow(), turn.close)
    return Slow([Turn(think=THINK, calls=[("python", {{"code": "21 * 2"}})]),
                 Turn(think=THINK, answer="The answer is 42. " * 20)], chunk_chars=3)

def tokens_of(t):
    return sum(n.n_tokens for n in t.nodes.values() if n.kind != "observation")
"""

HEADLESS = r"""
conv = Conversation(backend())
t0 = time.perf_counter()
r = conv.ask("What is 21 * 2?")
dt = time.perf_counter() - t0
print(json.dumps({"tokens": tokens_of(r.trajectory), "seconds": dt}))
"""

NOTEBOOK = r"""
state().use_backend(backend())
state().settings["dashboard"] = False
"""

REPORT = r"""
r = _
print(json.dumps({"tokens": tokens_of(r.trajectory), "seconds": r.elapsed_s}))
"""


def _last_json(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"no result in: {text[-500:]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="", help="checkpoint folder (default: scripted model)")
    ap.add_argument("--token-ms", type=float, default=5.0, help="scripted compute per token, ms")
    ap.add_argument("--repeat", type=int, default=40, help="length of the scripted thinking")
    args = ap.parse_args()
    from kernel_harness import KernelSession

    s = KernelSession(extra_env={"K2NB_WARM": "0", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")})
    try:
        s.execute("%load_ext k2nb")
        setup = SETUP.format(model=args.model, token_ms=args.token_ms, repeat=args.repeat)
        out = s.execute(setup, timeout=300)
        assert out.reply["content"]["status"] == "ok", out.text()
        head = _last_json(s.execute(HEADLESS, timeout=600).text())
        s.execute(NOTEBOOK)
        s.execute("%%k2think --new\nWhat is 21 * 2?", timeout=600)
        nb = _last_json(s.execute(REPORT).text())
    finally:
        s.close()
    rate_h = head["tokens"] / head["seconds"]
    rate_n = nb["tokens"] / nb["seconds"]
    what = args.model or f"scripted model, {args.token_ms:g} ms/token"
    print(f"{what}: headless {head['tokens']} tokens {rate_h:.1f} tok/s | notebook live view "
          f"{nb['tokens']} tokens {rate_n:.1f} tok/s | notebook/headless = {rate_n / rate_h:.3f} "
          "(goal >= 0.9)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
