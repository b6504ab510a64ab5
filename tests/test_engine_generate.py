"""Prefill + incremental decode over the latent cache, sampling, stops, cancellation, routing capture."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
import torch

from k2nb.engine import GenerationError, Session, generate, generate_stream, load_model
from k2nb.routing import Routing


@pytest.fixture(scope="module")
def model(k2_like):
    # bench/gpu_check.sh runs these on CUDA with K2NB_TEST_DEVICE=cuda
    return load_model(k2_like[0], device=os.environ.get("K2NB_TEST_DEVICE", "cpu"), dtype="float32",
                      progress=False)


def _ids(n, seed=0, vocab=320):
    return torch.randint(3, vocab, (1, n), generator=torch.Generator().manual_seed(seed))


def test_prefill_then_decode_equals_full_sequence(model):
    ids = _ids(50).to(model.device)
    full = model.logits(ids)[0]
    cache = model.new_cache(capacity=8)  # forces the cache to grow on the way
    with torch.inference_mode():
        parts = [model(ids[:, :20], cache)[0]]  # fresh prefill (decompressed form)
        parts += [model(ids[:, t:t + 1], cache)[0] for t in range(20, 35)]  # decode (absorbed form)
        parts.append(model(ids[:, 35:], cache)[0])  # multi-token extension over a cached prefix
    assert cache.length == 50
    assert (torch.cat(parts) - full).abs().max().item() < 1e-4


def test_cache_holds_only_latents(model):
    cfg = model.config
    cache = model.new_cache()
    expected = (cfg.kv_lora_rank + cfg.qk_rope_head_dim) * cfg.num_hidden_layers * 4  # float32
    assert cache.nbytes_per_token() == expected == cfg.kv_cache_bytes_per_token(4)
    assert model.new_cache().latent.dtype == torch.float32


def test_greedy_generate_matches_argmax_of_full_logits(model):
    prompt = _ids(12, seed=1)[0].tolist()
    res = generate(model, prompt, max_new_tokens=10, stop_ids=[])
    assert res.finish_reason == "length" and len(res.ids) == 10
    seq = list(prompt)
    for _ in range(10):  # the slow way: whole sequence each step, no cache
        seq.append(int(model.logits(seq)[0, -1].argmax()))
    assert res.ids == seq[len(prompt):]


def test_routing_covers_prompt_and_generated(model):
    prompt = _ids(9, seed=2)[0].tolist()
    res = generate(model, prompt, max_new_tokens=6, stop_ids=[])
    r = res.routing
    assert isinstance(r, Routing)
    cfg = model.config
    L, k = len(cfg.moe_layer_ids), cfg.num_experts_per_tok
    assert r.experts.shape == r.weights.shape == (9 + 6, L, k)
    assert r.experts.dtype == np.int32 and r.weights.dtype == np.float32
    assert r.n_prompt == 9 and r.tokens.tolist() == prompt + res.ids
    assert r.positions.tolist() == list(range(9 + 6))
    assert r.moe_layer_ids == tuple(cfg.moe_layer_ids) and r.n_experts == cfg.n_routed_experts
    # the same choices and weights as a full forward over the same tokens
    record: list = []
    with torch.inference_mode():
        model(torch.tensor([prompt + res.ids], device=model.device), record=record)
    full_ids = torch.stack([rec[1] for rec in record], dim=1).cpu().numpy()  # [T, L, k]
    full_w = torch.stack([rec[0] for rec in record], dim=1).cpu().numpy()
    assert np.array_equal(np.sort(r.experts, -1), np.sort(full_ids, -1))
    order, full_order = np.argsort(r.experts, -1), np.argsort(full_ids, -1)
    got = np.take_along_axis(r.weights, order, -1)
    assert np.allclose(got, np.take_along_axis(full_w, full_order, -1), atol=1e-5)
    counts = r.expert_counts()
    assert counts.shape == (L, cfg.n_routed_experts) and counts.sum() == (9 + 6) * L * k
    again = Routing.from_dict(r.to_dict())
    assert np.array_equal(again.experts, r.experts) and np.array_equal(again.tokens, r.tokens)
    # streamed steps carry the same routing, token by token, as numpy [n_moe_layers, top_k]
    steps = list(generate_stream(model, prompt, max_new_tokens=6, stop_ids=[]))
    assert [s.token_id for s in steps] == res.ids
    assert [s.position for s in steps] == list(range(9, 15))
    assert all(s.experts.shape == (L, k) and s.experts.dtype == np.int32 for s in steps)
    assert all(s.weights.shape == (L, k) and s.weights.dtype == np.float32 for s in steps)
    assert np.array_equal(np.stack([s.experts for s in steps]), r.experts[9:])
    assert np.array_equal(np.stack([s.weights for s in steps]), r.weights[9:])


def test_routing_capture_off(model):
    prompt = _ids(7, seed=10)[0].tolist()
    stream = generate_stream(model, prompt, max_new_tokens=3, stop_ids=[], capture_routing=False)
    steps = list(stream)
    assert all(s.experts is None and s.weights is None for s in steps)
    r = stream.result.routing
    assert isinstance(r, Routing) and len(r) == 0
    assert r.experts.shape == (0, len(model.config.moe_layer_ids), model.config.num_experts_per_tok)
    assert stream.result.ids == generate(model, prompt, max_new_tokens=3, stop_ids=[]).ids


def test_stop_ids_end_generation(model):
    prompt = _ids(8, seed=3)[0].tolist()
    first = generate(model, prompt, max_new_tokens=5, stop_ids=[]).ids
    res = generate(model, prompt, max_new_tokens=5, stop_ids=[first[2]])
    assert res.finish_reason == "stop" and res.ids == first[: first.index(first[2]) + 1]


def test_sampling_is_seeded(model):
    prompt = _ids(8, seed=4)[0].tolist()
    kw = dict(max_new_tokens=12, temperature=1.0, top_k=50, top_p=0.9, stop_ids=[])
    a = generate(model, prompt, seed=7, **kw).ids
    assert a == generate(model, prompt, seed=7, **kw).ids
    assert any(generate(model, prompt, seed=s, **kw).ids != a for s in range(8, 12))


@pytest.mark.parametrize("bad", [dict(temperature=-1.0), dict(top_p=0.0), dict(top_k=0),
                                 dict(max_new_tokens=-1)])
def test_bad_options_are_clear_errors(model, bad):
    with pytest.raises(GenerationError, match="must be"):
        generate(model, [5, 6, 7], **{"max_new_tokens": 3, **bad})


def test_out_of_vocab_token_is_clear_error(model):
    with pytest.raises(GenerationError, match="outside the vocabulary"):
        generate(model, [5, 10_000], max_new_tokens=2)


def test_generation_stops_at_the_end_of_the_context_window(model):
    """The model was trained (and its rope scaled) up to max_position_embeddings: a prompt that fills it
    is a clear error, and generation that reaches it ends with "length" instead of running past it."""
    context = model.config.max_position_embeddings
    with pytest.raises(GenerationError, match=f"the prompt is {context} tokens, but the model's context"):
        generate(model, [5] * context, max_new_tokens=2)
    res = generate(model, [5] * (context - 3), max_new_tokens=50, stop_ids=[])
    assert res.finish_reason == "length" and len(res.ids) == 3


def test_session_reuses_cached_prefix(model):
    s = Session(model)
    prompt = _ids(10, seed=5)[0].tolist()
    first = s.generate_stream(prompt, max_new_tokens=4, stop_ids=[])
    list(first)
    follow = prompt + first.result.ids + [7, 8, 9]
    second = s.generate_stream(follow, max_new_tokens=4, stop_ids=[])
    list(second)
    assert second.result.reused_tokens == len(prompt) + 4
    # the routing covers what this call ran: the new prompt tokens, then the generated ones
    r = second.result.routing
    assert r.n_prompt == 3 and len(r) == 3 + 4 and r.start == len(prompt) + 4
    assert r.positions.tolist() == list(range(len(prompt) + 4, len(follow) + 4))
    assert r.tokens.tolist()[:3] == [7, 8, 9]
    assert second.result.ids == generate(model, follow, max_new_tokens=4, stop_ids=[]).ids
    # a rollback to an earlier prefix truncates instead of recomputing
    third = s.generate_stream(prompt + [11], max_new_tokens=2, stop_ids=[])
    list(third)
    assert third.result.reused_tokens == len(prompt)
    assert third.result.ids == generate(model, prompt + [11], max_new_tokens=2, stop_ids=[]).ids


def test_fork_is_independent(model):
    s = Session(model)
    prompt = _ids(10, seed=6)[0].tolist()
    list(s.generate_stream(prompt, max_new_tokens=1, stop_ids=[]))
    f = s.fork()
    a = f.generate_stream(prompt + [4, 5], max_new_tokens=3, stop_ids=[])
    list(a)
    b = s.generate_stream(prompt + [6, 7], max_new_tokens=3, stop_ids=[])
    list(b)
    assert a.result.reused_tokens == b.result.reused_tokens == len(prompt)
    assert b.result.ids == generate(model, prompt + [6, 7], max_new_tokens=3, stop_ids=[]).ids


def test_cancel_from_another_thread_leaves_model_usable(model):
    cancel = threading.Event()
    s = Session(model)
    stream = s.generate_stream(_ids(6, seed=7)[0].tolist(), max_new_tokens=10_000, stop_ids=[], cancel=cancel)
    n = 0
    for _ in stream:
        n += 1
        if n == 3:
            threading.Thread(target=cancel.set).start()
    assert stream.result.finish_reason == "cancelled" and 3 <= len(stream.result.ids) < 10_000
    assert s.cache.length == len(s.ids)
    prompt = _ids(7, seed=8)[0].tolist()
    assert s.generate_stream(prompt, 3, stop_ids=[]).session is s
    assert generate(model, prompt, 3, stop_ids=[]).ids == generate(model, prompt, 3, stop_ids=[]).ids


def test_keyboard_interrupt_mid_forward_leaves_cache_consistent(model):
    s = Session(model)
    prompt = _ids(10, seed=9)[0].tolist()
    calls = {"n": 0}
    layer = model.layers[2]

    def interrupt(mod, args):
        calls["n"] += 1
        if calls["n"] == 4:  # prefill, then three decode steps, then Ctrl-C inside a forward
            raise KeyboardInterrupt

    h = layer.register_forward_pre_hook(interrupt)
    try:
        stream = s.generate_stream(prompt, max_new_tokens=50, stop_ids=[])
        got = list(stream)
    finally:
        h.remove()
    assert stream.result.finish_reason == "cancelled" and len(got) == 2 and len(stream.result.ids) == 2
    assert s.cache.length == len(s.ids) == len(prompt) + 2
    follow = prompt + [g.token_id for g in got]
    cont = s.generate_stream(follow, max_new_tokens=3, stop_ids=[])
    list(cont)
    assert cont.result.ids == generate(model, follow, max_new_tokens=3, stop_ids=[]).ids
