"""Review of ``bge-integrations serve``: each test shows one defect found against a live server.

Each test states the behaviour the issue or docs/serving.md promises; they fail until it is fixed.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from bge_integrations import BGEEmbedder, BGEReranker
from bge_integrations.serving import ServerSettings
from tests.serving.servers import running_server

LIMIT = 20_000
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def server(tiny_embedder_path: str, tiny_reranker_path: str) -> Iterator[str]:
    settings = ServerSettings(
        model=tiny_embedder_path, reranker=tiny_reranker_path, max_items=8, max_chars=500, max_request_bytes=LIMIT
    )
    with running_server(settings) as url:
        yield url


@pytest.fixture
def tiktoken_files(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.serving.tiktoken_files import tiktoken_cache_dir

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", tiktoken_cache_dir())


def _streamed(prefix: bytes, filler: bytes, suffix: bytes) -> Iterator[bytes]:
    """A body sent chunked (no Content-Length), three times the server's limit."""
    yield prefix
    for _ in range(3 * LIMIT // 5_000):
        yield filler * 5_000
    yield suffix


# --- size limits ---------------------------------------------------------------------------------


def test_streamed_body_over_the_limit_gets_413_in_the_api_error_shape(server: str) -> None:
    """A chunked body (no Content-Length) over max_request_bytes must get the same 413 JSON as one with it.

    Today BodyLimit raises _TooLarge inside FastAPI's body read; FastAPI turns any exception there into
    ``400 {"detail": "There was an error parsing the body"}``, so the 413 handler never runs.
    """
    openai = httpx.post(server + "/v1/embeddings", content=_streamed(b'{"input": "', b"z", b'"}'), timeout=30)
    assert openai.status_code == 413, openai.text
    assert f"at most {LIMIT}" in openai.json()["error"]["message"]
    tei = httpx.post(server + "/embed", content=_streamed(b'{"inputs": "', b"z", b'"}'), timeout=30)
    assert tei.status_code == 413, tei.text
    assert tei.json()["error_type"] == "Validation"
    cohere = httpx.post(
        server + "/v1/rerank", content=_streamed(b'{"query": "q", "documents": ["', b"z", b'"]}'), timeout=30
    )
    assert cohere.status_code == 413, cohere.text
    assert f"at most {LIMIT}" in cohere.json()["message"]


def test_uploads_being_received_are_bounded_before_their_bodies_are_read(tiny_embedder_path: str) -> None:
    """Memory stays bounded under load: the body of every concurrent upload is buffered before admission.

    Admission counts texts only after the whole body is read and parsed, and uvicorn runs with no
    ``limit_concurrency``, so N slow clients hold N x max_request_bytes (here 64 x 0.9 MB, for a
    server whose queue holds 8 texts of 500 characters). Past a budget of body bytes being
    received, new uploads must be refused at once (429/503 + Retry-After) instead of read.
    """
    settings = ServerSettings(
        model=tiny_embedder_path, max_items=8, max_queue_items=8, max_chars=500, max_request_bytes=1_000_000
    )
    sent = 900_000
    head = (
        b"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000000\r\n\r\n"
    )
    with running_server(settings) as url:
        port = int(url.rsplit(":", 1)[1])
        sockets: list[socket.socket] = []
        try:
            for _ in range(64):
                client = socket.create_connection(("127.0.0.1", port), timeout=5)
                sockets.append(client)
                with contextlib.suppress(OSError):  # OSError: refused and closed by the server, as wanted
                    client.sendall(head + b" " * sent)  # never finished: a slow client
            refused = 0
            waiting = list(sockets)
            deadline = time.monotonic() + 3
            while waiting and time.monotonic() < deadline:
                readable, _, _ = select.select(waiting, [], [], 0.1)
                for client in readable:
                    waiting.remove(client)
                    try:
                        answer = client.recv(4096)
                    except OSError:
                        continue
                    status = answer.split(b" ", 2)[1:2]
                    if status in ([b"429"], [b"503"]) and b"retry-after" in answer.lower():
                        refused += 1
        finally:
            for client in sockets:
                client.close()
    assert refused >= 32, f"only {refused} of 64 stalled 0.9 MB uploads were refused; the rest sit in memory"


# --- token-id input --------------------------------------------------------------------------------


class _DecodeSpy:
    """Records where tiktoken's decoding runs (on the event loop or not) and how many rows it decodes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import tiktoken

        self.rows = 0
        self.on_loop = 0
        self._lock = threading.Lock()
        for name in ("decode", "decode_batch", "decode_bytes"):
            original = getattr(tiktoken.Encoding, name)
            monkeypatch.setattr(tiktoken.Encoding, name, self._wrap(original, batch=name == "decode_batch"))

    def _wrap(self, original: Any, *, batch: bool) -> Any:
        def spy(codec: Any, tokens: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                asyncio.get_running_loop()
                on_loop = True
            except RuntimeError:
                on_loop = False
            with self._lock:
                self.rows += len(tokens) if batch else 1
                self.on_loop += on_loop
            return original(codec, tokens, *args, **kwargs)

        return spy


@pytest.mark.usefixtures("tiktoken_files")
def test_token_id_input_over_max_items_is_refused_before_it_is_decoded(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """9 rows on a server taking 8 texts: 413 from the row count, without decoding a row.

    Today ``_texts`` range-checks and decodes every row (on the event loop) and only then counts them:
    a 20 MB body of token ids costs ~2 s of decoding before the 413.
    """
    httpx.post(server + "/v1/embeddings", json={"input": [[1]]}, timeout=30)  # load the encoding first
    spy = _DecodeSpy(monkeypatch)
    response = httpx.post(server + "/v1/embeddings", json={"input": [[100, 200]] * 9}, timeout=30)
    assert response.status_code == 413
    assert "at most 8" in response.json()["error"]["message"]
    assert spy.rows == 0, f"{spy.rows} rows were decoded before the request was refused"


@pytest.mark.usefixtures("tiktoken_files")
def test_token_ids_are_decoded_off_the_event_loop(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """tiktoken decoding (and the per-id range check beside it) is CPU work of ~0.3 s per million ids.

    On the event loop it stalls every other request, /health included; it belongs in a worker thread
    (``await asyncio.to_thread(decode_tokens, rows, encoding)``), as tokenization for usage already is.
    """
    spy = _DecodeSpy(monkeypatch)
    response = httpx.post(server + "/v1/embeddings", json={"input": [[100, 200], [300]]}, timeout=30)
    assert response.status_code == 200, response.text
    assert spy.rows >= 2
    assert spy.on_loop == 0, f"{spy.on_loop} decode calls ran on the event loop"


# --- odd text ----------------------------------------------------------------------------------------


def test_lone_surrogates_never_give_a_500(server: str, tiny_embedder_path: str, tiny_reranker_path: str) -> None:
    r"""JSON ``"\ud800"`` is valid JSON; the core repairs it to U+FFFD (core/validation.py), the server must too.

    Today the usage count tokenizes the raw text with the model's shared HF tokenizer (TypeError, 500
    text/plain), and an echoed ``model`` name with a surrogate cannot be encoded as UTF-8 (500).
    """
    openai = httpx.post(server + "/v1/embeddings", content=b'{"input": ["ok", "a\\ud800"]}', headers=JSON)
    assert openai.status_code == 200, openai.text
    np.testing.assert_allclose(
        [item["embedding"] for item in openai.json()["data"]],
        BGEEmbedder(tiny_embedder_path).embed_documents(["ok", "a\ufffd"]),
        atol=1e-6,
    )
    cohere = httpx.post(server + "/v1/rerank", content=b'{"query": "q", "documents": ["a\\ud800", "b"]}', headers=JSON)
    assert cohere.status_code == 200, cohere.text
    expected = BGEReranker(tiny_reranker_path).rank("q", ["a\ufffd", "b"])
    assert [item["index"] for item in cohere.json()["results"]] == [item.index for item in expected]
    for path, body in (
        ("/v1/embeddings", b'{"input": "a", "model": "m\\ud800"}'),
        ("/v1/rerank", b'{"query": "q", "documents": ["a"], "model": "m\\ud800"}'),
    ):
        response = httpx.post(server + path, content=body, headers=JSON)
        assert response.status_code in (200, 400), f"{path}: {response.status_code} {response.text[:100]}"


# --- error shapes ------------------------------------------------------------------------------------


def test_unknown_paths_and_wrong_methods_answer_in_the_api_error_shape(server: str) -> None:
    """docs/serving.md: errors come in the shape of the API called; FastAPI's own 404/405 are ``{"detail"}``."""
    wrong_method = httpx.get(server + "/v1/embeddings")
    assert wrong_method.status_code == 405
    assert "message" in wrong_method.json().get("error", {}), wrong_method.text
    assert "POST" in wrong_method.headers.get("allow", "")
    missing = httpx.post(server + "/v1/embedding", json={"input": "x"})  # a typo in the client's base URL
    assert missing.status_code == 404
    assert "message" in missing.json().get("error", {}), missing.text
    tei_missing = httpx.post(server + "/embedd", json={"inputs": "x"})
    assert tei_missing.status_code == 404
    assert "error_type" in tei_missing.json(), tei_missing.text


def test_an_invalid_cohere_body_on_the_shared_rerank_path_gets_cohere_s_error(server: str) -> None:
    """``POST /rerank`` with ``documents`` is Cohere's request; its validation errors must be Cohere's 400.

    Today the RequestValidationError handler picks the shape by path only (``/rerank`` -> TEI, 422).
    """
    response = httpx.post(server + "/rerank", json={"query": "q", "documents": [{"title": "no text"}]})
    assert response.status_code == 400, response.text
    assert "documents" in response.json()["message"]


def test_the_queue_is_released_when_a_client_gives_up(tiny_embedder_path: str) -> None:
    """Not a defect (kept as a guard): a client that times out does not leak its queue places."""
    settings = ServerSettings(model=tiny_embedder_path, max_items=8, max_queue_items=8)
    with running_server(settings) as url:
        with pytest.raises(httpx.TimeoutException):
            httpx.post(url + "/v1/embeddings", json={"input": ["pandas " * 60] * 8}, timeout=0.001)
        deadline = time.monotonic() + 30
        while "bge_queue_items 0.0" not in httpx.get(url + "/metrics").text:
            assert time.monotonic() < deadline, "queue places were never given back"
            time.sleep(0.05)
        assert httpx.post(url + "/v1/embeddings", json={"input": ["x"] * 8}, timeout=30).status_code == 200


def test_ray_replicas_bound_the_requests_waiting_in_ray_s_proxy() -> None:
    """--engine ray: past max_ongoing_requests per replica, requests wait in Ray's proxy, and by default
    (``max_queued_requests=-1``) without bound: the app's 429 never sees them. The deployment must cap it.
    """
    pytest.importorskip("ray.serve")
    from bge_integrations.serving.ray_serve import build_application

    application = build_application(ServerSettings(model="BAAI/bge-small-en-v1.5"), replicas=2)
    deployment = application._bound_deployment
    assert deployment.max_queued_requests > 0, "Ray Serve queues requests without bound (max_queued_requests=-1)"
