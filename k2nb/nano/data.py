"""Turning curriculum problems into training rows: token ids, a loss mask, fixed-length packing.

A conversation is rendered the way the model sees it *while it works on the last user turn*: the
preamble, finished turns with empty ``<think></think>`` and the tool loop in progress with its
reasoning (the format's retention rule, ``k2nb.formats.k2.keeps_reasoning``: reasoning is kept
after the last final answer). That is exactly the prompt state at each generation step of the tool
loop, so every assistant message of the last turn is a target. A rollback's first attempt has no
final answer (the loop drops it), so it keeps its reasoning, as it does in the engine.

Loss mask: the tokens an assistant generates — everything after ``<|im_assistant|>assistant<|im_middle|>``
up to and including ``<|im_end|>`` — of the last turn's assistant messages, minus the messages the
curriculum marked as deliberate mistakes (``Problem.no_loss``). Prompt text, tool results and earlier
turns are context only.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from k2nb.formats.base import Piece
from k2nb.formats.k2 import (
    GENERATION_PROMPT_PIECES,
    keeps_reasoning,
    render_message_pieces,
    render_preamble_pieces,
)
from k2nb.nano.curriculum import Problem


@dataclass(slots=True)
class Encoded:
    """One conversation: ids ``[T]`` and a per-token loss flag ``[T]`` (1 = a target)."""

    ids: np.ndarray  # int32
    loss: np.ndarray  # uint8

    def __len__(self) -> int:
        return len(self.ids)


def training_pieces(problem: Problem) -> list[tuple[Piece, bool]]:
    """Rendered pieces of ``problem`` with, per piece, whether it is a training target."""
    messages = problem.messages
    last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
    out: list[tuple[Piece, bool]] = [(p, False) for p in render_preamble_pieces(messages, problem.tools)]
    n_open = len(GENERATION_PROMPT_PIECES)  # <|im_assistant|> "assistant" <|im_middle|>
    # as the engine renders the prompt for the final answer (the last message, itself a target)
    keep = [*keeps_reasoning(messages[:-1]), True]
    for i, message in enumerate(messages):
        current = i > last_user
        pieces = render_message_pieces(message, keep_reasoning=keep[i])
        target = current and message["role"] == "assistant" and i not in problem.no_loss
        if target:
            assert tuple(pieces[:n_open]) == GENERATION_PROMPT_PIECES, pieces[:n_open]
        out += [(p, target and j >= n_open) for j, p in enumerate(pieces)]
    return out


def encode_problem(tokenizer, problem: Problem) -> Encoded:
    """Ids as ``k2nb.formats.k2.encode_pieces`` makes them (markers → special ids, text encoded with
    special tokens disallowed), one piece at a time so each token keeps its piece's loss flag. Every
    marker is a special token of the k2-nano tokenizer, so text is never merged across a marker and
    piece-wise encoding equals encoding the whole conversation."""
    ids: list[int] = []
    loss: list[int] = []
    for (text, is_marker), target in training_pieces(problem):
        if is_marker:
            piece_ids = [tokenizer.special_tokens[text]]
        else:
            piece_ids = tokenizer.encode(text)
        ids += piece_ids
        loss += [int(target)] * len(piece_ids)
    return Encoded(np.asarray(ids, dtype=np.int32), np.asarray(loss, dtype=np.uint8))


@dataclass(slots=True)
class PackedRows:
    """Fixed-length training rows: ``ids [N, L+1]`` and ``loss [N, L+1]``; the loss flag of position t
    says whether token t is a target (predicted from positions < t). ``seg [N, L+1]`` numbers the
    conversations of a row (0, 1, …; the padding after them is one more segment): the model is run
    with ``segments=seg`` so that a conversation never attends to another one packed before it."""

    ids: np.ndarray
    loss: np.ndarray
    seg: np.ndarray
    n_conversations: int
    n_dropped: int  # conversations longer than a row
    n_tokens: int  # real (non-padding) tokens

    @property
    def fill(self) -> float:
        """Share of row positions holding real tokens (the rest is padding)."""
        return self.n_tokens / self.ids.size if self.ids.size else 0.0


def pack(encoded: Sequence[Encoded], seq_len: int, pad_id: int, seed: int = 0,
         window: int = 4096) -> PackedRows:
    """Pack whole conversations into rows of ``seq_len + 1`` tokens, first-fit decreasing within
    windows of ``window`` conversations (order shuffled by ``seed``), so that no conversation is cut
    — the model always sees a conversation from its start, as at inference — and padding stays small.
    Padding positions are never targets. ``seg`` tells the conversations of a row apart, for the
    attention mask that keeps them from seeing each other."""
    row_len = seq_len + 1
    order = list(range(len(encoded)))
    random.Random(seed).shuffle(order)
    rows: list[list[int]] = []
    dropped = 0
    for w in range(0, len(order), window):
        chunk = sorted(order[w:w + window], key=lambda i: -len(encoded[i]))
        bins: list[tuple[int, list[int]]] = []  # (free, members)
        for i in chunk:
            n = len(encoded[i])
            if n > row_len:
                dropped += 1
                continue
            for b, (free, members) in enumerate(bins):
                if free >= n:
                    members.append(i)
                    bins[b] = (free - n, members)
                    break
            else:
                bins.append((row_len - n, [i]))
        rng = random.Random(seed + w)
        members_list = [m for _, m in bins]
        rng.shuffle(members_list)
        rows += members_list
    ids = np.full((len(rows), row_len), pad_id, dtype=np.int32)
    loss = np.zeros((len(rows), row_len), dtype=np.uint8)
    seg = np.zeros((len(rows), row_len), dtype=np.uint8)
    n_tokens = 0
    for r, members in enumerate(rows):
        at = 0
        for k, i in enumerate(members):
            e = encoded[i]
            ids[r, at:at + len(e)] = e.ids
            loss[r, at:at + len(e)] = e.loss
            seg[r, at:at + len(e)] = k
            at += len(e)
        seg[r, at:] = len(members)
        n_tokens += at
    return PackedRows(ids, loss, seg, len(encoded) - dropped, dropped, n_tokens)


def encode_all(tokenizer, problems: Iterable[Problem]) -> list[Encoded]:
    return [encode_problem(tokenizer, p) for p in problems]
