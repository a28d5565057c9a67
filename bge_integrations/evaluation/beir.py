"""Reading a collection in BEIR layout: corpus.jsonl(.gz), queries.jsonl, qrels/test.tsv."""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RetrievalDataset:
    """A test collection: documents, judged queries and their relevance grades.

    Args:
        name: The folder name, e.g. ``"scifact"``.
        doc_ids: Document ids, in corpus order.
        doc_texts: ``(title + " " + text).strip()`` per document, the text MTEB embeds.
        queries: Query id to query text, for the queries that have judgements.
        qrels: Query id to {document id: grade}.

    Example:
        >>> data = load_beir("../shared/data/scifact")  # doctest: +SKIP
        >>> len(data.doc_ids), len(data.queries)  # doctest: +SKIP
        (5183, 300)

    """

    name: str
    doc_ids: list[str]
    doc_texts: list[str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def load_beir(folder: str | Path, *, split: str = "test") -> RetrievalDataset:
    """Load a BEIR-layout collection; only queries judged in ``qrels/{split}.tsv`` are kept.

    Raises:
        FileNotFoundError: If the folder lacks a corpus, queries or the qrels file.

    """
    root = Path(folder)
    corpus_path = next((root / n for n in ("corpus.jsonl.gz", "corpus.jsonl") if (root / n).is_file()), None)
    if corpus_path is None:
        msg = f"no corpus.jsonl(.gz) in {str(root)!r}"
        raise FileNotFoundError(msg)
    qrels_path = root / "qrels" / f"{split}.tsv"
    qrels: dict[str, dict[str, int]] = {}
    with qrels_path.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    queries = {
        record["_id"]: record["text"] for record in _read_jsonl(root / "queries.jsonl") if record["_id"] in qrels
    }
    missing = sorted(set(qrels) - set(queries))
    if missing:
        msg = f"{len(missing)} judged queries are missing from queries.jsonl, e.g. {missing[:3]}"
        raise ValueError(msg)
    doc_ids: list[str] = []
    doc_texts: list[str] = []
    for record in _read_jsonl(corpus_path):
        doc_ids.append(record["_id"])
        doc_texts.append((record.get("title", "") + " " + record.get("text", "")).strip())
    return RetrievalDataset(root.name, doc_ids, doc_texts, queries, qrels)


def _read_jsonl(path: Path) -> Iterator[dict[str, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


__all__ = ["RetrievalDataset", "load_beir"]
