"""Tokenizers for K2-family checkpoints: Kimi's ``tiktoken.model`` or a HF ``tokenizer.json``.

Both formats sit behind one small interface, :class:`Tokenizer`, so the chat format, the decode loop
and the notebook views never care which file a checkpoint shipped.

Two properties matter more than speed here:

* ``encode(text)`` (``allow_special=False``, the default) never produces a special id. Text that
  comes from a user, a web page or a tool may contain the string ``"<|im_end|>"``; it must be encoded
  as the ordinary characters it is, or a tool output could end the tool's message and speak as the
  system. Kimi's own ``encode`` allows special tokens anywhere; k2nb does not. Special ids are placed
  only by :mod:`k2nb.engine.chat`, which knows where the markers go.
* Decoding is byte-exact: every id maps to a byte string (``token_bytes``); ``decode`` joins the bytes
  and decodes UTF-8 once, and :meth:`Tokenizer.stream_decoder` does the same incrementally, holding
  back the bytes of a character that a byte-level token split in two. So the streamed text of a
  generation equals ``decode`` of its ids.

Token *strings* (``id_to_token`` / ``token_to_id``) use the GPT-2 byte-to-unicode alphabet for both
formats, which is what HF byte-level vocabularies store and what Kimi's HF wrapper shows.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from k2nb.engine.errors import TokenizerError

__all__ = [
    "KIMI_PAT_STR",
    "NUM_RESERVED_SPECIAL_TOKENS",
    "HFTokenizer",
    "StreamDecoder",
    "TiktokenTokenizer",
    "Tokenizer",
    "load_tokenizer",
]

# Kimi's pre-tokenizer split (tokenization_kimi.py): Han runs are their own pieces, and the letter
# classes exclude Han by class intersection (`&&`), which tiktoken's Rust regex engine supports.
KIMI_PAT_STR = "|".join(
    [
        r"[\p{Han}]+",
        r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*"
        r"[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
        r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+"
        r"[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
        r"\p{N}{1,3}",
        r" ?[^\s\p{L}\p{N}]+[\r\n]*",
        r"\s*[\r\n]+",
        r"\s+(?!\S)",
        r"\s+",
    ]
)

# Kimi reserves this many ids after the base ranks; unnamed ones are `<|reserved_token_{id}|>`.
NUM_RESERVED_SPECIAL_TOKENS = 256

# tiktoken's Rust core panics on very long inputs; Kimi encodes in pieces of at most this many
# characters, and cuts runs of whitespace / non-whitespace longer than the second limit (openai/tiktoken
# issue 195: the regex backtracks quadratically on them).
TIKTOKEN_MAX_ENCODE_CHARS = 400_000
MAX_NO_WHITESPACE_CHARS = 25_000

EOS_MARKER = "<|im_end|>"  # the K2 chat format's end-of-message token; always a stop id when present


def _bytes_to_unicode() -> dict[int, str]:
    """The GPT-2 byte-level alphabet: each byte maps to one printable character.

    Printable Latin-1 bytes map to themselves; the other 68 bytes are shifted to code points 256+ in
    byte order, so no token string contains whitespace or control characters.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), 256)]
    table: dict[int, str] = {b: chr(b) for b in printable}
    shifted = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shifted)
            shifted += 1
    return table


_BYTE_TO_CHAR = _bytes_to_unicode()
_CHAR_TO_BYTE = {c: b for b, c in _BYTE_TO_CHAR.items()}


def _bytes_to_token_string(data: bytes) -> str:
    return "".join(_BYTE_TO_CHAR[b] for b in data)


def _token_string_to_bytes(token: str) -> bytes | None:
    """Inverse of :func:`_bytes_to_token_string`; None when `token` is not in the byte alphabet."""
    try:
        return bytes(_CHAR_TO_BYTE[c] for c in token)
    except KeyError:
        return None


class StreamDecoder:
    """Turns generated ids into text one id at a time.

    A byte-level token can end in the middle of a UTF-8 character ("🙂" is four bytes, often two or
    more tokens); ``feed`` returns only complete characters and keeps the rest until the next id.
    Invalid bytes become U+FFFD exactly as in :meth:`Tokenizer.decode`, so ``"".join(feed(i) for i in
    ids) + flush()`` equals ``decode(ids)``.
    """

    __slots__ = ("_token_bytes", "_utf8")

    def __init__(self, token_bytes: Callable[[int], bytes]) -> None:
        self._token_bytes = token_bytes
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, token_id: int) -> str:
        """The text that `token_id` completes (possibly ""); holds back an unfinished character."""
        return self._utf8.decode(self._token_bytes(token_id), final=False)

    def flush(self) -> str:
        """Text for bytes still held back at the end of a generation (U+FFFD for a cut character)."""
        return self._utf8.decode(b"", final=True)


class Tokenizer(ABC):
    """The interface the engine, the chat format and the views use; see the module docstring.

    Subclasses fill in ``vocab_size``, ``special_tokens``, ``eos_ids``, ``_encode_ordinary``,
    ``_encode_with_special`` and ``token_bytes``; the rest is shared so both formats behave alike.
    """

    vocab_size: int
    special_tokens: dict[str, int]  # marker string -> id, every id the format treats as control
    eos_ids: tuple[int, ...]  # ids that end a generation: `<|im_end|>` and the config's eos_token
    source: Path  # the file this tokenizer was read from (for messages)

    def _init_special_index(self) -> None:
        self._special_by_id: dict[int, str] = {i: s for s, i in self.special_tokens.items()}

    @abstractmethod
    def _encode_ordinary(self, text: str) -> list[int]:
        """Encode `text` with every marker string treated as plain characters."""

    @abstractmethod
    def _encode_with_special(self, text: str) -> list[int]:
        """Encode `text`, turning marker strings into their special ids."""

    @abstractmethod
    def token_bytes(self, token_id: int) -> bytes:
        """The bytes a token stands for; a special id gives its marker string in UTF-8."""

    def encode(self, text: str, allow_special: bool = False) -> list[int]:
        """Token ids for `text`.

        With ``allow_special=False`` the result never contains a special id, whatever `text` holds;
        this is the only mode for text that did not come from k2nb's own chat format.
        """
        if not isinstance(text, str):
            raise TokenizerError(f"encode() takes a str, got {type(text).__name__} ({self.source}).")
        return self._encode_with_special(text) if allow_special else self._encode_ordinary(text)

    def decode(self, ids: Sequence[int]) -> str:
        """Text for `ids`; special ids decode to their marker strings, bad UTF-8 to U+FFFD."""
        return b"".join(self.token_bytes(int(i)) for i in ids).decode("utf-8", errors="replace")

    def stream_decoder(self) -> StreamDecoder:
        """A fresh incremental decoder (one per generation)."""
        return StreamDecoder(self.token_bytes)

    def is_special(self, token_id: int) -> bool:
        return token_id in self._special_by_id

    def token_to_id(self, token: str) -> int:
        """The id of a marker string or of a byte-level token string (GPT-2 alphabet)."""
        special = self.special_tokens.get(token)
        if special is not None:
            return special
        found = self._ordinary_token_to_id(token)
        if found is None:
            raise TokenizerError(f"Token {token!r} is not in the vocabulary of {self.source}.")
        return found

    def id_to_token(self, token_id: int) -> str:
        """The marker string of a special id, else the byte-level token string (GPT-2 alphabet)."""
        special = self._special_by_id.get(token_id)
        if special is not None:
            return special
        return _bytes_to_token_string(self.token_bytes(token_id))

    @abstractmethod
    def _ordinary_token_to_id(self, token: str) -> int | None: ...

    def _named_ids(self) -> Iterator[int]:
        """Every id that stands for a token: base ranks and named specials (not unnamed reserved ids)."""
        return iter(range(self.vocab_size))

    def check_vocab_size(self, vocab_size: int, what: str = "vocab_size in config.json") -> None:
        """Refuse a tokenizer that can produce an id the model has no embedding row for."""
        beyond = sorted(i for i in self._named_ids() if i >= vocab_size)
        if beyond:
            more = f" (and {len(beyond) - 1} more)" if len(beyond) > 1 else ""
            raise TokenizerError(
                f"{self.source}: token id {beyond[0]} of {self.id_to_token(beyond[0])!r}{more} is beyond "
                f"the vocabulary of {vocab_size} ({what})."
            )

    def _check_id(self, token_id: int) -> None:
        if not 0 <= token_id < self.vocab_size:
            raise TokenizerError(
                f"Token id {token_id} is outside the vocabulary of {self.vocab_size} ids of {self.source}."
            )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self.source)!r}, vocab_size={self.vocab_size}, "
            f"special={len(self.special_tokens)}, eos_ids={self.eos_ids})"
        )


# ---------------------------------------------------------------------------------------------
# Kimi tiktoken.model
# ---------------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise TokenizerError(f"Cannot read {path}: {e.strerror or e}.") from e
    except UnicodeDecodeError as e:
        raise TokenizerError(f"{path} is not UTF-8 text (byte {e.start}).") from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise TokenizerError(
            f"{path} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}."
        ) from e
    if not isinstance(data, dict):
        raise TokenizerError(f"{path} must hold a JSON object, not {type(data).__name__}.")
    return data


def _read_tiktoken_ranks(path: Path) -> dict[bytes, int]:
    """Parse ``base64(token) rank`` lines; every error names the file and line."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise TokenizerError(f"Cannot read {path}: {e.strerror or e}.") from e
    ranks: dict[bytes, int] = {}
    for lineno, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2:
            raise TokenizerError(
                f"{path} line {lineno} must be 'base64-token rank', found {len(fields)} fields."
            )
        try:
            token = base64.b64decode(fields[0], validate=True)
        except (binascii.Error, ValueError) as e:
            raise TokenizerError(f"{path} line {lineno} has a malformed base64 token ({e}).") from e
        try:
            rank = int(fields[1])
        except ValueError as e:
            raise TokenizerError(f"{path} line {lineno} has a rank that is not an integer.") from e
        if token in ranks:
            raise TokenizerError(f"{path} line {lineno} repeats a token already given rank {ranks[token]}.")
        ranks[token] = rank
    if not ranks:
        raise TokenizerError(f"{path} holds no tokens.")
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise TokenizerError(f"{path} ranks must be exactly 0..{len(ranks) - 1}, each once.")
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise TokenizerError(
            f"{path} has no token for byte 0x{missing[0]:02x} ({len(missing)} single bytes missing); "
            "a byte-level BPE vocabulary must cover all 256."
        )
    return ranks


def _config_token_name(value: object) -> str | None:
    """`eos_token` in tokenizer_config.json is a string or an AddedToken dict with `content`."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def _eos_ids(special_tokens: dict[str, int], config: dict) -> tuple[int, ...]:
    ids: list[int] = []
    for name in (EOS_MARKER, _config_token_name(config.get("eos_token"))):
        if name is not None and name in special_tokens and special_tokens[name] not in ids:
            ids.append(special_tokens[name])
    return tuple(ids)


def _split_long_runs(text: str, limit: int) -> Iterator[str]:
    """Cut `text` so no piece holds more than `limit` consecutive whitespace or non-whitespace chars."""
    start = 0
    run = 0
    run_is_space = text[0].isspace() if text else False
    for i, ch in enumerate(text):
        is_space = ch.isspace()
        if is_space != run_is_space:
            run_is_space = is_space
            run = 1
            continue
        run += 1
        if run > limit:
            yield text[start:i]
            start = i
            run = 1
    yield text[start:]


class TiktokenTokenizer(Tokenizer):
    """Kimi's format: ``tiktoken.model`` (base ranks) plus ``tokenizer_config.json`` naming special ids."""

    def __init__(self, model_path: Path, config_path: Path) -> None:
        import tiktoken

        self.source = model_path
        ranks = _read_tiktoken_ranks(model_path)
        config = _read_json(config_path)
        n_base = len(ranks)

        names: dict[int, str] = {}
        decoder = config.get("added_tokens_decoder", {})
        if not isinstance(decoder, dict):
            raise TokenizerError(
                f"{config_path} key 'added_tokens_decoder' must be an object of id -> token."
            )
        for key, entry in decoder.items():
            content = _config_token_name(entry)
            try:
                token_id = int(key)
            except ValueError:
                token_id = -1
            if content is None or token_id < 0:
                raise TokenizerError(
                    f"{config_path} added_tokens_decoder entry {key!r} needs an integer id and a 'content'."
                )
            if token_id < n_base:
                raise TokenizerError(
                    f"{config_path} names id {token_id} ({content!r}), which is a base rank of "
                    f"{model_path.name}; special ids start at {n_base}."
                )
            names[token_id] = content
        n_special = max(NUM_RESERVED_SPECIAL_TOKENS, max(names, default=0) - n_base + 1)
        special: dict[str, int] = {}
        for token_id in range(n_base, n_base + n_special):
            name = names.get(token_id, f"<|reserved_token_{token_id}|>")
            if name in special:
                raise TokenizerError(f"{config_path} gives the name {name!r} to two ids.")
            special[name] = token_id

        self.special_tokens = special
        self.vocab_size = n_base + n_special
        self.eos_ids = _eos_ids(special, config)
        self._ranks = ranks
        self._named_special = sorted(names)
        self._encoding = tiktoken.Encoding(
            name=model_path.name, pat_str=KIMI_PAT_STR, mergeable_ranks=ranks, special_tokens=special
        )
        self._init_special_index()

    def _pieces(self, text: str) -> Iterator[str]:
        for i in range(0, len(text), TIKTOKEN_MAX_ENCODE_CHARS):
            yield from _split_long_runs(text[i : i + TIKTOKEN_MAX_ENCODE_CHARS], MAX_NO_WHITESPACE_CHARS)

    def _encode_ordinary(self, text: str) -> list[int]:
        ids: list[int] = []
        for piece in self._pieces(text):
            ids.extend(self._encoding.encode_ordinary(piece))
        return ids

    def _encode_with_special(self, text: str) -> list[int]:
        ids: list[int] = []
        for piece in self._pieces(text):
            ids.extend(self._encoding.encode(piece, allowed_special="all"))
        return ids

    def token_bytes(self, token_id: int) -> bytes:
        self._check_id(token_id)
        return self._encoding.decode_single_token_bytes(token_id)

    def decode(self, ids: Sequence[int]) -> str:
        for i in ids:
            self._check_id(int(i))
        return self._encoding.decode_bytes([int(i) for i in ids]).decode("utf-8", errors="replace")

    def _ordinary_token_to_id(self, token: str) -> int | None:
        data = _token_string_to_bytes(token)
        return None if data is None else self._ranks.get(data)

    def _named_ids(self) -> Iterator[int]:
        yield from range(len(self._ranks))
        yield from self._named_special


# ---------------------------------------------------------------------------------------------
# HF tokenizer.json (byte-level BPE, e.g. k2-nano, DeepSeek-V2/V3)
# ---------------------------------------------------------------------------------------------


class HFTokenizer(Tokenizer):
    """A HF ``tokenizers`` byte-level vocabulary; every added token counts as special.

    Added tokens are the format's control pieces (the K2 markers of k2-nano, DeepSeek's BOS/EOS), so
    ``encode(text)`` keeps them out: it runs the normalizer, pre-tokenizer and BPE model directly,
    skipping the added-token matcher. ``allow_special=True`` uses the library's full ``encode``.
    """

    def __init__(self, json_path: Path, config_path: Path | None) -> None:
        from tokenizers import Tokenizer as HFRawTokenizer

        self.source = json_path
        data = _read_json(json_path)
        try:
            tok = HFRawTokenizer.from_str(json.dumps(data))
        except Exception as e:  # the Rust side raises a plain Exception with its own message
            raise TokenizerError(
                f"{json_path} is not a tokenizer the tokenizers library can load: {e}."
            ) from e
        tok.no_padding()
        tok.no_truncation()
        config = _read_json(config_path) if config_path is not None else {}

        special = {t.content: i for i, t in tok.get_added_tokens_decoder().items()}
        vocab = tok.get_vocab(with_added_tokens=False)
        ids = [*vocab.values(), *special.values()]
        n_ids = max([tok.get_vocab_size(with_added_tokens=True), *(i + 1 for i in ids)])
        table: list[bytes | None] = [None] * n_ids  # id -> bytes; None for an id nothing uses
        special_ids = set(special.values())
        for token, i in vocab.items():
            data_bytes = _token_string_to_bytes(token)
            if data_bytes is None and i not in special_ids:
                raise TokenizerError(
                    f"{json_path} is not a byte-level vocabulary (token {token!r}, id {i}); "
                    "k2nb reads byte-level BPE tokenizer.json files only."
                )
            table[i] = data_bytes
        for content, i in special.items():
            table[i] = content.encode("utf-8")

        self._tok = tok
        self._vocab = vocab
        self._table = table
        self.special_tokens = special
        self.vocab_size = n_ids
        self.eos_ids = _eos_ids(special, config)
        self._init_special_index()

    def _encode_ordinary(self, text: str) -> list[int]:
        if not text:
            return []
        normalizer, pre_tokenizer, model = self._tok.normalizer, self._tok.pre_tokenizer, self._tok.model
        if normalizer is not None:
            text = normalizer.normalize_str(text)
        pieces = [p for p, _ in pre_tokenizer.pre_tokenize_str(text)] if pre_tokenizer is not None else [text]
        ids: list[int] = []
        for piece in pieces:
            ids.extend(t.id for t in model.tokenize(piece))
        return ids

    def _encode_with_special(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def token_bytes(self, token_id: int) -> bytes:
        self._check_id(token_id)
        data = self._table[token_id]
        if data is None:
            raise TokenizerError(f"Token id {token_id} names no token in {self.source}.")
        return data

    def _ordinary_token_to_id(self, token: str) -> int | None:
        return self._vocab.get(token)

    def _named_ids(self) -> Iterator[int]:
        return (i for i, data in enumerate(self._table) if data is not None)


# ---------------------------------------------------------------------------------------------


def load_tokenizer(path: str | Path, vocab_size: int | None = None) -> Tokenizer:
    """Load the tokenizer of a checkpoint folder (or the path of its tokenizer file).

    ``tiktoken.model`` (Kimi; needs ``tokenizer_config.json`` beside it) wins over ``tokenizer.json``
    when a folder holds both, because it is the format Moonshot ships and trains with. With
    ``vocab_size`` (the model's), a token whose id is not below it is an error.
    """
    tok = _load_tokenizer(path)
    if vocab_size is not None:
        tok.check_vocab_size(vocab_size)
    return tok


def _load_tokenizer(path: str | Path) -> Tokenizer:
    path = Path(path)
    if path.name == "tokenizer_config.json":  # the config alone names no vocabulary; use its folder
        path = path.parent
    if path.is_file():
        folder = path.parent
        candidates = [path]
    else:
        if not path.is_dir():
            raise TokenizerError(f"Tokenizer path {path} does not exist.")
        folder = path
        candidates = [folder / "tiktoken.model", folder / "tokenizer.json"]
    config_path = folder / "tokenizer_config.json"
    for candidate in candidates:
        if not candidate.is_file():
            continue
        if candidate.name == "tokenizer.json" or candidate.suffix == ".json":
            return HFTokenizer(candidate, config_path if config_path.is_file() else None)
        if not config_path.is_file():
            raise TokenizerError(
                f"{config_path} is missing; Kimi's {candidate.name} needs it to name its special ids."
            )
        return TiktokenTokenizer(candidate, config_path)
    raise TokenizerError(f"{folder} holds neither tiktoken.model nor tokenizer.json.")
