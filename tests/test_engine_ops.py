"""The kernel seam: the dense expert paths agree, a weight's format picks its kernel, and a format
without one is a one-sentence error."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

from k2nb.engine import K2nbError, load_model, ops
from k2nb.engine.ops import dense

# bench/gpu_check.sh runs the engine tests on CUDA with K2NB_TEST_DEVICE=cuda
DEVICE = torch.device(os.environ.get("K2NB_TEST_DEVICE", "cpu"))


def _experts(E=8, D=24, I=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(E, 2 * I, D, generator=g) * 0.2, torch.randn(E, D, I, generator=g) * 0.2


def _reference(x, topk_weights, topk_ids, w13, w2):
    """Token by token, expert by expert: Σ_k w_k · down(silu(gate(x)) · up(x))."""
    out = torch.zeros_like(x)
    for n in range(x.shape[0]):
        for w, e in zip(topk_weights[n].tolist(), topk_ids[n].tolist(), strict=True):
            g, u = (w13[e] @ x[n]).chunk(2)
            out[n] += w * (w2[e] @ (F.silu(g) * u))
    return out


@pytest.mark.parametrize("n_tokens", [1, 3, 9, 40])
def test_dense_expert_paths_agree_with_the_reference(n_tokens):
    w13, w2 = _experts()
    g = torch.Generator().manual_seed(n_tokens)
    x = torch.randn(n_tokens, w13.shape[2], generator=g)
    # ragged loads: experts 0-2 only, so most experts receive no token
    ids = torch.stack([torch.randperm(3, generator=g)[:2] for _ in range(n_tokens)])  # [N, 2]
    weights = torch.rand(n_tokens, 2, generator=g)
    expected = _reference(x, weights, ids, w13, w2)
    x, weights, ids, w13, w2 = (t.to(DEVICE) for t in (x, weights, ids, w13, w2))
    N, k = ids.shape
    gathered = (dense._gathered(x, ids, w13, w2).view(N, k, -1) * weights[..., None]).sum(1)
    with torch.inference_mode():  # grouped GEMM where torch has it (N > 4)
        grouped = ops.moe_experts(x, weights, ids, w13, w2)
    with torch.enable_grad():  # the per-expert loop
        looped = ops.moe_experts(x, weights, ids, w13, w2)
    for got in (gathered, grouped, looped):
        assert torch.allclose(got.cpu(), expected, atol=1e-5)


def test_an_unknown_format_is_one_sentence():
    x = torch.randn(2, 8)
    packed = torch.zeros(4, 1, dtype=torch.int32)
    packed.format = "int3"
    with pytest.raises(K2nbError, match=r"weights in format 'int3' have no linear kernel on cpu; "
                                        r"the formats with one are dense, fp8, int4, int4_cpu$"):
        ops.linear(x, packed)
    with pytest.raises(K2nbError, match="a weight of dtype torch.int8 carries no format attribute"):
        ops.linear(x, torch.zeros(4, 8, dtype=torch.int8))
    w13, w2 = _experts()
    w2.format = "int4"
    with pytest.raises(K2nbError, match="w13 is 'dense' but w2 is 'int4'"):
        ops.moe_experts(torch.randn(2, 24), torch.ones(2, 1), torch.zeros(2, 1, dtype=torch.long), w13, w2)


def _scaled(w: torch.Tensor) -> torch.nn.Parameter:
    """A toy quantized format: int8 values carrying one float scale per output row, the way an FP8
    weight carries its ``scale`` in DeepSeek-V3's reference."""
    scale = w.abs().amax(-1, keepdim=True) / 127
    q = torch.nn.Parameter(torch.round(w / scale).to(torch.int8), requires_grad=False)
    q.format, q.scale = "toy_int8", scale
    return q


@pytest.fixture
def toy_int8():
    """What an INT4 / FP8 module does: register its kernels for its format."""
    def dequant(w):
        return w.to(torch.float32) * w.scale

    ops.register("linear", "toy_int8")(lambda x, w, b=None: F.linear(x, dequant(w), b))
    ops.register("dense_weight", "toy_int8")(dequant)
    yield
    ops.unregister("linear", "toy_int8")
    ops.unregister("dense_weight", "toy_int8")


def test_a_new_format_is_one_registration(toy_int8, k2_like):
    """With a format's kernels registered the model runs on weights in that format."""
    model = load_model(k2_like[0], progress=False)
    ids = torch.arange(3, 20)[None]
    before = model.logits(ids)
    attn = model.layers[1].self_attn
    for name in ("q_a_proj", "kv_b_proj", "o_proj"):
        lin = getattr(attn, name)
        lin.weight = _scaled(lin.weight.data)
    after = model.logits(ids)
    assert not torch.equal(before, after)
    assert torch.nn.functional.cosine_similarity(before.flatten(), after.flatten(), dim=0) > 0.999


def test_a_device_kernel_overrides_the_generic_one(k2_like):
    """A Triton MoE registers for ("moe_experts", "dense", "cuda"); here the same on the CPU."""
    calls = []

    def counting(*args):
        calls.append(args[0].shape[0])
        return dense.moe_experts(*args)

    model = load_model(k2_like[0], progress=False)
    ids = torch.arange(3, 20)[None]
    before = model.logits(ids)
    ops.register("moe_experts", "dense", "cpu")(counting)
    try:
        assert torch.equal(model.logits(ids), before)
    finally:
        ops.unregister("moe_experts", "dense", "cpu")
    assert calls == [17] * len(model.config.moe_layer_ids)
    model.logits(ids)  # unregistered: the generic kernel again
    assert len(calls) == len(model.config.moe_layer_ids)
