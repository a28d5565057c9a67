"""BGE embedding and reranking at corpus scale on Ray: Ray Data datasets, or Ray actors for files.

``embed_dataset`` adds a vector column to a Ray Dataset and ``rerank_dataset`` a score column to
a dataset of (query, passage) pairs, each with a pool of actors holding one model apiece;
``RayEngine`` runs ``bge_integrations.bulk.embed_file`` on Ray actors. The package is named
after Ray, like the adapters after their frameworks; inside it, ``import ray`` is Ray itself
(absolute imports).

Example:
    >>> import ray
    >>> from bge_integrations.ray import embed_dataset
    >>> ds = ray.data.read_parquet("s3://bucket/passages/")  # doctest: +SKIP
    >>> vectors = embed_dataset(ds, model="BAAI/bge-base-en-v1.5", num_actors=8, num_gpus_per_actor=1)  # doctest: +SKIP
    >>> vectors.write_parquet("s3://bucket/vectors/")  # doctest: +SKIP

"""

from __future__ import annotations

try:
    import ray.data  # noqa: F401
except ImportError as exc:
    msg = 'bge_integrations.ray needs Ray Data: pip install "bge-integrations[ray]"'
    raise ImportError(msg) from exc

from bge_integrations.ray.datasets import embed_dataset, rerank_dataset
from bge_integrations.ray.engine import RayEngine

__all__ = ["RayEngine", "embed_dataset", "rerank_dataset"]
