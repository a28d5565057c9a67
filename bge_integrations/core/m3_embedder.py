"""BGEM3Embedder: bge-m3's dense, sparse (lexical) and ColBERT outputs from one forward pass.

It is a :class:`~bge_integrations.BGEEmbedder` (same settings, loading, batching, embedding
cache and async coalescing; ``embed_documents``/``embed_query`` give the dense vectors) that also
runs bge-m3's two heads on the same hidden states. The encoder is the dense pipeline from the
shared registry, so a ``BGEEmbedder("BAAI/bge-m3")`` and a ``BGEM3Embedder("BAAI/bge-m3")``
configured alike hold one copy of the weights.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np

from bge_integrations.core.coalescing import Coalescer
from bge_integrations.core.dedup import deduplicate
from bge_integrations.core.embedder import BGEEmbedder
from bge_integrations.core.loading import REGISTRY, LoadKey
from bge_integrations.core.m3_model import M3Heads, M3Rows, encode_m3, load_heads
from bge_integrations.core.m3_types import M3Embeddings, M3Output, SparseEmbedding, check_outputs
from bge_integrations.core.progress import progress_bar
from bge_integrations.core.validation import check_text, check_texts
from bge_integrations.core.vector_output import finish_vectors

DEFAULT_M3 = "BAAI/bge-m3"

_Item = tuple[Any, SparseEmbedding | None, np.ndarray | None]
"""One text's (dense, sparse, colbert), as the async path hands them around."""


class BGEM3Embedder(BGEEmbedder):
    """bge-m3's three retrieval representations of queries and documents, from one forward pass.

    * **dense**: one normalised CLS vector per text (``embed_documents``/``embed_query``, as
      :class:`BGEEmbedder`);
    * **sparse**: lexical weights, ``relu(sparse_linear(h))`` per token, the largest per token
      id, special tokens dropped (:class:`~bge_integrations.core.m3_types.SparseEmbedding`);
    * **colbert**: ``colbert_linear(h[:, 1:])``, normalised, one vector per token.

    :meth:`encode_documents`/:meth:`encode_queries` return any subset of the three from one
    pass. Scores: :mod:`bge_integrations.core.m3_scoring`. bge-m3 has no query instruction, so
    queries and documents are encoded alike unless you give one. Every setting of
    :class:`BGEEmbedder` applies (``truncate_dim`` and ``precision`` to the dense vectors only);
    ``backend`` must be ``"torch"`` (``"auto"`` runs torch). A checkpoint without ``sparse_linear.pt`` or
    ``colbert_linear.pt`` raises :class:`~bge_integrations.core.m3_model.MissingHeadError` when
    that output is asked for; it never gets a random head.

    Example:
        >>> m3 = BGEM3Embedder("BAAI/bge-m3", device="cpu")
        >>> out = m3.encode_documents(["BGE M3 is an embedding model."], outputs=["dense", "sparse"])  # doctest: +SKIP
        >>> out.dense.shape, m3.lexical_tokens(out.sparse[0])  # doctest: +SKIP
        ((1, 1024), {'BGE': 0.25, 'M': 0.17, '3': 0.27, ...})
        >>> m3.config.max_length, m3.config.query_instruction
        (8192, '')

    """

    def __init__(self, model_name: str = DEFAULT_M3, **settings: Any) -> None:
        backend = settings.get("backend", "torch")
        if backend == "auto":  # the fastest exact engine for bge-m3's three heads is torch
            settings["backend"] = "torch"
        elif backend != "torch":
            msg = f"BGEM3Embedder runs bge-m3's heads in torch; backend must be 'torch' or 'auto', got {backend!r}"
            raise ValueError(msg)
        super().__init__(model_name, **settings)

    # -- the three outputs -------------------------------------------------------------

    def encode_documents(self, texts: list[str], *, outputs: Any = ("dense", "sparse")) -> M3Embeddings:
        """Encode documents (no instruction): the asked outputs, one per text, in input order.

        Args:
            texts: The documents.
            outputs: Any of ``"dense"``, ``"sparse"``, ``"colbert"`` (a list, or a comma-separated string).

        """
        return self._encode(check_texts(texts), query=False, outputs=check_outputs(outputs))

    def encode_queries(self, texts: list[str], *, outputs: Any = ("dense", "sparse")) -> M3Embeddings:
        """Encode queries (with the query instruction, none for bge-m3), as :meth:`encode_documents`."""
        return self._encode(check_texts(texts), query=True, outputs=check_outputs(outputs))

    def embed_sparse_documents(self, texts: list[str]) -> list[SparseEmbedding]:
        """Lexical weights of documents, one per text."""
        return _column(self.encode_documents(texts, outputs=("sparse",)).sparse)

    def embed_sparse_queries(self, texts: list[str]) -> list[SparseEmbedding]:
        """Lexical weights of queries, one per text."""
        return _column(self.encode_queries(texts, outputs=("sparse",)).sparse)

    def embed_sparse_query(self, text: str) -> SparseEmbedding:
        """Lexical weights of one query."""
        return self.embed_sparse_queries([check_text(text)])[0]

    def embed_colbert_documents(self, texts: list[str]) -> list[np.ndarray]:
        """ColBERT vectors of documents: one (tokens, dim) array per text."""
        return _column(self.encode_documents(texts, outputs=("colbert",)).colbert)

    def embed_colbert_queries(self, texts: list[str]) -> list[np.ndarray]:
        """ColBERT vectors of queries: one (tokens, dim) array per text."""
        return _column(self.encode_queries(texts, outputs=("colbert",)).colbert)

    def embed_colbert_query(self, text: str) -> np.ndarray:
        """ColBERT vectors of one query."""
        return self.embed_colbert_queries([check_text(text)])[0]

    async def aencode_documents(self, texts: list[str], *, outputs: Any = ("dense", "sparse")) -> M3Embeddings:
        """Async :meth:`encode_documents`: the model runs in a worker thread; concurrent calls share batches."""
        chosen = check_outputs(outputs)
        return _gather(await self._m3_coalescer.submit((False, chosen), check_texts(texts)), chosen)

    async def aencode_queries(self, texts: list[str], *, outputs: Any = ("dense", "sparse")) -> M3Embeddings:
        """Async :meth:`encode_queries`: the model runs in a worker thread; concurrent calls share batches."""
        chosen = check_outputs(outputs)
        return _gather(await self._m3_coalescer.submit((True, chosen), check_texts(texts)), chosen)

    async def aembed_sparse_documents(self, texts: list[str]) -> list[SparseEmbedding]:
        """Async :meth:`embed_sparse_documents`."""
        return _column((await self.aencode_documents(texts, outputs=("sparse",))).sparse)

    async def aembed_sparse_queries(self, texts: list[str]) -> list[SparseEmbedding]:
        """Async :meth:`embed_sparse_queries`."""
        return _column((await self.aencode_queries(texts, outputs=("sparse",))).sparse)

    async def aembed_sparse_query(self, text: str) -> SparseEmbedding:
        """Async :meth:`embed_sparse_query`."""
        return (await self.aembed_sparse_queries([check_text(text)]))[0]

    def lexical_tokens(self, sparse: SparseEmbedding) -> dict[str, float]:
        """The id-to-token view of lexical weights: ``{token text: weight}`` (FlagEmbedding's ``convert_id_to_token``).

        Each id is decoded alone with the tokenizer, so word pieces read as they do there; two
        ids that decode to the same text keep the later weight, as there.
        """
        if not isinstance(sparse, SparseEmbedding):
            msg = f"sparse must be a SparseEmbedding, got {type(sparse).__name__}"
            raise TypeError(msg)
        tokenizer = self._loaded().model.tokenizer
        return {tokenizer.decode([index]): weight for index, weight in sparse}

    @property
    def vocab_size(self) -> int:
        """Size of the tokenizer's vocabulary: sparse indices lie below it (loads the model)."""
        return len(self._loaded().model.tokenizer)

    def warm_up(self) -> None:
        """Load the encoder and the heads now instead of on first use."""
        self._loaded()
        self._heads()

    def release(self) -> bool:
        """Free the encoder (shared with every embedder of the same load key) and the heads."""
        heads = REGISTRY.release(self._heads_key)
        return super().release() or heads

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_m3_coalescer", None)  # per process and event loop, as the dense one
        return state

    # -- machinery -----------------------------------------------------------------------

    @property
    def _heads_key(self) -> LoadKey:
        key = self.load_key
        return LoadKey(
            kind="m3-heads",
            model=key.model,
            device=key.device,
            fp16=key.fp16,
            revision=key.revision,
            trust_remote_code=key.trust_remote_code,
            options=key.options,
        )

    def _heads(self) -> M3Heads:
        heads: M3Heads = REGISTRY.get(
            self._heads_key, lambda: load_heads(self._loaded(), self.config, token=self.token)
        )
        return heads

    @cached_property
    def _m3_coalescer(self) -> Coalescer[tuple[bool, tuple[M3Output, ...]], str, _Item]:
        def run(key: tuple[bool, tuple[M3Output, ...]], texts: list[str]) -> list[_Item]:
            query, outputs = key
            out = self._encode(texts, query=query, outputs=outputs)
            dense = list(out.dense) if out.dense is not None else [None] * len(texts)
            sparse = out.sparse if out.sparse is not None else [None] * len(texts)
            colbert = out.colbert if out.colbert is not None else [None] * len(texts)
            return list(zip(dense, sparse, colbert, strict=True))

        return Coalescer(run)

    def _encode(self, texts: list[str], *, query: bool, outputs: tuple[M3Output, ...]) -> M3Embeddings:
        config = self.config
        instruction = config.query_instruction if query else config.document_instruction
        if not texts:
            width = 0
            return M3Embeddings(
                dense=np.zeros((0, width), dtype=np.float32) if "dense" in outputs else None,
                sparse=[] if "sparse" in outputs else None,
                colbert=[] if "colbert" in outputs else None,
            )
        unique, inverse = deduplicate(texts)
        cache = self._cache
        stored: dict[M3Output, list[np.ndarray | None]] = {output: [None] * len(unique) for output in outputs}
        namespaces: dict[M3Output, bytes] = {}
        fingerprint = ""

        def look_up(fingerprint: str) -> None:
            assert cache is not None  # noqa: S101 - only called with a cache
            for output in outputs:
                settings = self._cache_settings(instruction, fingerprint, query=query)
                if output != "dense":
                    settings["output"] = output
                namespaces[output] = cache.namespace(settings)
                stored[output] = cache.get(namespaces[output], unique)

        if cache is not None:
            in_memory = REGISTRY.peek(self.load_key)
            fingerprint = in_memory.fingerprint if in_memory is not None else self._fingerprint()
            look_up(fingerprint)
        missing = [i for i in range(len(unique)) if any(stored[output][i] is None for output in outputs)]
        rows = M3Rows()
        if missing:
            loaded = self._loaded()
            if cache is not None and loaded.fingerprint != fingerprint:
                look_up(loaded.fingerprint)  # other weights than the lookup assumed: never mix them
                missing = [i for i in range(len(unique)) if any(stored[output][i] is None for output in outputs)]
        if missing:
            heads = self._heads()
            todo = [unique[i] for i in missing]
            with progress_bar(len(todo), enabled=self.show_progress_bar, unit="text") as progress:
                rows = encode_m3(
                    loaded,
                    heads,
                    todo,
                    instruction,
                    outputs=outputs,
                    normalize=config.normalize is not False,
                    batch_size=self.batch_size,
                    max_batch_tokens=self.max_batch_tokens,
                    progress=progress,
                )
            if cache is not None:
                for output in outputs:
                    cache.put(namespaces[output], todo, _to_cache(output, rows))
            flags = dict(zip(missing, rows.truncated, strict=True))
            self._truncation.record(
                self.model_name,
                truncated=sum(flags.get(i, False) for i in inverse),
                total=len(texts),
                max_length=loaded.max_length,
                what="queries" if query else "documents",
            )
        position = {index: row for row, index in enumerate(missing)}

        def column(output: M3Output) -> list[Any] | None:
            if output not in outputs:
                return None
            computed: Any = getattr(rows, output)
            values = [
                computed[position[i]] if i in position else _from_cache(output, stored[output][i])
                for i in range(len(unique))
            ]
            return values if len(unique) == len(texts) else [values[i] for i in inverse]

        dense_rows = column("dense")
        dense = None
        if dense_rows is not None:
            finished = finish_vectors(
                np.stack(dense_rows).astype(np.float32),
                truncate_dim=self.truncate_dim,
                precision=self.precision,
                ranges=self.quantization_ranges,
            )
            dense = np.asarray(finished, dtype=np.float32 if self.precision == "float32" else None)
        return M3Embeddings(dense=dense, sparse=column("sparse"), colbert=column("colbert"))


def _to_cache(output: M3Output, rows: M3Rows) -> list[np.ndarray]:
    """Each row's output as one float32 array.

    Sparse: the int32 ids (their bits read as float32), then the weights; colbert: the width, then the rows.
    """
    if output == "dense":
        assert rows.dense is not None  # noqa: S101 - asked for, so computed
        return list(rows.dense)
    if output == "sparse":
        assert rows.sparse is not None  # noqa: S101
        return [
            np.concatenate(
                [np.asarray(s.indices, dtype=np.int32).view(np.float32), np.asarray(s.values, dtype=np.float32)]
            )
            for s in rows.sparse
        ]
    assert rows.colbert is not None  # noqa: S101
    return [np.concatenate([np.asarray([m.shape[1]], dtype=np.float32), m.ravel()]) for m in rows.colbert]


def _from_cache(output: M3Output, data: np.ndarray | None) -> Any:
    if data is None:  # every row is either computed or stored
        msg = "bge-m3 cache lookup lost a row"
        raise RuntimeError(msg)
    if output == "dense":
        return data
    if output == "sparse":
        half = len(data) // 2
        ids = data[:half].view(np.int32)
        return SparseEmbedding(indices=tuple(int(i) for i in ids), values=tuple(float(v) for v in data[half:]))
    dim = int(data[0])
    return data[1:].reshape(-1, dim).copy()


def _column(values: list[Any] | None) -> list[Any]:
    if values is None:
        msg = "bge-m3 output missing"
        raise RuntimeError(msg)
    return values


def _gather(items: list[_Item], outputs: tuple[M3Output, ...]) -> M3Embeddings:
    dense = None
    if "dense" in outputs:
        dense = np.stack([item[0] for item in items]) if items else np.zeros((0, 0), dtype=np.float32)
    return M3Embeddings(
        dense=dense,
        sparse=[item[1] for item in items] if "sparse" in outputs else None,  # type: ignore[misc]
        colbert=[item[2] for item in items] if "colbert" in outputs else None,  # type: ignore[misc]
    )


__all__ = ["DEFAULT_M3", "BGEM3Embedder"]
