"""``--engine ray``: the server app as replicas on Ray Serve (local Ray, proxy on 127.0.0.1).

One module-scoped deployment (2 CPU replicas of the tiny embedder + tiny reranker) serves every
HTTP test here; its answers must equal the in-process models', and both replicas must answer.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("ray.serve")
pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from bge_integrations import BGEEmbedder, BGEReranker  # noqa: E402
from bge_integrations.serving.ray_serve import (  # noqa: E402
    REPLICA_HEADER,
    build_application,
    replica_options,
    start_ray_server,
    stop_ray_server,
)
from bge_integrations.serving.settings import ServerSettings  # noqa: E402
from tests.ray_scale.cluster import ensure_local_ray  # noqa: E402

APP = "bge-test"
TEXTS = ["The cat sat on the mat.", "Ray Serve runs replicas.", "", "émoji 🐼 and 中文"]
QUERY = "where did the cat sit?"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def ray_server(request: pytest.FixtureRequest, tiny_embedder_path: str, tiny_reranker_path: str) -> Iterator[str]:
    ensure_local_ray(request.config)  # 2 CPUs: one per replica
    settings = ServerSettings(model=tiny_embedder_path, reranker=tiny_reranker_path)
    url = start_ray_server(settings, port=_free_port(), replicas=2, name=APP)
    try:
        yield url
    finally:
        stop_ray_server(APP)


@pytest.mark.ray
def test_embeddings_equal_in_process_model(ray_server: str, tiny_embedder_path: str) -> None:
    local = BGEEmbedder(tiny_embedder_path, device="cpu")
    with httpx.Client(base_url=ray_server, timeout=60) as client:
        documents = client.post("/v1/embeddings", json={"input": TEXTS, "model": "any"})
        queries = client.post("/v1/embeddings", json={"input": TEXTS, "input_type": "query"})
        tei = client.post("/embed", json={"inputs": TEXTS})
    assert documents.status_code == queries.status_code == tei.status_code == 200, documents.text
    served = [item["embedding"] for item in sorted(documents.json()["data"], key=lambda item: item["index"])]
    np.testing.assert_allclose(served, local.embed_documents(TEXTS), atol=1e-6, rtol=0)
    served_queries = [item["embedding"] for item in sorted(queries.json()["data"], key=lambda item: item["index"])]
    np.testing.assert_allclose(served_queries, local.embed_queries(TEXTS), atol=1e-6, rtol=0)
    assert not np.allclose(served_queries, served)  # the query instruction reached the replica
    np.testing.assert_allclose(tei.json(), local.embed_documents(TEXTS), atol=1e-6, rtol=0)


@pytest.mark.ray
def test_rerank_equals_in_process_model(ray_server: str, tiny_reranker_path: str) -> None:
    expected = BGEReranker(tiny_reranker_path, device="cpu").rank(QUERY, TEXTS)
    with httpx.Client(base_url=ray_server, timeout=60) as client:
        tei = client.post("/rerank", json={"query": QUERY, "texts": TEXTS})
        cohere = client.post("/v1/rerank", json={"query": QUERY, "documents": TEXTS, "top_n": 2})
    assert tei.status_code == cohere.status_code == 200, tei.text
    assert [item["index"] for item in tei.json()] == [item.index for item in expected]
    np.testing.assert_allclose([item["score"] for item in tei.json()], [item.score for item in expected], atol=1e-6)
    results = cohere.json()["results"]
    assert [item["index"] for item in results] == [item.index for item in expected[:2]]
    np.testing.assert_allclose(
        [item["relevance_score"] for item in results], [item.score for item in expected[:2]], atol=1e-6
    )


@pytest.mark.ray
def test_requests_reach_both_replicas(ray_server: str) -> None:
    from ray import serve

    deployment = serve.status().applications[APP].deployments[APP]
    assert deployment.replica_states == {"RUNNING": 2}

    def embed(i: int) -> str:
        response = httpx.post(f"{ray_server}/embed", json={"inputs": f"text {i}"}, timeout=60)
        assert response.status_code == 200, response.text
        return response.headers[REPLICA_HEADER]

    with ThreadPoolExecutor(8) as pool:
        replicas = set(pool.map(embed, range(32)))
    assert len(replicas) == 2, replicas


@pytest.mark.ray
def test_errors_and_health_pass_through_the_proxy(ray_server: str) -> None:
    health = httpx.get(f"{ray_server}/health", timeout=60)
    assert health.status_code == 200
    assert health.headers[REPLICA_HEADER]
    bad = httpx.post(f"{ray_server}/v1/embeddings", json={"input": ["a"], "dimensions": 3}, timeout=60)
    assert bad.status_code == 400
    assert "dimensions" in bad.json()["error"]["message"]


def test_replica_options_pick_device_and_resources() -> None:
    settings = ServerSettings(model="BAAI/bge-small-en-v1.5", reranker_settings={"device": "cuda:1"})
    served, resources = replica_options(settings)
    assert resources == {"num_cpus": 1}
    assert served.embedder_settings == {"device": "cpu"}
    assert served.reranker_settings == {"device": "cuda:1"}  # the user's device wins
    assert settings.embedder_settings == {}  # the caller's settings are left alone
    served, resources = replica_options(settings, gpus_per_replica=0.5, cpus_per_replica=4)
    assert resources == {"num_gpus": 0.5, "num_cpus": 4}
    assert served.embedder_settings == {"device": "cuda"}
    assert replica_options(settings, cpus_per_replica=3)[1] == {"num_cpus": 3}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gpus_per_replica": -1}, "gpus_per_replica must be a number >= 0, got -1"),
        ({"cpus_per_replica": 0}, "cpus_per_replica must be a number > 0 or None, got 0"),
        ({"replicas": 0}, "replicas"),
        ({"max_ongoing_requests": 0}, "max_ongoing_requests"),
    ],
)
def test_build_application_names_bad_values(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_application(ServerSettings(model="BAAI/bge-small-en-v1.5"), **kwargs)  # type: ignore[arg-type]


def test_build_application_checks_the_models_settings_as_each_replica_gets_them() -> None:
    settings = ServerSettings(model="BAAI/bge-small-en-v1.5", embedder_settings={"backend": "onnx"})
    assert build_application(settings, gpus_per_replica=0) is not None  # CPU replicas: fine
    with pytest.raises(ValueError, match=r"backend='onnx' runs on the CPU only, got device='cuda'"):
        build_application(settings, gpus_per_replica=1)


@pytest.mark.parametrize(("host", "port"), [("", 8000), ("127.0.0.1", 0), ("127.0.0.1", 70000), ("127.0.0.1", "80")])
def test_start_refuses_bad_address_before_starting_anything(host: str, port: int) -> None:
    import ray

    was_running = ray.is_initialized()
    with pytest.raises(ValueError, match=r"^(host|port) must be"):
        start_ray_server(ServerSettings(model="BAAI/bge-small-en-v1.5"), host=host, port=port)
    assert ray.is_initialized() == was_running
