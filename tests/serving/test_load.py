"""Under load and faults: 64 concurrent clients, a full queue, shutdown while a request is in flight."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from bge_integrations import BGEEmbedder, BGEReranker
from bge_integrations.serving import ServerSettings, create_app
from tests.serving.servers import running_server

CLIENTS = 64


def _texts(client: int) -> list[str]:
    return [f"client {client} text {item}: " + "pandas eat bamboo " * (client % 5) for item in range(1 + client % 3)]


def test_64_concurrent_clients_each_get_their_own_results(tiny_embedder_path: str, tiny_reranker_path: str) -> None:
    settings = ServerSettings(model=tiny_embedder_path, reranker=tiny_reranker_path)
    embedder, reranker = BGEEmbedder(tiny_embedder_path), BGEReranker(tiny_reranker_path)
    expected_docs = {client: embedder.embed_documents(_texts(client)) for client in range(CLIENTS)}
    expected_queries = {client: embedder.embed_queries(_texts(client)) for client in range(CLIENTS)}
    expected_ranks = {client: reranker.score(f"query {client}", _texts(client)) for client in range(CLIENTS)}

    async def one(client: int, http: httpx.AsyncClient) -> None:
        texts = _texts(client)
        for round_ in range(3):
            role = "query" if (client + round_) % 2 else "document"
            response = await http.post("/v1/embeddings", json={"input": texts, "input_type": role})
            assert response.status_code == 200, response.text
            got = [item["embedding"] for item in response.json()["data"]]
            want = expected_queries[client] if role == "query" else expected_docs[client]
            np.testing.assert_allclose(got, want, atol=1e-5)
            reply = await http.post("/rerank", json={"query": f"query {client}", "texts": texts})
            assert reply.status_code == 200, reply.text
            scores = {item["index"]: item["score"] for item in reply.json()}
            assert sorted(scores) == list(range(len(texts)))
            np.testing.assert_allclose([scores[i] for i in range(len(texts))], expected_ranks[client], atol=1e-5)

    async def all_clients(url: str) -> None:
        limits = httpx.Limits(max_connections=CLIENTS)
        async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
            await asyncio.wait_for(asyncio.gather(*(one(client, http) for client in range(CLIENTS))), timeout=240)

    with running_server(settings) as url:
        asyncio.run(all_clients(url))
        metrics = httpx.get(url + "/metrics").text
    assert f'bge_requests_total{{route="/v1/embeddings",status="200"}} {3.0 * CLIENTS}' in metrics
    assert f'bge_requests_total{{route="/rerank",status="200"}} {3.0 * CLIENTS}' in metrics
    # Concurrent requests shared model calls: fewer embedder calls than embedding requests.
    calls = float(metrics.split('bge_model_batch_items_count{model="embedder"} ')[1].split()[0])
    assert calls < 3 * CLIENTS


def _get_health(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return sock.recv(65536)


def test_an_idle_connection_outlives_the_clients_pool_expiry(tiny_embedder_path: str) -> None:
    # httpx (the openai SDK, the framework clients) drops idle connections after 5 s; a server that
    # closes them at 5 s too races the client reusing one: the request fails with a read error.
    assert httpx.Limits().keepalive_expiry == 5.0
    with running_server(ServerSettings(model=tiny_embedder_path)) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            assert _get_health(sock).startswith(b"HTTP/1.1 200")
            time.sleep(6.5)  # idle past the clients' expiry (and uvicorn's default keep-alive)
            assert _get_health(sock).startswith(b"HTTP/1.1 200")  # b"" had the server closed it


def test_a_full_queue_refuses_with_429_and_retry_after(tiny_embedder_path: str) -> None:
    settings = ServerSettings(model=tiny_embedder_path, max_items=4, max_queue_items=6, retry_after=3)
    app = create_app(settings)
    with running_server(settings, app=app) as url:
        app.state.admission.acquire(4)  # four texts admitted and not answered yet
        full = httpx.post(url + "/v1/embeddings", json={"input": ["a", "b", "c"]}, timeout=30)
        assert full.status_code == 429
        assert full.headers["Retry-After"] == "3"
        assert "capacity" in full.json()["error"]["message"]
        tei = httpx.post(url + "/embed", json={"inputs": ["a", "b", "c"]}, timeout=30)
        assert tei.status_code == 429
        assert tei.json()["error_type"] == "Overloaded"
        assert httpx.post(url + "/embed", json={"inputs": ["a", "b"]}, timeout=30).status_code == 200  # fits
        app.state.admission.release(4)
        assert httpx.post(url + "/v1/embeddings", json={"input": ["a", "b", "c"]}, timeout=30).status_code == 200
        metrics = httpx.get(url + "/metrics").text
    assert 'bge_rejected_requests_total{reason="queue_full"} 2.0' in metrics
    assert app.state.admission.pending == 0


def test_overload_never_loses_or_mixes_requests(tiny_embedder_path: str) -> None:
    settings = ServerSettings(model=tiny_embedder_path, max_items=4, max_queue_items=8)
    embedder = BGEEmbedder(tiny_embedder_path)
    expected = {client: embedder.embed_documents(_texts(client)) for client in range(CLIENTS)}

    async def one(client: int, http: httpx.AsyncClient) -> int:
        response = await http.post("/v1/embeddings", json={"input": _texts(client)})
        if response.status_code == 429:
            assert int(response.headers["Retry-After"]) >= 1
            return 429
        assert response.status_code == 200, response.text
        np.testing.assert_allclose([item["embedding"] for item in response.json()["data"]], expected[client], atol=1e-5)
        return 200

    async def burst(url: str) -> list[int]:
        async with httpx.AsyncClient(base_url=url, timeout=120, limits=httpx.Limits(max_connections=CLIENTS)) as http:
            return await asyncio.wait_for(asyncio.gather(*(one(client, http) for client in range(CLIENTS))), 120)

    app = create_app(settings)
    with running_server(settings, app=app) as url:
        statuses = asyncio.run(burst(url))
        assert app.state.admission.pending == 0
    assert len(statuses) == CLIENTS
    assert set(statuses) <= {200, 429}
    assert 200 in statuses


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_sigterm_finishes_the_request_in_flight_then_exits(tiny_embedder_path: str, tmp_path: Path) -> None:
    port = _free_port()
    command = [sys.executable, "-m", "bge_integrations.cli", "serve", "--model", tiny_embedder_path]
    command += ["--port", str(port), "--batch-size", "1", "--graceful-timeout", "60"]
    log = (tmp_path / "server.log").open("w")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        texts = [f"text number {number} about pandas and bamboo" for number in range(400)]

        async def request_then_sigterm() -> httpx.Response:
            async with httpx.AsyncClient(base_url=url, timeout=120) as http:
                pending = asyncio.ensure_future(http.post("/v1/embeddings", json={"input": texts}))
                for _ in range(200):  # until the server has the request in flight
                    await asyncio.sleep(0.05)
                    if "bge_requests_in_flight 1.0" in (await http.get("/metrics")).text:
                        break
                else:
                    pytest.fail("the request never showed as in flight")
                server.send_signal(signal.SIGTERM)
                return await pending

        response = asyncio.run(request_then_sigterm())
        assert response.status_code == 200
        vectors = [item["embedding"] for item in response.json()["data"]]
        assert len(vectors) == len(texts)
        np.testing.assert_allclose(vectors[-3:], BGEEmbedder(tiny_embedder_path).embed_documents(texts[-3:]), atol=1e-5)
        # uvicorn re-raises the signal once it has shut down cleanly, so the exit status is SIGTERM's.
        assert server.wait(timeout=60) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in (tmp_path / "server.log").read_text()
        with pytest.raises(httpx.ConnectError):
            httpx.get(url + "/health", timeout=2)
    finally:
        if server.poll() is None:
            server.kill()
        log.close()
