"""Every docstring example in the package runs and holds (except in the modules that import
TensorFlow, whose examples would cost its 4 s import)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import matchstream

TENSORFLOW_MODULES = {"matchstream.ml.linear", "matchstream.ml.dnn", "matchstream.ml.tfmodel"}
MODULES = sorted(m.name for m in pkgutil.walk_packages(matchstream.__path__, "matchstream.")
                 if m.name not in TENSORFLOW_MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
