"""Every docstring example in the package runs, except those marked ``+SKIP``.

An example is skipped only when it needs what no test machine has: a model from the Hugging
Face hub, a GPU, a corpus on disk. Everything else runs here, so the examples stay true.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import bge_integrations

MODULES = sorted(info.name for info in pkgutil.walk_packages(bge_integrations.__path__, prefix="bge_integrations."))


@pytest.mark.parametrize("name", ["bge_integrations", *MODULES])
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    for test in doctest.DocTestFinder(exclude_empty=True).find(module, name):
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


def test_every_module_is_checked() -> None:
    assert {"bge_integrations.core.embedder", "bge_integrations.haystack.rankers"} <= set(MODULES)
    assert len(MODULES) > 50
