"""Published MTEB scores reproduced with real weights on real data (minutes on 2 cores).

all-MiniLM-L6-v2 (mean-pooled, normalised, 256 word pieces, no instruction) through
BGEEmbedder and exact cosine search on ../shared/data, scored as trec_eval scores. SciFact
goes through the ``bge-integrations eval`` command, NFCorpus through the Python API.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bge_integrations import BGEEmbedder
from bge_integrations.cli import main
from bge_integrations.evaluation import evaluate_retrieval, load_beir

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not DATA.is_dir(), reason=f"needs the retrieval collections in {DATA}"),
]


def test_scifact_through_the_eval_command(minilm_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["eval", str(DATA / "scifact"), "--model", minilm_path, "--device", "cpu", "--expect-ndcg", "0.64508"]
    status = main(argv)
    out = capsys.readouterr().out
    assert status == 0, out
    assert "nDCG@10     0.64508" in out
    assert "Recall@100  0.92500" in out


def test_nfcorpus_through_the_api(minilm_path: str) -> None:
    embedder = BGEEmbedder(minilm_path, device="cpu")
    report = evaluate_retrieval(load_beir(DATA / "nfcorpus"), embedder.embed_queries, embedder.embed_documents)
    assert round(report.ndcg_at_10, 5) == 0.31594
    assert round(report.recall_at_100, 5) == 0.31151
