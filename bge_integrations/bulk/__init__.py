"""Corpus-scale embedding and reranking: batch functions, engines, and files to Parquet parts.

Needs pyarrow (``pip install "bge-integrations[ray]"`` brings it, with Ray). This package never
imports Ray: ``bge_integrations.ray`` builds on it, and its ``RayEngine`` is passed in as ``engine``.

Example:
    >>> from bge_integrations.bulk import embed_file
    >>> embed_file("corpus.jsonl", "vectors/", model="BAAI/bge-small-en-v1.5")  # doctest: +SKIP
    >>> from bge_integrations.ray import RayEngine
    >>> engine = RayEngine(num_actors=4)
    >>> embed_file("corpus.jsonl", "vectors/", model="BAAI/bge-small-en-v1.5", engine=engine)  # doctest: +SKIP

"""

from __future__ import annotations

try:
    import pyarrow  # noqa: F401
except ImportError as exc:
    msg = 'bge_integrations.bulk needs pyarrow: pip install "bge-integrations[ray]" (or pip install pyarrow)'
    raise ImportError(msg) from exc

from bge_integrations.bulk.batches import BadRow, BadRowsError, EmbedBatch, OnBadRows, RerankBatch, Role
from bge_integrations.bulk.engines import BatchJob, Engine, LocalEngine
from bge_integrations.bulk.files import EmbedFileResult, EngineName, embed_file, read_manifest

__all__ = [
    "BadRow",
    "BadRowsError",
    "BatchJob",
    "EmbedBatch",
    "EmbedFileResult",
    "Engine",
    "EngineName",
    "LocalEngine",
    "OnBadRows",
    "RerankBatch",
    "Role",
    "embed_file",
    "read_manifest",
]
