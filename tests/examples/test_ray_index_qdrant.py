"""examples/ray_index_qdrant.py on a local Ray, offline, with the tiny models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from bge_integrations import BGEEmbedder, BGEReranker
from bge_integrations.demo_corpus import PASSAGES, QUERIES
from tests.examples.conftest import load_example
from tests.ray_scale.cluster import ensure_local_ray

pytestmark = pytest.mark.ray


def test_indexes_on_ray_into_qdrant_then_searches_and_reranks_like_the_core(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    tiny_embedder_path: str,
    tiny_reranker_path: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ensure_local_ray(request.config)
    example = load_example("ray_index_qdrant")
    store = tmp_path / "qdrant"
    options = {"model": tiny_embedder_path, "reranker": tiny_reranker_path, "device": "cpu", "top_k": 5, "top_n": 2}

    [result] = example.main([QUERIES[0]], num_actors=1, store_dir=str(store), **options)

    assert f"Embedded and loaded {len(PASSAGES)} passages into Qdrant" in capsys.readouterr().out
    embedder = BGEEmbedder(tiny_embedder_path, device="cpu")
    client = QdrantClient(path=str(store))
    try:
        points, _ = client.scroll(example.COLLECTION, limit=100, with_vectors=True, with_payload=True)
    finally:
        client.close()
    assert sorted(point.payload["id"] for point in points) == list(range(len(PASSAGES)))
    stored = np.array([point.vector for point in sorted(points, key=lambda point: point.payload["id"])])
    assert np.abs(stored - np.array(embedder.embed_documents(list(PASSAGES)))).max() <= 1e-5

    # What the pipeline should return, from the core alone: cosine top 5, then the reranker's top 2.
    query = np.array(embedder.embed_query(QUERIES[0]))
    documents = np.array(embedder.embed_documents(list(PASSAGES)))
    cosine = documents @ query / (np.linalg.norm(documents, axis=1) * np.linalg.norm(query))
    candidates = [int(i) for i in np.argsort(-cosine, kind="stable")[:5]]
    scores = BGEReranker(tiny_reranker_path, device="cpu").score(QUERIES[0], [PASSAGES[i] for i in candidates])
    best = sorted(zip(candidates, scores, strict=True), key=lambda pair: -pair[1])[:2]
    assert [hit.id for hit in result.hits] == [i for i, _ in best]
    assert [hit.text for hit in result.hits] == [PASSAGES[i] for i, _ in best]
    assert np.allclose([hit.rerank_score for hit in result.hits], [score for _, score in best], atol=1e-5)
    assert np.allclose([hit.retrieval_score for hit in result.hits], [cosine[i] for i, _ in best], atol=1e-5)

    # A second run on the same folder searches the stored vectors without embedding anything on Ray.
    [again] = example.main([QUERIES[0]], num_actors=1, store_dir=str(store), **options)
    assert "Reusing the Qdrant collection" in capsys.readouterr().out
    assert [(hit.id, hit.text) for hit in again.hits] == [(hit.id, hit.text) for hit in result.hits]
    first, second = ([(hit.retrieval_score, hit.rerank_score) for hit in r.hits] for r in (result, again))
    assert np.allclose(first, second, atol=1e-6)  # Qdrant stores float32 on disk
