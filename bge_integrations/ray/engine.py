"""RayEngine: ``embed_file``'s parts on a pool of Ray actors, one model per actor.

The driver reads the input, hands each part (a table) to the least busy actor, keeps at most
``tables_per_actor`` parts queued per actor, and writes each result as it comes back, so memory
holds a few parts whatever the corpus size. Actors live for one ``map_tables`` call.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import pyarrow as pa
import ray

from bge_integrations.bulk import BatchJob
from bge_integrations.core.validation import check_positive_int

K = TypeVar("K")


def actor_job(job: BatchJob, *, gpus: float, cpus: float | None) -> tuple[BatchJob, dict[str, float]]:
    """The job as each actor runs it, and the actor's Ray resources.

    A CPU actor (``gpus == 0``) runs on ``"cpu"`` with ``cpus`` torch threads (default 1); a
    GPU actor on ``"cuda"``; a ``device`` in the job's settings wins.

    Raises:
        ValueError: If gpus or cpus is negative, or cpus is 0.

    Example:
        >>> from bge_integrations.bulk import BatchJob, EmbedBatch
        >>> job, resources = actor_job(BatchJob(EmbedBatch, "BAAI/bge-small-en-v1.5"), gpus=1, cpus=None)
        >>> job.arguments["settings"]["device"], resources
        ('cuda', {'num_gpus': 1})

    """
    check_resources(gpus=gpus, cpus=cpus)
    settings = dict(job.arguments.get("settings") or {})
    settings.setdefault("device", "cuda" if gpus else "cpu")
    arguments: dict[str, Any] = {**job.arguments, "settings": settings}
    resources: dict[str, float] = {}
    if gpus:
        resources["num_gpus"] = gpus
        if cpus is not None:
            resources["num_cpus"] = cpus
    else:
        resources["num_cpus"] = 1 if cpus is None else cpus
        arguments.setdefault("torch_threads", max(1, int(resources["num_cpus"])))
    return BatchJob(job.function, job.model, arguments), resources


def check_resources(
    *, gpus: Any, cpus: Any, gpus_name: str = "num_gpus_per_actor", cpus_name: str = "num_cpus_per_actor"
) -> None:
    """Raise ValueError naming the value unless gpus >= 0 and cpus is None or > 0.

    Example:
        >>> check_resources(gpus=1, cpus=None)
        >>> check_resources(gpus=-1, cpus=None)
        Traceback (most recent call last):
        ValueError: num_gpus_per_actor must be a number >= 0, got -1

    """
    if isinstance(gpus, bool) or not isinstance(gpus, (int, float)) or gpus < 0:
        msg = f"{gpus_name} must be a number >= 0, got {gpus!r}"
        raise ValueError(msg)
    if cpus is not None and (isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or cpus <= 0):
        msg = f"{cpus_name} must be a number > 0 or None, got {cpus!r}"
        raise ValueError(msg)


class RayEngine:
    """Runs a :class:`~bge_integrations.bulk.BatchJob` on Ray actors, for ``embed_file(engine=...)``.

    Uses the Ray cluster this process is connected to (``ray.init(address=...)``), or starts a
    local one on first use, as any Ray call does.

    Args:
        num_actors: Actors, each loading the model once.
        num_gpus_per_actor: GPUs per actor; 0 for CPU actors.
        num_cpus_per_actor: CPUs per actor. None: 1 for a CPU actor (Ray's default otherwise).
            A CPU actor runs this many torch threads.
        tables_per_actor: Tables queued per actor at most (2 lets the next part travel while
            one is computed).

    Example:
        >>> from bge_integrations.bulk import embed_file
        >>> engine = RayEngine(num_actors=4, num_gpus_per_actor=1)
        >>> embed_file("corpus.jsonl", "vectors/", model="BAAI/bge-base-en-v1.5", engine=engine)  # doctest: +SKIP

    """

    def __init__(
        self,
        *,
        num_actors: int = 1,
        num_gpus_per_actor: float = 0,
        num_cpus_per_actor: float | None = None,
        tables_per_actor: int = 2,
    ) -> None:
        check_positive_int(num_actors, name="num_actors")
        check_positive_int(tables_per_actor, name="tables_per_actor")
        check_resources(gpus=num_gpus_per_actor, cpus=num_cpus_per_actor)
        self.num_actors = num_actors
        self.num_gpus_per_actor = num_gpus_per_actor
        self.num_cpus_per_actor = num_cpus_per_actor
        self.tables_per_actor = tables_per_actor

    def __repr__(self) -> str:
        return (
            f"RayEngine(num_actors={self.num_actors}, num_gpus_per_actor={self.num_gpus_per_actor}, "
            f"num_cpus_per_actor={self.num_cpus_per_actor}, tables_per_actor={self.tables_per_actor})"
        )

    def map_tables(self, job: BatchJob, tables: Iterable[tuple[K, pa.Table]]) -> Iterator[tuple[K, pa.Table]]:
        """Yield ``(key, result)`` as actors finish, in any order; actors stop when this ends.

        Raises:
            Exception: What an actor raised (Ray's wrapper is an instance of the original
                class, e.g. ``BadRowsError``), or ``ray.exceptions.RayActorError`` if one died.

        """
        job, resources = actor_job(job, gpus=self.num_gpus_per_actor, cpus=self.num_cpus_per_actor)
        job.check()
        stream = iter(tables)
        first = next(stream, None)
        if first is None:
            return  # nothing to do: no actor starts
        actor_class: Any = ray.remote(job.function)  # Ray's stubs do not follow a class passed as a value
        actors: list[Any] = [
            actor_class.options(**resources).remote(job.model, **job.arguments) for _ in range(self.num_actors)
        ]
        queued = [0] * len(actors)
        pending: dict[Any, tuple[K, int]] = {}
        try:
            for key, table in itertools.chain([first], stream):
                if len(pending) >= len(actors) * self.tables_per_actor:
                    yield self._next(pending, queued)
                actor = min(range(len(actors)), key=queued.__getitem__)
                pending[actors[actor].__call__.remote(table)] = (key, actor)
                queued[actor] += 1
            while pending:
                yield self._next(pending, queued)
        finally:
            for handle in actors:
                ray.kill(handle)

    @staticmethod
    def _next(pending: dict[Any, tuple[K, int]], queued: list[int]) -> tuple[K, pa.Table]:
        [ready], _ = ray.wait(list(pending), num_returns=1)
        key, actor = pending.pop(ready)
        queued[actor] -= 1
        result: pa.Table = ray.get(ready)
        return key, result


__all__ = ["RayEngine", "actor_job", "check_resources"]
