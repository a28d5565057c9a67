"""A persistent embedding cache: re-embedding an unchanged corpus costs a lookup.

One SQLite file per folder. A vector is stored under a key that holds everything that decides
it: the model (hub id and revision, or for a local folder a fingerprint of its weight files),
pooling, normalisation, max length, the role (query or document), the instruction and the
text. Each row carries a checksum; a row that does not match it, or a file that SQLite cannot
read, is treated as missing and recomputed, never returned. A disk that is full, read-only or
gone turns the cache off with one warning; embedding goes on. The file is created readable by
its owner only, and every write is one SQLite transaction (all or nothing).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bge_integrations.core.notices import warn_user

FILE_NAME = "bge-embeddings.sqlite3"
_SCHEMA = "CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, dim INTEGER, crc INTEGER, data BLOB)"
_CHUNK = 500


class CacheWarning(UserWarning):
    """The embedding cache could not be used; vectors are computed instead."""


def model_fingerprint(model_name: str, revision: str | None) -> str:
    """What identifies the weights: hub id and revision, or a local folder's weight files.

    For a local folder, the names, sizes and modification times of its weight and config files:
    a model retrained in place gets new keys.

    Example:
        >>> model_fingerprint("BAAI/bge-small-en-v1.5", "main")
        'BAAI/bge-small-en-v1.5@main'

    """
    folder = Path(model_name)
    if not folder.is_dir():
        return f"{model_name}@{revision or 'main'}"
    entries = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in {".safetensors", ".bin", ".json", ".pt", ".onnx", ".xml"}:
            stat = path.stat()
            entries.append(f"{path.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}")
    digest = hashlib.sha256("\n".join(entries).encode()).hexdigest()[:32]
    return f"{folder.resolve()}#{digest}"


class EmbeddingCache:
    """Vectors stored on disk by (settings, role, instruction, text).

    Args:
        folder: Where the cache file lives (created, owner-only, if missing).

    Example:
        >>> import tempfile
        >>> cache = EmbeddingCache(tempfile.mkdtemp())
        >>> namespace = cache.namespace({"model": "m", "role": "document"})
        >>> cache.put(namespace, ["hello"], np.ones((1, 3), dtype=np.float32))
        >>> cache.get(namespace, ["hello", "other"])[0].tolist(), cache.get(namespace, ["other"])[0]
        ([1.0, 1.0, 1.0], None)

    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.path = self.folder / FILE_NAME
        self.enabled = True
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.folder)!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"folder": self.folder}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["folder"])  # type: ignore[misc]

    @staticmethod
    def namespace(settings: dict[str, Any]) -> bytes:
        """A prefix for keys, from everything (but the text) that decides a vector."""
        return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).digest()

    def get(self, namespace: bytes, texts: Sequence[str]) -> list[np.ndarray | None]:
        """The stored vector of each text, or None where there is none (or it is damaged)."""
        found: list[np.ndarray | None] = [None] * len(texts)
        if not texts or not self.enabled:
            return found
        keys = [_key(namespace, text) for text in texts]
        rows: dict[bytes, tuple[int, int, bytes]] = {}
        with self._lock:
            connection = self._connect()
            if connection is None:
                return found
            try:
                for start in range(0, len(keys), _CHUNK):
                    chunk = keys[start : start + _CHUNK]
                    marks = ",".join("?" * len(chunk))
                    query = f"SELECT key, dim, crc, data FROM vectors WHERE key IN ({marks})"  # noqa: S608 - only "?"
                    for key, dim, crc, data in connection.execute(query, chunk):
                        rows[bytes(key)] = (dim, crc, bytes(data))
            except sqlite3.DatabaseError as error:
                self._reset(error)
                return found
        for index, key in enumerate(keys):
            row = rows.get(key)
            if row is None:
                continue
            dim, crc, data = row
            if len(data) != 4 * dim or zlib.crc32(data) != crc:
                continue  # damaged: recomputed, and overwritten by put()
            found[index] = np.frombuffer(data, dtype=np.float32)
        return found

    def put(self, namespace: bytes, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Store one vector per text (float32), in one transaction."""
        if not texts or not self.enabled:
            return
        rows = []
        for text, vector in zip(texts, np.asarray(vectors, dtype=np.float32), strict=True):
            data = vector.tobytes()
            rows.append((_key(namespace, text), len(vector), zlib.crc32(data), data))
        with self._lock:
            connection = self._connect()
            if connection is None:
                return
            try:
                with connection:
                    connection.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)", rows)
            except sqlite3.DatabaseError as error:
                self._reset(error)

    def clear(self) -> None:
        """Delete every stored vector."""
        with self._lock:
            connection = self._connect()
            if connection is not None:
                with connection:
                    connection.execute("DELETE FROM vectors")

    def close(self) -> None:
        """Close the file (it reopens on next use)."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _connect(self) -> sqlite3.Connection | None:
        if self._connection is not None:
            return self._connection
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not self.path.exists():
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            connection = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(_SCHEMA)
            connection.execute("SELECT count(*) FROM vectors LIMIT 1").fetchone()
        except sqlite3.DatabaseError as error:
            return self._recreate(error)
        except OSError as error:
            self._disable(error)
            return None
        self._connection = connection
        return connection

    def _recreate(self, error: Exception) -> sqlite3.Connection | None:
        """An unreadable file: move it aside and start an empty one."""
        try:
            self.path.replace(self.path.with_suffix(".corrupt"))
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        except OSError:
            self._disable(error)
            return None
        warn_user(f"embedding cache {str(self.path)!r} was unreadable ({error}); starting a new one", CacheWarning)
        try:
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            connection = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            connection.execute(_SCHEMA)
        except (OSError, sqlite3.DatabaseError) as second:
            self._disable(second)
            return None
        self._connection = connection
        return connection

    def _reset(self, error: sqlite3.DatabaseError) -> None:
        message = str(error).lower()
        if isinstance(error, sqlite3.OperationalError) and ("full" in message or "readonly" in message):
            self._disable(error)
            return
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._recreate(error)

    def _disable(self, error: Exception) -> None:
        self.enabled = False
        warn_user(f"embedding cache {str(self.path)!r} turned off: {error}; vectors are computed", CacheWarning)


_SHARED: dict[Path, EmbeddingCache] = {}
_SHARED_LOCK = threading.Lock()


def shared_cache(folder: str | os.PathLike[str]) -> EmbeddingCache:
    """The process-wide cache for folder: every embedder using that folder shares one file handle.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> shared_cache(folder) is shared_cache(folder)
        True

    """
    path = Path(folder).expanduser().resolve()
    with _SHARED_LOCK:
        cache = _SHARED.get(path)
        if cache is None:
            cache = _SHARED[path] = EmbeddingCache(path)
        return cache


def _key(namespace: bytes, text: str) -> bytes:
    return hashlib.sha256(namespace + text.encode("utf-8", "surrogatepass")).digest()


__all__ = ["CacheWarning", "EmbeddingCache", "model_fingerprint", "shared_cache"]
