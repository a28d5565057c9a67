"""A persistent embedding cache: re-embedding an unchanged corpus costs a lookup.

One SQLite file per folder. A vector is stored under a key that holds everything that decides
it: the model (hub id and the commit its revision names in the local hub cache, or for a local
folder a fingerprint of its weight files),
pooling, normalisation, max length, the role (query or document), the instruction and the
text. Each row carries a checksum; a row that does not match it, or a file that SQLite cannot
read, is treated as missing and recomputed, never returned. A disk that is full, read-only or
gone turns the cache off with one warning; embedding goes on. The folder (and any parent it
creates) and the file are created owner-only (0o700, 0o600; SQLite gives its ``-wal`` and
``-shm`` files the file's mode); a file of ours that others may write is made owner-only, and one
owned by another user is refused (whoever can write it could store wrong vectors with valid
checksums). Every write is one SQLite transaction in a write-ahead log: all or nothing.

What can go wrong, and what happens:

* A damaged row (bad checksum, wrong length, NULL or TEXT where the vector's bytes belong): read
  as missing, recomputed and overwritten, with a :class:`CacheWarning`.
* A damaged or truncated file (SQLite reports it corrupt, or not a database): moved aside to
  ``bge-embeddings.corrupt`` with a :class:`CacheWarning`, and an empty cache starts. If that
  happens twice in one process, the cache is turned off instead.
* An environmental failure (disk full, read-only, I/O error, locked past the 30 s timeout by
  another process): the cache is turned off for this process with a :class:`CacheWarning`; the
  file is left as it is (it may be fine, and other processes may be using it).
* A process killed in the middle of a write: the journal (WAL) keeps the last committed state;
  the unfinished transaction is never seen.
"""

from __future__ import annotations

import contextlib
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

from bge_integrations.core.checkpoints import cached_commit
from bge_integrations.core.notices import warn_user

FILE_NAME = "bge-embeddings.sqlite3"
_SCHEMA = "CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, dim INTEGER, crc INTEGER, data BLOB)"
_CHUNK = 500
_WEIGHT_SUFFIXES = frozenset({".safetensors", ".bin", ".json", ".pt", ".onnx", ".xml"})


class CacheWarning(UserWarning):
    """The embedding cache could not be used; vectors are computed instead."""


def model_fingerprint(
    model_name: str, revision: str | None, *, resolve: bool = True, cache_folder: str | None = None
) -> str:
    """What identifies the weights: hub id and commit, or a local folder's weight files.

    For a hub id, the commit that revision (``main`` if None) names in the local hub cache
    (:func:`~bge_integrations.core.checkpoints.cached_commit`): new weights pushed to a branch
    get new keys. Where the cache does not say (the model was never downloaded here), or with
    ``resolve=False``, the revision as given. For a local folder, the names, sizes and
    modification times of its weight and config files: a model retrained in place gets new keys.

    Example:
        >>> model_fingerprint("BAAI/bge-small-en-v1.5", "v1", resolve=False)
        'BAAI/bge-small-en-v1.5@v1'

    """
    folder = Path(model_name)
    if not folder.is_dir():
        commit = cached_commit(model_name, revision, cache_folder=cache_folder) if resolve else None
        return f"{model_name}@{commit or revision or 'main'}"
    paths: list[Path] = []
    if is_model_folder(folder):  # never walk a folder that is no model (/usr would take a minute, / fail)
        for root, _, files in os.walk(folder):  # links to folders are not followed; unreadable ones skipped
            paths.extend(Path(root, name) for name in files if Path(name).suffix in _WEIGHT_SUFFIXES)
    entries = []
    for path in sorted(paths):
        with contextlib.suppress(OSError):
            if path.is_file():
                stat = path.stat()
                entries.append(f"{path.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}")
    digest = hashlib.sha256("\n".join(entries).encode()).hexdigest()[:32]
    return f"{folder.resolve()}#{digest}"


def is_model_folder(folder: str | os.PathLike[str]) -> bool:
    """Whether folder holds a model at its top: a ``config.json`` (transformers) or ``modules.json``.

    Example:
        >>> is_model_folder("/usr")
        False

    """
    path = Path(folder).expanduser()
    return (path / "config.json").is_file() or (path / "modules.json").is_file()


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
        self._recreated = False

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
        rows: dict[bytes, tuple[Any, Any, Any]] = {}
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
                        rows[bytes(key)] = (dim, crc, data)
            except sqlite3.DatabaseError as error:
                self._reset(error)
                return found
        damaged = 0
        for index, key in enumerate(keys):
            row = rows.get(key)
            if row is None:
                continue
            dim, crc, data = row
            # Anything but a BLOB of dim float32 with its checksum (NULL, TEXT, a number: a file
            # edited or damaged by hand) is damage, never a TypeError on every call.
            if (
                not isinstance(data, bytes)
                or not isinstance(dim, int)
                or len(data) != 4 * dim
                or zlib.crc32(data) != crc
            ):
                damaged += 1  # recomputed, and overwritten by put()
                continue
            found[index] = np.frombuffer(data, dtype=np.float32)
        if damaged:
            msg = f"embedding cache {str(self.path)!r}: {damaged} damaged entries ignored; they are recomputed"
            warn_user(msg, CacheWarning)
        return found

    def put(self, namespace: bytes, texts: Sequence[str], vectors: np.ndarray | Sequence[np.ndarray]) -> None:
        """Store one vector per text (float32; rows may differ in length), in one transaction."""
        if not texts or not self.enabled:
            return
        rows = []
        for text, row in zip(texts, vectors, strict=True):
            vector = np.asarray(row, dtype=np.float32)
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
            if connection is None:
                return
            try:
                with connection:
                    connection.execute("DELETE FROM vectors")
            except sqlite3.DatabaseError as error:
                self._reset(error)

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
            _make_private_folder(self.folder)
            self._connection = self._open()
        except sqlite3.DatabaseError as error:
            if _environmental(error):
                self._disable(error)
                return None
            return self._recreate(error)
        except OSError as error:
            self._disable(error)
            return None
        return self._connection

    def _open(self) -> sqlite3.Connection:
        """Open (creating it owner-only if missing) and check the file; raises what SQLite raises."""
        if not self.path.exists():
            # Owner-only before SQLite writes a byte; O_EXCL: another process creating it meanwhile is fine.
            with contextlib.suppress(FileExistsError):
                os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        _check_private_file(self.path)
        connection = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        try:
            connection.execute("PRAGMA journal_mode=WAL")  # the -wal and -shm files get the file's mode
            connection.execute(_SCHEMA)
            connection.execute("SELECT count(*) FROM vectors LIMIT 1").fetchone()
        except sqlite3.DatabaseError:
            connection.close()
            raise
        return connection

    def _recreate(self, error: Exception) -> sqlite3.Connection | None:
        """An unreadable file: move it aside and start an empty one (once per process)."""
        if self._recreated:
            self._disable(error)
            return None
        self._recreated = True
        try:
            self.path.replace(self.path.with_suffix(".corrupt"))
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        except OSError:
            self._disable(error)
            return None
        warn_user(f"embedding cache {str(self.path)!r} was unreadable ({error}); starting a new one", CacheWarning)
        try:
            self._connection = self._open()
        except (OSError, sqlite3.DatabaseError) as second:
            self._disable(second)
            return None
        return self._connection

    def _reset(self, error: sqlite3.DatabaseError) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if _environmental(error):
            self._disable(error)
            return
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


def _make_private_folder(folder: Path) -> None:
    """Create folder and any missing parents, owner-only (``mkdir -p`` would give parents the umask's mode)."""
    missing = [path for path in (folder, *folder.parents) if not path.exists()]
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)


def _check_private_file(path: Path) -> None:
    """Refuse a cache file another user owns; make one of ours that others may write owner-only.

    Anyone who can write the file could store vectors with valid checksums (wrong vectors).

    Raises:
        PermissionError: If the file belongs to another user.

    """
    status = path.stat()
    getuid = getattr(os, "getuid", None)
    if getuid is None:  # Windows: ACLs, not modes
        return
    if status.st_uid != getuid():
        msg = f"{str(path)!r} belongs to another user (uid {status.st_uid}); not used as an embedding cache"
        raise PermissionError(msg)
    if status.st_mode & 0o077:
        path.chmod(0o600)
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{path}{suffix}").chmod(0o600)


def _environmental(error: sqlite3.DatabaseError) -> bool:
    """Whether error is about the disk or other processes (full, read-only, locked), not the file's content.

    SQLite reports a damaged file as ``DatabaseError`` ("database disk image is malformed",
    "file is not a database"); a "disk I/O error" can be either, and counts as damage.
    """
    if not isinstance(error, sqlite3.OperationalError):
        return False
    message = str(error).lower()
    words = ("full", "readonly", "read-only", "locked", "busy", "unable to open", "interrupted")
    return any(word in message for word in words)


def _key(namespace: bytes, text: str) -> bytes:
    return hashlib.sha256(namespace + text.encode("utf-8", "surrogatepass")).digest()


__all__ = ["CacheWarning", "EmbeddingCache", "is_model_folder", "model_fingerprint", "shared_cache"]
