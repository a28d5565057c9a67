"""Regression tests for nine defects a held-out review found (issue 12), one section each.

D1 a huge text tokenised whole on the first call (and a huge JSONL line aborting ``embed``);
D2 text without spaces tokenised whole on every call; D3 a NULL or TEXT vector in the cache;
D4 integer ids over 64 bits; D5 a stale temporary manifest; D6 NumPy scalars as counts and
thresholds; D7 ``trust_remote_code`` from data through pydantic's loaders; D8 a token in a
``BatchJob``'s repr; D9 ``embed --model`` on a folder that holds no model.

Costs are asserted on what the tokenizer is given (a spy in front of it), never on wall time.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import sqlite3
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from bge_integrations import BGEEmbedder, BGEReranker
from bge_integrations.bulk import BatchJob, EmbedBatch, embed_file
from bge_integrations.cli import main
from bge_integrations.core import cache as cache_module
from bge_integrations.core.cache import FILE_NAME, CacheWarning
from bge_integrations.core.clipping import CLIP_CHARS_PER_TOKEN, CLIP_GROWTH
from bge_integrations.core.loading import REGISTRY, allow_remote_code
from bge_integrations.core.notices import TruncationWarning
from bge_integrations.core.text_features import TextFeatures, Tokenized
from bge_integrations.core.validation import check_non_negative_int, check_optional_float, check_positive_int
from bge_integrations.llama_index import BGEEmbedding, BGERerank

A = "The giant panda is a bear species endemic to China."
B = "Paris is the capital and most populous city of France."
WORDS = ("giant panda bamboo forest China. " * 170_000)[: 5 * 2**20]
COMMAS = "a," * 2_600_000
"""5.2 MB without a space (the review's case): each comma is its own word to BERT's pre-tokenizer."""
BASE64 = base64.b64encode(random.Random(0).randbytes(3 * 2**20)).decode()
"""4 MB without a space: one word to XLM-RoBERTa's SentencePiece pre-tokenizer."""
PREFIX = CLIP_CHARS_PER_TOKEN * 512
"""The first prefix tokenised for a 512-token window (16,384 characters)."""


class TokenizerSpy:
    """Stands in front of a ``tokenizers.Tokenizer`` and records the longest text it was given."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self.longest = 0

    def _seen(self, texts: list[str]) -> None:
        self.longest = max([self.longest, *map(len, texts)])

    def encode(self, text: str, *args: Any, **kwargs: Any) -> Any:
        self._seen([text])
        return self._backend.encode(text, *args, **kwargs)

    def encode_batch(self, texts: list[str], *args: Any, **kwargs: Any) -> Any:
        self._seen(texts)
        return self._backend.encode_batch(texts, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


def _spy_on_embedder(embedder: BGEEmbedder) -> tuple[TokenizerSpy, list[int]]:
    """Load embedder, put a spy in front of its tokenizer; the list gets the longest text each preprocess got."""
    loaded = embedder._loaded()
    spy = TokenizerSpy(loaded.features._backend)
    loaded.features._backend = spy  # type: ignore[assignment]
    preprocessed: list[int] = []
    preprocess = loaded.model.preprocess

    def recording(texts: list[str], *args: Any, **kwargs: Any) -> Any:
        preprocessed.append(max(map(len, texts)))
        return preprocess(texts, *args, **kwargs)

    loaded.model.preprocess = recording  # type: ignore[method-assign,assignment]
    return spy, preprocessed


@pytest.fixture
def quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        yield


# ----------------------------------------------------------------------------------------------
# D1: the first call per model (and prompt) compared its features with preprocess() on the whole
# longest text: 9 s and 750 MB for 5 MB; a 300 MB JSONL line aborted `bge-integrations embed`.


@pytest.mark.parametrize("role", ["document", "query"])
def test_d1_first_call_with_a_five_megabyte_text_reads_only_a_prefix(
    tiny_st_embedder_path: str, role: str, quiet: None
) -> None:
    embedder = BGEEmbedder(tiny_st_embedder_path, device="cpu")
    spy, preprocessed = _spy_on_embedder(embedder)
    embed = embedder.embed_documents if role == "document" else embedder.embed_queries

    first = embed([A, WORDS, B])

    assert preprocessed, "the first call compares its features with the model's preprocess"
    assert max(preprocessed) <= PREFIX
    assert spy.longest <= PREFIX + 100  # the prompt in front
    np.testing.assert_allclose(first, embed([A, WORDS, B]), atol=1e-5)  # later calls (plan kept) agree
    np.testing.assert_allclose(first[0], embed([A])[0], atol=1e-5)


def test_d1_the_prefix_preprocess_gets_is_what_was_tokenised(tiny_st_embedder_path: str) -> None:
    features = TextFeatures(BGEEmbedder(tiny_st_embedder_path, device="cpu")._loaded().model, 512)
    prompt = "query: "
    tokenized = features.tokenize([prompt + A, prompt + WORDS])
    assert tokenized.read(0, prompt, A) == A
    read = tokenized.read(1, prompt, WORDS)
    assert WORDS.startswith(read)
    assert len(read) < PREFIX
    assert Tokenized(tokenized.encodings, tokenized.truncated).read(1, prompt, WORDS) == WORDS


def _corpus(path: Path, texts: list[str]) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for i, text in enumerate(texts):
            handle.write(json.dumps({"id": i, "text": text}) + "\n")
    return path


def test_d1_cli_embeds_a_huge_line_reading_only_its_beginning(
    tmp_path: Path,
    tiny_embedder_path: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    quiet: None,
) -> None:
    # 20 MB on one line: before the fix the first batch handed all of it to preprocess (and the
    # tokenizer), 16 GB of memory for a 73 MB file; a 300 MB line aborted the process.
    huge = ("giant panda bamboo forest China. " * 650_000)[: 20 * 2**20]
    corpus = _corpus(tmp_path / "corpus.jsonl", [A, huge, B])
    longest: list[int] = []
    tokenize = TextFeatures.tokenize

    def recording(self: TextFeatures, texts: list[str]) -> Tokenized:
        tokenized = tokenize(self, texts)
        assert tokenized.sources is not None
        longest.append(max(map(len, tokenized.sources)))
        return tokenized

    monkeypatch.setattr(TextFeatures, "tokenize", recording)
    from sentence_transformers import SentenceTransformer

    preprocess = SentenceTransformer.preprocess
    preprocessed: list[int] = []

    def recording_preprocess(self: Any, texts: list[str], *args: Any, **kwargs: Any) -> Any:
        preprocessed.append(max(map(len, texts)))
        return preprocess(self, texts, *args, **kwargs)

    monkeypatch.setattr(SentenceTransformer, "preprocess", recording_preprocess)
    out = tmp_path / "vectors"

    assert main(["embed", str(corpus), str(out), "--model", tiny_embedder_path, "--device", "cpu"]) == 0

    assert "3 rows in 1 part" in capsys.readouterr().out
    assert longest
    assert max(longest) <= PREFIX
    assert preprocessed
    assert max(preprocessed) <= PREFIX
    assert pq.read_table(out).column("id").to_pylist() == [0, 1, 2]


def test_d1_cli_refuses_a_line_over_the_limit_by_name_before_any_model(
    tmp_path: Path, tiny_embedder_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = _corpus(tmp_path / "corpus.jsonl", [A, "x " * 600_000, B])
    out = tmp_path / "vectors"
    argv = ["embed", str(corpus), str(out), "--model", tiny_embedder_path, "--device", "cpu"]

    assert main([*argv, "--max-line-chars", "1000000"]) == 2

    error = capsys.readouterr().err
    assert "corpus.jsonl, line 2 is 1,200,021 characters long, over max_line_chars=1,000,000" in error
    assert len(error.strip().splitlines()) == 1
    assert REGISTRY.load_count == 0
    assert not out.exists()


def test_d1_a_long_line_is_read_past_in_pieces_and_counted(tmp_path: Path, tiny_embedder_path: str) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"id": 0, "text": A}) + "\n" + "z" * 5000)  # the last line, no newline
    with pytest.raises(ValueError, match="line 2 is 5,000 characters long, over max_line_chars=4,999"):
        embed_file(corpus, tmp_path / "v", model=tiny_embedder_path, device="cpu", max_line_chars=4999)
    lines = corpus.read_text().splitlines()
    corpus.write_text("\n".join([*lines[:1], json.dumps({"id": 1, "text": "b" * 4900})]) + "\n")
    result = embed_file(corpus, tmp_path / "w", model=tiny_embedder_path, device="cpu", max_line_chars=4999)
    assert result.rows == 2


# ----------------------------------------------------------------------------------------------
# D2: text without spaces was tokenised whole on every call (16.8 s, +2.75 GB for 5.2 MB),
# the reranker's max_windows and windows=False included.


@pytest.mark.parametrize("text", [COMMAS, BASE64], ids=["commas", "base64"])
def test_d2_embedding_text_without_spaces_tokenises_a_prefix(
    tiny_st_embedder_path: str, text: str, quiet: None
) -> None:
    embedder = BGEEmbedder(tiny_st_embedder_path, device="cpu")
    embedder.embed_documents([A])  # warmed up: the plan is kept
    spy, _ = _spy_on_embedder(embedder)

    vectors = embedder.embed_documents([A, text, B])

    assert spy.longest <= CLIP_GROWTH * PREFIX
    np.testing.assert_allclose(vectors[0], embedder.embed_documents([A])[0], atol=1e-5)


@pytest.mark.parametrize("text", [COMMAS, BASE64], ids=["commas", "base64"])
@pytest.mark.parametrize("settings", [{"max_windows": 3}, {"windows": False}], ids=["max_windows", "no_windows"])
def test_d2_reranking_text_without_spaces_tokenises_a_prefix(
    tiny_reranker_path: str, text: str, settings: dict[str, Any], quiet: None
) -> None:
    reranker = BGEReranker(tiny_reranker_path, device="cpu", **settings)
    reranker.score("query", [A])
    encoder = reranker._loaded().pair_encoder(512, 384, 64)
    spy = TokenizerSpy(encoder._backend)
    encoder._backend = spy  # type: ignore[assignment]

    scores = reranker.score("query", [A, text, B])

    assert 0 < spy.longest <= 3 * CLIP_GROWTH * PREFIX  # 3 windows of 512 tokens at most
    assert scores[0] == pytest.approx(reranker.score("query", [A])[0], abs=1e-6)


# ----------------------------------------------------------------------------------------------
# D3: a NULL or TEXT `data` value in the cache raised TypeError on every call, forever.


@pytest.mark.parametrize("damage", ["NULL", "'text, not bytes'", "42"])
def test_d3_a_null_or_text_vector_in_the_cache_is_damage_recomputed_and_repaired(
    tiny_embedder_path: str, tmp_path: Path, damage: str
) -> None:
    right = BGEEmbedder(tiny_embedder_path, device="cpu", cache_dir=tmp_path).embed_documents(["pandas", "paris"])
    REGISTRY.clear()
    cache_module._SHARED.clear()
    with sqlite3.connect(tmp_path / FILE_NAME) as connection:
        connection.execute(f"UPDATE vectors SET data = {damage}")  # the test's own constants

    embedder = BGEEmbedder(tiny_embedder_path, device="cpu", cache_dir=tmp_path)
    with pytest.warns(CacheWarning, match="2 damaged entries ignored"):
        assert embedder.embed_documents(["pandas", "paris"]) == right

    with sqlite3.connect(tmp_path / FILE_NAME) as connection:
        kinds = {kind for (kind,) in connection.execute("SELECT typeof(data) FROM vectors")}
    assert kinds == {"blob"}  # repaired
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        assert embedder.embed_documents(["pandas", "paris"]) == right


# ----------------------------------------------------------------------------------------------
# D4: integer ids of 2**63 and more crashed `embed` after the model had run.


@pytest.mark.parametrize("bad", [2**63, -(2**63) - 1, 10**30])
def test_d4_an_id_over_64_bits_is_refused_by_line_before_the_model_runs(
    tiny_embedder_path: str, tmp_path: Path, bad: int
) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(f'{{"id": 1, "text": "a"}}\n{{"id": {bad}, "text": "b"}}\n')
    with pytest.raises(ValueError, match=f"corpus.jsonl, line 2: the integer id {bad} does not fit in 64 bits"):
        embed_file(corpus, tmp_path / "vectors", model=tiny_embedder_path, device="cpu")
    assert REGISTRY.load_count == 0


def test_d4_the_64_bit_extremes_are_kept_exactly(tiny_embedder_path: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(f'{{"id": {2**63 - 1}, "text": "a"}}\n{{"id": {-(2**63)}, "text": "b"}}\n')
    embed_file(corpus, tmp_path / "vectors", model=tiny_embedder_path, device="cpu")
    assert pq.read_table(tmp_path / "vectors").column("id").to_pylist() == [2**63 - 1, -(2**63)]


# ----------------------------------------------------------------------------------------------
# D5: a kill during the first manifest write left ._manifest.json.PID.tmp; every rerun refused.


def test_d5_a_stale_temporary_manifest_does_not_block_the_rerun(tiny_embedder_path: str, tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "corpus.jsonl", [A, B])
    out = tmp_path / "vectors"
    out.mkdir()
    (out / "._manifest.json.4242.tmp").write_text('{"format": 1, "set')  # cut off mid-write
    (out / ".part-00000.parquet.4242.tmp").write_bytes(b"PAR1")

    result = embed_file(corpus, out, model=tiny_embedder_path, device="cpu")

    assert (result.rows, result.parts_written) == (2, 1)
    assert sorted(path.name for path in out.iterdir()) == ["_manifest.json", "part-00000.parquet"]


def test_d5_other_files_still_make_a_folder_foreign(tiny_embedder_path: str, tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "corpus.jsonl", [A])
    out = tmp_path / "vectors"
    out.mkdir()
    (out / "notes.tmp").write_text("mine")
    with pytest.raises(ValueError, match=r"is not empty and holds no _manifest\.json"):
        embed_file(corpus, out, model=tiny_embedder_path, device="cpu")


# ----------------------------------------------------------------------------------------------
# D6: NumPy scalars were refused by the core checks (LangChain and LlamaIndex accepted them).


def test_d6_numpy_scalars_are_accepted_and_converted() -> None:
    got = check_positive_int(np.int64(2), name="top_n")
    assert got == 2
    assert type(got) is int
    assert type(check_non_negative_int(np.uint8(0), name="window_overlap")) is int
    threshold = check_optional_float(np.float32(0.5), name="score_threshold")
    assert threshold == 0.5
    assert type(threshold) is float
    assert check_optional_float(np.int32(1), name="score_threshold") == 1.0


@pytest.mark.parametrize(
    ("check", "bad"),
    [
        (check_positive_int, np.bool_(True)),
        (check_positive_int, np.float64(2.0)),
        (check_positive_int, np.int64(0)),
        (check_non_negative_int, np.int8(-1)),
        (check_optional_float, np.bool_(False)),
        (check_optional_float, np.float64("nan")),
        (check_optional_float, "0.5"),
    ],
)
def test_d6_what_is_not_such_a_number_is_still_refused_naming_it(check: Callable[..., Any], bad: Any) -> None:
    with pytest.raises(ValueError, match=f"must be .*, got {re.escape(repr(bad))}"):
        check(bad, name="top_n")


def test_d6_core_rank_takes_numpy_top_n_and_threshold(tiny_reranker_path: str) -> None:
    reranker = BGEReranker(tiny_reranker_path, device="cpu")
    passages = [A, B, "Pandas eat bamboo."]
    expected = reranker.rank("Where do pandas live?", passages, top_n=2, score_threshold=0.0)
    got = reranker.rank("Where do pandas live?", passages, top_n=np.int64(2), score_threshold=np.float32(0.0))
    assert got == expected
    assert len(got) == 2


# ----------------------------------------------------------------------------------------------
# D7: LlamaIndex's model_validate / model_validate_json let trust_remote_code=True in from data.

LOADERS: dict[str, Callable[[type[Any], dict[str, Any]], Any]] = {
    "from_dict": lambda cls, data: cls.from_dict(data),
    "from_json": lambda cls, data: cls.from_json(json.dumps(data)),
    "model_validate": lambda cls, data: cls.model_validate(data),
    "model_validate_json": lambda cls, data: cls.model_validate_json(json.dumps(data)),
    "model_validate_strings": lambda cls, data: cls.model_validate_strings({**data, "trust_remote_code": "true"}),
    "model_construct": lambda cls, data: cls.model_construct(**data),
    "parse_obj": lambda cls, data: cls.parse_obj(data),
}


def _llama_settings(cls: type[Any], embedder: str, reranker: str) -> dict[str, Any]:
    model = {"model_name": embedder} if cls is BGEEmbedding else {"model": reranker}
    return {**model, "device": "cpu", "trust_remote_code": True}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # parse_obj, pydantic v1's name
@pytest.mark.parametrize("loader", list(LOADERS))
@pytest.mark.parametrize("cls", [BGEEmbedding, BGERerank], ids=lambda cls: cls.__name__)
def test_d7_no_llama_index_loader_takes_remote_code_from_data(
    cls: type[Any], loader: str, tiny_embedder_path: str, tiny_reranker_path: str
) -> None:
    data = _llama_settings(cls, tiny_embedder_path, tiny_reranker_path)
    refused = rf"{cls.__name__}: serialized settings ask for trust_remote_code="
    with pytest.raises(ValueError, match=refused):
        LOADERS[loader](cls, data)


@pytest.mark.parametrize("cls", [BGEEmbedding, BGERerank], ids=lambda cls: cls.__name__)
def test_d7_code_and_the_explicit_opt_in_still_may(
    cls: type[Any], tiny_embedder_path: str, tiny_reranker_path: str
) -> None:
    data = _llama_settings(cls, tiny_embedder_path, tiny_reranker_path)
    assert cls(**data).trust_remote_code is True
    with allow_remote_code():
        assert cls.model_validate(data).trust_remote_code is True
        assert cls.model_validate_json(json.dumps(data)).trust_remote_code is True
    off = {**data, "trust_remote_code": False}
    assert cls.model_validate(off).trust_remote_code is False
    assert cls.model_validate_json(json.dumps(off)).trust_remote_code is False
    built = cls(**data)
    assert cls.model_validate(built) is built  # an object already built is not data


# ----------------------------------------------------------------------------------------------
# D8: repr(BatchJob(...)) showed the Hugging Face token.


def test_d8_a_batch_job_never_shows_its_token() -> None:
    secret = "hf_doNotShowThisToken123"
    job = BatchJob(EmbedBatch, "BAAI/bge-small-en-v1.5", {"role": "query", "settings": {"token": secret}})
    for shown in (repr(job), str(job), f"{job}", repr([job])):
        assert secret not in shown
        assert "'token': '***'" in shown
    assert repr(job).startswith("BatchJob(EmbedBatch, 'BAAI/bge-small-en-v1.5', {'role': 'query'")
    assert job.arguments["settings"]["token"] == secret  # hidden, not lost


# ----------------------------------------------------------------------------------------------
# D9: `embed --model /usr` walked the whole folder (35 s) first; `--model /` ended in
# "Permission denied: /proc/1/cwd".


def test_d9_a_folder_without_a_model_is_refused_in_one_line_without_walking_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "usr"
    (folder / "lib" / "deep").mkdir(parents=True)
    (folder / "lib" / "deep" / "weights.bin").write_bytes(b"0" * 10)
    walked: list[Any] = []

    def walk(*args: Any, **kwargs: Any) -> Iterator[Any]:
        walked.append(args)
        return iter(())

    monkeypatch.setattr(os, "walk", walk)
    corpus = _corpus(tmp_path / "corpus.jsonl", [A])

    assert main(["embed", str(corpus), str(tmp_path / "out"), "--model", str(folder)]) == 2

    error = capsys.readouterr().err
    assert error == (
        f"bge-integrations embed: error: model {str(folder)!r} is a folder but not a model folder "
        "(no config.json or modules.json at its top); pass a model folder or a hub id\n"
    )
    assert walked == []
    cache_module.model_fingerprint(str(folder), None)  # the cache's key: no walk either
    assert walked == []


def test_d9_a_model_folder_is_still_fingerprinted_by_its_weights(tiny_embedder_path: str, tmp_path: Path) -> None:
    before = cache_module.model_fingerprint(tiny_embedder_path, None)
    (Path(tiny_embedder_path) / "extra.json").write_text("{}")
    try:
        assert cache_module.model_fingerprint(tiny_embedder_path, None) != before
    finally:
        (Path(tiny_embedder_path) / "extra.json").unlink()
    assert cache_module.model_fingerprint(tiny_embedder_path, None) == before


@pytest.mark.parametrize(("name", "key"), [("BGEEmbedding", "model_name"), ("BGERerank", "model")])
def test_d7_llama_index_typeadapter_and_nested_models_refuse_remote_code(name: str, key: str) -> None:
    from pydantic import BaseModel, TypeAdapter, ValidationError

    import bge_integrations.llama_index as adapter
    from bge_integrations import allow_remote_code

    cls = getattr(adapter, name)

    class Holder(BaseModel):
        model_config = {"arbitrary_types_allowed": True}
        component: cls  # type: ignore[valid-type]

    data = {key: "m", "trust_remote_code": True}
    for load in (lambda: TypeAdapter(cls).validate_python(data), lambda: Holder(component=data)):
        with pytest.raises(ValidationError, match="trust_remote_code"):
            load()
        with allow_remote_code():
            assert load() is not None
    assert TypeAdapter(cls).validate_python({key: "m"}).trust_remote_code is False
    assert cls(**data).trust_remote_code is True  # set in code
