"""Does running in the notebook slow k2-nano down? Generated tokens/s of one greedy run headless
(`k2nb.think` in this process) and of the same run in a real IPython kernel through `%%k2think`
(nbclient drives the kernel; the live view renders over ZMQ, tool calls run as IPython cells and
are shown inline). Goal: notebook ÷ headless ≥ 0.9.

    python bench/notebook_vs_headless.py                        # shipped k2-nano, 3 repeats, median
    python bench/notebook_vs_headless.py --model runs/k2-nano --repeats 5 --threads 1

Both sides load the model once, set the same torch thread count, do one untimed warm-up run, then
alternate headless / notebook runs (so drift of a shared machine hits both alike). Tokens are the
generated tokens of the run's trajectory (thinking, tool calls, answer; tool output is not
generated). Time is the wall time of the run: headless, the `think` call; notebook, the `%%k2think`
cell as the client sees it (execute request → reply, dashboard off), and also the run as timed
inside the kernel (`K2Result.elapsed_s`). Both runs must produce the same tokens and answer; the
script says so when they do not.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROMPT = "For the values [97, 74, 90, 40, 24, 66], what is the population standard deviation?"
GENERATED = ("thinking", "tool_call", "answer", "verification", "error")

SETUP = """\
import json, torch
torch.set_num_threads({threads})
%load_ext k2nb
%k2model load {model}
%k2nb set dashboard off
"""

REPORT = """\
_r = k2_last
print(json.dumps({{"tokens": sum(n.n_tokens for n in _r.trajectory.nodes.values() if n.kind in {kinds!r}),
                  "seconds": _r.elapsed_s, "answer": _r.answer, "end_reason": _r.end_reason}}))
"""


@dataclass(slots=True)
class Sample:
    tokens: int
    seconds: float
    answer: str | None

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def generated_tokens(trajectory: Any) -> int:
    return sum(n.n_tokens for n in trajectory.nodes.values() if n.kind in GENERATED)


def headless_run(model: Any, prompt: str) -> Sample:
    import k2nb

    t0 = time.perf_counter()
    result = k2nb.think(prompt, model=model)
    dt = time.perf_counter() - t0
    return Sample(generated_tokens(result.trajectory), dt, result.answer)


class NotebookKernel:
    """A real kernel driven by nbclient, one cell at a time."""

    def __init__(self, model: Path, threads: int, timeout_s: int = 600):
        import nbformat
        from nbclient import NotebookClient

        self.nb = nbformat.v4.new_notebook()
        self.nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        self.client = NotebookClient(self.nb, timeout=timeout_s, kernel_name="python3")
        self._ctx = self.client.setup_kernel()
        self._ctx.__enter__()
        out = self.run(SETUP.format(threads=threads, model=str(model)))
        if "model:" not in out:
            raise RuntimeError(f"the kernel did not load {model}: {out[-800:]}")

    def run(self, source: str) -> str:
        """Execute one cell; its text outputs. Raises on an error output."""
        import nbformat

        cell = nbformat.v4.new_code_cell(source)
        self.nb.cells.append(cell)
        self.client.execute_cell(cell, len(self.nb.cells) - 1)
        texts = []
        for o in cell.outputs:
            if o.output_type == "error":
                raise RuntimeError(f"{o.ename}: {o.evalue}")
            data = o.get("data", {})
            texts.append(o.get("text", "") if o.output_type == "stream" else data.get("text/plain", ""))
        return "\n".join(texts)

    def think(self, prompt: str) -> tuple[Sample, Sample]:
        """(client-side cell sample, in-kernel sample) of one `%%k2think --new` run."""
        t0 = time.perf_counter()
        self.run(f"%%k2think --new\n{prompt}")
        cell_s = time.perf_counter() - t0
        line = [x for x in self.run(REPORT.format(kinds=GENERATED)).splitlines() if x.startswith("{")][-1]
        r = json.loads(line)
        return Sample(r["tokens"], cell_s, r["answer"]), Sample(r["tokens"], r["seconds"], r["answer"])

    def close(self) -> None:
        self._ctx.__exit__(None, None, None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="checkpoint folder (default: the shipped k2-nano)")
    ap.add_argument("--prompt", default=PROMPT)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads on both sides (default 1)")
    args = ap.parse_args()

    os.environ.pop("K2NB_MODEL", None)  # the kernel loads exactly --model
    import torch

    import k2nb
    from k2nb.models import model_path

    path = Path(args.model) if args.model else model_path()
    torch.set_num_threads(args.threads)
    model = k2nb.load_model(path, progress=False)
    kernel = NotebookKernel(path, args.threads)
    head: list[Sample] = []
    cell: list[Sample] = []
    inner: list[Sample] = []
    try:
        headless_run(model, args.prompt)  # warm-up, untimed
        kernel.think(args.prompt)
        for i in range(args.repeats):
            head.append(headless_run(model, args.prompt))
            c, k = kernel.think(args.prompt)
            cell.append(c)
            inner.append(k)
            print(f"run {i + 1}: headless {head[-1].tokens} tok {head[-1].rate:.1f} tok/s | notebook cell "
                  f"{c.tokens} tok {c.rate:.1f} tok/s (in kernel {k.rate:.1f} tok/s)", flush=True)
    finally:
        kernel.close()

    same = all(h.tokens == c.tokens and h.answer == c.answer for h, c in zip(head, cell, strict=True))
    rate_h = statistics.median(s.rate for s in head)
    rate_c = statistics.median(s.rate for s in cell)
    rate_k = statistics.median(s.rate for s in inner)
    print(f"\n{path.name}, prompt {args.prompt!r}, greedy, {args.threads} torch thread(s), "
          f"median of {args.repeats}")
    print(f"  answer                         {head[-1].answer!r} ({head[-1].tokens} generated tokens)")
    def secs(samples: list[Sample]) -> str:
        return f"({statistics.median(s.seconds for s in samples):.2f} s)"

    print(f"  headless  k2nb.think           {rate_h:7.1f} tok/s  {secs(head)}")
    print(f"  notebook  %%k2think cell       {rate_c:7.1f} tok/s  {secs(cell)}  [execute request → reply]")
    print(f"  notebook  run inside kernel    {rate_k:7.1f} tok/s  {secs(inner)}  [K2Result.elapsed_s]")
    print(f"  notebook ÷ headless            {rate_c / rate_h:7.3f} (cell)   "
          f"{rate_k / rate_h:.3f} (in kernel)   goal >= 0.9")
    if not same:
        print("  WARNING: the headless and notebook runs differ (tokens or answer); the ratio compares "
              "different work", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
