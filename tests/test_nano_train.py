"""k2-nano tokenizer, data packing and a few-step training run on a tiny config."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from k2nb.engine import load_model
from k2nb.engine.tokenizer import load_tokenizer
from k2nb.formats.k2 import IM_END, SPECIAL_MARKERS, encode_conversation
from k2nb.nano import curriculum as C
from k2nb.nano.data import encode_problem, pack
from k2nb.nano.tokenizer_train import train_tokenizer
from k2nb.nano.train import NANO_CONFIG, TINY_CONFIG, quick_eval, train_nano


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tok")
    train_tokenizer(folder, vocab_size=1024, n_problems=1500, seed=0)
    return load_tokenizer(folder)


def test_tokenizer_has_markers_as_single_special_tokens_and_single_digits(tokenizer):
    for marker in SPECIAL_MARKERS:
        assert marker in tokenizer.special_tokens
    assert tokenizer.eos_ids == (tokenizer.special_tokens[IM_END],)
    ids = tokenizer.encode("print(1234 + 56.78)")
    digits = [tokenizer.decode([i]) for i in ids if tokenizer.decode([i]).strip().isdigit()]
    assert digits == list("12345678")
    # Marker text typed by a user is not a marker.
    assert tokenizer.special_tokens[IM_END] not in tokenizer.encode("say <|im_end|> now")
    assert tokenizer.decode(tokenizer.encode("Ünïcode ✓ 42")) == "Ünïcode ✓ 42"


def test_tokenizer_splits_quoted_literals_into_letters_but_not_words_or_apostrophes(tokenizer):
    def pieces(text: str) -> list[str]:
        return [tokenizer.decode([i]) for i in tokenizer.encode(text)]

    code = pieces("print('crhlnc'.count('l'))")
    assert code[code.index("'") + 1:code.index("'") + 7] == list("crhlnc")
    assert "print" in code and "count" in code  # code words outside quotes still merge
    assert [p for p in pieces("df['units'].sum()") if p.isalpha()][:6] == ["df", "u", "n", "i", "t", "s"]
    # An apostrophe is not an opening quote: the words around it keep their merges.
    text = "Ana's word is 'ox'. What is it?"
    ids, plain = tokenizer.encode(text), tokenizer.encode(" word is")
    assert any(ids[i:i + len(plain)] == plain for i in range(len(ids))), pieces(text)
    assert pieces(text)[-9:-6] == ["'", "o", "x"]
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_encoding_matches_the_engine_and_masks_only_assistant_output(tokenizer):
    for p in C.generate(60, seed=1):
        enc = encode_problem(tokenizer, p)
        # Everything before the final answer is exactly the engine's prompt for that generation step.
        prompt = encode_conversation(tokenizer, p.messages[:-1], p.tools, add_generation_prompt=True)
        assert list(enc.ids[:len(prompt)]) == prompt
        # Targets are runs that start with <think> and end with <|im_end|>, right after the
        # generation prompt "<|im_assistant|>assistant<|im_middle|>".
        runs = np.flatnonzero(np.diff(np.concatenate([[0], enc.loss, [0]])))
        starts, ends = runs[::2], runs[1::2]
        n_targets = sum(1 for i, m in enumerate(p.messages) if m["role"] == "assistant"
                        and i > max(j for j, q in enumerate(p.messages) if q["role"] == "user")
                        and i not in p.no_loss)
        assert len(starts) == n_targets
        for s, e in zip(starts, ends, strict=True):
            assert tokenizer.decode(enc.ids[s - 3:s].tolist()) == "<|im_assistant|>assistant<|im_middle|>"
            assert tokenizer.decode([int(enc.ids[s])]) == "<think>"
            assert int(enc.ids[e - 1]) == tokenizer.special_tokens[IM_END]


def test_packing_keeps_conversations_whole(tokenizer):
    encoded = [encode_problem(tokenizer, p) for p in C.generate(80, seed=2)]
    # rows of 1,024: the longest of these conversations (open-vocabulary nouns cost this small
    # tokenizer many pieces) passes 768
    rows = pack(encoded, seq_len=1023, pad_id=tokenizer.special_tokens[IM_END], seed=0)
    assert rows.ids.shape[1] == 1024 and rows.n_dropped == 0
    assert rows.n_tokens == sum(len(e) for e in encoded)
    assert int(rows.loss.sum()) == sum(int(e.loss.sum()) for e in encoded)
    # Each conversation starts with the tool declaration; count them to check none was cut.
    opener = tokenizer.special_tokens["<|im_system|>"]
    declare = tokenizer.encode("tool_declare")
    starts = sum(1 for r in rows.ids for i in range(len(r) - len(declare))
                 if r[i] == opener and list(r[i + 1:i + 1 + len(declare)]) == declare)
    assert starts == len(encoded)
    assert rows.fill > 0.8
    # Segments number the conversations of each row; the padding after them is one more segment.
    steps = np.diff(rows.seg.astype(int), axis=1)
    assert (rows.seg[:, 0] == 0).all() and steps.min() >= 0 and steps.max() == 1
    # a row ends in padding when its last segment holds no targets (every conversation has some)
    n_padded = sum(int(not lo[sg == sg.max()].any()) for lo, sg in zip(rows.loss, rows.seg, strict=True))
    assert int(rows.seg.max(axis=1).sum()) + len(rows.ids) - n_padded == len(encoded)


def test_packed_conversations_do_not_see_each_other(tokenizer):
    """With segments, each conversation of a packed row gets exactly the logits it gets alone."""
    from k2nb.nano.train import build_model

    encoded = [encode_problem(tokenizer, p) for p in C.generate(6, seed=3)]
    rows = pack(encoded, seq_len=2047, pad_id=tokenizer.special_tokens[IM_END], seed=0)
    model = build_model(TINY_CONFIG, tokenizer.vocab_size, tokenizer.special_tokens[IM_END], seed=0).eval()
    row, seg = torch.from_numpy(rows.ids[:1]).long(), torch.from_numpy(rows.seg[:1])
    assert int(seg.max()) >= 2  # at least two conversations in the row
    with torch.no_grad():
        packed = model(row, segments=seg)
        causal = model(row)
        for k in range(int(seg.max())):
            at = torch.nonzero(seg[0] == k)[:, 0]
            alone = model(row[:, at])
            torch.testing.assert_close(packed[:, at], alone, atol=2e-5, rtol=1e-4)
            if k > 0:  # without segments, later conversations attend to earlier ones
                assert not torch.allclose(causal[:, at], alone, atol=1e-3)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("nano")
    settings = dict(config=TINY_CONFIG, batch_size=4, seq_len=512, n_problems=200, tokenizer_problems=1000,
                    n_heldout=30, eval_every=15, eval_rows=8, ckpt_every=15, quick_eval_problems=0,
                    progress=False, lr=3e-3, warmup_steps=5)
    first = train_nano(out, steps=15, seed=0, write_final=False, **settings)
    summary = train_nano(out, steps=40, seed=0, **settings)  # resumes at step 15
    return out, first, summary


def test_training_lowers_the_heldout_loss_and_resumes(tiny_run):
    out, first, summary = tiny_run
    log = [json.loads(line) for line in (out / "training" / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == list(range(1, 41))  # one entry per step across the resume
    evals = [e["heldout_loss"] for e in log if "heldout_loss" in e]
    assert evals[-1] < evals[0] - 0.5
    assert log[-1]["loss"] < log[0]["loss"] - 1.0
    assert summary["heldout_loss"] == pytest.approx(evals[-1], abs=1e-3)


def test_selection_bias_is_trained(tiny_run):
    out, _, _ = tiny_run
    model = load_model(out)
    biases = [m.gate.e_score_correction_bias for m in model.moe_layers()]
    assert biases and all(float(b.abs().sum()) > 0 for b in biases)


def test_checkpoint_loads_through_the_engine(tiny_run):
    out, _, summary = tiny_run
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md"):
        assert (out / name).is_file(), name
    model = load_model(out)
    assert model.tokenizer is not None and model.config.model_type == "kimi_k2"
    from k2nb.formats.k2 import chat_template

    assert json.loads((out / "tokenizer_config.json").read_text())["chat_template"] == chat_template()
    assert model.config.n_routed_experts >= 16 and model.config.num_experts_per_tok >= 2
    assert model.config.first_k_dense_replace == 1 and model.config.n_shared_experts >= 1
    ids = encode_conversation(model.tokenizer, [{"role": "user", "content": "What is 2 + 2?"}], C.TOOLS)
    logits = model.logits(torch.tensor([ids]))
    assert logits.shape == (1, len(ids), model.config.vocab_size) and torch.isfinite(logits).all()
    assert "k2-nano" in (out / "README.md").read_text()
    assert summary["parameters"] == model.num_parameters()


def test_quick_eval_runs_the_tool_loop(tiny_run):
    out, _, _ = tiny_run
    model = load_model(out)
    result = quick_eval(model, model.tokenizer, C.heldout_problems(1), max_calls=1, max_new_tokens=12)
    assert result["problems"] == 1 and 0.0 <= result["accuracy"] <= 1.0
    # a run that fills the model's context ends without an answer instead of raising (a model that
    # loops on calls past 2,048 tokens once ended a whole training run at its final quick eval)
    from dataclasses import replace

    from k2nb.formats.k2 import encode_pieces, render_pieces

    p = C.heldout_problems(1)[0]
    prompt = encode_pieces(model.tokenizer, render_pieces(p.prompt_messages, p.tools,
                                                          add_generation_prompt=True))
    model.config = replace(model.config, max_position_embeddings=len(prompt) - 1)
    full = quick_eval(model, model.tokenizer, C.heldout_problems(1), max_calls=3, max_new_tokens=12)
    assert full["accuracy"] == 0.0


def test_continued_training_starts_from_the_given_model(tiny_run, tmp_path):
    out, _, summary = tiny_run
    settings = dict(config=TINY_CONFIG, batch_size=4, seq_len=512, n_problems=200, n_heldout=30, eval_every=5,
                    eval_rows=8, ckpt_every=5, quick_eval_problems=0, progress=False, lr=1e-3, warmup_steps=1)
    cont = train_nano(tmp_path / "cont", steps=5, seed=1, init=str(out), **settings)
    assert (tmp_path / "cont" / "tokenizer.json").read_bytes() == (out / "tokenizer.json").read_bytes()
    def log_of(folder):
        return [json.loads(line) for line in (folder / "training" / "log.jsonl").read_text().splitlines()]

    # it starts where the first run ended, not at a fresh model's loss
    fresh, log = log_of(out)[0]["loss"], log_of(tmp_path / "cont")
    assert log[0]["loss"] < fresh - 1.0 and cont["heldout_loss"] < summary["heldout_loss"] + 0.5
    with pytest.raises(ValueError, match="does not have the shape of the config"):
        train_nano(tmp_path / "other", steps=1, seed=1, init=str(out), **dict(settings, config=NANO_CONFIG))
    with pytest.raises(SystemExit, match="no model.safetensors"):
        from argparse import Namespace

        from k2nb.nano.cli_args import continue_overrides

        continue_overrides(Namespace(init=str(tmp_path), lr=None, warmup_steps=None))


def test_averaging_two_checkpoints_gives_the_mean_of_their_weights(tiny_run, tmp_path):
    import shutil

    from k2nb.engine.loader import save_checkpoint
    from k2nb.nano.average import TOKENIZER_FILES, average_checkpoints, main

    out, _, _ = tiny_run
    shifted = load_model(out, progress=False)
    with torch.no_grad():
        for p in shifted.parameters():
            p.add_(1.0)
    save_checkpoint(shifted, tmp_path / "shifted")
    for name in (*TOKENIZER_FILES, "README.md"):
        shutil.copyfile(out / name, tmp_path / "shifted" / name)
    main(["--out", str(tmp_path / "avg"), str(out), str(tmp_path / "shifted")])
    base, avg = load_model(out, progress=False), load_model(tmp_path / "avg", progress=False)
    params = dict(base.named_parameters())
    for (name, a), b in zip(base.state_dict().items(), avg.state_dict().values(), strict=True):
        expected = a + 0.5 if name in params else a  # buffers (the selection bias) are not shifted
        torch.testing.assert_close(b, expected, msg=name)
    assert avg.tokenizer is not None and "Weight average" in (tmp_path / "avg" / "README.md").read_text()
    (tmp_path / "shifted" / "tokenizer.json").write_text("{}")
    with pytest.raises(ValueError, match="another tokenizer.json"):
        average_checkpoints([out, tmp_path / "shifted"], tmp_path / "bad")


def test_the_command_passes_its_thread_count(monkeypatch, tmp_path):
    """`--threads 1` reaches torch: on cores shared with other jobs two threads wait on each other."""
    from k2nb.nano import train as T

    seen: dict = {}
    monkeypatch.setattr(T, "train_nano", lambda *a, **k: seen.update(k) or {})
    T.main(["--out", str(tmp_path / "m"), "--threads", "1", "--bench"])
    assert seen["threads"] == 1 and seen["write_final"] is False
    T.main(["--out", str(tmp_path / "m")])
    assert seen["threads"] == 2
