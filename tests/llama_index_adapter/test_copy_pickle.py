"""copy, deepcopy and pickle: the model handle survives, no weights travel, the model is shared."""

from __future__ import annotations

import copy
import pickle

import llama_index.core.schema
import pytest
from llama_index.core.callbacks import CallbackManager, LlamaDebugHandler
from llama_index.core.storage.kvstore import SimpleKVStore

from bge_integrations.core.loading import REGISTRY
from bge_integrations.llama_index import BGEEmbedding, BGERerank
from tests.llama_index_adapter.conftest import QUERY, scored_nodes


@pytest.fixture
def no_llama_index_warnings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Messages that LlamaIndex's BaseComponent.__getstate__ logs when it drops an attribute."""
    messages: list[str] = []
    monkeypatch.setattr(llama_index.core.schema.logging, "warning", lambda msg, *a, **k: messages.append(msg))
    return messages


def test_pickle_drops_nothing_and_carries_no_weights(
    embedding: BGEEmbedding, rerank: BGERerank, no_llama_index_warnings: list[str]
) -> None:
    embedding.get_query_embedding(QUERY)
    rerank.postprocess_nodes(scored_nodes(), query_str=QUERY)
    assert len(REGISTRY.loaded_keys()) == 2
    for obj in (embedding, rerank):
        assert len(pickle.dumps(obj)) < 5_000  # the tiny checkpoints alone weigh more than 100 kB
    assert no_llama_index_warnings == []


def test_unpickled_embedding_keeps_every_setting(tiny_embedder_path: str) -> None:
    cache = SimpleKVStore()
    model = BGEEmbedding(
        tiny_embedder_path, device="cpu", query_instruction="q: ", batch_size=3, embeddings_cache=cache
    )
    vector = model.get_query_embedding(QUERY)
    twin = pickle.loads(pickle.dumps(model))
    assert {k: v for k, v in twin.to_dict().items() if k != "embeddings_cache"} == {
        k: v for k, v in model.to_dict().items() if k != "embeddings_cache"
    }
    assert twin.embed_batch_size == twin.core.batch_size == 3
    assert twin.core.query_instruction == "q: "
    assert twin.embeddings_cache.get(QUERY, collection="bge_query_embeddings") is not None
    assert twin.get_query_embedding(QUERY) == vector


def test_unpickled_rerank_keeps_its_callback_manager(tiny_reranker_path: str) -> None:
    rerank = BGERerank(model=tiny_reranker_path, top_n=1, callback_manager=CallbackManager([LlamaDebugHandler()]))
    twin = pickle.loads(pickle.dumps(rerank))
    assert twin.top_n == 1
    assert [type(h) for h in twin.callback_manager.handlers] == [LlamaDebugHandler]


def test_deepcopy_gets_its_own_core_on_the_same_model(embedding: BGEEmbedding) -> None:
    vector = embedding.get_text_embedding(QUERY)
    twin = copy.deepcopy(embedding)
    assert twin.core is not embedding.core
    assert twin.core.load_key == embedding.core.load_key
    assert twin.get_text_embedding(QUERY) == vector
    assert REGISTRY.load_count == 1


def test_changing_a_copy_leaves_the_original_alone(embedding: BGEEmbedding) -> None:
    query = embedding.get_query_embedding(QUERY)
    twin = copy.copy(embedding)
    twin.query_instruction = ""
    assert twin.get_query_embedding(QUERY) != query
    assert embedding.get_query_embedding(QUERY) == query
    assert embedding.query_instruction is None
