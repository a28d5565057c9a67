"""RemoteEmbedder / RemoteReranker, and the adapters with ``base_url=``: a server instead of a local model.

First the client against ``httpx.MockTransport`` (what a real server never sends: shuffled,
missing or duplicated results, 429/503, odd error bodies), then every adapter against a live
``bge-integrations serve`` on the tiny models, compared with the same adapter on the local model.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from bge_integrations.core import remote
from bge_integrations.core.remote import RemoteEmbedder, RemoteError, RemoteReranker, check_base_url
from bge_integrations.serving import ServerSettings
from tests.serving.servers import running_server

QUERIES = ["what do pandas eat?", "where is paris?"]
DOCS = ["Pandas eat bamboo.", "Paris is the capital of France.", "The sky is blue.", "Bamboo grows fast."]
KEY = "remote-s3cret"
URL = "http://bge.test"

Handler = Callable[[httpx.Request], httpx.Response]


# --- the client, against a mock transport ------------------------------------------------------


def _mocked(client: Any, handler: Handler) -> list[httpx.Request]:
    """Route client's requests (sync and async) to handler; returns the list the requests go into."""
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    transport = httpx.MockTransport(record)
    client._client = httpx.Client(transport=transport, headers=client._headers())
    client._async_client = lambda: httpx.AsyncClient(transport=transport, headers=client._headers())
    return seen


def _embeddings_answer(request: httpx.Request, *, reverse: bool = True) -> httpx.Response:
    """Vectors [len(text), is_query] for each input, listed in reverse order (indices say where they go)."""
    body = json.loads(request.content)
    query = float(body["input_type"] == "query")
    data = [{"object": "embedding", "index": i, "embedding": [len(t), query]} for i, t in enumerate(body["input"])]
    return httpx.Response(200, json={"object": "list", "data": data[::-1] if reverse else data, "model": "m"})


def _rerank_answer(request: httpx.Request) -> httpx.Response:
    """Score: minus the length of each document (minus 100 when raw), sorted best first as Cohere does."""
    body = json.loads(request.content)
    offset = 100.0 if body["raw_scores"] else 0.0
    results = [{"index": i, "relevance_score": -len(d) - offset} for i, d in enumerate(body["documents"])]
    return httpx.Response(200, json={"results": sorted(results, key=lambda r: -r["relevance_score"])})


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The backoff waits, recorded instead of slept (sync and async)."""
    waited: list[float] = []

    async def asleep(seconds: float) -> None:
        waited.append(seconds)

    monkeypatch.setattr(remote.time, "sleep", waited.append)
    monkeypatch.setattr(remote.asyncio, "sleep", asleep)
    return waited


def test_embedder_sends_roles_and_key_and_returns_vectors_in_input_order() -> None:
    embedder = RemoteEmbedder(URL + "/v1/", api_key=KEY, model="bge-small")
    seen = _mocked(embedder, _embeddings_answer)
    assert embedder.embed_documents(["a", "bbb"]) == [[1.0, 0.0], [3.0, 0.0]]
    assert embedder.embed_queries(["cc", "d"]) == [[2.0, 1.0], [1.0, 1.0]]
    assert embedder.embed_query("eeee") == [4.0, 1.0]
    assert embedder.embed_documents([]) == []
    assert len(seen) == 3  # nothing sent for []
    assert str(seen[0].url) == URL + "/v1/embeddings"
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"
    assert json.loads(seen[0].content) == {
        "input": ["a", "bbb"],
        "input_type": "document",
        "encoding_format": "float",
        "model": "bge-small",
    }
    assert json.loads(seen[2].content)["input_type"] == "query"


async def test_embedder_async_splits_into_requests_of_batch_size() -> None:
    embedder = RemoteEmbedder(URL, batch_size=2)
    seen = _mocked(embedder, _embeddings_answer)
    texts = ["a", "bb", "ccc", "dddd", "eeeee"]
    assert await embedder.aembed_documents(texts) == [[float(len(t)), 0.0] for t in texts]
    assert sorted(len(json.loads(r.content)["input"]) for r in seen) == [1, 2, 2]
    assert await embedder.aembed_queries(["xy"]) == [[2.0, 1.0]]
    assert await embedder.aembed_query("xyz") == [3.0, 1.0]
    assert embedder.embed_documents(texts) == [[float(len(t)), 0.0] for t in texts]  # sync: same split
    assert "authorization" not in seen[0].headers
    assert "model" not in json.loads(seen[0].content)


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ({"data": [{"index": 0, "embedding": [1.0]}]}, "1 results for 2 inputs"),
        ({"data": [{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [2.0]}]}, "index 0"),
        ({"data": [{"index": 0, "embedding": [1.0]}, {"index": 2, "embedding": [2.0]}]}, "index 2"),
        ({"data": [{"index": 0, "embedding": [1.0]}, {"index": 1}]}, "no 'embedding'"),
        ({"data": [{"index": 0, "embedding": [1.0]}, {"index": 1, "embedding": "AAAA"}]}, "not a list of numbers"),
        ({"data": [{"index": 0, "embedding": [1.0]}, {"index": 1, "embedding": [1.0, 2.0]}]}, "different lengths"),
        ({"object": "list"}, "without a list of results"),
    ],
)
def test_embedder_refuses_an_answer_that_is_not_one_vector_per_input(answer: Any, problem: str) -> None:
    embedder = RemoteEmbedder(URL)
    _mocked(embedder, lambda _request: httpx.Response(200, json=answer))
    with pytest.raises(RemoteError, match=problem) as caught:
        embedder.embed_documents(["a", "b"])
    assert URL + "/v1/embeddings" in str(caught.value)


def test_errors_quote_the_server_message_and_name_the_url() -> None:
    bodies: list[httpx.Response] = [
        httpx.Response(400, json={"error": {"message": "input[1] is empty", "type": "invalid_request_error"}}),
        httpx.Response(413, json={"error": "too many inputs", "error_type": "Validation"}),
        httpx.Response(422, json={"detail": [{"loc": ["body", "query"], "msg": "Field required"}]}),
        httpx.Response(500, text="Internal Server Error"),
        httpx.Response(401, json={"error": {"message": "invalid API key"}}),
        httpx.Response(200, text="<html>"),
    ]
    embedder = RemoteEmbedder(URL)
    _mocked(embedder, lambda _request: bodies.pop(0))
    expected = ["400 Bad Request: input[1] is empty", "too many inputs", "Field required", "Internal Server Error"]
    for text in [*expected, "invalid API key (check api_key"]:
        with pytest.raises(RemoteError, match=f"^POST {URL}/v1/embeddings answered .*") as caught:
            embedder.embed_documents(["a"])
        assert text in str(caught.value)
    assert caught.value.status == 401
    assert caught.value.url == URL + "/v1/embeddings"
    copied = pickle.loads(pickle.dumps(caught.value))  # errors cross process boundaries (Ray, pools) whole
    assert (str(copied), copied.url, copied.status) == (str(caught.value), caught.value.url, 401)
    with pytest.raises(RemoteError, match="not JSON"):
        embedder.embed_documents(["a"])


def test_429_and_503_are_retried_honouring_retry_after(waits: list[float]) -> None:
    answers = [
        httpx.Response(429, headers={"Retry-After": "2"}, json={"error": {"message": "queue full"}}),
        httpx.Response(503, json={"error": {"message": "starting"}}),
        httpx.Response(429, headers={"Retry-After": "1000"}),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        return answers.pop(0) if answers else _embeddings_answer(request)

    embedder = RemoteEmbedder(URL, max_retries=3)
    seen = _mocked(embedder, handler)
    assert embedder.embed_query("ab") == [2.0, 1.0]
    assert len(seen) == 4
    assert waits == [2.0, 1.0, remote.MAX_RETRY_WAIT]  # Retry-After, else 0.5 s doubling; capped


async def test_retries_end_with_the_last_answer_as_the_error(waits: list[float]) -> None:
    embedder = RemoteEmbedder(URL, max_retries=2)
    seen = _mocked(embedder, lambda _request: httpx.Response(503, json={"error": {"message": "overloaded"}}))
    with pytest.raises(RemoteError, match="answered 503 Service Unavailable: overloaded") as caught:
        await embedder.aembed_query("a")
    assert caught.value.status == 503
    assert len(seen) == 3
    assert waits == [0.5, 1.0]
    _mocked(embedder, lambda _request: httpx.Response(400, json={"error": {"message": "bad"}}))
    waits.clear()
    with pytest.raises(RemoteError, match="400"):
        embedder.embed_query("a")
    assert waits == []  # other statuses are not retried


def test_reranker_scores_in_input_order_and_ranks_as_the_core_does() -> None:
    reranker = RemoteReranker(URL, api_key=KEY)
    seen = _mocked(reranker, _rerank_answer)
    docs = ["ccc", "a", "bb", "a"]
    assert reranker.score("q", docs) == [-3.0, -1.0, -2.0, -1.0]
    assert json.loads(seen[0].content) == {
        "query": "q",
        "documents": docs,
        "return_documents": False,
        "raw_scores": False,
    }
    assert str(seen[0].url) == URL + "/rerank"
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"
    assert reranker.score("q", docs, normalize=False) == [-103.0, -101.0, -102.0, -101.0]
    ranked = reranker.rank("q", docs)
    assert [(item.index, item.text) for item in ranked] == [
        (1, "a"),
        (3, "a"),
        (2, "bb"),
        (0, "ccc"),
    ]  # ties: input order
    assert [item.index for item in reranker.rank("q", docs, top_n=2, score_threshold=-1.5)] == [1, 3]
    assert reranker.score_pairs([("q", "aaa"), ("r", "b"), ("q", "cc")]) == [-3.0, -1.0, -2.0]
    assert [json.loads(r.content)["query"] for r in seen[-2:]] == ["q", "r"]  # one request per query
    assert reranker.score("q", []) == []
    assert reranker.rank("q", []) == []


async def test_reranker_async_and_raw_by_default() -> None:
    reranker = RemoteReranker(URL, normalize=False, batch_size=3)
    seen = _mocked(reranker, _rerank_answer)
    docs = ["a", "bb", "ccc", "dddd", "eeeee"]
    assert await reranker.ascore("q", docs) == [-101.0, -102.0, -103.0, -104.0, -105.0]
    assert len(seen) == 2
    assert all(json.loads(r.content)["raw_scores"] for r in seen)
    ranked = await reranker.arank("q", docs, top_n=1, normalize=True)
    assert [(item.index, item.score) for item in ranked] == [(0, -1.0)]


def test_reranker_refuses_results_for_other_documents() -> None:
    reranker = RemoteReranker(URL)
    answer = {"results": [{"index": 1, "relevance_score": 0.5}]}  # top_n=1 on the server: 1 of 2
    _mocked(reranker, lambda _request: httpx.Response(200, json=answer))
    with pytest.raises(RemoteError, match=f"{URL}/rerank answered, but with 1 results for 2 inputs"):
        reranker.rank("q", ["a", "b"])
    answer = {"results": [{"index": 1, "relevance_score": 0.5}, {"index": 0, "relevance_score": None}]}
    _mocked(reranker, lambda _request: httpx.Response(200, json=answer))
    with pytest.raises(RemoteError, match="score of document 0 is not a number"):
        reranker.score("q", ["a", "b"])


def test_settings_are_checked_and_stored_without_any_request() -> None:
    assert check_base_url("https://host:8080/v1") == "https://host:8080"
    assert check_base_url("http://host/prefix/") == "http://host/prefix"
    for bad in ("localhost:8080", "", None, "ftp://host"):
        with pytest.raises(ValueError, match="base_url must be an http"):
            RemoteEmbedder(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size must be an int > 0, got 0"):
        RemoteEmbedder(URL, batch_size=0)
    with pytest.raises(ValueError, match="timeout must be a number of seconds > 0, got -1"):
        RemoteReranker(URL, timeout=-1)
    with pytest.raises(ValueError, match=r"max_retries must be an int >= 0, got 1\.5"):
        RemoteReranker(URL, max_retries=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="api_key must be a non-empty string"):
        RemoteReranker(URL, api_key=" ")
    with pytest.raises(TypeError, match="normalize must be True or False, got 'yes'"):
        RemoteReranker(URL, normalize="yes")  # type: ignore[arg-type]
    embedder = RemoteEmbedder("http://127.0.0.1:9", api_key=KEY)  # nothing listens there: no request made yet
    assert KEY not in repr(embedder)
    assert "'***'" in repr(embedder)
    embedder.warm_up()
    assert embedder.release() is False
    copy = pickle.loads(pickle.dumps(embedder))
    assert (copy.base_url, copy.api_key, copy._client) == ("http://127.0.0.1:9", KEY, None)


async def test_server_down_is_a_clear_error() -> None:
    embedder = RemoteEmbedder("http://127.0.0.1:9", max_retries=0)
    reranker = RemoteReranker("http://127.0.0.1:9", max_retries=0)
    for call in (embedder.embed_query, lambda text: reranker.score("q", [text])):
        with pytest.raises(RemoteError, match=r"POST http://127.0.0.1:9/\S+ could not be reached: ConnectError") as e:
            call("a")
        assert "Is the server running at that address?" in str(e.value)
        assert e.value.status is None
    with pytest.raises(RemoteError, match="could not be reached"):
        await RemoteEmbedder("http://127.0.0.1:9", max_retries=0).aembed_documents(["a"])


def test_connection_refused_is_retried(waits: list[float]) -> None:
    embedder = RemoteEmbedder("http://127.0.0.1:9", max_retries=2)
    with pytest.raises(RemoteError, match="could not be reached"):
        embedder.embed_query("a")
    assert waits == [0.5, 1.0]


# --- the adapters, against a live server ------------------------------------------------------


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    from tests.tiny_models import build_embedder, build_reranker

    root = tmp_path_factory.mktemp("remote-models")
    return str(build_embedder(root / "bge-small-en-v1.5-tiny")), str(build_reranker(root / "bge-reranker-base-tiny"))


@pytest.fixture(scope="module")
def server(paths: tuple[str, str]) -> Iterator[str]:
    settings = ServerSettings(
        model=paths[0],
        reranker=paths[1],
        api_key=KEY,
        embedder_settings={"device": "cpu"},
        reranker_settings={"device": "cpu"},
    )
    with running_server(settings) as url:
        yield url


def _close(got: Any, expected: Any, atol: float = 1e-6) -> None:
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), atol=atol, rtol=0)


async def test_langchain_embeddings_with_base_url_match_the_local_model(server: str, paths: tuple[str, str]) -> None:
    from bge_integrations.langchain import BGEEmbeddings

    local = BGEEmbeddings(model_name=paths[0], device="cpu")
    remote_ = BGEEmbeddings(base_url=server, api_key=KEY)
    assert isinstance(remote_.client, RemoteEmbedder)
    assert remote_.client.model is None
    _close(remote_.embed_documents(DOCS), local.embed_documents(DOCS))
    _close(await remote_.aembed_documents(DOCS), local.embed_documents(DOCS))
    query = remote_.embed_query(DOCS[0])
    _close(query, local.embed_query(DOCS[0]))
    _close(await remote_.aembed_query(DOCS[0]), local.embed_query(DOCS[0]))
    assert np.abs(np.subtract(query, remote_.embed_documents([DOCS[0]])[0])).max() > 1e-3  # the instruction went on
    assert KEY not in repr(remote_)
    assert "api_key" not in remote_.model_dump()
    assert remote_.model_dump()["base_url"]


async def test_llama_index_embedding_with_base_url_matches_the_local_model(server: str, paths: tuple[str, str]) -> None:
    from bge_integrations.llama_index import BGEEmbedding

    local = BGEEmbedding(paths[0], device="cpu")
    remote_ = BGEEmbedding(base_url=server, api_key=KEY, embed_batch_size=3)
    assert isinstance(remote_.core, RemoteEmbedder)
    assert remote_.core.batch_size == 3
    _close(remote_.get_text_embedding_batch(DOCS, show_progress=True), local.get_text_embedding_batch(DOCS))
    _close(await remote_.aget_text_embedding_batch(DOCS), local.get_text_embedding_batch(DOCS))
    _close(remote_.get_query_embedding(QUERIES[0]), local.get_query_embedding(QUERIES[0]))
    _close(await remote_.aget_query_embedding(QUERIES[0]), local.get_query_embedding(QUERIES[0]))
    _close(remote_.get_text_embedding(QUERIES[0]), local.get_text_embedding(QUERIES[0]))
    assert remote_.to_dict()["base_url"] == server
    assert "api_key" not in remote_.to_dict()
    assert KEY not in remote_.to_json()
    assert KEY not in repr(remote_)
    rebuilt = BGEEmbedding.from_dict({**remote_.to_dict(), "api_key": KEY})
    _close(rebuilt.get_query_embedding(QUERIES[1]), local.get_query_embedding(QUERIES[1]))


async def test_haystack_embedders_with_base_url_match_the_local_model(
    server: str, paths: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from haystack import Document
    from haystack.utils import Secret

    from bge_integrations.haystack import BGEDocumentEmbedder, BGETextEmbedder

    local_text = BGETextEmbedder(model=paths[0], device="cpu")
    local_docs = BGEDocumentEmbedder(model=paths[0], device="cpu", meta_fields_to_embed=["title"], progress_bar=False)
    text = BGETextEmbedder(base_url=server, api_key=Secret.from_token(KEY), suffix="?")
    docs = BGEDocumentEmbedder(base_url=server, api_key=Secret.from_token(KEY), meta_fields_to_embed=["title"])
    text.warm_up()
    documents = [Document(content=d, meta={"title": "T"}) for d in DOCS]
    expected = [d.embedding for d in local_docs.run(documents)["documents"]]
    _close([d.embedding for d in docs.run(documents)["documents"]], expected)
    _close([d.embedding for d in (await docs.run_async(documents))["documents"]], expected)
    _close(text.run(QUERIES[0])["embedding"], local_text.run(QUERIES[0] + "?")["embedding"])
    _close((await text.run_async(QUERIES[0]))["embedding"], local_text.run(QUERIES[0] + "?")["embedding"])

    # Saved by the variable's name only; a component loaded from the file reads the key from it.
    saved = BGETextEmbedder(base_url=server).to_dict()
    assert saved["init_parameters"]["base_url"] == server
    assert saved["init_parameters"]["api_key"] == {"type": "env_var", "env_vars": ["BGE_API_KEY"], "strict": False}
    with pytest.raises(ValueError, match="Cannot serialize token-based secret"):
        text.to_dict()
    monkeypatch.setenv("BGE_API_KEY", KEY)
    loaded = BGETextEmbedder.from_dict(saved)
    assert loaded.to_dict() == saved
    _close(loaded.run(QUERIES[1])["embedding"], local_text.run(QUERIES[1])["embedding"])
    monkeypatch.delenv("BGE_API_KEY")
    with pytest.raises(RemoteError, match="401"):
        BGETextEmbedder.from_dict(saved).run(QUERIES[1])
    with pytest.raises(TypeError, match="api_key must be a haystack Secret or None, got str"):
        BGETextEmbedder(base_url=server, api_key=KEY)  # type: ignore[arg-type]


async def test_rerankers_with_base_url_match_the_local_model(server: str, paths: tuple[str, str]) -> None:
    from haystack import Document
    from haystack.utils import Secret
    from langchain_core.documents import Document as LCDocument
    from llama_index.core.schema import NodeWithScore, TextNode

    from bge_integrations.haystack import BGERanker
    from bge_integrations.langchain import BGECrossEncoder, BGERerank
    from bge_integrations.llama_index import BGERerank as LlamaRerank

    query = QUERIES[0]
    lc_docs = [LCDocument(page_content=d) for d in DOCS]
    for normalize in (True, False):
        local = BGERerank(model_name=paths[1], device="cpu", top_n=None, normalize=normalize)
        remote_ = BGERerank(base_url=server, api_key=KEY, top_n=None, normalize=normalize)
        assert isinstance(remote_.client, RemoteReranker)
        expected = local.compress_documents(lc_docs, query)
        for got in (remote_.compress_documents(lc_docs, query), await remote_.acompress_documents(lc_docs, query)):
            assert [d.page_content for d in got] == [d.page_content for d in expected]
            _close([d.metadata["relevance_score"] for d in got], [d.metadata["relevance_score"] for d in expected])
    pairs = [(query, d) for d in DOCS] + [(QUERIES[1], DOCS[1])]
    _close(
        BGECrossEncoder(base_url=server, api_key=KEY).score(pairs),
        BGECrossEncoder(model_name=paths[1], model_kwargs={"device": "cpu"}).score(pairs),
    )

    nodes = [NodeWithScore(node=TextNode(text=d), score=0.1) for d in DOCS]
    local_nodes = LlamaRerank(paths[1], device="cpu", top_n=3).postprocess_nodes(nodes, query_str=query)
    remote_rerank = LlamaRerank(base_url=server, api_key=KEY, top_n=3)
    for got in (
        remote_rerank.postprocess_nodes(nodes, query_str=query),
        await remote_rerank.apostprocess_nodes(nodes, query_str=query),
    ):
        assert [n.node.get_content() for n in got] == [n.node.get_content() for n in local_nodes]
        _close([n.score for n in got], [n.score for n in local_nodes])
    assert "api_key" not in remote_rerank.to_dict()
    assert KEY not in repr(remote_rerank)

    documents = [Document(content=d) for d in DOCS]
    local_ranker = BGERanker(model=paths[1], device="cpu", top_k=4)
    ranker = BGERanker(base_url=server, api_key=Secret.from_token(KEY), top_k=4, batch_size=2)
    for scale in (True, False):
        expected_docs = local_ranker.run(query=query, documents=documents, scale_score=scale)["documents"]
        for out in (
            ranker.run(query=query, documents=documents, scale_score=scale),
            await ranker.run_async(query=query, documents=documents, scale_score=scale),
        ):
            assert [d.content for d in out["documents"]] == [d.content for d in expected_docs]
            # Raw logits: batches of other sizes (here 2 per request) move the last digits (~1e-6).
            _close([d.score for d in out["documents"]], [d.score for d in expected_docs], atol=1e-6 if scale else 1e-5)
    saved = BGERanker(base_url=server, scale_score=False).to_dict()
    assert BGERanker.from_dict(saved).to_dict() == saved
    assert saved["init_parameters"]["base_url"] == server


def test_base_url_never_loads_a_model(server: str) -> None:
    from langchain_core.documents import Document

    from bge_integrations.langchain import BGEEmbeddings, BGERerank

    # A model name that no machine has: sent to the server as the request's model, never loaded here.
    embeddings = BGEEmbeddings(model_name="/nowhere/bge-small-en-v1.5", base_url=server, api_key=KEY)
    assert embeddings.client.model == "/nowhere/bge-small-en-v1.5"
    assert len(embeddings.embed_query("a")) == len(embeddings.embed_documents(["a"])[0]) > 0
    rerank = BGERerank(model_name="/nowhere/reranker", base_url=server, api_key=KEY, top_n=1)
    assert len(rerank.compress_documents([Document(page_content="a")], "q")) == 1


def test_server_owned_settings_with_base_url_are_refused_by_name() -> None:
    from haystack.utils import Secret

    from bge_integrations.haystack import BGEDocumentEmbedder, BGERanker, BGETextEmbedder
    from bge_integrations.langchain import BGECrossEncoder, BGEEmbeddings, BGERerank
    from bge_integrations.llama_index import BGEEmbedding
    from bge_integrations.llama_index import BGERerank as LlamaRerank

    cases: list[tuple[Callable[[], Any], str]] = [
        (
            lambda: BGEEmbeddings(base_url=URL, device="cpu", query_instruction="Q: "),
            "query_instruction='Q: ', device='cpu'",
        ),
        (lambda: BGEEmbeddings(base_url=URL, model_kwargs={"device": "cpu"}), "device='cpu'"),
        (lambda: BGEEmbeddings(base_url=URL, token="hf_abc"), "token='\\*\\*\\*'"),
        (lambda: BGERerank(base_url=URL, api_key="hf_key", device="cpu"), "device='cpu'"),
        (lambda: BGERerank(base_url=URL, max_length=128), "max_length=128"),
        (lambda: BGECrossEncoder(base_url=URL, model_kwargs={"max_length": 64}), "max_length=64"),
        (lambda: BGEEmbedding(base_url=URL, text_instruction="D: "), "text_instruction='D: '"),
        (lambda: LlamaRerank(base_url=URL, windows=False), "windows=False"),
        (lambda: BGETextEmbedder(base_url=URL, prefix="Q: "), "query_instruction \\(or prefix\\)='Q: '"),
        (lambda: BGETextEmbedder(base_url=URL, normalize_embeddings=True), "normalize_embeddings=True"),
        (lambda: BGEDocumentEmbedder(base_url=URL, truncate_dim=8), "truncate_dim=8"),
        (lambda: BGEDocumentEmbedder(base_url=URL, token=Secret.from_token("hf_x")), "token=<a Secret>"),
        (lambda: BGERanker(base_url=URL, device="cpu", aggregation="mean"), "aggregation='mean', device='cpu'"),
    ]
    for build, named in cases:
        with pytest.raises(ValueError, match=f"owns these settings: {named}") as caught:
            build()
        assert "hf_" not in str(caught.value)
    with pytest.raises(ValueError, match="base_url must be an http"):
        BGEEmbeddings(base_url="localhost:8080")
    # What the client honours itself is taken: the scale, items per request, progress bars, affixes.
    assert BGERerank(base_url=URL, normalize=False, batch_size=4).client.normalize is False
    assert BGEEmbeddings(base_url=URL, batch_size=7, show_progress=True).client.batch_size == 7
    assert BGEDocumentEmbedder(base_url=URL, progress_bar=True, suffix="!").embedder.base_url == URL
    assert BGERanker(base_url=URL, scale_score=False, query_prefix="q: ").reranker.normalize is False


def test_a_wrong_key_is_a_clear_error(server: str) -> None:
    from bge_integrations.langchain import BGEEmbeddings, BGERerank

    for call in (
        lambda: BGEEmbeddings(base_url=server, api_key="wrong").embed_query("a"),
        lambda: BGEEmbeddings(base_url=server).embed_documents(["a"]),
        lambda: BGERerank(base_url=server, api_key="wrong").client.score("q", ["a"]),
    ):
        with pytest.raises(RemoteError, match=f"{server}/\\S+ answered 401 Unauthorized: .*check api_key") as caught:
            call()
        assert "api_key='wrong'" not in str(caught.value)
