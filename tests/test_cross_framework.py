"""The same settings mean the same model, the same vectors and the same scores in every framework."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from haystack import Document
from langchain_core.documents import Document as LCDocument
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from bge_integrations import BGEEmbedder, BGEReranker
from bge_integrations.core.loading import REGISTRY
from bge_integrations.haystack import BGEDocumentEmbedder, BGERanker, BGETextEmbedder
from bge_integrations.langchain import BGEEmbeddings
from bge_integrations.langchain import BGERerank as LangChainRerank
from bge_integrations.llama_index import BGEEmbedding
from bge_integrations.llama_index import BGERerank as LlamaIndexRerank

QUERY = "Where do giant pandas live?"
PASSAGES = [
    "The giant panda is a bear species endemic to China.",
    "Paris is the capital and most populous city of France.",
    "Mitochondria are the powerhouse of the cell. " * 40 + "Giant pandas live in the mountains of China.",
]


def test_embedders_configured_alike_load_the_model_once(tiny_embedder_path: str) -> None:
    langchain = BGEEmbeddings(model_name=tiny_embedder_path, device="cpu")
    llama_index = BGEEmbedding(model_name=tiny_embedder_path, device="cpu")
    haystack_text = BGETextEmbedder(model=tiny_embedder_path, device="cpu")
    haystack_docs = BGEDocumentEmbedder(model=tiny_embedder_path, device="cpu", progress_bar=False)
    langchain.embed_query(QUERY)
    llama_index.get_query_embedding(QUERY)
    haystack_text.run(text=QUERY)
    haystack_docs.run(documents=[Document(content=PASSAGES[0])])
    assert REGISTRY.load_count == 1
    assert len(REGISTRY.loaded_keys()) == 1


def test_rerankers_configured_alike_load_the_model_once(tiny_reranker_path: str) -> None:
    LangChainRerank(model_name=tiny_reranker_path, device="cpu").compress_documents(
        [LCDocument(page_content=p) for p in PASSAGES], QUERY
    )
    LlamaIndexRerank(model=tiny_reranker_path, device="cpu").postprocess_nodes(
        [NodeWithScore(node=TextNode(text=p), score=0.0) for p in PASSAGES], query_bundle=QueryBundle(QUERY)
    )
    BGERanker(model=tiny_reranker_path, device="cpu").run(
        query=QUERY, documents=[Document(content=p) for p in PASSAGES]
    )
    assert REGISTRY.load_count == 1


def test_same_vectors_everywhere_and_the_instruction_on_queries_only(tiny_embedder_path: str) -> None:
    core = BGEEmbedder(tiny_embedder_path, device="cpu")
    queries = {
        "core": core.embed_query(QUERY),
        "langchain": BGEEmbeddings(model_name=tiny_embedder_path, device="cpu").embed_query(QUERY),
        "llama_index": BGEEmbedding(model_name=tiny_embedder_path, device="cpu").get_query_embedding(QUERY),
        "haystack": BGETextEmbedder(model=tiny_embedder_path, device="cpu").run(text=QUERY)["embedding"],
    }
    documents = {
        "core": core.embed_documents(PASSAGES),
        "langchain": BGEEmbeddings(model_name=tiny_embedder_path, device="cpu").embed_documents(PASSAGES),
        "llama_index": BGEEmbedding(model_name=tiny_embedder_path, device="cpu").get_text_embedding_batch(PASSAGES),
        "haystack": [
            d.embedding
            for d in BGEDocumentEmbedder(model=tiny_embedder_path, device="cpu", progress_bar=False).run(
                documents=[Document(content=p) for p in PASSAGES]
            )["documents"]
        ],
    }
    for name in ("langchain", "llama_index", "haystack"):
        assert queries[name] == queries["core"], name
        assert documents[name] == documents["core"], name
    # The query went in with the official instruction and the documents without it.
    instructed = core.embed_documents([core.config.query_instruction + QUERY])[0]
    np.testing.assert_allclose(queries["core"], instructed, atol=1e-6)
    assert core.config.query_instruction.startswith("Represent this sentence")
    plain = BGEEmbedder(tiny_embedder_path, device="cpu", query_instruction="")
    np.testing.assert_allclose(documents["core"], plain.embed_queries(PASSAGES), atol=1e-6)


@pytest.mark.parametrize("windows", [True, False])
def test_same_scores_everywhere_with_long_passages(tiny_reranker_path: str, windows: bool) -> None:
    settings = {"device": "cpu", "max_length": 64, "windows": windows}
    core = BGEReranker(tiny_reranker_path, **settings).score(QUERY, PASSAGES)  # type: ignore[arg-type]
    langchain = LangChainRerank(model_name=tiny_reranker_path, top_n=3, **settings).compress_documents(
        [LCDocument(page_content=p) for p in PASSAGES], QUERY
    )
    # No node metadata: LlamaIndex puts it into the text that the reranker reads (MetadataMode.EMBED).
    llama_index = LlamaIndexRerank(model=tiny_reranker_path, top_n=3, **settings).postprocess_nodes(
        [NodeWithScore(node=TextNode(text=p), score=0.0) for p in PASSAGES], query_bundle=QueryBundle(QUERY)
    )
    haystack = BGERanker(model=tiny_reranker_path, top_k=3, **settings).run(
        query=QUERY, documents=[Document(content=p) for p in PASSAGES]
    )["documents"]
    expected = sorted(((s, p) for p, s in zip(PASSAGES, core, strict=True)), reverse=True)
    assert [(d.metadata["relevance_score"], d.page_content) for d in langchain] == expected
    assert [(n.score, n.node.get_content()) for n in llama_index] == expected
    assert [(d.score, d.content) for d in haystack] == expected


def test_windows_change_the_long_passage_score_only(tiny_reranker_path: str) -> None:
    on = BGEReranker(tiny_reranker_path, device="cpu", max_length=64).score(QUERY, PASSAGES)
    off = BGEReranker(tiny_reranker_path, device="cpu", max_length=64, windows=False)
    with pytest.warns(UserWarning, match="1 of 3 passages"):
        off_scores = off.score(QUERY, PASSAGES)
    assert on[:2] == pytest.approx(off_scores[:2], abs=1e-6)
    assert on[2] > off_scores[2]


def test_one_embedding_cache_serves_every_framework(tiny_embedder_path: str, tmp_path) -> None:
    folder = str(tmp_path / "cache")
    vectors = BGEEmbeddings(model_name=tiny_embedder_path, device="cpu", cache_dir=folder).embed_documents(PASSAGES)
    query = BGEEmbeddings(model_name=tiny_embedder_path, device="cpu", cache_dir=folder).embed_query(QUERY)
    REGISTRY.clear()
    llama_index = BGEEmbedding(tiny_embedder_path, device="cpu", cache_dir=folder)
    assert llama_index.get_text_embedding_batch(PASSAGES) == vectors
    assert llama_index.get_query_embedding(QUERY) == query
    documents = BGEDocumentEmbedder(model=tiny_embedder_path, device="cpu", cache_dir=folder, progress_bar=False)
    assert [
        d.embedding for d in documents.run(documents=[Document(content=p) for p in PASSAGES])["documents"]
    ] == vectors
    assert (
        BGETextEmbedder(model=tiny_embedder_path, device="cpu", cache_dir=folder).run(text=QUERY)["embedding"] == query
    )
    assert REGISTRY.loaded_keys() == []  # all of it read back, no model loaded


# --- no import cycles among an adapter's modules --------------------------------------------------


def _imported_modules(path: Path, package: str) -> set[str]:
    """The modules of ``package`` that the module at path imports, at any depth (functions too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(package):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith(package))
    return found


@pytest.mark.parametrize("adapter", ["langchain", "llama_index", "haystack", "core", "compat", "bulk", "evaluation"])
def test_an_adapter_modules_import_each_other_without_cycles(adapter: str) -> None:
    # The core and the other packages too: configs live apart from the engines and loaders.
    package = f"bge_integrations.{adapter}"
    folder = Path(__file__).resolve().parents[1] / "bge_integrations" / adapter
    modules = {f"{package}.{path.stem}": path for path in folder.glob("*.py") if path.stem != "__init__"}
    graph = {name: _imported_modules(path, package) & set(modules) - {name} for name, path in modules.items()}

    def cycle_from(start: str, seen: tuple[str, ...]) -> tuple[str, ...] | None:
        for nxt in sorted(graph[start]):
            if nxt in seen:
                return (*seen[seen.index(nxt) :], nxt)
            found = cycle_from(nxt, (*seen, nxt))
            if found:
                return found
        return None

    cycles = [cycle for name in sorted(graph) if (cycle := cycle_from(name, (name,)))]
    assert not cycles, f"import cycles in {package}: {cycles[0]}"
