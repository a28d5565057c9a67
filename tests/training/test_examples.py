from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from bge_integrations.evaluation.beir import load_beir
from bge_integrations.training.examples import TrainingExample, examples_from_beir, read_examples, write_examples

FULL = TrainingExample(
    "what is BGE?",
    ["BGE is an embedding model.", "BAAI made BGE."],
    neg=["Pandas eat bamboo."],
    pos_scores=[0.9, 0.8],
    neg_scores=[0.1],
    prompt="Represent this sentence for searching relevant passages: ",
    type="normal",
)


def test_to_dict_writes_flagembedding_key_order_and_only_set_fields() -> None:
    assert list(FULL.to_dict()) == ["query", "pos", "neg", "pos_scores", "neg_scores", "prompt", "type"]
    assert TrainingExample("q", ["p"]).to_dict() == {"query": "q", "pos": ["p"], "neg": []}


@pytest.mark.parametrize("name", ["train.jsonl", "train.jsonl.gz"])
def test_round_trip_keeps_every_field(tmp_path: Path, name: str) -> None:
    examples = [FULL, TrainingExample("q2", ("p",), neg=()), TrainingExample("q3", ["p3"], type="symmetric_class")]  # type: ignore[arg-type]
    path = write_examples(examples, tmp_path / "sub" / name)
    assert path == tmp_path / "sub" / name
    back = read_examples(path)
    assert back == [FULL, TrainingExample("q2", ["p"]), TrainingExample("q3", ["p3"], type="symmetric_class")]
    assert isinstance(back[1].pos, list)


def test_gz_is_really_gzip_and_reproducible(tmp_path: Path) -> None:
    first = write_examples([FULL], tmp_path / "a.jsonl.gz").read_bytes()
    assert first[:2] == b"\x1f\x8b"
    assert json.loads(gzip.decompress(first)) == FULL.to_dict()
    assert write_examples([FULL], tmp_path / "a.jsonl.gz").read_bytes() == first


def test_unicode_is_written_as_is_and_lone_surrogates_are_replaced(tmp_path: Path) -> None:
    example = TrainingExample("熊猫生活在哪里？", ["Die Großen Pandas leben in China 🐼."], neg=["bad \ud800 text"])
    path = write_examples([example], tmp_path / "u.jsonl")
    text = path.read_text(encoding="utf-8")
    assert "熊猫生活在哪里？" in text
    assert "🐼" in text
    assert "\\u" not in text
    back = read_examples(path)[0]
    assert back.query == "熊猫生活在哪里？"
    assert back.neg == ["bad \ufffd text"]


def test_missing_neg_and_null_optionals_read_as_defaults(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"query": "q", "pos": ["p"], "prompt": null, "id": 7}\n\n   \n{"query": "r", "pos": ["s"]}\n')
    assert read_examples(path) == [TrainingExample("q", ["p"]), TrainingExample("r", ["s"])]


@pytest.mark.parametrize(
    ("line", "error", "fragment"),
    [
        ("{not json", ValueError, "bad.jsonl:3: not valid JSON"),
        ('["q", ["p"]]', ValueError, "bad.jsonl:3: must be a JSON object"),
        ('{"pos": ["p"]}', ValueError, 'bad.jsonl:3: missing field "query"'),
        ('{"query": "q"}', ValueError, 'bad.jsonl:3: missing field "pos"'),
        ('{"query": "q", "pos": []}', ValueError, "bad.jsonl:3: pos must hold at least one text"),
        ('{"query": "q", "pos": "p"}', TypeError, "bad.jsonl:3: pos must be a list of strings, got str"),
        ('{"query": "q", "pos": ["p", 5]}', TypeError, "bad.jsonl:3: pos[1] must be a string, got int: 5"),
        ('{"query": 1, "pos": ["p"]}', TypeError, "bad.jsonl:3: query must be a string"),
        ('{"query": "q", "pos": ["p"], "neg": ["n"], "neg_scores": [0.1, 0.2]}', ValueError, "neg_scores must hold"),
        ('{"query": "q", "pos": ["p"], "pos_scores": ["high"]}', TypeError, "bad.jsonl:3: pos_scores[0] must be"),
        ('{"query": "q", "pos": ["p"], "prompt": 3}', TypeError, "bad.jsonl:3: prompt must be a string"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path: Path, line: str, error: type[Exception], fragment: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"query": "q", "pos": ["p"]}\n\n' + line + "\n", encoding="utf-8")
    with pytest.raises(error) as info:
        read_examples(path)
    assert fragment in str(info.value)


def test_non_utf8_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"query": "q", "pos": ["p"]}\n{"query": "caf\xe9", "pos": ["p"]}\n')
    with pytest.raises(ValueError, match=r"latin.jsonl:2: not UTF-8"):
        read_examples(path)


def test_constructor_checks_fields() -> None:
    with pytest.raises(ValueError, match=r"pos must hold at least one text, got \[\]"):
        TrainingExample("q", [])
    with pytest.raises(ValueError, match=r"pos_scores must hold one score per pos text \(2\), got 1"):
        TrainingExample("q", ["a", "b"], pos_scores=[1.0])
    with pytest.raises(TypeError, match=r"neg_scores\[0\] must be a number, got bool"):
        TrainingExample("q", ["a"], neg=["n"], neg_scores=[True])
    with pytest.raises(ValueError, match=r"pos_scores\[0\] must be a finite number, got nan"):
        TrainingExample("q", ["a"], pos_scores=[float("nan")])
    assert TrainingExample("q", ["a"], pos_scores=[1]).pos_scores == [1.0]


def test_write_rejects_what_is_not_an_example(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"examples\[1\] must be a TrainingExample, got dict"):
        write_examples([FULL, {"query": "q", "pos": ["p"]}], tmp_path / "x.jsonl")  # type: ignore[list-item]
    assert not (tmp_path / "x.jsonl").exists()


def _beir(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    docs = [("d1", "Pandas", "eat bamboo."), ("d2", "", "Paris is in France."), ("d3", "BGE", "embeds text.")]
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as handle:
        for doc_id, title, text in docs:
            handle.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    queries = [("q1", "what do pandas eat?"), ("q2", "where is Paris?"), ("q3", "what is BGE?"), ("q4", "unjudged")]
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as handle:
        for query_id, text in queries:
            handle.write(json.dumps({"_id": query_id, "text": text}) + "\n")
    rows = ["query-id\tcorpus-id\tscore", "q1\td3\t1", "q1\td1\t2", "q2\td2\t1", "q3\td1\t0", "q3\td3\t0"]
    (folder / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def test_examples_from_beir_grades_order_and_corpus(tmp_path: Path) -> None:
    folder = _beir(tmp_path / "tiny")
    with pytest.warns(UserWarning, match=r"1 of 3 judged queries of 'tiny' have no document graded >= 1.*\['q3'\]"):
        examples, corpus = examples_from_beir(folder)
    assert corpus == ["Pandas eat bamboo.", "Paris is in France.", "BGE embeds text."]
    assert examples == [
        TrainingExample("what do pandas eat?", ["BGE embeds text.", "Pandas eat bamboo."]),
        TrainingExample("where is Paris?", ["Paris is in France."]),
    ]
    with pytest.warns(UserWarning, match=r"2 of 3 judged queries"):
        strict, _ = examples_from_beir(str(folder), min_grade=2)
    assert strict == [TrainingExample("what do pandas eat?", ["Pandas eat bamboo."])]


def test_examples_from_beir_takes_a_loaded_half(tmp_path: Path) -> None:
    dataset = load_beir(_beir(tmp_path / "tiny"), query_lines="even")
    examples, _ = examples_from_beir(dataset)
    assert [example.query for example in examples] == ["where is Paris?"]


def test_examples_from_beir_checks_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"min_grade must be an int >= 1, got 0"):
        examples_from_beir(tmp_path, min_grade=0)
    with pytest.raises(TypeError, match=r"data must be a BEIR folder or a RetrievalDataset, got int"):
        examples_from_beir(3)  # type: ignore[arg-type]
