"""embed_dataset and rerank_dataset: a column added to a Ray Dataset by a pool of model actors.

Both are lazy, like every Ray Data transform: nothing runs until the dataset is consumed
(``write_parquet``, ``iter_batches``, ``take_all``...), and then it streams: blocks flow from
the source through the actors to the sink, so a corpus larger than memory goes through. Each
actor builds the batch function once (``bge_integrations.bulk.EmbedBatch``/``RerankBatch``), which
loads the model once through the core engine.
"""

from __future__ import annotations

from typing import Any

from ray.data import ActorPoolStrategy, Dataset

from bge_integrations.bulk import BatchJob, EmbedBatch, OnBadRows, RerankBatch, Role
from bge_integrations.core.validation import check_positive_int
from bge_integrations.ray.engine import actor_job


def embed_dataset(
    ds: Dataset,
    *,
    model: str,
    text_column: str = "text",
    output_column: str = "embedding",
    role: Role = "document",
    id_column: str | None = "id",
    on_bad_rows: OnBadRows = "raise",
    error_column: str = "error",
    batch_size: int = 32,
    rows_per_call: int = 256,
    num_actors: int | tuple[int, int] = 1,
    num_gpus_per_actor: float = 0,
    num_cpus_per_actor: float | None = None,
    outputs: Any = "dense",
    **embedder_settings: Any,
) -> Dataset:
    """Add a vector column to a Ray Dataset: one BGE model per actor, streaming.

    Documents (``role="document"``) are embedded as they are; queries (``role="query"``) get
    the model's query instruction. The vectors equal :class:`~bge_integrations.BGEEmbedder`'s
    in one process (up to float rounding from other batch compositions, about 1e-6 on CPU).

    Args:
        ds: The dataset; every input column is kept.
        model: Hub id or local path of a BGE embedding model (reachable from every actor).
        text_column: Column holding the texts.
        output_column: Column to add: ``fixed_size_list<float32>[dimension]``, whose field
            metadata records the model's effective settings.
        role: ``"document"`` or ``"query"``.
        id_column: Column naming bad rows in errors (a column the data lacks: positions only).
        on_bad_rows: Rows whose text is missing, None or not a string: ``"raise"`` fails the
            dataset's execution with a ``BadRowsError`` naming them by id (Ray wraps it in
            ``ray.exceptions.RayTaskError``; the message is kept); ``"report"`` keeps them with
            a null vector and the reason in ``error_column``. Rows are never dropped.
        error_column: Column added with ``on_bad_rows="report"``; null on good rows.
        batch_size: Texts per forward pass.
        rows_per_call: Rows Ray hands an actor per call (Ray Data's ``batch_size``). Texts are
            sorted by length within a call, so larger calls pad less.
        num_actors: Actors in the pool, or ``(min, max)`` for an autoscaling pool.
        num_gpus_per_actor: GPUs per actor (1 on a GPU cluster: one actor per GPU); 0 for CPU
            actors.
        num_cpus_per_actor: CPUs per actor. None: 1 for CPU actors (Ray's default for GPU
            actors). A CPU actor runs this many torch threads.
        outputs: Any of ``"dense"`` (the default: ``output_column``), ``"sparse"`` (columns
            ``sparse_indices``, ``list<int32>``, and ``sparse_values``, ``list<float32>``) and
            ``"colbert"`` (column ``colbert``, ``list<fixed_size_list<float32>[dim]>``), as a
            list or a comma-separated string; the last two need a bge-m3 with its heads, and
            every asked output comes from one forward pass
            (see :class:`~bge_integrations.bulk.EmbedBatch`).
        **embedder_settings: Further :class:`~bge_integrations.BGEEmbedder` arguments
            (``max_length``, ``query_instruction``, ``use_fp16``...). ``device`` defaults to
            ``"cuda"`` with GPUs, else ``"cpu"``.

    Returns:
        The lazy dataset with the output column (and ``error_column`` with ``"report"``).

    Raises:
        ValueError: If an argument is invalid (checked here, before any actor starts).
        TypeError: If embedder_settings holds a name that BGEEmbedder does not take.

    Example:
        >>> import ray
        >>> from bge_integrations.ray import embed_dataset
        >>> ds = ray.data.from_items([{"id": 1, "text": "The giant panda is a bear."}])  # doctest: +SKIP
        >>> vectors = embed_dataset(ds, model="BAAI/bge-small-en-v1.5", num_actors=2)  # doctest: +SKIP
        >>> vectors.take(1)[0]["embedding"].shape  # doctest: +SKIP
        (384,)

    """
    arguments = {
        "role": role,
        "text_column": text_column,
        "output_column": output_column,
        "id_column": id_column,
        "on_bad_rows": on_bad_rows,
        "error_column": error_column,
        "settings": {"batch_size": batch_size, **embedder_settings},
    }
    if outputs != "dense":
        arguments["outputs"] = outputs
    job = BatchJob(EmbedBatch, model, arguments)
    return _map(
        ds, job, rows_per_call=rows_per_call, actors=num_actors, gpus=num_gpus_per_actor, cpus=num_cpus_per_actor
    )


def rerank_dataset(
    ds: Dataset,
    *,
    model: str,
    query_column: str = "query",
    passage_column: str = "passage",
    output_column: str = "score",
    id_column: str | None = "id",
    on_bad_rows: OnBadRows = "raise",
    error_column: str = "error",
    batch_size: int = 32,
    rows_per_call: int = 256,
    num_actors: int | tuple[int, int] = 1,
    num_gpus_per_actor: float = 0,
    num_cpus_per_actor: float | None = None,
    **reranker_settings: Any,
) -> Dataset:
    """Add a score column to a Ray Dataset of (query, passage) pairs: one BGE reranker per actor.

    Scores equal :meth:`~bge_integrations.BGEReranker.score`'s in one process, on the same
    scale (sigmoid unless ``normalize=False``). Pairs sharing a query within a call are scored
    together, so a dataset sorted or grouped by query runs fastest.

    Args:
        ds: The dataset; every input column is kept.
        model: Hub id or local path of a BGE reranker (reachable from every actor).
        query_column: Column holding the queries.
        passage_column: Column holding the passages.
        output_column: Column to add (float64).
        id_column: Column naming bad rows in errors.
        on_bad_rows: ``"raise"`` or ``"report"``, as in :func:`embed_dataset` (a bad row has
            a query or a passage that is missing, None or not a string).
        error_column: Column added with ``on_bad_rows="report"``.
        batch_size: (query, passage window) pairs per forward pass.
        rows_per_call: Rows Ray hands an actor per call.
        num_actors: Actors in the pool, or ``(min, max)``.
        num_gpus_per_actor: GPUs per actor; 0 for CPU actors.
        num_cpus_per_actor: CPUs per actor (None: 1 for CPU actors); a CPU actor's torch threads.
        **reranker_settings: Further :class:`~bge_integrations.BGEReranker` arguments.

    Returns:
        The lazy dataset with the score column (and ``error_column`` with ``"report"``).

    Raises:
        ValueError: If an argument is invalid (checked here, before any actor starts).
        TypeError: If reranker_settings holds a name that BGEReranker does not take.

    Example:
        >>> import ray
        >>> from bge_integrations.ray import rerank_dataset
        >>> pairs = ray.data.from_items([{"query": "what is BGE?", "passage": "An embedding model."}])  # doctest: +SKIP
        >>> rerank_dataset(pairs, model="BAAI/bge-reranker-base").take(1)[0]["score"]  # doctest: +SKIP
        0.93...

    """
    arguments = {
        "query_column": query_column,
        "passage_column": passage_column,
        "output_column": output_column,
        "id_column": id_column,
        "on_bad_rows": on_bad_rows,
        "error_column": error_column,
        "settings": {"batch_size": batch_size, **reranker_settings},
    }
    job = BatchJob(RerankBatch, model, arguments)
    return _map(
        ds, job, rows_per_call=rows_per_call, actors=num_actors, gpus=num_gpus_per_actor, cpus=num_cpus_per_actor
    )


def _map(
    ds: Dataset, job: BatchJob, *, rows_per_call: int, actors: int | tuple[int, int], gpus: float, cpus: float | None
) -> Dataset:
    if not isinstance(ds, Dataset):
        msg = f"ds must be a ray.data.Dataset, got {type(ds).__name__}"
        raise TypeError(msg)
    check_positive_int(rows_per_call, name="rows_per_call")
    job, resources = actor_job(job, gpus=gpus, cpus=cpus)
    job.check()
    return ds.map_batches(
        job.function,
        fn_constructor_args=(job.model,),
        fn_constructor_kwargs=dict(job.arguments),
        batch_format="pyarrow",
        batch_size=rows_per_call,
        compute=_pool(actors),
        num_cpus=resources.get("num_cpus"),
        num_gpus=resources.get("num_gpus"),
    )


def _pool(actors: int | tuple[int, int]) -> ActorPoolStrategy:
    if isinstance(actors, tuple):
        if len(actors) != 2 or any(isinstance(n, bool) or not isinstance(n, int) or n <= 0 for n in actors):
            msg = f"num_actors must be an int > 0 or a (min, max) pair of them, got {actors!r}"
            raise ValueError(msg)
        if actors[0] > actors[1]:
            msg = f"num_actors=(min, max) needs min <= max, got {actors!r}"
            raise ValueError(msg)
        return ActorPoolStrategy(min_size=actors[0], max_size=actors[1])
    check_positive_int(actors, name="num_actors")
    return ActorPoolStrategy(size=actors)


__all__ = ["embed_dataset", "rerank_dataset"]
