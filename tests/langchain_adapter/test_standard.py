"""LangChain's standard embeddings suites, as langchain-huggingface runs them, on the tiny model."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

from bge_integrations.langchain import BGEEmbeddings


class _TinyModel:
    """Points embedding_model_params at the session's tiny BGE checkpoint."""

    _model_path: str

    @pytest.fixture(autouse=True)
    def _tiny_model(self, tiny_embedder_path: str) -> None:
        self._model_path = tiny_embedder_path

    @property
    def embeddings_class(self) -> type[BGEEmbeddings]:
        return BGEEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model_name": self._model_path, "device": "cpu"}


class TestBGEEmbeddingsStandardUnit(_TinyModel, EmbeddingsUnitTests):
    pass


class TestBGEEmbeddingsStandardIntegration(_TinyModel, EmbeddingsIntegrationTests):
    pass
