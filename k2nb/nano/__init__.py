"""k2-nano: the curriculum, tokenizer and training recipe of k2nb's embedded default model.

Uses ``k2nb.engine`` only; the submodules load on import (``k2nb.nano.curriculum``, ``.tokenizer_train``,
``.data``, ``.train``) so that ``import k2nb.nano`` stays cheap.
"""
