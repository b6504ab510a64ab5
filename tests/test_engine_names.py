"""The one name table: a checkpoint transformers wrote maps onto the model and back, tensor for tensor."""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from k2nb.engine import hf_tensors, load_model, names


def test_hf_tensors_are_exactly_the_checkpoint(k2_like):
    folder, _ = k2_like
    saved = load_file(folder / "model.safetensors")
    model = load_model(folder, progress=False)
    ours = dict(hf_tensors(model))
    assert sorted(ours) == sorted(saved)
    for name, t in saved.items():
        assert torch.equal(ours[name], t), name


def test_every_hf_name_has_one_place_in_the_model(k2_like):
    model = load_model(k2_like[0], progress=False)
    state = model.state_dict()
    seen: set[tuple[str, int, int]] = set()
    for hf, t in hf_tensors(model):
        target = names.to_model(hf)
        if isinstance(target, names.ExpertPart):
            assert target.stack in state and (target.stack, target.expert, target.part) not in seen
            seen.add((target.stack, target.expert, target.part))
            stacked = state[target.stack]
            rows = stacked.shape[1] // len(names.EXPERT_STACKS[target.stack.rsplit(".", 1)[1]])
            assert torch.equal(stacked[target.expert, target.part * rows:(target.part + 1) * rows], t)
        else:
            assert torch.equal(state[target], t)
    cfg = model.config
    assert len(seen) == len(cfg.moe_layer_ids) * cfg.n_routed_experts * 3


def test_router_stays_float32_and_mtp_layers_are_recognised():
    assert names.keeps_float32("model.layers.3.mlp.gate.weight")
    assert names.keeps_float32("layers.3.mlp.gate.e_score_correction_bias")
    assert not names.keeps_float32("model.layers.0.mlp.gate_proj.weight")
    assert names.layer_index("model.layers.61.eh_proj.weight") == 61
    assert names.layer_index("lm_head.weight") is None
