"""The three RAG examples keep one contract: exact top-k retrieval, BGE reranking, persistence, generation.

Each test runs on every example (the ``example`` fixture) with the tiny random-weight models, so
it checks plumbing against the core engine (which candidates, which scores, what reaches the
LLM), never answer quality. Sockets may only reach 127.0.0.1, where the fake LLM listens.
"""

from __future__ import annotations

import inspect
import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import chromadb
import pytest
from chromadb.config import Settings
from qdrant_client import QdrantClient

from bge_integrations.core.embedder import BGEEmbedder
from bge_integrations.core.reranker import BGEReranker
from bge_integrations.demo_corpus import PASSAGES, QUERIES

if TYPE_CHECKING:
    from tests.examples.conftest import EmbeddingSpy, FakeLLM, ScriptRuns

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

OTHER_PASSAGES = (
    "Honey bees communicate the direction of flowers with a waggle dance.",
    "The Danube flows through ten countries before reaching the Black Sea.",
    "Sourdough bread rises thanks to wild yeast and lactic acid bacteria.",
    "Saturn's rings are made mostly of ice particles with some rock.",
)


def run(example: ModuleType, models: tuple[str, str], questions: Sequence[str] | None, **kwargs: Any) -> list[Any]:
    embedder, reranker = models
    results: list[Any] = example.main(questions, model=embedder, reranker=reranker, device="cpu", **kwargs)
    return results


@pytest.fixture
def models(tiny_embedder_path: str, tiny_reranker_path: str) -> tuple[str, str]:
    return tiny_embedder_path, tiny_reranker_path


def cosine_similarities(model: str, question: str, passages: Sequence[str]) -> dict[str, float]:
    """Exact cosine similarity of question (with the query instruction) to each passage, by the core."""
    embedder = BGEEmbedder(model, device="cpu")
    query = embedder.embed_query(question)
    similarities = {}
    for passage, vector in zip(passages, embedder.embed_documents(list(passages)), strict=True):
        dot = sum(a * b for a, b in zip(query, vector, strict=True))
        similarities[passage] = dot / math.sqrt(sum(a * a for a in query) * sum(b * b for b in vector))
    return similarities


def stored_count(example: ModuleType, store_dir: Path) -> int:
    """How many passages the example's collection in store_dir holds, read with the store's own client."""
    if example.__name__.endswith("langchain_rag"):
        client = chromadb.PersistentClient(path=str(store_dir), settings=Settings(anonymized_telemetry=False))
        return client.get_collection(example.COLLECTION).count()
    qdrant = QdrantClient(path=str(store_dir))
    try:
        return qdrant.count(example.COLLECTION).count
    finally:
        qdrant.close()


def test_defaults_are_the_real_bge_models(example: ModuleType) -> None:
    args = example.parse_args([])
    assert vars(args) == {
        "questions": [],
        "model": "BAAI/bge-small-en-v1.5",
        "reranker": "BAAI/bge-reranker-base",
        "device": None,
        "store_dir": None,
        "top_k": 10,
        "top_n": 3,
        "passages": None,
    }
    defaults = {name: p.default for name, p in inspect.signature(example.main).parameters.items()}
    assert defaults == {
        "questions": None,
        "model": "BAAI/bge-small-en-v1.5",
        "reranker": "BAAI/bge-reranker-base",
        "device": None,
        "store_dir": None,
        "top_k": 10,
        "top_n": 3,
        "passages": PASSAGES,
    }
    parsed = example.parse_args(["q1", "q2", "--top-k", "4", "--top-n", "2", "--store-dir", "db", "--device", "cpu"])
    assert (parsed.questions, parsed.top_k, parsed.top_n, parsed.store_dir, parsed.device) == (
        ["q1", "q2"],
        4,
        2,
        "db",
        "cpu",
    )


@pytest.mark.parametrize("flag", ["--top-k", "--top-n"])
def test_cli_refuses_non_positive_counts(example: ModuleType, flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc_info:
        example.parse_args([flag, "0"])
    assert exc_info.value.code == 2
    assert "must be > 0, got 0" in capsys.readouterr().err


def test_retrieves_exact_top_k_and_reranks_them_with_the_core(
    example: ModuleType,
    models: tuple[str, str],
    embedded_documents: EmbeddingSpy,
    capsys: pytest.CaptureFixture[str],
) -> None:
    results = run(example, models, None, top_k=5, top_n=2)

    assert sorted(embedded_documents.texts) == sorted(PASSAGES)  # indexed once, every passage
    assert [result.question for result in results] == list(QUERIES)  # the demo questions by default
    reference = BGEReranker(models[1], device="cpu")
    printed = capsys.readouterr().out
    for result in results:
        assert result.answer is None
        # The candidates are the exact cosine top 5 (ties allowed at float32 precision), best first.
        similarity = cosine_similarities(models[0], result.question, PASSAGES)
        texts = [passage.text for passage in result.candidates]
        assert len(texts) == 5
        assert len(set(texts)) == 5
        assert set(texts) <= set(PASSAGES)
        assert [p.retrieval_score for p in result.candidates] == pytest.approx([similarity[t] for t in texts], abs=1e-5)
        retrieved = [p.retrieval_score for p in result.candidates]
        assert all(a >= b - 1e-6 for a, b in itertools.pairwise(retrieved))
        others = [similarity[p] for p in PASSAGES if p not in texts]
        assert min(similarity[t] for t in texts) >= max(others) - 1e-6
        assert all(p.rerank_score is None for p in result.candidates)
        # The reranked passages are what the core reranker makes of exactly those candidates.
        expected = reference.rank(result.question, texts, top_n=2)
        assert [p.text for p in result.reranked] == [item.text for item in expected]
        assert [p.rerank_score for p in result.reranked] == pytest.approx([item.score for item in expected], abs=1e-6)
        scores = [p.rerank_score for p in result.reranked]
        assert scores == sorted(scores, reverse=True)
        retrieval = {p.text: p.retrieval_score for p in result.candidates}
        assert [p.retrieval_score for p in result.reranked] == [retrieval[p.text] for p in result.reranked]
        # The context is the reranked passages, best first, and it is printed with the scores.
        assert result.context == "\n\n".join(p.text for p in result.reranked)
        assert f"Question: {result.question}\nRetrieved 5 candidates; the reranker kept 2:\n" in printed
        for rank, passage in enumerate(result.reranked, start=1):
            line = (
                f"  {rank}. rerank {passage.rerank_score:.4f}  retrieval {passage.retrieval_score:.4f}  {passage.text}"
            )
            assert line in printed
        assert f"set BGE_RAG_LLM_MODEL to generate an answer, see the module docstring):\n{result.context}\n" in printed


def test_top_n_is_honoured_and_limited_by_the_candidates(example: ModuleType, models: tuple[str, str]) -> None:
    question = "Which river flows to the Black Sea?"
    [few] = run(example, models, [question], passages=OTHER_PASSAGES, top_k=3, top_n=5)
    assert len(few.candidates) == 3
    # Every candidate is reranked, in the core reranker's order.
    expected = BGEReranker(models[1], device="cpu").rank(question, [p.text for p in few.candidates])
    assert [(p.text, p.rerank_score) for p in few.reranked] == [(item.text, item.score) for item in expected]
    [all_of_them] = run(example, models, [question], passages=OTHER_PASSAGES, top_k=10, top_n=2)
    assert sorted(p.text for p in all_of_them.candidates) == sorted(OTHER_PASSAGES)
    assert len(all_of_them.reranked) == 2


def test_each_in_memory_run_starts_empty(
    example: ModuleType, models: tuple[str, str], embedded_documents: EmbeddingSpy
) -> None:
    run(example, models, [QUERIES[0]], top_k=3, top_n=1)
    [result] = run(example, models, [QUERIES[0]], passages=OTHER_PASSAGES, top_k=10, top_n=1)
    assert sorted(p.text for p in result.candidates) == sorted(OTHER_PASSAGES)  # nothing left from the first run
    assert sorted(embedded_documents.texts) == sorted([*PASSAGES, *OTHER_PASSAGES])


def test_store_dir_is_reused_without_indexing_again(
    example: ModuleType,
    models: tuple[str, str],
    embedded_documents: EmbeddingSpy,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store_dir = tmp_path / "store"
    first = run(example, models, QUERIES[:2], store_dir=str(store_dir), top_k=4, top_n=2)
    assert sorted(embedded_documents.texts) == sorted(PASSAGES)
    assert stored_count(example, store_dir) == len(PASSAGES)
    assert f"Indexed {len(PASSAGES)} passages" in capsys.readouterr().out

    embedded_documents.calls.clear()
    # Other passages are ignored: the stored collection is used as it is.
    second = run(example, models, QUERIES[:2], store_dir=str(store_dir), top_k=4, top_n=2, passages=OTHER_PASSAGES)
    assert embedded_documents.texts == []
    assert stored_count(example, store_dir) == len(PASSAGES)
    assert f"Reusing the {'Chroma' if 'langchain' in example.__name__ else 'Qdrant'} collection in {store_dir}" in (
        capsys.readouterr().out
    )
    for before, after in zip(first, second, strict=True):
        assert [p.text for p in after.candidates] == [p.text for p in before.candidates]
        assert [p.text for p in after.reranked] == [p.text for p in before.reranked]
        assert [p.rerank_score for p in after.reranked] == pytest.approx([p.rerank_score for p in before.reranked])
        assert after.context == before.context


@pytest.mark.parametrize("api_key", [None, "sk-test"])
def test_generation_sends_the_question_and_the_reranked_passages(
    example: ModuleType,
    models: tuple[str, str],
    fake_llm: FakeLLM,
    monkeypatch: pytest.MonkeyPatch,
    api_key: str | None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("BGE_RAG_LLM_MODEL", "tiny-chat")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_llm.base_url)
    if api_key is not None:
        monkeypatch.setenv("OPENAI_API_KEY", api_key)

    results = run(example, models, QUERIES[:2], top_k=5, top_n=2)

    assert [result.answer for result in results] == [fake_llm.answer] * 2
    assert len(fake_llm.requests) == 2  # one call per question
    for result, request in zip(results, fake_llm.requests, strict=True):
        assert request["path"] == "/v1/chat/completions"
        assert request["headers"]["authorization"] == f"Bearer {api_key or 'not-needed'}"
        body = request["body"]
        assert body["model"] == "tiny-chat"
        assert not body.get("stream")
        messages = body["messages"]
        assert [m["role"] for m in messages] == ["system", "user"]
        assert messages[0]["content"] == example.SYSTEM_PROMPT
        assert messages[1]["content"] == f"Context:\n{result.context}\n\nQuestion: {result.question}"
        sent = "\n".join(m["content"] for m in messages)
        assert all(p.text in sent for p in result.reranked)
        dropped = {p.text for p in result.candidates} - {p.text for p in result.reranked}
        assert len(dropped) == 3
        assert not any(text in sent for text in dropped)
        assert not any(text in sent for text in PASSAGES if text not in {p.text for p in result.candidates})
    printed = capsys.readouterr().out
    assert printed.count(f"Answer: {fake_llm.answer}\n") == 2
    assert "Context for the LLM" not in printed


def test_script_runs_offline_as_a_subprocess(
    example: ModuleType, models: tuple[str, str], script_runs: ScriptRuns
) -> None:
    status, stdout, stderr = script_runs.result(example.__name__.removeprefix("rag_example_"))

    assert status == 0, stderr[-3000:]
    question, passages = script_runs.question, script_runs.passages
    [expected] = run(example, models, [question], passages=passages, top_k=3, top_n=2)
    assert stdout.startswith(f"Indexed {len(passages)} passages in ")
    assert f"Question: {question}\nRetrieved 3 candidates; the reranker kept 2:\n" in stdout
    assert stdout.endswith(f"see the module docstring):\n{expected.context}\n")
