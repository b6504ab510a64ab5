"""Chat formats: conversations → pieces (text and markers), generated text → `k2nb.events`.

`k2.py` is Kimi K2 Thinking's format (the family's; also DeepSeek-style K2 checkpoints served with
it). A new model family's format is one new file implementing `base.ChatFormat`.
"""

from k2nb.formats.base import ChatFormat, Piece, StreamParser, TokenizerLike
from k2nb.formats.k2 import K2_FORMAT, K2Format

__all__ = ["K2_FORMAT", "ChatFormat", "K2Format", "Piece", "StreamParser", "TokenizerLike"]
