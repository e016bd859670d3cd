"""Importing TensorFlow quietly: the one place that pays for it (about 4 s on our machines).

TensorFlow's CUDA probe prints a line on stderr before its logging settings apply; in a
transform that line would reach PIPELINES_ERRORS, so stderr is pointed at /dev/null meanwhile.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator
from types import ModuleType

__all__ = ["import_linear", "import_model_module"]


def import_model_module(name: str) -> ModuleType:
    """A model module (one that imports TensorFlow, e.g. ``matchstream.ml.dnn``), imported with
    stderr muted."""
    with _muted_stderr():
        return importlib.import_module(name)


def import_linear() -> ModuleType:
    """:mod:`matchstream.ml.linear`, imported with stderr muted."""
    return import_model_module("matchstream.ml.linear")


@contextlib.contextmanager
def _muted_stderr() -> Iterator[None]:
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
