"""The CPU decode path: helper threads change where products run, never their values; INT4 decode on
the CPU (torch's packed-int4 kernel in bfloat16, the reference path in float32) gives the model's
tokens."""

from __future__ import annotations

import threading

import pytest
import torch
import torch.nn.functional as F

from k2nb.engine import generate, load_model
from k2nb.engine.ops import WORKERS, dense
from k2nb.engine.ops.threads import Workers


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_map_spreads_calls_and_keeps_their_order(two_threads):
    seen: set[str] = set()

    def call(i):
        seen.add(threading.current_thread().name)
        return torch.full((1,), float(i)) * 2

    pool = Workers()
    assert pool.helpers() == 1
    out = pool.map([lambda i=i: call(i) for i in range(64)])
    assert [t.item() for t in out] == [2.0 * i for i in range(64)]
    with pytest.raises(ValueError, match="boom"):
        pool.map([lambda: torch.zeros(1), lambda: (_ for _ in ()).throw(ValueError("boom"))])


def test_helpers_run_in_the_callers_inference_mode_and_never_nest(two_threads):
    pool = Workers()

    def probe():
        on_helper = threading.current_thread().name.startswith("k2nb-cpu")
        return torch.tensor([torch.is_inference_mode_enabled(), not on_helper or pool.helpers() == 0])

    with torch.inference_mode():
        results = pool.map([probe for _ in range(8)])
    assert all(bool(r.all()) for r in results)
    pending = pool.start(lambda: torch.tensor(torch.is_grad_enabled()))
    assert bool(pending.result())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_large_one_row_linear_in_row_blocks_is_bit_for_bit_one_call(two_threads, dtype):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(1000, 1024, generator=g).to(dtype)
    b = torch.randn(1000, generator=g).to(dtype)
    x = torch.randn(1, 1, 1024, generator=g).to(dtype)
    assert w.numel() * w.element_size() >= dense.SPLIT_MIN_BYTES
    with torch.inference_mode():
        assert torch.equal(dense.linear(x, w, b), F.linear(x, w, b))
        assert torch.equal(dense.linear(x, w), F.linear(x, w))


def test_decode_with_helpers_is_bit_for_bit_decode_without(k2_like, two_threads, monkeypatch):
    """The same logits at every step, whether the experts, the shared expert and the large linears
    run on helpers or not."""
    model = load_model(k2_like[0], dtype="float32", progress=False)
    monkeypatch.setattr(dense, "SPLIT_MIN_BYTES", 1024)  # the tiny model's linears are split too

    def steps():
        cache, out = model.new_cache(64), []
        with torch.inference_mode():
            logits = model(torch.arange(3, 20)[None], cache, last_only=True)
            for _ in range(12):
                tok = logits[0, -1].argmax().view(1, 1)
                logits = model(tok, cache, last_only=True)
                out.append(logits)
        return torch.cat(out)

    threaded = steps()
    monkeypatch.setattr(WORKERS, "helpers", lambda: 0)
    assert torch.equal(threaded, steps())


def test_int4_decode_on_the_cpu_in_both_compute_dtypes(k2_like, tmp_path):
    """torch's int4 kernel in bfloat16 and in float32 compute (where only the experts' input is
    rounded to bfloat16) against the exact path: the published layout, dequantized in float32."""
    from k2nb.engine.quantize import quantize_checkpoint

    folder = quantize_checkpoint(k2_like[0], tmp_path / "int4", dtype=torch.bfloat16)
    reference = load_model(folder, dtype="float32", progress=False, exact=True)
    fast = load_model(folder, dtype="bfloat16", progress=False)
    fast32 = load_model(folder, dtype="float32", progress=False)
    assert reference.layers[1].mlp.experts.w13.format == "int4"
    assert fast.layers[1].mlp.experts.w13.format == fast32.layers[1].mlp.experts.w13.format == "int4_cpu"
    prompt = list(range(3, 30))
    a = generate(reference, prompt, max_new_tokens=6, stop_ids=[])
    b = generate(fast, prompt, max_new_tokens=6, stop_ids=[])
    c = generate(fast32, prompt, max_new_tokens=6, stop_ids=[])
    assert len(a.ids) == len(b.ids) == 6 and c.ids == a.ids
    ids = torch.tensor([prompt + a.ids])
    la, lb, lc = reference.logits(ids), fast.logits(ids), fast32.logits(ids)
    assert lc.dtype == torch.float32
    assert F.cosine_similarity(la.flatten(), lb.flatten(), dim=0) > 0.99
    assert F.cosine_similarity(la.flatten(), lc.flatten(), dim=0) > 0.9999
    assert (la - lc).abs().max() < 0.02 * la.abs().max()


def test_the_one_token_step_gives_the_plain_forwards_logits(k2_like, two_threads):
    """Inference decode (torch at one thread, helpers, attention at the caller's threads) against the
    same steps with autograd on, which take none of that path: bit for bit, past the context length
    where torch's CPU attention starts splitting the cached tokens over threads."""
    model = load_model(k2_like[0], dtype="float32", progress=False)

    def steps(grad: bool) -> torch.Tensor:
        cache, out = model.new_cache(256), []
        with torch.set_grad_enabled(grad):
            logits = model(torch.arange(3, 123)[None] % 300, cache, last_only=True)
            for _ in range(8):
                logits = model(logits[0, -1].argmax().view(1, 1), cache, last_only=True).detach()
                out.append(logits)
        assert torch.get_num_threads() == 2
        return torch.cat(out)

    assert torch.equal(steps(False), steps(True))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_one_query_attention_is_sdpa_over_the_latents(dtype):
    """The 16-bit CPU decode attention (heads as the rows of one product) against SDPA in float32."""
    from k2nb.engine.model import _one_query_attention

    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 8, 1, 96, generator=g).to(dtype)  # B 2, H 8, R + dr = 64 + 32
    latent = torch.randn(2, 1, 37, 96, generator=g).to(dtype)
    ref = F.scaled_dot_product_attention(q.float(), latent.float(), latent.float(), scale=0.125,
                                         enable_gqa=True)[..., :64]
    out = _one_query_attention(q, latent, 0.125, 64)
    assert out.dtype == dtype and out.shape == (2, 8, 1, 64)
    assert (out.float() - ref).abs().max() < 2e-2


def test_bfloat16_decode_follows_the_bfloat16_forward(k2_like):
    """Cached one-token steps in bfloat16 (the attention above) give the logits of the whole-sequence
    forward (SDPA, decompressed) to bfloat16's precision; a token whose rounding tips a router to
    another expert may differ more (one of these 17 does)."""
    model = load_model(k2_like[0], dtype="bfloat16", progress=False)
    ids = torch.arange(3, 40)[None] % 300
    with torch.inference_mode():
        full = model.logits(ids)[0].float()  # [T, vocab]
        cache = model.new_cache(64)
        steps = [model(ids[:, :20], cache)[0]]
        steps += [model(ids[:, t:t + 1], cache)[0] for t in range(20, ids.shape[1])]
        cached = torch.cat(steps).float()
    agree = F.cosine_similarity(cached[20:], full[20:], dim=-1)  # [17]
    assert agree.median() > 0.999 and int((agree > 0.99).sum()) >= 15, agree
