"""The persistent embedding cache: same vectors, no model work on a rerun, never a wrong vector."""

from __future__ import annotations

import os
import sqlite3
import stat
import warnings
from pathlib import Path

import numpy as np
import pytest

from bge_integrations import BGEEmbedder
from bge_integrations.core.cache import FILE_NAME, CacheWarning, EmbeddingCache, model_fingerprint
from bge_integrations.core.loading import REGISTRY

TEXTS = ["pandas live in China", "Paris is in France", "pandas live in China", "", "mitochondria " * 40]


def _count_model_calls(embedder: BGEEmbedder, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    loaded = embedder._loaded()
    calls: list[int] = []
    embed = loaded.embed

    def counting(texts: list[str], *args: object, **kwargs: object) -> object:
        calls.append(len(texts))
        return embed(texts, *args, **kwargs)

    monkeypatch.setattr(loaded, "embed", counting)
    return calls


def test_second_pass_reads_identical_vectors_without_the_model(
    tiny_embedder_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = BGEEmbedder(tiny_embedder_path, device="cpu", cache_dir=tmp_path).embed_documents(TEXTS)
    REGISTRY.clear()
    again = BGEEmbedder(tiny_embedder_path, device="cpu", cache_dir=tmp_path)
    assert again.embed_documents(TEXTS) == first  # bit for bit
    assert REGISTRY.loaded_keys() == []  # nothing loaded at all
    assert first == BGEEmbedder(tiny_embedder_path, device="cpu").embed_documents(TEXTS)


def test_only_new_texts_are_computed(tiny_embedder_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    embedder = BGEEmbedder(tiny_embedder_path, device="cpu", cache_dir=tmp_path)
    embedder.embed_documents(TEXTS[:2])
    calls = _count_model_calls(embedder, monkeypatch)
    vectors = embedder.embed_documents(["new text", *TEXTS])
    assert calls == [3]  # "new text", "" and the long one; duplicates and stored ones are not recomputed
    np.testing.assert_allclose(
        vectors, BGEEmbedder(tiny_embedder_path, device="cpu").embed_documents(["new text", *TEXTS]), atol=1e-6
    )


def test_role_instruction_and_settings_are_part_of_the_key(tiny_embedder_path: str, tmp_path: Path) -> None:
    embedder = BGEEmbedder(tiny_embedder_path, device="cpu", cache_dir=tmp_path)
    documents = embedder.embed_documents(["pandas"])
    queries = embedder.embed_queries(["pandas"])
    assert documents != queries
    other_instruction = BGEEmbedder(tiny_embedder_path, device="cpu", cache_dir=tmp_path, query_instruction="Q: ")
    assert other_instruction.embed_queries(["pandas"]) != queries
    mean = BGEEmbedder(tiny_embedder_path, device="cpu", cache_dir=tmp_path, pooling="mean")
    assert mean.embed_documents(["pandas"]) != documents
    short = BGEEmbedder(tiny_embedder_path, device="cpu", cache_dir=tmp_path, max_length=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert short.embed_documents(["pandas " * 20]) != embedder.embed_documents(["pandas " * 20])


def test_a_retrained_local_model_gets_new_keys(tiny_embedder_path: str, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(tiny_embedder_path, copy)
    before = model_fingerprint(str(copy), None)
    weights = next(copy.glob("*.safetensors"))
    os.utime(weights, ns=(1, 1))
    assert model_fingerprint(str(copy), None) != before
    assert model_fingerprint("BAAI/bge-small-en-v1.5", None) != model_fingerprint("BAAI/bge-small-en-v1.5", "v2")


def test_file_is_owner_only(tiny_embedder_path: str, tmp_path: Path) -> None:
    BGEEmbedder(tiny_embedder_path, device="cpu", cache_dir=tmp_path / "c").embed_documents(["x"])
    mode = stat.S_IMODE((tmp_path / "c" / FILE_NAME).stat().st_mode)
    assert mode & 0o077 == 0
    assert stat.S_IMODE((tmp_path / "c").stat().st_mode) & 0o077 == 0


def test_a_damaged_row_is_recomputed_never_returned(tiny_embedder_path: str, tmp_path: Path) -> None:
    embedder = BGEEmbedder(tiny_embedder_path, device="cpu", cache_dir=tmp_path)
    right = embedder.embed_documents(["pandas"])
    with sqlite3.connect(tmp_path / FILE_NAME) as connection:
        ((data,),) = connection.execute("SELECT data FROM vectors").fetchall()
        flipped = bytes([data[0] ^ 0xFF]) + bytes(data[1:])
        connection.execute("UPDATE vectors SET data = ?", (flipped,))
    fresh = BGEEmbedder(tiny_embedder_path, device="cpu", cache_dir=tmp_path)
    fresh._cache.close()  # type: ignore[union-attr]
    assert fresh.embed_documents(["pandas"]) == right


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_an_unreadable_file_is_replaced(tiny_embedder_path: str, tmp_path: Path, damage: str) -> None:
    folder = tmp_path / "cache"
    right = BGEEmbedder(tiny_embedder_path, device="cpu", cache_dir=folder).embed_documents(TEXTS)
    from bge_integrations.core import cache as cache_module

    cache_module._SHARED.clear()
    path = folder / FILE_NAME
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    data = path.read_bytes()
    path.write_bytes(b"this is not a database" * 100 if damage == "garbage" else data[: len(data) // 3])
    with pytest.warns(CacheWarning):
        again = BGEEmbedder(tiny_embedder_path, device="cpu", cache_dir=folder).embed_documents(TEXTS)
    assert again == right


def test_a_full_disk_turns_the_cache_off_and_embedding_goes_on(
    tiny_embedder_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = BGEEmbedder(tiny_embedder_path, device="cpu", cache_dir=tmp_path)
    cache = embedder._cache
    assert cache is not None
    cache._connect()

    class FullDisk:
        def __init__(self, real: sqlite3.Connection) -> None:
            self.real = real

        def __enter__(self) -> FullDisk:
            return self

        def __exit__(self, *args: object) -> None:
            return None

        def executemany(self, *args: object) -> None:
            raise sqlite3.OperationalError("database or disk is full")

        def execute(self, *args: object) -> object:
            return self.real.execute(*args)

        def close(self) -> None:
            self.real.close()

    monkeypatch.setattr(cache, "_connection", FullDisk(cache._connection))  # type: ignore[arg-type]
    with pytest.warns(CacheWarning, match="turned off"):
        vectors = embedder.embed_documents(TEXTS)
    assert not cache.enabled
    assert vectors == BGEEmbedder(tiny_embedder_path, device="cpu").embed_documents(TEXTS)


def test_pickled_embedder_reopens_its_cache(tiny_embedder_path: str, tmp_path: Path) -> None:
    import pickle

    embedder = BGEEmbedder(tiny_embedder_path, device="cpu", cache_dir=tmp_path)
    vectors = embedder.embed_documents(["pandas"])
    copy = pickle.loads(pickle.dumps(embedder))
    assert copy.embed_documents(["pandas"]) == vectors


def test_cache_object_round_trip(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    namespace = cache.namespace({"model": "m"})
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
    cache.put(namespace, ["a", "b", "c"], vectors)
    got = cache.get(namespace, ["c", "x", "a"])
    assert got[1] is None
    np.testing.assert_array_equal(got[0], vectors[2])
    np.testing.assert_array_equal(got[2], vectors[0])
    assert cache.get(cache.namespace({"model": "other"}), ["a"]) == [None]
    cache.clear()
    assert cache.get(namespace, ["a"]) == [None]


COMMIT_A, COMMIT_B = "a" * 40, "b" * 40
HUB_ID = "acme/tiny-bge"


@pytest.fixture
def hub_cache(tiny_st_embedder_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A hub cache holding HUB_ID at two commits (B: other weights); refs/main names A."""
    import shutil

    from huggingface_hub import constants
    from safetensors.torch import load_file, save_file

    repo = tmp_path / "hub" / "models--acme--tiny-bge"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT_A)
    shutil.copytree(tiny_st_embedder_path, repo / "snapshots" / COMMIT_A)
    shutil.copytree(tiny_st_embedder_path, repo / "snapshots" / COMMIT_B)
    weights = repo / "snapshots" / COMMIT_B / "model.safetensors"
    save_file({name: tensor * 1.5 for name, tensor in load_file(weights).items()}, weights)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("SENTENCE_TRANSFORMERS_HOME", raising=False)
    return repo


def _vectors_at(hub_cache: Path, commit: str, texts: list[str]) -> list[list[float]]:
    """The vectors of the weights at commit, computed without any cache."""
    REGISTRY.clear()
    vectors = BGEEmbedder(str(hub_cache / "snapshots" / commit), device="cpu").embed_documents(texts)
    REGISTRY.clear()
    return vectors


def test_cached_commit_reads_the_hub_cache_refs(
    hub_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bge_integrations.core.checkpoints import cached_commit

    assert cached_commit(HUB_ID) == cached_commit(HUB_ID, "main") == COMMIT_A
    assert cached_commit(HUB_ID, COMMIT_B) == COMMIT_B  # a full hash is a commit already
    assert cached_commit(HUB_ID, "v2") is None  # no such ref here
    assert cached_commit("acme/never-downloaded") is None
    assert model_fingerprint(HUB_ID, None) == f"{HUB_ID}@{COMMIT_A}"
    assert model_fingerprint(HUB_ID, "v2") == f"{HUB_ID}@v2"
    assert model_fingerprint(HUB_ID, None, resolve=False) == f"{HUB_ID}@main"
    home = tmp_path / "st-home" / "models--acme--tiny-bge" / "refs"
    home.mkdir(parents=True)
    (home / "main").write_text(COMMIT_B + "\n")
    monkeypatch.setenv("SENTENCE_TRANSFORMERS_HOME", str(tmp_path / "st-home"))
    assert cached_commit(HUB_ID) == COMMIT_B  # where sentence-transformers keeps its models


def test_new_weights_on_a_hub_branch_are_not_served_from_the_cache(hub_cache: Path, tmp_path: Path) -> None:
    texts = ["pandas live in China", "Paris is in France"]
    at_a, at_b = _vectors_at(hub_cache, COMMIT_A, texts), _vectors_at(hub_cache, COMMIT_B, texts)
    assert at_a != at_b
    assert BGEEmbedder(HUB_ID, device="cpu", cache_dir=tmp_path / "c").embed_documents(texts) == at_a
    (hub_cache / "refs" / "main").write_text(COMMIT_B)  # new weights pushed to main, then downloaded
    REGISTRY.clear()  # a new process
    assert BGEEmbedder(HUB_ID, device="cpu", cache_dir=tmp_path / "c").embed_documents(texts) == at_b
    (hub_cache / "refs" / "main").write_text(COMMIT_A)  # and back: A's vectors are still stored
    REGISTRY.clear()
    loads = REGISTRY.load_count
    assert BGEEmbedder(HUB_ID, device="cpu", cache_dir=tmp_path / "c").embed_documents(texts) == at_a
    assert REGISTRY.load_count == loads  # read from the cache, no model loaded


def test_the_loaded_weights_decide_which_vectors_are_read(hub_cache: Path, tmp_path: Path) -> None:
    texts = ["pandas live in China", "Paris is in France"]
    at_a = _vectors_at(hub_cache, COMMIT_A, texts)
    embedder = BGEEmbedder(HUB_ID, device="cpu", cache_dir=tmp_path / "c")
    np.testing.assert_allclose(embedder.embed_documents(texts[:1]), at_a[:1], atol=1e-6)  # A is loaded here
    # Another process moves main to B and stores B's vectors; this one still holds A in memory.
    (hub_cache / "refs" / "main").write_text(COMMIT_B)
    cache = EmbeddingCache(tmp_path / "c")
    cache.put(
        cache.namespace(embedder._cache_settings("", f"{HUB_ID}@{COMMIT_B}", query=False)), texts, np.ones((2, 32))
    )
    cache.close()
    np.testing.assert_allclose(embedder.embed_documents(texts), at_a, atol=1e-6)  # not B's stored ones


def test_a_load_that_brings_other_weights_looks_up_again(
    hub_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = ["pandas live in China", "Paris is in France"]
    at_b = _vectors_at(hub_cache, COMMIT_B, texts)
    embedder = BGEEmbedder(HUB_ID, device="cpu", cache_dir=tmp_path / "c")
    cache = EmbeddingCache(tmp_path / "c")
    cache.put(
        cache.namespace(embedder._cache_settings("", f"{HUB_ID}@{COMMIT_A}", query=False)), texts[:1], np.ones((1, 32))
    )
    cache.close()
    # The lookup still sees A (refs read before the hub moved main to B); the load then brings B.
    (hub_cache / "refs" / "main").write_text(COMMIT_B)
    monkeypatch.setattr(embedder, "_fingerprint", lambda: f"{HUB_ID}@{COMMIT_A}")
    assert embedder.embed_documents(texts) == at_b  # A's stored vector is not mixed in


def test_cached_commit_of_what_is_not_a_hub_id_or_ref_is_unknown(hub_cache: Path) -> None:
    from bge_integrations.core.checkpoints import cached_commit

    for model in ("/nonexistent/x", "a/b/c", "models/my--model"):
        assert cached_commit(model) is None
    for revision in ("../../../etc/passwd", "/etc/passwd", "refs/../../main"):
        assert cached_commit(HUB_ID, revision) is None


def test_a_missing_local_folder_with_a_cache_is_the_usual_error(tmp_path: Path) -> None:
    from bge_integrations.core.loading import ModelUnavailableError

    with pytest.raises(ModelUnavailableError, match="/nonexistent/x"):
        BGEEmbedder("/nonexistent/x", device="cpu", cache_dir=tmp_path).embed_documents(["a"])
