"""`k2nb inspect`: the numbers it prints are the model's real ones."""

from __future__ import annotations

import json
import subprocess
import sys

from k2nb.cli import inspect_checkpoint
from k2nb.engine import load_model


def test_inspect_counts_match_the_loaded_model(k2_like, grouped):
    for folder, _ in (k2_like, grouped):
        info = inspect_checkpoint(folder)
        model = load_model(folder, progress=False)
        assert info["parameters_total"] == model.num_parameters()
        cfg = model.config
        assert info["kv_cache_bytes_per_token"]["float32"] == model.new_cache().nbytes_per_token()
        per_expert = 3 * cfg.hidden_size * cfg.moe_intermediate_size
        idle = (cfg.n_routed_experts - cfg.num_experts_per_tok) * per_expert * len(cfg.moe_layer_ids)
        assert info["parameters_active_per_token"] == info["parameters_total"] - idle


def test_inspect_command_line(k2_like):
    folder, _ = k2_like
    out = subprocess.run([sys.executable, "-m", "k2nb", "inspect", str(folder), "--json"],
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["model_type"] == "deepseek_v3"
    text = subprocess.run([sys.executable, "-m", "k2nb", "inspect", str(folder)],
                          capture_output=True, text=True, check=True).stdout
    assert "active per token" in text and "B/token" in text
    bad = subprocess.run([sys.executable, "-m", "k2nb", "inspect", str(folder / "missing")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "config.json not found" in bad.stderr
