"""The model: feature spec, row decoding, the classifiers (linear and a small MLP) and their
versioned store.

Only the model modules (:mod:`matchstream.ml.linear`, :mod:`matchstream.ml.dnn` and what they
share, :mod:`matchstream.ml.tfmodel`) import TensorFlow. The scoring transform needs ``spec``,
``rowparse``, ``model_json``, ``pure_scorer``, ``store`` and ``rows`` (standard library only) for
small batches and ``features`` and ``numpy_scorer`` (NumPy) for large ones, so
``transforms/score.py`` starts fast.
"""
