"""The model: feature spec, row decoding, the linear classifier and its versioned store.

Only :mod:`matchstream.ml.linear` imports TensorFlow. The scoring transform needs ``spec``,
``rowparse``, ``pure_scorer``, ``store`` and ``rows`` (standard library only) for small batches and
``features`` and ``numpy_scorer`` (NumPy) for large ones, so ``transforms/score.py`` starts fast.
"""
