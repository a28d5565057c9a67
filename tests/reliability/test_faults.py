"""Faults, end to end through the public API: out of memory mid-batch, models that cannot be had,
damaged caches, full disks and killed processes. Every fault gives the vectors and scores of a run
without it, or one clear error; never a wrong vector.

Resuming an interrupted ``embed`` run is also covered, on its own engine, by
``tests/ray_scale/test_files.py::test_rerun_after_an_interruption_skips_finished_parts_and_equals_an_uninterrupted_run``
(an exception while writing a part) and ``::test_a_missing_or_truncated_part_is_recomputed``; the
test here kills the real ``bge-integrations embed`` process with SIGKILL and resumes it.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from bge_integrations import BGEEmbedder, BGEReranker
from bge_integrations.cli import main
from bge_integrations.core import cache as cache_module
from bge_integrations.core.cache import FILE_NAME, CacheWarning, shared_cache
from bge_integrations.core.loading import REGISTRY, ModelUnavailableError

ROOT = Path(__file__).resolve().parents[2]
TEXTS = ["panda " * n for n in (1, 50, 3, 200, 7, 120, 2, 90, 30, 11)]
QUERY = "where do pandas live?"
LIMIT = 300
"""Padded tokens (rows x width) above which the injected allocator fails: the first batch of 8
(about 8 x 202) does not fit, a single text always does."""


def _torch_oom() -> BaseException:
    return torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.15 GiB total)")


def _cpu_oom() -> BaseException:
    # The form of PyTorch's CPU allocator failure (c10/core/impl/alloc_cpu.cpp).
    return RuntimeError(
        "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
        "you tried to allocate 1073741824 bytes. Error code 12 (Cannot allocate memory)"
    )


OOM_ERRORS = pytest.mark.parametrize("make_error", [_torch_oom, _cpu_oom], ids=["torch-oom", "cpu-allocator"])


def _input_ids(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
    features = args[0] if args else kwargs
    ids: torch.Tensor = features["input_ids"]
    return ids


def _inject(
    module: torch.nn.Module, monkeypatch: pytest.MonkeyPatch, fail: Callable[[int, int, int], BaseException | None]
) -> list[tuple[int, bool]]:
    """Make module.forward raise fail(call, rows, width) when that is not None; returns (rows, failed) per call."""
    forward = module.forward
    attempts: list[tuple[int, bool]] = []

    def flaky(*args: Any, **kwargs: Any) -> Any:
        rows, width = _input_ids(args, kwargs).shape
        error = fail(len(attempts), rows, width)
        attempts.append((rows, error is not None))
        if error is not None:
            raise error
        return forward(*args, **kwargs)

    monkeypatch.setattr(module, "forward", flaky)
    return attempts


def _oom_above(make_error: Callable[[], BaseException]) -> Callable[[int, int, int], BaseException | None]:
    return lambda _call, rows, width: make_error() if rows * width > LIMIT else None


def _assert_halved(attempts: list[tuple[int, bool]]) -> None:
    assert any(failed for _, failed in attempts)
    for (rows, failed), (next_rows, _) in itertools.pairwise(attempts):
        if failed:
            assert next_rows == rows // 2  # the failed batch, cut in two, first half next


def _loaded_model(handle: BGEEmbedder | BGEReranker) -> Any:
    handle.warm_up()
    return REGISTRY.peek(handle.load_key)


# Out of memory in the middle of a batch


@OOM_ERRORS
def test_embedder_out_of_memory_mid_batch_gives_the_same_vectors_and_remembers_the_budget(
    tiny_embedder_path: str, monkeypatch: pytest.MonkeyPatch, make_error: Callable[[], BaseException]
) -> None:
    expected = np.array(BGEEmbedder(tiny_embedder_path, device="cpu", batch_size=8).embed_documents(TEXTS))
    embedder = BGEEmbedder(tiny_embedder_path, device="cpu", batch_size=8)
    loaded = _loaded_model(embedder)
    attempts = _inject(loaded.model, monkeypatch, _oom_above(make_error))

    with pytest.warns(ResourceWarning, match="ran out of memory on a batch; retrying in halves"):
        vectors = embedder.embed_documents(TEXTS)

    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    assert attempts[0] == (8, True)
    _assert_halved(attempts)
    assert loaded.runner.learned_max_tokens is not None

    attempts.clear()
    again = BGEEmbedder(tiny_embedder_path, device="cpu", batch_size=8)  # another object, the same model
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        np.testing.assert_allclose(again.embed_queries(TEXTS[:4]), embedder.embed_queries(TEXTS[:4]), atol=1e-6)
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert attempts
    assert not any(failed for _, failed in attempts)  # the learned budget is used: no failed attempt


@OOM_ERRORS
def test_reranker_out_of_memory_mid_batch_gives_the_same_ranking(
    tiny_reranker_path: str, monkeypatch: pytest.MonkeyPatch, make_error: Callable[[], BaseException]
) -> None:
    expected = BGEReranker(tiny_reranker_path, device="cpu", batch_size=8).rank(QUERY, TEXTS)
    reranker = BGEReranker(tiny_reranker_path, device="cpu", batch_size=8)
    loaded = _loaded_model(reranker)
    attempts = _inject(loaded.model, monkeypatch, _oom_above(make_error))

    with pytest.warns(ResourceWarning, match="ran out of memory"):
        ranked = reranker.rank(QUERY, TEXTS)

    assert [r.index for r in ranked] == [r.index for r in expected]
    np.testing.assert_allclose([r.score for r in ranked], [r.score for r in expected], atol=1e-6)
    _assert_halved(attempts)
    attempts.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        BGEReranker(tiny_reranker_path, device="cpu", batch_size=8).score(QUERY, TEXTS)
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert not any(failed for _, failed in attempts)


def test_out_of_memory_on_a_single_text_surfaces_unchanged(
    tiny_embedder_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = BGEEmbedder(tiny_embedder_path, device="cpu")
    error = _torch_oom()
    attempts = _inject(_loaded_model(embedder).model, monkeypatch, lambda *_: error)
    with pytest.raises(torch.OutOfMemoryError) as caught:
        embedder.embed_documents(["one text"])
    assert caught.value is error
    assert attempts == [(1, True)]


NOT_OOM = pytest.mark.parametrize(
    "error",
    [
        RuntimeError("mat1 and mat2 shapes cannot be multiplied (8x32 and 64x32)"),
        ValueError("out of memory"),  # the words, but not an allocator failure
        KeyError("input_ids"),
    ],
    ids=["runtime-error", "value-error", "key-error"],
)


@NOT_OOM
def test_other_embedder_errors_surface_unchanged_and_nothing_is_cached(
    tiny_embedder_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    expected = BGEEmbedder(tiny_embedder_path, device="cpu", batch_size=2).embed_documents(TEXTS)
    embedder = BGEEmbedder(tiny_embedder_path, device="cpu", batch_size=2, cache_dir=tmp_path)
    model = _loaded_model(embedder).model
    attempts = _inject(model, monkeypatch, lambda call, *_: error if call == 1 else None)  # the second batch

    with pytest.raises(type(error)) as caught:
        embedder.embed_documents(TEXTS)

    assert caught.value is error  # the same object: not wrapped, not retried
    assert [failed for _, failed in attempts] == [False, True]
    with sqlite3.connect(tmp_path / FILE_NAME) as connection:
        assert connection.execute("SELECT count(*) FROM vectors").fetchone() == (0,)  # not even the first batch
    monkeypatch.undo()
    np.testing.assert_allclose(embedder.embed_documents(TEXTS), expected, atol=1e-6)


@NOT_OOM
def test_other_reranker_errors_surface_unchanged(
    tiny_reranker_path: str, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    reranker = BGEReranker(tiny_reranker_path, device="cpu", batch_size=2)
    attempts = _inject(_loaded_model(reranker).model, monkeypatch, lambda *_: error)
    with pytest.raises(type(error)) as caught:
        reranker.rank(QUERY, TEXTS)
    assert caught.value is error
    assert len(attempts) == 1


# A model that cannot be had: one clear error


def _core_embedder(model: str) -> None:
    BGEEmbedder(model, device="cpu").embed_query("hi")


def _core_reranker(model: str) -> None:
    BGEReranker(model, device="cpu").rank("hi", ["a", "b"])


def _langchain_embeddings(model: str) -> None:
    from bge_integrations.langchain import BGEEmbeddings

    BGEEmbeddings(model_name=model, device="cpu").embed_documents(["a"])


def _langchain_rerank(model: str) -> None:
    from langchain_core.documents import Document

    from bge_integrations.langchain import BGERerank

    BGERerank(model_name=model, device="cpu").compress_documents([Document(page_content="a")], "hi")


def _llama_index_embedding(model: str) -> None:
    from bge_integrations.llama_index import BGEEmbedding

    BGEEmbedding(model, device="cpu").get_query_embedding("hi")


def _llama_index_rerank(model: str) -> None:
    from llama_index.core.schema import NodeWithScore, TextNode

    from bge_integrations.llama_index import BGERerank

    BGERerank(model=model, device="cpu").postprocess_nodes([NodeWithScore(node=TextNode(text="a"))], query_str="hi")


def _haystack_text_embedder(model: str) -> None:
    from bge_integrations.haystack import BGETextEmbedder

    BGETextEmbedder(model=model, device="cpu").run(text="hi")


def _haystack_document_embedder(model: str) -> None:
    from haystack import Document

    from bge_integrations.haystack import BGEDocumentEmbedder

    BGEDocumentEmbedder(model=model, device="cpu", progress_bar=False).run(documents=[Document(content="a")])


def _haystack_ranker(model: str) -> None:
    from bge_integrations.haystack import BGERanker

    BGERanker(model=model, device="cpu").warm_up()


USERS = pytest.mark.parametrize(
    "use",
    [
        _core_embedder,
        _core_reranker,
        _langchain_embeddings,
        _langchain_rerank,
        _llama_index_embedding,
        _llama_index_rerank,
        _haystack_text_embedder,
        _haystack_document_embedder,
        _haystack_ranker,
    ],
    ids=lambda use: use.__name__.strip("_"),
)


def _assert_one_clear_error(error: BaseException, *named: str) -> None:
    assert isinstance(error, ModelUnavailableError)
    assert isinstance(error, OSError)  # what code catching transformers' own error expects
    message = str(error)
    assert len(message.splitlines()) == 1
    for name in named:
        assert name in message
    assert error.__cause__ is None
    assert error.__suppress_context__  # the hub's error is kept (__context__) but not printed
    printed = "".join(traceback.format_exception(error))
    assert "During handling" not in printed
    for library in ("huggingface_hub", "transformers", "sentence_transformers"):
        assert f"site-packages/{library}/" not in printed  # no frame of the hub's or loaders' code


@USERS
def test_a_missing_local_path_is_one_clear_error(use: Callable[[str], None], tmp_path: Path) -> None:
    missing = str(tmp_path / "models" / "bge-small-en-v1.5")
    with pytest.raises(ModelUnavailableError) as caught:
        use(missing)
    _assert_one_clear_error(caught.value, f"no model folder at {missing!r}")
    assert REGISTRY.loaded_keys() == []


@USERS
def test_a_hub_model_not_cached_while_offline_is_one_clear_error(use: Callable[[str], None]) -> None:
    # conftest sets HF_HUB_OFFLINE=1 before the hub library loads.
    with pytest.raises(ModelUnavailableError) as caught:
        use("BAAI/bge-not-cached-anywhere")
    _assert_one_clear_error(caught.value, "'BAAI/bge-not-cached-anywhere'", "HF_HUB_OFFLINE=1")


@pytest.mark.parametrize("model", ["{tmp}/no-such-model", "BAAI/bge-not-cached-anywhere"])
def test_flag_compat_with_a_cache_dir_gives_the_same_clear_error(model: str, tmp_path: Path) -> None:
    from bge_integrations.compat import FlagModel, FlagReranker

    for cls in (FlagModel, FlagReranker):
        with pytest.raises(ModelUnavailableError) as caught:
            cls(model.format(tmp=tmp_path), cache_dir=str(tmp_path / "hub-cache"))
        _assert_one_clear_error(caught.value, repr(model.format(tmp=tmp_path)))
        if "/no-such-model" not in model:
            assert str(tmp_path / "hub-cache") in str(caught.value)  # the cache it looked in


def test_a_file_where_a_model_folder_should_be(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"not a folder")
    with pytest.raises(ModelUnavailableError, match="is a file; pass a model folder or a hub id"):
        BGEEmbedder(str(weights), device="cpu").embed_query("hi")


def test_a_folder_that_does_not_load_keeps_its_own_error(tmp_path: Path) -> None:
    (tmp_path / "empty-model").mkdir()
    with pytest.raises(Exception) as caught:  # noqa: PT011 - whatever transformers says about the folder
        BGEEmbedder(str(tmp_path / "empty-model"), device="cpu").embed_query("hi")
    assert not isinstance(caught.value, ModelUnavailableError)


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--reranker", "none", "--model"],
        ["demo", "--model", "{embedder}", "--reranker"],
        ["embed", "{corpus}", "{out}", "--model"],
    ],
    ids=["demo-embedder", "demo-reranker", "embed"],
)
def test_cli_with_a_missing_model_exits_with_one_clear_line(
    argv: list[str], tmp_path: Path, tiny_embedder_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"id": 1, "text": "pandas"}\n')
    missing = str(tmp_path / "no-such-model")
    values = {"embedder": tiny_embedder_path, "corpus": str(corpus), "out": str(tmp_path / "out")}
    args = [arg.format(**values) for arg in argv]
    assert main([*args, missing, "--device", "cpu"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"bge-integrations {args[0]}: error: no model folder at {missing!r}")
    assert "Traceback" not in captured.err + captured.out


def test_cli_with_an_uncached_hub_model_offline_exits_with_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"id": 1, "text": "pandas"}\n')
    argv = ["embed", str(corpus), str(tmp_path / "out"), "--model", "BAAI/bge-not-cached-anywhere"]
    assert main([*argv, "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "Hugging Face hub cannot be reached" in err
    assert "Traceback" not in err


# A damaged cache file, a full disk: recomputed, never a wrong vector


def _filled_cache(embedder_path: str, folder: Path) -> list[list[float]]:
    """Embed TEXTS into a cache in folder; close it so that everything is in the main file."""
    vectors = BGEEmbedder(embedder_path, device="cpu", cache_dir=folder).embed_documents(TEXTS)
    shared_cache(folder).close()
    cache_module._SHARED.clear()  # the next embedder opens the file afresh, as a new process would
    assert not Path(f"{folder / FILE_NAME}-wal").exists()
    return vectors


def _damage_rows(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT key, data FROM vectors").fetchall()
        for key, data in rows[::2]:  # every other row: its data no longer matches its checksum
            flipped = bytes(data[:4]) + bytes([data[4] ^ 0x01]) + bytes(data[5:])
            connection.execute("UPDATE vectors SET data = ? WHERE key = ?", (flipped, key))
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _overwrite_the_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(7)
    start = len(data) // 2 - 2048
    data[start : start + 4096] = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()  # one whole page
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_damage_rows, _truncate, _overwrite_the_middle], ids=lambda d: d.__name__)
def test_a_damaged_cache_is_recomputed_with_a_warning_never_a_wrong_vector(
    damage: Callable[[Path], None], tiny_embedder_path: str, tmp_path: Path
) -> None:
    expected = _filled_cache(tiny_embedder_path, tmp_path)
    damage(tmp_path / FILE_NAME)
    with pytest.warns(CacheWarning):
        vectors = BGEEmbedder(tiny_embedder_path, device="cpu", cache_dir=tmp_path).embed_documents(TEXTS)
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    shared_cache(tmp_path).close()
    cache_module._SHARED.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = BGEEmbedder(tiny_embedder_path, device="cpu", cache_dir=tmp_path).embed_documents(TEXTS)
    assert not [w for w in caught if issubclass(w.category, CacheWarning)]  # repaired: no warning
    assert again == vectors


def test_a_really_full_disk_turns_the_cache_off_and_keeps_what_was_committed(
    tiny_embedder_path: str, tmp_path: Path
) -> None:
    texts = TEXTS + [f"one more text, number {i}" for i in range(300)]  # needs new pages
    embedder = BGEEmbedder(tiny_embedder_path, device="cpu", cache_dir=tmp_path)
    first = embedder.embed_documents(texts[:2])
    cache = shared_cache(tmp_path)
    connection = cache._connect()
    assert connection is not None
    (pages,) = connection.execute("PRAGMA page_count").fetchone()
    connection.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own SQLITE_FULL on the next page

    with pytest.warns(CacheWarning, match="turned off: database or disk is full"):
        vectors = embedder.embed_documents(texts)

    expected = BGEEmbedder(tiny_embedder_path, device="cpu").embed_documents(texts)
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    assert not cache.enabled
    cache.close()
    cache_module._SHARED.clear()
    reopened = shared_cache(tmp_path)
    namespace = reopened.namespace(embedder._cache_settings("", embedder._fingerprint(), query=False))
    stored = reopened.get(namespace, texts)
    assert [vector is not None for vector in stored] == [True, True] + [False] * (len(texts) - 2)  # nothing half-done
    np.testing.assert_array_equal(np.array(stored[:2]), np.array(first, dtype=np.float32))


def test_no_space_to_create_the_cache_file_turns_it_off(
    tiny_embedder_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = BGEEmbedder(tiny_embedder_path, device="cpu", cache_dir=tmp_path / "cache")
    embedder.warm_up()
    real_open = os.open

    def full_disk(path: Any, *args: Any, **kwargs: Any) -> int:
        if str(path).endswith(FILE_NAME):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", full_disk)
    with pytest.warns(CacheWarning, match="No space left on device"):
        vectors = embedder.embed_documents(TEXTS)
    monkeypatch.undo()
    np.testing.assert_allclose(vectors, BGEEmbedder(tiny_embedder_path, device="cpu").embed_documents(TEXTS), atol=1e-6)


KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    from bge_integrations.core.cache import EmbeddingCache

    folder, namespace, dim = sys.argv[1], bytes.fromhex(sys.argv[2]), int(sys.argv[3])
    texts = sys.stdin.read().split("\\x1e")
    cache = EmbeddingCache(folder)
    connection = cache._connect()
    connection.execute("PRAGMA cache_size = 2")  # dirty pages spill into the WAL before the commit
    steps = []

    def die_mid_transaction():
        steps.append(1)
        if len(steps) == 500:
            os.kill(os.getpid(), signal.SIGKILL)
        return 0

    connection.set_progress_handler(die_mid_transaction, 100)
    filler = [f"filler {i}" for i in range(20000)]
    wrong = np.full((len(texts) + len(filler), dim), 7.0, dtype=np.float32)  # wrong vectors, valid checksums
    cache.put(namespace, texts + filler, wrong)
    print("the writer was not killed")
    """
)


def test_a_writer_killed_mid_transaction_leaves_no_wrong_vector(tiny_embedder_path: str, tmp_path: Path) -> None:
    embedder = BGEEmbedder(tiny_embedder_path, device="cpu", cache_dir=tmp_path)
    expected = embedder.embed_documents(TEXTS)
    namespace = shared_cache(tmp_path).namespace(embedder._cache_settings("", embedder._fingerprint(), query=False))

    writer = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(tmp_path), namespace.hex(), str(len(expected[0]))],
        input="\x1e".join(TEXTS),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert writer.returncode == -signal.SIGKILL, writer.stderr
    assert Path(f"{tmp_path / FILE_NAME}-wal").stat().st_size > 0  # it got as far as writing pages

    shared_cache(tmp_path).close()
    cache_module._SHARED.clear()
    fresh = BGEEmbedder(tiny_embedder_path, device="cpu", cache_dir=tmp_path)
    stored = shared_cache(tmp_path).get(namespace, TEXTS)
    assert all(vector is not None for vector in stored)  # the committed vectors, intact
    np.testing.assert_array_equal(np.array(stored), np.array(expected, dtype=np.float32))
    assert shared_cache(tmp_path).get(namespace, ["filler 0"]) == [None]
    assert fresh.embed_documents(TEXTS) == expected


# An interrupted embed run resumes


KILLED_EMBED = textwrap.dedent(
    """
    import os, signal, sys
    from bge_integrations.bulk import files
    from bge_integrations.cli import main

    real_write = files._write_part
    written = []

    def write_then_die(output, index, table, metadata):
        written.append(index)
        if len(written) == 3:  # killed for real while writing the third part
            (output / f".part-{index:05d}.parquet.{os.getpid()}.tmp").write_bytes(b"PAR1 half a part")
            os.kill(os.getpid(), signal.SIGKILL)
        return real_write(output, index, table, metadata)

    files._write_part = write_then_die
    sys.exit(main(sys.argv[1:]))
    """
)


def test_an_embed_run_killed_mid_way_resumes_to_the_uninterrupted_result(
    tiny_embedder_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": text}) + "\n" for i, text in enumerate(TEXTS)))
    options = ["--model", tiny_embedder_path, "--device", "cpu", "--part-size", "2", "--no-progress"]
    assert main(["embed", str(corpus), str(tmp_path / "whole"), *options]) == 0

    out = tmp_path / "resumed"
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_EMBED, "embed", str(corpus), str(out), *options],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert sorted(path.name for path in out.glob("part-*.parquet")) == ["part-00000.parquet", "part-00001.parquet"]
    capsys.readouterr()

    assert main(["embed", str(corpus), str(out), *options]) == 0

    assert "(3 written, 2 already done)" in capsys.readouterr().out
    assert not list(out.glob(".*"))  # the half-written temporary file is gone
    assert pq.read_table(out).equals(pq.read_table(tmp_path / "whole"))
