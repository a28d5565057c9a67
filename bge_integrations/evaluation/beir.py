"""Reading a collection in BEIR layout: corpus.jsonl(.gz), queries.jsonl, qrels/test.tsv."""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

QueryLines = Literal["all", "odd", "even"]


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


def load_beir(folder: str | Path, *, split: str = "test", query_lines: QueryLines = "all") -> RetrievalDataset:
    """Load a BEIR-layout collection; only queries judged in ``qrels/{split}.tsv`` are kept.

    Args:
        folder: The collection's folder.
        split: Which ``qrels/{split}.tsv`` judges the queries.
        query_lines: ``"odd"`` or ``"even"`` keeps only the queries on odd or even (1-based) lines
            of ``queries.jsonl``: two disjoint halves, for fine-tuning on one and evaluating on the
            other when a collection has no train split (SciFact here: train on ``"odd"``,
            evaluate on ``"even"``). The dataset's name gets the half: ``"scifact[even]"``.

    Raises:
        FileNotFoundError: If the folder lacks a corpus, queries or the qrels file.
        ValueError: If query_lines is not one of ``"all"``, ``"odd"``, ``"even"``.

    Example:
        >>> half = load_beir("../shared/data/scifact", query_lines="even")  # doctest: +SKIP
        >>> half.name, len(half.queries)  # doctest: +SKIP
        ('scifact[even]', 150)

    """
    if query_lines not in get_args(QueryLines):
        msg = f"query_lines must be one of {get_args(QueryLines)}, got {query_lines!r}"
        raise ValueError(msg)
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
    queries: dict[str, str] = {}
    seen: set[str] = set()
    for line, record in _numbered_jsonl(root / "queries.jsonl"):
        seen.add(record["_id"])
        wanted = query_lines == "all" or (line % 2 == 1) == (query_lines == "odd")
        if wanted and record["_id"] in qrels:
            queries[record["_id"]] = record["text"]
    missing = sorted(set(qrels) - seen)
    if missing:
        msg = f"{len(missing)} judged queries are missing from queries.jsonl, e.g. {missing[:3]}"
        raise ValueError(msg)
    doc_ids: list[str] = []
    doc_texts: list[str] = []
    for record in _read_jsonl(corpus_path):
        doc_ids.append(record["_id"])
        doc_texts.append((record.get("title", "") + " " + record.get("text", "")).strip())
    if query_lines != "all":
        qrels = {query_id: judged for query_id, judged in qrels.items() if query_id in queries}
    name = root.name if query_lines == "all" else f"{root.name}[{query_lines}]"
    return RetrievalDataset(name, doc_ids, doc_texts, queries, qrels)


def _read_jsonl(path: Path) -> Iterator[dict[str, str]]:
    for _, record in _numbered_jsonl(path):
        yield record


def _numbered_jsonl(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """Each non-blank line's object with its 1-based line number in the file."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, json.loads(line)


__all__ = ["QueryLines", "RetrievalDataset", "load_beir"]
