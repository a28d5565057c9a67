from __future__ import annotations

import subprocess
import sys

import pytest

import bge_integrations
import bge_integrations.core


def test_public_api() -> None:
    assert set(bge_integrations.__all__) == {
        "BGEEmbedder",
        "BGEM3Embedder",
        "BGEM3Reranker",
        "BGEReranker",
        "CacheWarning",
        "EmbedderConfig",
        "M3RankedText",
        "MissingHeadError",
        "ModelUnavailableError",
        "RankedText",
        "RerankerConfig",
        "SparseEmbedding",
        "TruncationWarning",
        "__version__",
        "allow_remote_code",
        "clear_model_cache",
    }
    for name in bge_integrations.core.__all__:
        assert getattr(bge_integrations.core, name) is not None


def test_core_imports_no_framework() -> None:
    code = (
        "import sys, bge_integrations, bge_integrations.cli, bge_integrations.evaluation, bge_integrations.compat\n"
        "bad = [m for m in ('langchain_core', 'llama_index', 'haystack') if m in sys.modules]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_package_is_typed() -> None:
    from importlib.resources import files

    assert files("bge_integrations").joinpath("py.typed").is_file()


FRAMEWORKS = ("langchain_core", "llama_index", "haystack")


@pytest.mark.parametrize(
    ("adapter", "framework"),
    [("langchain", "langchain_core"), ("llama_index", "llama_index"), ("haystack", "haystack")],
)
def test_each_adapter_imports_only_its_own_framework(adapter: str, framework: str) -> None:
    code = f"import sys, bge_integrations.{adapter}\nprint(sorted(m for m in {FRAMEWORKS!r} if m in sys.modules))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str([framework])
