"""Stock framework clients, unmodified, against a live server: their results equal the in-process models'.

One keyed server (tiny embedder + tiny reranker) serves the whole module; every client sends the key the
way its own API does. Embeddings must equal ``BGEEmbedder.embed_documents`` / ``embed_queries`` to 1e-6
(queries wherever the client can mark the role: a body field, the ``/query`` mounts, or an instruction
prefix); rankings must equal ``BGEReranker.rank`` (same order, scores to 1e-6).
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from bge_integrations import BGEEmbedder, BGEReranker
from bge_integrations.core.instructions import EN_QUERY_INSTRUCTION
from bge_integrations.serving import ServerSettings
from tests.serving.servers import running_server

KEY = "client-test-key"
DOCS = [
    "The giant panda is a bear species endemic to China.",
    "Paris is the capital and largest city of France.",
    "Bamboo makes up most of a panda's diet.",
    "The Eiffel Tower was finished in 1889.",
    "Rust is a systems programming language.",
]
QUERY = "what do pandas eat?"
QUERIES = [QUERY, "when was the eiffel tower built?"]
# Token-id input must decode to exactly these texts (newlines, accents, emoji, CJK, the empty text).
ODD_TEXTS = ["line one\nline two", "café, naïve, 🐼 and 中文", "", "  leading and trailing spaces  "]
CL100K_CACHE_NAME = "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"  # tiktoken's cache file name for cl100k_base


def _tiktoken_cache_dir() -> str | None:
    """A folder holding cl100k_base as tiktoken caches it: llama-index-core ships one (so does litellm)."""
    for package, parts in (
        ("llama_index.core", ("_static", "tiktoken_cache")),
        ("litellm", ("litellm_core_utils", "tokenizers")),
    ):
        try:
            spec = importlib.util.find_spec(package)  # imports parent packages only (llama_index: a namespace)
        except ModuleNotFoundError:
            continue
        if spec is not None and spec.submodule_search_locations:
            folder = Path(next(iter(spec.submodule_search_locations)), *parts)
            if (folder / CL100K_CACHE_NAME).is_file():
                return str(folder)
    return None


@pytest.fixture(scope="module", autouse=True)
def _offline_tiktoken() -> Iterator[None]:
    """LangChain's client and the server both load cl100k_base; point tiktoken at a local copy."""
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        yield
        return
    folder = _tiktoken_cache_dir()
    if folder is None:
        pytest.fail("no local cl100k_base file: install the test group (llama-index-core ships one)")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TIKTOKEN_CACHE_DIR", folder)
        yield


@pytest.fixture(scope="module")
def base(tiny_embedder_path: str, tiny_reranker_path: str) -> Iterator[str]:
    settings = ServerSettings(
        model=tiny_embedder_path,
        reranker=tiny_reranker_path,
        api_key=KEY,
        served_model_name="bge-tiny",
        embedder_settings={"query_instruction": EN_QUERY_INSTRUCTION},
    )
    with running_server(settings) as url:
        yield url


@pytest.fixture(scope="module")
def embedder(tiny_embedder_path: str) -> BGEEmbedder:
    return BGEEmbedder(tiny_embedder_path, query_instruction=EN_QUERY_INSTRUCTION)


@pytest.fixture(scope="module")
def reranker(tiny_reranker_path: str) -> BGEReranker:
    return BGEReranker(tiny_reranker_path)


@pytest.fixture(scope="module")
def doc_vectors(embedder: BGEEmbedder) -> list[list[float]]:
    return embedder.embed_documents(DOCS)


@pytest.fixture(scope="module")
def query_vectors(embedder: BGEEmbedder) -> list[list[float]]:
    vectors = embedder.embed_queries(QUERIES)
    # The role must matter, or the query checks below could not fail.
    assert not np.allclose(vectors, embedder.embed_documents(QUERIES), atol=1e-3)
    return vectors


def assert_vectors(actual: Any, expected: Any) -> None:
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), np.asarray(expected), rtol=0, atol=1e-6)


def assert_ranking(actual: list[tuple[int, float]], reranker: BGEReranker, top_n: int | None = None, **kw: Any) -> None:
    expected = reranker.rank(QUERY, DOCS, top_n, **kw)
    assert [index for index, _ in actual] == [item.index for item in expected]
    np.testing.assert_allclose([score for _, score in actual], [item.score for item in expected], rtol=0, atol=1e-6)


class Recorder:
    """httpx event hook keeping every request's path and JSON body, to see what a client really sent."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, Any]] = []

    def __call__(self, request: httpx.Request) -> None:
        self.requests.append((request.url.path, json.loads(request.content) if request.content else None))


# --- the openai SDK --------------------------------------------------------------------------------------------


def test_openai_sdk_default_base64_float_and_marked_queries(base, doc_vectors, query_vectors):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=KEY, max_retries=0)
    default = client.embeddings.create(input=DOCS, model="text-embedding-3-small")  # the SDK asks for base64
    assert_vectors([item.embedding for item in default.data], doc_vectors)
    assert default.model == "text-embedding-3-small"
    assert default.usage.prompt_tokens > len(DOCS)
    floats = client.embeddings.create(input=DOCS, model="bge-tiny", encoding_format="float")
    assert_vectors([item.embedding for item in floats.data], doc_vectors)
    marked = client.embeddings.create(input=QUERIES, model="bge-tiny", extra_body={"input_type": "query"})
    assert_vectors([item.embedding for item in marked.data], query_vectors)
    assert [model.id for model in client.models.list()] == ["bge-tiny"]
    mounted = openai.OpenAI(base_url=f"{base}/query/v1", api_key=KEY, max_retries=0)
    assert_vectors([item.embedding for item in mounted.embeddings.create(input=QUERIES, model="x").data], query_vectors)


def test_openai_sdk_wrong_key_is_an_authentication_error(base):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        client.embeddings.create(input=DOCS, model="bge-tiny")
    assert "API key" in caught.value.message


async def test_openai_async_sdk(base, doc_vectors):
    openai = pytest.importorskip("openai")
    async with openai.AsyncOpenAI(base_url=f"{base}/v1", api_key=KEY, max_retries=0) as client:
        response = await client.embeddings.create(input=DOCS, model="bge-tiny")
    assert_vectors([item.embedding for item in response.data], doc_vectors)


# --- LangChain ---------------------------------------------------------------------------------------------------


def test_langchain_openai_embeddings_send_token_ids_and_match(base, embedder, doc_vectors, query_vectors):
    lc = pytest.importorskip("langchain_openai")
    recorder = Recorder()
    documents = lc.OpenAIEmbeddings(
        base_url=f"{base}/v1", api_key=KEY, max_retries=0, http_client=httpx.Client(event_hooks={"request": [recorder]})
    )
    assert_vectors(documents.embed_documents(DOCS), doc_vectors)
    ((path, body),) = recorder.requests
    assert path == "/v1/embeddings"
    assert body["model"] == "text-embedding-ada-002"
    assert body["encoding_format"] == "base64"
    assert all(isinstance(row, list) and all(isinstance(token, int) for token in row) for row in body["input"])
    # Queries: a second client on the query mount, or the role field through model_kwargs.
    on_mount = lc.OpenAIEmbeddings(base_url=f"{base}/query/v1", api_key=KEY, max_retries=0)
    assert_vectors(on_mount.embed_query(QUERY), query_vectors[0])
    by_field = lc.OpenAIEmbeddings(
        base_url=f"{base}/v1", api_key=KEY, max_retries=0, model_kwargs={"extra_body": {"input_type": "query"}}
    )
    assert_vectors(by_field.embed_query(QUERY), query_vectors[0])
    # What LangChain recommends for non-OpenAI servers: plain text, no tiktoken.
    plain = lc.OpenAIEmbeddings(base_url=f"{base}/v1", api_key=KEY, max_retries=0, check_embedding_ctx_length=False)
    assert_vectors(plain.embed_documents(DOCS), doc_vectors)


def test_langchain_openai_token_ids_decode_to_the_exact_texts(base, embedder):
    lc = pytest.importorskip("langchain_openai")
    client = lc.OpenAIEmbeddings(base_url=f"{base}/v1", api_key=KEY, max_retries=0)
    # The empty text is sent on its own, as input="" (LangChain's empty-text path).
    assert_vectors(client.embed_documents(ODD_TEXTS), embedder.embed_documents(ODD_TEXTS))


async def test_langchain_openai_embeddings_async(base, doc_vectors, query_vectors):
    lc = pytest.importorskip("langchain_openai")
    client = lc.OpenAIEmbeddings(base_url=f"{base}/v1", api_key=KEY, max_retries=0)
    assert_vectors(await client.aembed_documents(DOCS), doc_vectors)
    queries = lc.OpenAIEmbeddings(base_url=f"{base}/query/v1", api_key=KEY, max_retries=0)
    assert_vectors(await queries.aembed_query(QUERY), query_vectors[0])


def test_langchain_infinity_rerank(base, reranker):
    pytest.importorskip("infinity_client")  # pins httpx<0.28: not installable with the test group, optional here
    from infinity_client.client import Client
    from langchain_community.document_compressors import InfinityRerank
    from langchain_core.documents import Document

    client = Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, raise_on_unexpected_status=True)
    compressor = InfinityRerank(client=client, model="bge-reranker-tiny", top_n=3)
    kept = compressor.compress_documents([Document(page_content=text) for text in DOCS], QUERY)
    ranked = [(DOCS.index(doc.page_content), doc.metadata["relevance_score"]) for doc in kept]
    assert_ranking(ranked, reranker, top_n=3)
    # Given a client but no model, InfinityRerank sends "model": null.
    unnamed = InfinityRerank(client=client)
    ranked = [(item["index"], item["relevance_score"]) for item in unnamed.rerank(DOCS, QUERY, top_n=None)]
    assert_ranking(ranked, reranker)


# --- LlamaIndex --------------------------------------------------------------------------------------------------


def test_llama_index_openai_embedding(base, doc_vectors, query_vectors):
    module = pytest.importorskip("llama_index.embeddings.openai")
    documents = module.OpenAIEmbedding(api_base=f"{base}/v1", api_key=KEY, max_retries=0)  # model ada-002
    assert_vectors(documents.get_text_embedding_batch(DOCS), doc_vectors)
    # One instance cannot mark roles (same engine, same kwargs): queries need the query mount.
    queries = module.OpenAIEmbedding(api_base=f"{base}/query/v1", api_key=KEY, max_retries=0)
    assert_vectors(queries.get_query_embedding(QUERY), query_vectors[0])


async def test_llama_index_openai_like_embedding(base, doc_vectors, query_vectors):
    module = pytest.importorskip("llama_index.embeddings.openai_like")
    documents = module.OpenAILikeEmbedding(model_name="bge-tiny", api_base=f"{base}/v1", api_key=KEY, max_retries=0)
    assert_vectors(documents.get_text_embedding_batch(DOCS), doc_vectors)  # batches of 10
    assert_vectors(await documents.aget_text_embedding_batch(DOCS), doc_vectors)
    queries = module.OpenAILikeEmbedding(model_name="bge-tiny", api_base=f"{base}/query/v1", api_key=KEY)
    assert_vectors(await queries.aget_query_embedding(QUERY), query_vectors[0])


async def test_llama_index_text_embeddings_inference(base, doc_vectors, query_vectors):
    module = pytest.importorskip("llama_index.embeddings.text_embeddings_inference")
    tei = module.TextEmbeddingsInference(model_name="bge-tiny", base_url=base, auth_token=KEY, embed_batch_size=2)
    assert_vectors(tei.get_text_embedding_batch(DOCS), doc_vectors)
    assert_vectors(await tei.aget_text_embedding_batch(DOCS), doc_vectors)
    # Queries: the client's own instruction prefix (sent as a document), or the /query/embed mount.
    prefixed = module.TextEmbeddingsInference(
        model_name="bge-tiny", base_url=base, auth_token=KEY, query_instruction=EN_QUERY_INSTRUCTION
    )
    assert_vectors(prefixed.get_query_embedding(QUERY), query_vectors[0])
    mounted = module.TextEmbeddingsInference(model_name="bge-tiny", base_url=f"{base}/query", auth_token=KEY)
    assert_vectors(mounted.get_query_embedding(QUERY), query_vectors[0])


def test_llama_index_tei_rerank(base, reranker):
    module = pytest.importorskip("llama_index.postprocessor.tei_rerank")
    from llama_index.core.schema import NodeWithScore, TextNode

    nodes = [NodeWithScore(node=TextNode(text=text, id_=str(number)), score=0.0) for number, text in enumerate(DOCS)]
    # This client sends auth_token verbatim as the Authorization header.
    postprocessor = module.TextEmbeddingInference(base_url=base, top_n=3, auth_token=f"Bearer {KEY}")
    kept = postprocessor.postprocess_nodes(nodes, query_str=QUERY)
    assert_ranking([(int(node.node.id_), node.score) for node in kept], reranker, top_n=3)


# --- Haystack ----------------------------------------------------------------------------------------------------


def test_haystack_openai_embedders(base, doc_vectors, query_vectors):
    from haystack import Document
    from haystack.components.embedders import OpenAIDocumentEmbedder, OpenAITextEmbedder
    from haystack.utils import Secret

    key = Secret.from_token(KEY)
    documents = OpenAIDocumentEmbedder(api_key=key, api_base_url=f"{base}/v1", batch_size=2, progress_bar=False)
    result = documents.run([Document(content=text) for text in DOCS])
    assert_vectors([doc.embedding for doc in result["documents"]], doc_vectors)
    assert result["meta"]["usage"]["prompt_tokens"] > len(DOCS)
    text = OpenAITextEmbedder(api_key=key, api_base_url=f"{base}/query/v1")  # sends one string, not a list
    answer = text.run(QUERY)
    assert_vectors(answer["embedding"], query_vectors[0])
    assert answer["meta"]["model"] == "text-embedding-3-small"
    assert answer["meta"]["usage"]["total_tokens"] > 0
    prefixed = OpenAITextEmbedder(api_key=key, api_base_url=f"{base}/v1", prefix=EN_QUERY_INSTRUCTION)
    assert_vectors(prefixed.run(QUERY)["embedding"], query_vectors[0])


def _hf_api() -> Any:
    return pytest.importorskip("haystack_integrations.components.embedders.huggingface_api")


@pytest.fixture
def hub_online(monkeypatch: pytest.MonkeyPatch) -> None:
    """huggingface_hub refuses every request, even to 127.0.0.1, under HF_HUB_OFFLINE (tests/conftest.py sets it)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def test_haystack_hugging_face_api_embedders_on_the_tei_root(base, doc_vectors, query_vectors, hub_online):
    module = _hf_api()
    from haystack import Document
    from haystack.utils import Secret

    key = Secret.from_token(KEY)
    # The documented configuration: url is the server's root, and InferenceClient posts to it (POST /).
    documents = module.HuggingFaceAPIDocumentEmbedder(
        api_type="text_embeddings_inference",
        api_params={"url": base},
        token=key,
        normalize=True,
        batch_size=2,
        progress_bar=False,
    )
    result = documents.run([Document(content=text) for text in DOCS])
    assert_vectors([doc.embedding for doc in result["documents"]], doc_vectors)
    queries = module.HuggingFaceAPITextEmbedder(
        api_type="text_embeddings_inference", api_params={"url": f"{base}/query/embed"}, token=key, normalize=True
    )
    assert_vectors(queries.run(QUERY)["embedding"], query_vectors[0])


def test_haystack_hugging_face_api_embedder_default_normalize(base, doc_vectors, hub_online):
    module = _hf_api()
    from haystack.utils import Secret

    # Haystack's default is normalize=False; whatever the server returns must point the same way.
    text = module.HuggingFaceAPITextEmbedder(
        api_type="text_embeddings_inference", api_params={"url": f"{base}/embed"}, token=Secret.from_token(KEY)
    )
    vector = np.asarray(text.run(DOCS[0])["embedding"])
    assert vector.shape == (len(doc_vectors[0]),)
    assert float(vector @ np.asarray(doc_vectors[0]) / np.linalg.norm(vector)) == pytest.approx(1.0, abs=1e-6)


def test_haystack_tei_ranker(base, reranker):
    module = pytest.importorskip("haystack_integrations.components.rankers.huggingface_api")
    from haystack import Document
    from haystack.utils import Secret

    documents = [Document(content=text) for text in DOCS]
    position = {doc.id: number for number, doc in enumerate(documents)}
    ranker = module.HuggingFaceTEIRanker(url=base, top_k=3, token=Secret.from_token(KEY))
    kept = ranker.run(query=QUERY, documents=documents)["documents"]
    assert_ranking([(position[doc.id], doc.score) for doc in kept], reranker, top_n=3)
    raw = module.HuggingFaceTEIRanker(url=base, top_k=len(DOCS), raw_scores=True, token=Secret.from_token(KEY))
    kept = raw.run(query=QUERY, documents=documents)["documents"]
    assert_ranking([(position[doc.id], doc.score) for doc in kept], reranker, normalize=False)


@pytest.fixture(scope="module")
def m3_base(tiny_m3_path: str) -> Iterator[str]:
    settings = ServerSettings(model=tiny_m3_path, api_key=KEY, embedder_settings={"query_instruction": "query: "})
    with running_server(settings) as url:
        yield url


def _sparse(item: Any) -> tuple[list[int], list[float]]:
    return [int(index) for index in item.indices], [float(value) for value in item.values]


def assert_sparse(actual: list[Any], expected: list[Any]) -> None:
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        got_indices, got_values = _sparse(got)
        want_indices, want_values = _sparse(want)
        assert got_indices == want_indices
        np.testing.assert_allclose(got_values, want_values, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def m3(tiny_m3_path: str) -> Any:
    from bge_integrations.core.m3_embedder import BGEM3Embedder

    embedder = BGEM3Embedder(tiny_m3_path, query_instruction="query: ")
    queries = embedder.embed_sparse_queries([QUERY])
    assert _sparse(queries[0]) != _sparse(embedder.embed_sparse_documents([QUERY])[0])  # the role matters
    return embedder


def test_haystack_tei_sparse_embedders(m3_base, m3):
    module = _hf_api()
    from haystack import Document
    from haystack.utils import Secret

    key = Secret.from_token(KEY)
    documents = module.HuggingFaceTEISparseDocumentEmbedder(
        api_base_url=m3_base, token=key, batch_size=2, progress_bar=False
    )
    result = documents.run([Document(content=text) for text in DOCS])
    assert_sparse([doc.sparse_embedding for doc in result["documents"]], m3.embed_sparse_documents(DOCS))
    expected = m3.embed_sparse_queries([QUERY])
    prefixed = module.HuggingFaceTEISparseTextEmbedder(api_base_url=m3_base, token=key, prefix="query: ")
    assert_sparse([prefixed.run(QUERY)["sparse_embedding"]], expected)
    # Like /query/embed: the query mount, for a text embedder that cannot send prompt_name.
    mounted = module.HuggingFaceTEISparseTextEmbedder(api_base_url=f"{m3_base}/query", token=key)
    assert_sparse([mounted.run(QUERY)["sparse_embedding"]], expected)
