"""load_beir: the judged queries, and the odd/even halves of queries.jsonl (train on one, test on the other)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bge_integrations.evaluation import load_beir

SCIFACT = Path(__file__).parents[2].parent / "shared" / "data" / "scifact"


def write_collection(folder: Path) -> Path:
    folder.mkdir()
    (folder / "qrels").mkdir()
    docs = [{"_id": f"d{i}", "title": f"T{i}", "text": f"text {i}"} for i in range(3)]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    queries = ["q1", "q2", "q3", "q4", "q5"]  # q3 is not judged; a blank line must not shift the numbering
    lines = [json.dumps({"_id": q, "text": f"question {q}"}) for q in queries]
    lines.insert(2, "")
    (folder / "queries.jsonl").write_text("\n".join(lines) + "\n")
    rows = ["query-id\tcorpus-id\tscore", "q1\td0\t1", "q2\td1\t1", "q4\td2\t2", "q5\td0\t1"]
    (folder / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n")
    return folder


def test_halves_split_by_line_number_and_keep_only_their_judgements(tmp_path: Path) -> None:
    folder = write_collection(tmp_path / "toy")
    whole = load_beir(folder)
    odd = load_beir(folder, query_lines="odd")
    even = load_beir(folder, query_lines="even")
    assert list(whole.queries) == ["q1", "q2", "q4", "q5"]
    # Lines: 1 q1, 2 q2, 3 blank, 4 q3 (unjudged), 5 q4, 6 q5.
    assert (odd.name, list(odd.queries), sorted(odd.qrels)) == ("toy[odd]", ["q1", "q4"], ["q1", "q4"])
    assert (even.name, list(even.queries), sorted(even.qrels)) == ("toy[even]", ["q2", "q5"], ["q2", "q5"])
    assert odd.doc_ids == even.doc_ids == whole.doc_ids


def test_a_judged_query_missing_from_the_file_is_still_an_error_in_a_half(tmp_path: Path) -> None:
    folder = write_collection(tmp_path / "toy")
    with (folder / "qrels" / "test.tsv").open("a") as handle:
        handle.write("q9\td1\t1\n")
    with pytest.raises(ValueError, match=r"1 judged queries are missing.*q9"):
        load_beir(folder, query_lines="even")


def test_unknown_half_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"query_lines must be one of .* got 'first'"):
        load_beir(write_collection(tmp_path / "toy"), query_lines="first")  # type: ignore[arg-type]


@pytest.mark.skipif(not SCIFACT.is_dir(), reason="needs ../shared/data/scifact")
def test_scifact_halves_are_disjoint_and_cover_the_test_queries() -> None:
    whole = load_beir(SCIFACT)
    odd, even = load_beir(SCIFACT, query_lines="odd"), load_beir(SCIFACT, query_lines="even")
    assert (len(odd.queries), len(even.queries)) == (150, 150)
    assert not set(odd.queries) & set(even.queries)
    assert {**odd.qrels, **even.qrels} == whole.qrels
