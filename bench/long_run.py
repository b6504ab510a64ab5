"""A 300-tool-call run: per-step latency at steps 10, 100 and 300, and memory, for the scripted
backend and for the real engine.

Each step is one assistant turn with one `python` call (`acc += i`), so the conversation grows by
two messages a step. The loop's own cost per step (the scripted run) stays flat: the prompt is
extended on the rendered prefix, never re-encoded from the start, and memory grows by the ~10 KB a
step adds to the conversation and the trajectory. The engine's step grows with the context: decode
attends over the whole latent cache (linear in its length), which is the model's cost, not the loop's.

- scripted: `ScriptedBackend` (K2 text through the real parser, real LocalExecutor, real Trajectory).
- engine: a random K2-architecture model (k2nb.demo's toy config) behind `EngineBackend`; every step
  really prefills the new messages on the session's cached prefix and decodes 2 tokens, then the
  scripted turn text is what the loop parses (a random model does not call tools by itself).

    python bench/long_run.py [--steps 300] [--engine-steps N] [--skip-engine]
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from k2nb.agent import Budgets, Conversation, LocalExecutor, ThinkOptions, TrajectoryEvent
from k2nb.backends.base import BackendBase, GenerationOptions, Prompt, TurnStream
from k2nb.backends.engine import EngineBackend
from k2nb.backends.formatted import TextToken, parse_turn
from k2nb.backends.scripted import ScriptedBackend, Turn, fake_tokens
from k2nb.formats.k2 import K2_FORMAT

MARKS = (10, 100, 300)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def script(steps: int) -> list[Any]:
    def step(i: int) -> Any:
        return Turn(f"Step {i}.", [("python", {"code": f"acc = acc + {i}" if i else "acc = 0"})])

    return [step(i) for i in range(steps)] + [Turn("Done.", answer="acc is the sum.")]


class EngineStepBackend(BackendBase):
    """Real engine work per step (prefill of what is new + 2 decoded tokens), scripted text out."""

    def __init__(self, engine: EngineBackend, scripted: ScriptedBackend):
        self.engine, self.scripted = engine, scripted
        self.prefilled: list[int] = []  # prompt tokens that were not in the cache, per step
        self.reused: list[int] = []

    def stream(self, prompt: Prompt, options: GenerationOptions, cancel: Any = None) -> TurnStream:
        routing = None
        turn = self.engine.stream(prompt, GenerationOptions(max_new_tokens=2), cancel)
        for chunk in turn:
            routing = (chunk.experts, chunk.weights)
        turn.close()
        res = self.engine.last_result
        self.prefilled.append(res.prompt_tokens - res.reused_tokens)
        self.reused.append(res.reused_tokens)
        text = self.scripted.next_item(prompt)
        experts, weights = routing or (None, None)
        tokens = (TextToken(piece, None, 0, None, experts, weights) for piece in fake_tokens(text, 4))
        return parse_turn(K2_FORMAT, prompt, tokens)

    def fork(self) -> EngineStepBackend:
        return EngineStepBackend(self.engine.fork(), self.scripted.fork())


def run(backend: Any, steps: int, trace_python_heap: bool) -> dict[str, Any]:
    marks: dict[int, dict[str, float]] = {}
    times: list[float] = []

    def on_event(e: TrajectoryEvent) -> None:
        if e.type == "node_added" and e.node is not None and e.node.kind == "tool_call":
            times.append(time.perf_counter())
            n = len(times)
            if n in MARKS or n == steps:
                gc.collect()
                heap = tracemalloc.get_traced_memory()[0] / 2**20 if trace_python_heap else float("nan")
                marks[n] = {"rss_mb": rss_mb(), "py_heap_mb": heap}

    budgets = Budgets(tool_calls=None, steps=None, think_tokens=None, think_tokens_per_step=None)
    conv = Conversation(
        backend,
        LocalExecutor(timeout_s=10),
        options=ThinkOptions(budgets=budgets, builtin_checks=("args",)),
        observers=[on_event],
    )
    if trace_python_heap:
        tracemalloc.start()
    t0 = time.perf_counter()
    result = conv.ask("Add up 0..N-1 step by step.")
    total = time.perf_counter() - t0
    if trace_python_heap:
        tracemalloc.stop()
    assert len(result.tool_calls) == steps, (len(result.tool_calls), result.end_reason)
    deltas = [b - a for a, b in zip(times, times[1:], strict=False)]  # step k's latency = deltas[k-2]

    def around(k: int) -> float:
        window = deltas[max(0, k - 21) : k - 1]  # the 20 steps ending at step k (one GC pass is an outlier)
        return statistics.median(window) * 1e3 if window else float("nan")

    return {
        "total_s": total,
        "ms": {k: around(k) for k in MARKS if k <= steps},
        "mem": marks,
        "result": result,
    }


def tiny_engine(tmp: Path) -> EngineBackend:
    import torch

    torch.set_num_threads(1)  # a tiny model gains nothing from threads; on a shared box they thrash
    from k2nb.demo import DEMO_CONFIG
    from k2nb.engine import K2Model, ModelConfig
    from k2nb.engine.tokenizer import load_tokenizer
    from k2nb.formats.k2 import SPECIAL_MARKERS

    # byte-level Kimi-format tokenizer: 256 byte tokens, then [BOS], [EOS] and the K2 markers
    lines = [f"{base64.b64encode(bytes([b])).decode()} {b}" for b in range(256)]
    (tmp / "tiktoken.model").write_text("\n".join(lines) + "\n")
    names = ["[BOS]", "[EOS]", *SPECIAL_MARKERS]
    decoder = {str(256 + i): {"content": n, "special": True} for i, n in enumerate(names)}
    (tmp / "tokenizer_config.json").write_text(
        json.dumps({"added_tokens_decoder": decoder, "bos_token": "[BOS]", "eos_token": "[EOS]"})
    )
    tokenizer = load_tokenizer(tmp)
    cfg = dict(DEMO_CONFIG, max_position_embeddings=65536, vocab_size=tokenizer.vocab_size)
    with torch.device("cpu"):
        model = K2Model(ModelConfig.from_dict(cfg)).init_weights(std=0.05, seed=0).eval()
    return EngineBackend(model, tokenizer=tokenizer)


def report(name: str, r: dict[str, Any], steps: int) -> None:
    ms = r["ms"]
    first = ms.get(10, float("nan"))
    cols = "  ".join(f"step {k}: {v:7.2f} ms" for k, v in ms.items())
    ratio = "  ".join(f"{k}/10: {v / first:4.2f}x" for k, v in ms.items() if k != 10)
    print(f"{name:9s} {cols}   ratios {ratio}   total {r['total_s']:.1f} s")
    mem = r["mem"]
    ks = sorted(mem)
    rss = "  ".join(f"step {k}: {mem[k]['rss_mb']:.0f} MB" for k in ks)
    heap = "  ".join(f"step {k}: {mem[k]['py_heap_mb']:.2f} MB" for k in ks)
    print(f"{'':9s} RSS {rss}")
    if mem[ks[0]]["py_heap_mb"] == mem[ks[0]]["py_heap_mb"]:  # not NaN
        per_step = (mem[ks[-1]]["py_heap_mb"] - mem[ks[0]]["py_heap_mb"]) * 1024 / max(ks[-1] - ks[0], 1)
        print(f"{'':9s} Python heap {heap}  (+{per_step:.1f} KB per step)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument(
        "--engine-steps", type=int, default=None, help="steps of the engine run (default --steps)"
    )
    ap.add_argument("--skip-engine", action="store_true")
    args = ap.parse_args()

    # timed without tracemalloc (it slows every allocation, unevenly); the heap is measured in a
    # second, identical run
    r = run(ScriptedBackend(script(args.steps), keep_prompts=False), args.steps, trace_python_heap=False)
    heap = run(ScriptedBackend(script(args.steps), keep_prompts=False), args.steps, trace_python_heap=True)
    for k, m in heap["mem"].items():
        r["mem"].setdefault(k, m)["py_heap_mb"] = m["py_heap_mb"]
    print(f"{args.steps} sequential python tool calls in one run (median of the 20 steps ending at a mark)")
    report("scripted", r, args.steps)
    if args.skip_engine:
        return
    steps = args.engine_steps or args.steps
    with tempfile.TemporaryDirectory() as tmp:
        engine = EngineStepBackend(tiny_engine(Path(tmp)), ScriptedBackend(script(steps), keep_prompts=False))
        r = run(engine, steps, trace_python_heap=False)
    report("engine", r, steps)
    pre, reused = engine.prefilled, engine.reused
    marks = [k for k in MARKS if k <= len(pre)]
    print(
        f"{'':9s} tokens prefilled per step: "
        + "  ".join(f"step {k}: {pre[k - 1]}" for k in marks)
        + "   reused from the cache: "
        + "  ".join(f"step {k}: {reused[k - 1]}" for k in marks)
    )


if __name__ == "__main__":
    main()
