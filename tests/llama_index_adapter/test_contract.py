"""Contract suites for LlamaIndex embeddings and node postprocessors (LlamaIndex has no standard suite).

Shaped like LangChain's standard tests: a subclass names the class and its parameters, and
inherits tests that nobody overrides.
"""

from __future__ import annotations

import copy
import pickle
from typing import Any

import numpy as np
import pytest
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import TextNode

from bge_integrations.core.loading import REGISTRY
from bge_integrations.llama_index import BGEEmbedding, BGERerank
from tests.llama_index_adapter.conftest import PASSAGES, QUERY, Recorder, scored_nodes


class EmbeddingContract:
    """What every LlamaIndex embedding of this package does."""

    @property
    def embedding_class(self) -> type[BaseEmbedding]:
        raise NotImplementedError

    @property
    def embedding_params(self) -> dict[str, Any]:
        raise NotImplementedError

    @pytest.fixture
    def model(self) -> BaseEmbedding:
        return self.embedding_class(**self.embedding_params)

    def test_is_a_base_embedding(self, model: BaseEmbedding) -> None:
        assert isinstance(model, BaseEmbedding)

    def test_class_name_is_its_own(self, model: BaseEmbedding) -> None:
        assert model.class_name() == self.embedding_class.__name__
        assert model.to_dict()["class_name"] == self.embedding_class.__name__

    def test_from_dict_rebuilds_the_same_settings(self, model: BaseEmbedding) -> None:
        assert self.embedding_class.from_dict(model.to_dict()).to_dict() == model.to_dict()

    def test_unknown_parameter_is_refused(self) -> None:
        with pytest.raises(ValueError, match="not_a_setting"):
            self.embedding_class(**self.embedding_params, not_a_setting=1)

    def test_constructor_loads_nothing(self, model: BaseEmbedding) -> None:
        assert REGISTRY.load_count == 0

    def test_vectors_are_float_lists_of_one_width(self, model: BaseEmbedding) -> None:
        query = model.get_query_embedding(QUERY)
        texts = model.get_text_embedding_batch(PASSAGES)
        assert len(texts) == len(PASSAGES)
        assert all(type(x) is float for x in query)
        assert {len(query)} == {len(vector) for vector in texts}

    def test_batch_equals_one_by_one(self, model: BaseEmbedding) -> None:
        batch = model.get_text_embedding_batch(PASSAGES)
        for text, vector in zip(PASSAGES, batch, strict=True):
            assert model.get_text_embedding(text) == pytest.approx(vector, abs=1e-6)

    def test_empty_batch(self, model: BaseEmbedding) -> None:
        assert model.get_text_embedding_batch([]) == []

    async def test_async_equals_sync(self, model: BaseEmbedding) -> None:
        assert await model.aget_query_embedding(QUERY) == model.get_query_embedding(QUERY)
        assert await model.aget_text_embedding(PASSAGES[0]) == model.get_text_embedding(PASSAGES[0])
        batch = model.get_text_embedding_batch(PASSAGES)
        np.testing.assert_allclose(await model.aget_text_embedding_batch(PASSAGES), batch, atol=1e-6)

    def test_transform_sets_node_embeddings(self, model: BaseEmbedding) -> None:
        nodes = model([TextNode(text=text) for text in PASSAGES])
        np.testing.assert_allclose([node.embedding for node in nodes], model.get_text_embedding_batch(PASSAGES))

    @pytest.mark.parametrize("clone", [copy.copy, copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))])
    def test_copies_embed_alike_and_share_the_model(self, model: BaseEmbedding, clone: Any) -> None:
        expected = model.get_query_embedding(QUERY)
        twin = clone(model)
        assert twin.to_dict() == model.to_dict()
        assert twin.get_query_embedding(QUERY) == expected
        assert REGISTRY.load_count == 1


class PostprocessorContract:
    """What every LlamaIndex node postprocessor of this package does."""

    @property
    def postprocessor_class(self) -> type[BaseNodePostprocessor]:
        raise NotImplementedError

    @property
    def postprocessor_params(self) -> dict[str, Any]:
        """Parameters with ``top_n=3``."""
        raise NotImplementedError

    @pytest.fixture
    def postprocessor(self) -> BaseNodePostprocessor:
        return self.postprocessor_class(**self.postprocessor_params)

    def test_is_a_base_node_postprocessor(self, postprocessor: BaseNodePostprocessor) -> None:
        assert isinstance(postprocessor, BaseNodePostprocessor)

    def test_class_name_is_its_own(self, postprocessor: BaseNodePostprocessor) -> None:
        assert postprocessor.class_name() == self.postprocessor_class.__name__
        assert postprocessor.to_dict()["class_name"] == self.postprocessor_class.__name__

    def test_from_dict_rebuilds_the_same_settings(self, postprocessor: BaseNodePostprocessor) -> None:
        assert self.postprocessor_class.from_dict(postprocessor.to_dict()).to_dict() == postprocessor.to_dict()

    def test_unknown_parameter_is_refused(self) -> None:
        with pytest.raises(ValueError, match="not_a_setting"):
            self.postprocessor_class(**self.postprocessor_params, not_a_setting=1)

    def test_constructor_loads_nothing(self, postprocessor: BaseNodePostprocessor) -> None:
        assert REGISTRY.load_count == 0

    def test_top_n_nodes_best_first(self, postprocessor: BaseNodePostprocessor) -> None:
        out = postprocessor.postprocess_nodes(scored_nodes(), query_str=QUERY)
        assert len(out) == 3
        scores = [node.score for node in out]
        assert scores == sorted(scores, reverse=True)
        assert len({node.node.node_id for node in out}) == 3

    def test_input_nodes_are_left_alone(self, postprocessor: BaseNodePostprocessor) -> None:
        nodes = scored_nodes()
        before = [node.model_dump() for node in nodes]
        metadata = [node.node.metadata for node in nodes]
        out = postprocessor.postprocess_nodes(nodes, query_str=QUERY)
        assert [node.model_dump() for node in nodes] == before
        assert all(node.node.metadata is dict_ for node, dict_ in zip(nodes, metadata, strict=True))
        assert not {id(node) for node in out} & {id(node) for node in nodes}

    def test_no_nodes(self, postprocessor: BaseNodePostprocessor) -> None:
        assert postprocessor.postprocess_nodes([], query_str=QUERY) == []

    def test_no_query_is_an_error(self, postprocessor: BaseNodePostprocessor) -> None:
        with pytest.raises(ValueError, match="query_bundle=None"):
            postprocessor.postprocess_nodes(scored_nodes())

    async def test_async_equals_sync(self, postprocessor: BaseNodePostprocessor) -> None:
        sync = postprocessor.postprocess_nodes(scored_nodes(), query_str=QUERY)
        async_ = await postprocessor.apostprocess_nodes(scored_nodes(), query_str=QUERY)
        assert [(n.node.node_id, n.score) for n in async_] == [(n.node.node_id, n.score) for n in sync]

    def test_rerank_events(self, postprocessor: BaseNodePostprocessor, recorder: Recorder) -> None:
        out = postprocessor.postprocess_nodes(scored_nodes(), query_str=QUERY)
        (start,), (end,) = recorder.of(ReRankStartEvent), recorder.of(ReRankEndEvent)
        assert start.query.query_str == QUERY
        assert start.top_n == 3
        assert end.nodes == out

    @pytest.mark.parametrize("clone", [copy.copy, copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))])
    def test_copies_rerank_alike_and_share_the_model(self, postprocessor: BaseNodePostprocessor, clone: Any) -> None:
        expected = postprocessor.postprocess_nodes(scored_nodes(), query_str=QUERY)
        twin = clone(postprocessor)
        assert twin.to_dict() == postprocessor.to_dict()
        out = twin.postprocess_nodes(scored_nodes(), query_str=QUERY)
        assert [(n.node.node_id, n.score) for n in out] == [(n.node.node_id, n.score) for n in expected]
        assert REGISTRY.load_count == 1


class TestBGEEmbeddingContract(EmbeddingContract):
    @pytest.fixture(autouse=True)
    def _path(self, tiny_embedder_path: str) -> None:
        self.path = tiny_embedder_path

    @property
    def embedding_class(self) -> type[BaseEmbedding]:
        return BGEEmbedding

    @property
    def embedding_params(self) -> dict[str, Any]:
        return {"model_name": self.path, "device": "cpu"}


class TestBGERerankContract(PostprocessorContract):
    @pytest.fixture(autouse=True)
    def _path(self, tiny_reranker_path: str) -> None:
        self.path = tiny_reranker_path

    @property
    def postprocessor_class(self) -> type[BaseNodePostprocessor]:
        return BGERerank

    @property
    def postprocessor_params(self) -> dict[str, Any]:
        return {"model": self.path, "device": "cpu", "top_n": 3}
