"""The server's own APIs over HTTP: OpenAI, TEI and Cohere shapes, roles, limits, errors, metrics."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from bge_integrations import BGEEmbedder, BGEReranker
from bge_integrations.core.cpu_batches import CPU_BATCH_TOKENS
from bge_integrations.core.m3_embedder import BGEM3Embedder
from bge_integrations.serving import ServerSettings
from tests.serving.servers import running_server

QUERIES = ["what do pandas eat?", "where is paris?"]
DOCS = ["Pandas eat bamboo.", "Paris is the capital of France.", "The sky is blue.", "Bamboo grows fast."]
KEY = "s3cret-key"


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    from tests.tiny_models import build_embedder, build_reranker

    root = tmp_path_factory.mktemp("serving-models")
    return str(build_embedder(root / "bge-small-en-v1.5-tiny")), str(build_reranker(root / "bge-reranker-base-tiny"))


@pytest.fixture(scope="module")
def server(paths: tuple[str, str]) -> Iterator[str]:
    embedder, reranker = paths
    settings = ServerSettings(model=embedder, reranker=reranker, max_items=8, max_chars=500, max_request_bytes=20_000)
    with running_server(settings) as url:
        yield url


@pytest.fixture(scope="module")
def keyed(paths: tuple[str, str]) -> Iterator[str]:
    with running_server(ServerSettings(model=paths[0], api_key=KEY)) as url:
        yield url


def post(url: str, path: str, body: object, **kwargs: object) -> httpx.Response:
    return httpx.post(url + path, json=body, timeout=30, **kwargs)  # type: ignore[arg-type]


def test_openai_embeddings_match_the_core_documents_by_default_queries_when_marked(server, paths):
    local = BGEEmbedder(paths[0])
    body = post(server, "/v1/embeddings", {"input": DOCS, "model": "anything"}).json()
    assert body["object"] == "list"
    assert body["model"] == "anything"
    assert [item["index"] for item in body["data"]] == list(range(len(DOCS)))
    np.testing.assert_allclose([item["embedding"] for item in body["data"]], local.embed_documents(DOCS), atol=1e-6)
    assert body["usage"]["prompt_tokens"] > len(DOCS)
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"]

    marked = post(server, "/v1/embeddings", {"input": QUERIES, "input_type": "query"}).json()
    routed = post(server, "/query/v1/embeddings", {"input": QUERIES}).json()
    expected = local.embed_queries(QUERIES)
    for response in (marked, routed):
        np.testing.assert_allclose([item["embedding"] for item in response["data"]], expected, atol=1e-6)
    plain = post(server, "/v1/embeddings", {"input": QUERIES[0]}).json()
    assert not np.allclose(plain["data"][0]["embedding"], expected[0], atol=1e-4)  # no instruction for documents


def test_openai_base64_and_token_ids(server, paths, monkeypatch):
    local = BGEEmbedder(paths[0]).embed_documents(DOCS[:2])
    body = post(server, "/v1/embeddings", {"input": DOCS[:2], "encoding_format": "base64"}).json()
    decoded = [np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4") for item in body["data"]]
    np.testing.assert_allclose(decoded, local, atol=1e-6)

    import tiktoken

    from tests.serving.tiktoken_files import tiktoken_cache_dir

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", tiktoken_cache_dir())
    codec = tiktoken.get_encoding("cl100k_base")
    ids = [codec.encode(text) for text in DOCS[:2]]
    body = post(server, "/v1/embeddings", {"input": ids}).json()
    np.testing.assert_allclose([item["embedding"] for item in body["data"]], local, atol=1e-6)
    assert body["usage"]["prompt_tokens"] == sum(map(len, ids))
    single = post(server, "/v1/embeddings", {"input": ids[0]}).json()
    np.testing.assert_allclose(single["data"][0]["embedding"], local[0], atol=1e-6)
    bad = post(server, "/v1/embeddings", {"input": [[10**7]]})
    assert bad.status_code == 400
    assert "10000000" in bad.json()["error"]["message"]


def test_openai_errors_name_the_bad_value(server):
    response = post(server, "/v1/embeddings", {"input": "x", "dimensions": 3})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "dimensions"
    assert "dimensions=3" in response.json()["error"]["message"]
    response = post(server, "/v1/embeddings", {"input": "x", "input_type": "questions"})
    assert response.status_code == 400
    assert "'questions'" in response.json()["error"]["message"]
    response = post(server, "/v1/embeddings", {"inputs": "x"})
    assert response.status_code == 400
    assert "input" in response.json()["error"]["message"]
    response = post(server, "/v1/embeddings", {"input": ["x"] * 9})
    assert response.status_code == 413
    assert "at most 8" in response.json()["error"]["message"]
    response = post(server, "/v1/embeddings", {"input": ["ok", "y" * 501]})
    assert response.status_code == 413
    assert "input[1]" in response.json()["error"]["message"]
    response = httpx.post(server + "/v1/embeddings", content=b'{"input": "' + b"z" * 30_000 + b'"}', timeout=30)
    assert response.status_code == 413
    assert "at most 20000" in response.json()["error"]["message"]


def test_tei_embed_roles_and_errors(server, paths):
    local = BGEEmbedder(paths[0])
    documents = post(server, "/embed", {"inputs": DOCS}).json()
    np.testing.assert_allclose(documents, local.embed_documents(DOCS), atol=1e-6)
    queries = post(server, "/embed", {"inputs": QUERIES[0], "prompt_name": "query"}).json()
    np.testing.assert_allclose(queries, local.embed_queries(QUERIES[:1]), atol=1e-6)
    routed = post(server, "/query/embed", {"inputs": QUERIES}).json()
    np.testing.assert_allclose(routed, local.embed_queries(QUERIES), atol=1e-6)
    unnormalised = post(server, "/embed", {"inputs": DOCS, "normalize": False}).json()  # Haystack's default
    np.testing.assert_allclose(unnormalised, local.embed_documents(DOCS), atol=1e-6)  # BGE's unit vectors
    np.testing.assert_allclose(post(server, "/", {"inputs": DOCS}).json(), documents, atol=1e-6)  # TEI's root
    response = post(server, "/embed", {"inputs": ["x"] * 9})
    assert response.status_code == 413
    assert response.json()["error_type"] == "Validation"
    response = post(server, "/embed", {"input": "x"})
    assert response.status_code == 422
    assert "inputs" in response.json()["error"]
    sparse = post(server, "/embed_sparse", {"inputs": "x"})
    assert sparse.status_code == 400
    assert "bge-m3" in sparse.json()["error"]


def test_tei_and_cohere_rerank_match_the_core(server, paths):
    local = BGEReranker(paths[1])
    expected = local.rank(QUERIES[0], DOCS)
    tei = post(server, "/rerank", {"query": QUERIES[0], "texts": DOCS, "return_text": True}).json()
    assert [item["index"] for item in tei] == [item.index for item in expected]
    np.testing.assert_allclose([item["score"] for item in tei], [item.score for item in expected], atol=1e-6)
    assert [item["text"] for item in tei] == [item.text for item in expected]
    raw = post(server, "/rerank", {"query": QUERIES[0], "texts": DOCS, "raw_scores": True}).json()
    np.testing.assert_allclose(
        [item["score"] for item in raw],
        [item.score for item in local.rank(QUERIES[0], DOCS, normalize=False)],
        atol=1e-6,
    )
    for path in ("/rerank", "/v1/rerank"):
        body = {"query": QUERIES[0], "documents": [DOCS[0], {"text": DOCS[1]}, *DOCS[2:]], "top_n": 2}
        cohere = post(server, path, {**body, "return_documents": True}).json()
        assert [item["index"] for item in cohere["results"]] == [item.index for item in expected[:2]]
        np.testing.assert_allclose(
            [item["relevance_score"] for item in cohere["results"]], [item.score for item in expected[:2]], atol=1e-6
        )
        assert cohere["results"][0]["document"] == {"text": expected[0].text}
        assert cohere["usage"]["total_tokens"] > 0
        assert "document" not in post(server, path, body).json()["results"][0]
    response = post(server, "/rerank", {"query": "q"})
    assert response.status_code == 422
    assert "texts" in response.json()["error"]
    response = post(server, "/v1/rerank", {"query": "q", "documents": ["a"], "top_n": 0})
    assert response.status_code == 400
    assert "top_n" in response.json()["error"]["message"]


def test_info_health_models_metrics(server, paths):
    info = httpx.get(server + "/info").json()
    assert info["model_id"] == paths[0]
    assert info["model_type"] == {"embedding": {"pooling": "cls"}}
    assert info["max_client_batch_size"] == 8
    assert info["max_batch_tokens"] == CPU_BATCH_TOKENS  # the CPU's padded-token budget per forward pass
    assert httpx.get(server + "/health").status_code == 200
    assert httpx.get(server + "/v1/models").json()["data"][0]["id"] == paths[0]
    post(server, "/v1/embeddings", {"input": ["a", "b", "c"]})
    text = httpx.get(server + "/metrics").text
    assert 'bge_requests_total{route="/v1/embeddings",status="200"}' in text
    assert 'bge_request_items_bucket{le="4.0",route="/v1/embeddings"}' in text
    assert "bge_model_batch_items_count" in text
    assert "bge_queue_items 0.0" in text
    assert 'bge_request_duration_seconds_count{route="/v1/embeddings"}' in text


def test_api_key(keyed):
    assert post(keyed, "/v1/embeddings", {"input": "x"}).status_code == 401
    wrong = post(keyed, "/v1/embeddings", {"input": "x"}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["type"] == "authentication_error"
    assert post(keyed, "/embed", {"inputs": "x"}, headers={"x-api-key": "nope"}).json()["error_type"] == "Unauthorized"
    assert post(keyed, "/v1/embeddings", {"input": "x"}, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert post(keyed, "/embed", {"inputs": "x"}, headers={"x-api-key": KEY}).status_code == 200
    assert httpx.get(keyed + "/health").status_code == 200
    assert httpx.get(keyed + "/metrics").status_code == 401
    assert post(keyed, "/rerank", {"query": "q", "texts": ["a"]}, headers={"x-api-key": KEY}).status_code == 404


def test_bge_m3_sparse(tiny_m3_path: str, live_server):
    url = live_server(ServerSettings(model=tiny_m3_path))
    local = BGEM3Embedder(tiny_m3_path)
    body = post(url, "/embed_sparse", {"inputs": DOCS[:2]}).json()
    expected = local.embed_sparse_documents(DOCS[:2])
    assert [[item["index"] for item in row] for row in body] == [list(item.indices) for item in expected]
    np.testing.assert_allclose(
        [value["value"] for row in body for value in row], [v for item in expected for v in item.values], atol=1e-6
    )
    assert all(isinstance(value["index"], int) for row in body for value in row)  # token ids stay integers
    query = post(url, "/embed_sparse", {"inputs": QUERIES[0], "prompt_name": "query"}).json()
    assert [item["index"] for item in query[0]] == list(local.embed_sparse_queries(QUERIES[:1])[0].indices)
    assert post(url, "/query/embed_sparse", {"inputs": [QUERIES[0]]}).json() == query
    np.testing.assert_allclose(post(url, "/embed", {"inputs": DOCS}).json(), local.embed_documents(DOCS), atol=1e-6)
    assert Path(tiny_m3_path, "sparse_linear.pt").is_file()


def test_info_without_a_token_budget_reports_batch_size_times_max_length() -> None:
    from types import SimpleNamespace

    from bge_integrations.serving.tei_routes import _max_batch_tokens

    assert _max_batch_tokens(None, SimpleNamespace(batch_size=16, max_length=512)) == 16 * 512  # a GPU, an LLM reranker
    assert _max_batch_tokens(None, SimpleNamespace(batch_size=16, max_length=None)) is None
    assert _max_batch_tokens(2048, SimpleNamespace(batch_size=16, max_length=512)) == 2048
