"""`bge-integrations mine` and `finetune` end to end on tiny models, as the README and docs/finetuning.md run them."""

from __future__ import annotations

import gzip
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from bge_integrations import BGEEmbedder, BGEReranker
from bge_integrations.cli import main
from bge_integrations.training.examples import TrainingExample, read_examples, write_examples

pytest.importorskip("datasets")
pytest.importorskip("accelerate")

TOPICS = [
    ("pandas", "The giant panda is a bear species endemic to China.", "Where do pandas live?"),
    ("paris", "Paris is the capital and most populous city of France.", "capital of France"),
    ("cells", "Mitochondria are the powerhouse of the cell.", "what powers a cell"),
    ("fox", "The quick brown fox jumps over the lazy dog.", "which animal jumps over the dog"),
    ("rag", "Retrieval augmented generation grounds answers in documents.", "what grounds answers"),
    ("vitamin", "Vitamin D deficiency is common in northern latitudes.", "vitamin D in the north"),
]
FILLER = [f"Filler passage number {i} about nothing in particular." for i in range(10)]


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    """A BEIR collection: six queries with one positive each, among sixteen documents."""
    folder = tmp_path / "toy"
    (folder / "qrels").mkdir(parents=True)
    docs = [{"_id": name, "title": "", "text": text} for name, text, _ in TOPICS]
    docs += [{"_id": f"f{i}", "title": "", "text": text} for i, text in enumerate(FILLER)]
    with gzip.open(folder / "corpus.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(d) + "\n" for d in docs)
    queries = [{"_id": f"q{i}", "text": query} for i, (_, _, query) in enumerate(TOPICS)]
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    rows = [f"q{i}\t{name}\t1" for i, (name, _, _) in enumerate(TOPICS)]
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n")
    return folder


@pytest.fixture
def mined(tmp_path: Path) -> Path:
    """Training examples with three negatives each, in FlagEmbedding's format."""
    examples = [TrainingExample(query, [text], [t for _, t, _ in TOPICS if t != text][:3]) for _, text, query in TOPICS]
    return write_examples(examples, tmp_path / "train.jsonl")


def test_mine_a_beir_half_writes_flagembedding_format(
    collection: Path, tmp_path: Path, tiny_embedder_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mined.jsonl.gz"
    argv = ["mine", str(collection), str(out), "--model", tiny_embedder_path, "--query-lines", "odd"]
    assert main([*argv, "--range", "1-8", "--negatives", "3", "--device", "cpu"]) == 0
    examples = read_examples(out)
    # Odd lines of queries.jsonl: q0, q2, q4, each with its one positive and three negatives.
    assert [e.query for e in examples] == [TOPICS[i][2] for i in (0, 2, 4)]
    for example, i in zip(examples, (0, 2, 4), strict=True):
        assert example.pos == [TOPICS[i][1]]
        assert len(example.neg) == 3
        assert TOPICS[i][1] not in example.neg
    with gzip.open(out, "rt", encoding="utf-8") as handle:
        first = json.loads(handle.readline())
    assert list(first) == ["query", "pos", "neg"]
    printed = capsys.readouterr().out
    assert "toy[odd]: 3 queries with a positive, 16 documents" in printed
    assert "9 over 3 examples (min 3 per example)" in printed


def test_mine_refuses_a_threshold_without_a_reranker(
    mined: Path, tmp_path: Path, tiny_embedder_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["mine", str(mined), str(tmp_path / "out.jsonl"), "--model", tiny_embedder_path]
    assert main([*argv, "--max-negative-score", "0.9"]) == 2
    assert "--max-negative-score 0.9 needs --reranker" in capsys.readouterr().err
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("bad", ["10", "5-5", "9-3", "a-b"])
def test_mine_range_is_checked(bad: str, mined: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["mine", str(mined), str(tmp_path / "o.jsonl"), "--model", "m", "--range", bad])
    assert exit_info.value.code == 2
    assert f"got {bad!r}" in capsys.readouterr().err


def test_mine_with_a_corpus_file_and_a_reranker_writes_scores(
    mined: Path, tmp_path: Path, tiny_embedder_path: str, tiny_reranker_path: str
) -> None:
    corpus = tmp_path / "passages.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in FILLER))
    out = tmp_path / "out.jsonl"
    argv = ["mine", str(mined), str(out), "--model", tiny_embedder_path, "--corpus", str(corpus)]
    assert main([*argv, "--range", "0-6", "--negatives", "2", "--reranker", tiny_reranker_path]) == 0
    examples = read_examples(out)
    assert len(examples) == len(TOPICS)
    for example in examples:
        assert set(example.neg) <= set(FILLER)  # candidates come from the corpus file only
        assert example.neg_scores is not None
        assert len(example.neg_scores) == len(example.neg) == 2
        assert example.pos_scores is not None
        assert len(example.pos_scores) == 1


def test_finetune_embedder_prints_before_and_after(
    mined: Path, collection: Path, tmp_path: Path, tiny_st_embedder_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "model"
    argv = ["finetune", "embedder", str(mined), "--model", tiny_st_embedder_path, "--output", str(output)]
    options = ["--max-steps", "2", "--batch-size", "2", "--negatives", "2", "--lr", "1e-3", "--no-progress"]
    assert main([*argv, *options, "--eval", str(collection), "--eval-query-lines", "even", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert f"base model  {tiny_st_embedder_path}" in printed
    assert "steps       2 " in printed
    assert "train_runtime" not in printed  # the trainer's own logs go to standard error
    rows = {line.split()[0]: line.split()[1:] for line in printed.splitlines() if line.startswith(("ndcg", "recall"))}
    assert set(rows) >= {"ndcg@10", "recall@100"}
    before, after, change = (float(v) for v in rows["ndcg@10"])
    assert change == pytest.approx(after - before, abs=2e-5)
    tuned = np.array(BGEEmbedder(str(output), device="cpu").embed_documents([TOPICS[0][1]]))
    base = np.array(BGEEmbedder(tiny_st_embedder_path, device="cpu").embed_documents([TOPICS[0][1]]))
    assert not np.allclose(tuned, base, atol=1e-4)  # the weights moved
    assert "base_model:" in (output / "README.md").read_text(encoding="utf-8")


def test_finetune_reranker_evaluates_on_a_beir_half(
    mined: Path, collection: Path, tmp_path: Path, tiny_reranker_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "reranker"
    argv = ["finetune", "reranker", str(mined), "--model", tiny_reranker_path, "--output", str(output)]
    options = ["--max-steps", "2", "--batch-size", "2", "--negatives", "2", "--lr", "1e-3", "--no-progress"]
    assert main([*argv, *options, "--eval", str(collection), "--eval-query-lines", "odd"]) == 0
    printed = capsys.readouterr().out
    assert any(line.startswith("map ") for line in printed.splitlines())
    pair = [(TOPICS[0][2], TOPICS[0][1])]
    tuned = BGEReranker(str(output), device="cpu").score_pairs(pair, normalize=False)
    base = BGEReranker(tiny_reranker_path, device="cpu").score_pairs(pair, normalize=False)
    assert tuned != pytest.approx(base, abs=1e-5)


def test_finetune_reranker_refuses_a_query_instruction(
    mined: Path, tmp_path: Path, tiny_reranker_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["finetune", "reranker", str(mined), "--model", tiny_reranker_path, "--output", str(tmp_path / "r")]
    assert main([*argv, "--query-instruction", "Represent: "]) == 2
    assert "--query-instruction is for embedders" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_finetune_eval_half_of_a_set_file_is_refused(
    mined: Path, tmp_path: Path, tiny_reranker_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["finetune", "reranker", str(mined), "--model", tiny_reranker_path, "--output", str(tmp_path / "r")]
    assert main([*argv, "--eval", str(mined), "--eval-query-lines", "even"]) == 2
    assert "--eval-query-lines even needs a BEIR folder" in capsys.readouterr().err


def test_eval_on_a_half(collection: Path, tiny_embedder_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(collection), "--model", tiny_embedder_path, "--query-lines", "even"]) == 0
    assert "toy[even] (16 documents, 3 queries)" in capsys.readouterr().out


def test_docs_finetuning_python_snippet_runs(
    collection: Path,
    tmp_path: Path,
    tiny_st_embedder_path: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    page = (Path(__file__).parents[1] / "docs" / "finetuning.md").read_text(encoding="utf-8")
    [code] = re.findall(r"```python\n(.*?)```", page, re.S)
    code = code.replace("../shared/data/scifact", str(collection)).replace(
        "BAAI/bge-small-en-v1.5", tiny_st_embedder_path
    )
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/finetuning.md", "exec"), {"__name__": "docs"})
    before, after = (float(value) for value in capsys.readouterr().out.split())
    assert 0 <= before <= 1
    assert 0 <= after <= 1
    assert "base_model:" in (tmp_path / "bge-small-scifact" / "README.md").read_text(encoding="utf-8")


def test_readme_finetuning_commands_run(
    collection: Path, tmp_path: Path, tiny_st_embedder_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Fine-tuning the BGE way") :]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None
    commands = [
        shlex.split(line.split("bge-integrations ", 1)[1])
        for line in block.group(1).replace("\\\n", " ").splitlines()
        if "bge-integrations " in line
    ]
    assert [argv[:2] for argv in commands] == [["mine", "../shared/data/scifact"], ["finetune", "embedder"]]
    monkeypatch.chdir(tmp_path)
    for argv in commands:
        argv = [tiny_st_embedder_path if a == "$MINILM" else a for a in argv]
        argv = [str(collection) if a == "../shared/data/scifact" else a for a in argv]
        assert main([*argv, "--no-progress"]) == 0
    assert len(read_examples(tmp_path / "scifact-odd.jsonl")) == 3  # the odd lines of six queries
    assert "| ndcg@10 |" in (tmp_path / "minilm-scifact" / "README.md").read_text(encoding="utf-8")
