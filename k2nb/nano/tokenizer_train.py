"""The k2-nano tokenizer: a small byte-level BPE trained on the curriculum, K2 markers as special tokens.

Choices (measured on the curriculum with ``python -m k2nb.nano.tokenizer_train --compare``):

* **Vocabulary 2,048** (including the 256 byte tokens and the 12 markers). The curriculum's text is
  a few hundred distinct words, code idioms and the fixed tool declaration; at 2k nearly every word and
  frequent code fragment (``print(round(``, ``.fromisoformat('``) is one token and a conversation is
  within ~5 % of its length at 4k, while every extra id is an embedding row and an output logit that
  is rarely trained (embeddings and the untied head are already a large share of a ~5 M model).
* **Digits split one per token** (``Digits(individual_digits=True)`` before the byte-level split).
  The model's main job is copying numbers from the question into code and from the tool output into
  the answer. With merged digit runs "1234" might be "12"+"34" in one place and "123"+"4" in
  another, and a copy would have to map between segmentations; with single digits copying is one
  token to one token, and 10 digit embeddings get millions of updates instead of thousands of rare
  multi-digit tokens getting a few. It costs ~15 % more tokens per conversation.
* **Letters inside quotes split one per token**. A quoted literal (``'crhlnc'``, a column
  name ``'units'``) is first cut out whole (an opening quote right after a letter is an apostrophe,
  as in "Ana's", and does not start one), then every letter in it becomes its own pre-token. String
  problems copy random letter strings from the question into code and from the output into the answer;
  with merged pieces, "crhlnc" might be "cr"+"hl"+"nc" in the question and "c"+"rh"+"lnc" in
  an output, and a model's copies go wrong there (with merged pieces, every broken tool call of an eval
  was in a strings problem). Words outside quotes still merge as usual.
* Byte-level (GPT-2 alphabet) so any text a user types encodes, and the engine's ``HFTokenizer`` reads
  it; markers are added tokens, which that loader treats as special (never produced from user text).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from k2nb.formats.k2 import IM_END, SPECIAL_MARKERS, chat_template
from k2nb.nano.curriculum import Problem, generate
from k2nb.nano.data import training_pieces

VOCAB_SIZE = 2048


def problem_texts(problems: Iterable[Problem]) -> Iterator[str]:
    """The non-marker text runs of each conversation as it is trained on (reasoning included): what
    BPE merges are learnt from."""
    for p in problems:
        for (text, is_marker), _ in training_pieces(p):
            if not is_marker:
                yield text


# A quoted literal: an opening quote not right after a letter (so "Ana's" is no quote), up to the next.
QUOTED = r"(?<![A-Za-z])'[^'\n]*'"
# A letter of a piece that ends in a quote: after QUOTED has isolated them, only quoted literals do.
QUOTED_LETTER = r"[A-Za-z](?=[^']*'\z)"


def pre_tokenizer():  # -> tokenizers.pre_tokenizers.PreTokenizer
    """Quoted literals letter by letter, digits one by one, then GPT-2 byte-level splitting."""
    from tokenizers import Regex, pre_tokenizers

    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QUOTED), behavior="isolated"),
        pre_tokenizers.Split(Regex(QUOTED_LETTER), behavior="isolated"),
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])


def build_tokenizer(texts: Iterable[str], vocab_size: int = VOCAB_SIZE):  # -> tokenizers.Tokenizer
    """Train the BPE; the markers get the first ids after nothing (ids 0..11), like every added token
    they are matched before the model and never merged with neighbouring text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer()
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_MARKERS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def save_tokenizer(tok, folder: str | Path) -> Path:  # tok: tokenizers.Tokenizer
    """Write tokenizer.json and tokenizer_config.json (the files ``k2nb.engine.load_tokenizer`` reads;
    the config also carries the K2 chat template, so transformers and vLLM prompt the model as k2nb)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    added = {
        str(tok.token_to_id(m)): {"content": m, "special": True, "normalized": False, "lstrip": False,
                                   "rstrip": False, "single_word": False}
        for m in SPECIAL_MARKERS
    }
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": IM_END,
        "bos_token": None,
        "pad_token": None,
        "model_max_length": 4096,
        "added_tokens_decoder": added,
        "chat_template": chat_template(),
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return folder


def train_tokenizer(folder: str | Path, vocab_size: int = VOCAB_SIZE, n_problems: int = 20000,
                    seed: int = 0) -> Path:
    """Train on ``n_problems`` training-split conversations and save into ``folder``."""
    tok = build_tokenizer(problem_texts(generate(n_problems, seed=seed, split="train")), vocab_size)
    return save_tokenizer(tok, folder)


def _compare(sizes: list[int], n: int) -> None:
    """Tokens per conversation at each vocabulary size, on held-out phrasings (print only)."""
    from k2nb.nano.curriculum import heldout_problems

    train = generate(n, seed=0)
    held = heldout_problems(500)
    texts = list(problem_texts(held))
    for size in sizes:
        tok = build_tokenizer(problem_texts(train), size)
        n_tokens = sum(len(tok.encode(t).ids) for t in texts)
        print(f"vocab {size:5d}: {n_tokens / len(held):6.1f} text tokens per held-out conversation")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--vocab-size", type=int, default=VOCAB_SIZE)
    parser.add_argument("--compare", action="store_true", help="print tokens/conversation per vocab size")
    args = parser.parse_args()
    if args.compare:
        _compare([1024, 1536, 2048, 3072, 4096], 10000)
    if args.out:
        print(train_tokenizer(args.out, args.vocab_size))
