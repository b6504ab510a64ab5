"""k2-nano: the curriculum, tokenizer, training recipe and evaluation of k2nb's embedded default model.

``curriculum/`` (problem families as tables, rendered into executed K2 tool-loop conversations),
``tokenizer_train``, ``data`` (training rows), ``train`` (the recipe), ``card`` (the model card),
``average`` (weight averaging), ``eval/`` (``k2nb eval``: the real reasoning loop on held-out
problems) and ``cli`` (the ``eval`` and ``train-nano`` commands). Submodules load on import, so that
``import k2nb.nano`` stays cheap; only the evaluation uses ``k2nb.agent``.
"""
