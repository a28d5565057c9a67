"""Engines: where a batch function runs over a stream of tables.

An engine takes a :class:`BatchJob` (which batch function to build, with which arguments) and
an iterable of ``(key, table)`` pairs, and yields ``(key, result)`` pairs as results are ready.
:class:`LocalEngine` runs in this process, in order; ``bge_integrations.ray.RayEngine`` runs a
pool of Ray actors, each building the batch function once. ``embed_file`` works with either.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import pyarrow as pa

from bge_integrations.bulk.batches import EmbedBatch, RerankBatch

K = TypeVar("K")


@dataclass(frozen=True)
class BatchJob:
    """A batch function to build where the work runs: ``function(model, **arguments)``.

    Args:
        function: :class:`~bge_integrations.bulk.EmbedBatch` or :class:`~bge_integrations.bulk.RerankBatch`.
        model: Hub id or local path of the model.
        arguments: Keyword arguments of the batch function.

    Example:
        >>> job = BatchJob(EmbedBatch, "BAAI/bge-small-en-v1.5", {"role": "query", "settings": {"device": "cpu"}})
        >>> job.check()  # validates without loading the model

    """

    function: type[EmbedBatch] | type[RerankBatch]
    model: str
    arguments: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        # The arguments may hold a Hugging Face token (settings={"token": ...}): never shown.
        return f"BatchJob({self.function.__name__}, {self.model!r}, {_redacted(self.arguments)!r})"

    def check(self) -> None:
        """Validate the arguments here, without loading the model."""
        self.function.check(self.model, **self.arguments)

    def build(self) -> EmbedBatch | RerankBatch:
        """Build the batch function (loads the model)."""
        return self.function(self.model, **self.arguments)


def _redacted(value: Any) -> Any:
    """Value with every ``token`` entry (at any depth) shown as ``'***'``."""
    if isinstance(value, Mapping):
        return {key: "***" if key == "token" and item is not None else _redacted(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(item) for item in value]
    return value


class Engine(Protocol):
    """Runs a :class:`BatchJob` over tables: ``map_tables(job, pairs)`` yields ``(key, result)``.

    Results may come in any order (the key says which input each belongs to); every input
    gets exactly one result, or the iteration raises. :class:`LocalEngine` and
    ``bge_integrations.ray.RayEngine`` implement it; ``embed_file(engine=...)`` takes any.
    Mapping no tables should do nothing but check the job as the engine would run it (both do):
    ``embed_file`` does that before it writes anything.

    Example:
        >>> engine: Engine = LocalEngine()
        >>> list(engine.map_tables(BatchJob(EmbedBatch, "BAAI/bge-small-en-v1.5"), []))
        []

    """

    def map_tables(self, job: BatchJob, tables: Iterable[tuple[K, pa.Table]]) -> Iterator[tuple[K, pa.Table]]:
        """Yield ``(key, job's function applied to table)`` for each input pair."""
        ...


class LocalEngine:
    """Runs a job in this process: one model, tables one after another, results in input order.

    Args:
        torch_threads: ``torch.set_num_threads`` before the model loads; None leaves it as it is.

    Example:
        >>> import pyarrow as pa
        >>> job = BatchJob(EmbedBatch, "BAAI/bge-small-en-v1.5", {"settings": {"device": "cpu"}})
        >>> pairs = [(0, pa.table({"text": ["first"]})), (1, pa.table({"text": ["second"]}))]
        >>> [key for key, table in LocalEngine().map_tables(job, pairs)]  # doctest: +SKIP
        [0, 1]

    """

    def __init__(self, *, torch_threads: int | None = None) -> None:
        self.torch_threads = torch_threads

    def __repr__(self) -> str:
        return f"LocalEngine(torch_threads={self.torch_threads!r})"

    def map_tables(self, job: BatchJob, tables: Iterable[tuple[K, pa.Table]]) -> Iterator[tuple[K, pa.Table]]:
        """Yield ``(key, result)`` for each input, in input order; the model loads on the first."""
        if self.torch_threads is not None:
            job = BatchJob(job.function, job.model, {**job.arguments, "torch_threads": self.torch_threads})
        job.check()
        function = None
        for key, table in tables:
            if function is None:
                function = job.build()
            yield key, function(table)


__all__ = ["BatchJob", "Engine", "LocalEngine"]
