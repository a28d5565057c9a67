"""The models behind the server: one embedder and one reranker, shared by every request.

Requests call the core's async methods, which merge concurrent requests into shared model
batches (``core/coalescing.py``) and run the model in a worker thread, so the event loop keeps
accepting requests while the model works. Admission (``admission.py``) bounds the work waiting.
"""

from __future__ import annotations

import asyncio
import threading
from functools import cached_property
from pathlib import Path
from typing import Any

from bge_integrations.core.embedder import BGEEmbedder
from bge_integrations.core.m3_model import SPARSE_HEAD
from bge_integrations.core.m3_types import SparseEmbedding
from bge_integrations.core.presets import find_preset
from bge_integrations.core.reranker import BGEReranker
from bge_integrations.core.text_features import TokenCounter
from bge_integrations.core.types import RankedText
from bge_integrations.core.validation import valid_unicode
from bge_integrations.serving.errors import ApiError
from bge_integrations.serving.metrics import ServerMetrics
from bge_integrations.serving.settings import ServerSettings

_M3 = "BAAI/bge-m3"


def is_m3(model: str) -> bool:
    """Whether model is bge-m3 (by preset) or a local checkpoint with bge-m3's sparse head."""
    preset = find_preset(model, kind="embedder")
    return (preset is not None and preset.name == _M3) or (Path(model) / SPARSE_HEAD).is_file()


class ModelService:
    """The embedder and reranker a server answers with, built from :class:`ServerSettings`.

    Example:
        >>> service = ModelService(ServerSettings(model="BAAI/bge-small-en-v1.5"), ServerMetrics())
        >>> service.embedder.model_name, service.reranker
        ('BAAI/bge-small-en-v1.5', None)

    """

    def __init__(self, settings: ServerSettings, metrics: ServerMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._lock = threading.Lock()
        self._counters: dict[int, tuple[Any, TokenCounter]] = {}
        """The reranker's token counter, by its loaded model (kept alive with it, so the id stays unique)."""

    @cached_property
    def embedder(self) -> BGEEmbedder | None:
        """The embedder (a :class:`~bge_integrations.BGEM3Embedder` for bge-m3), or None."""
        model = self.settings.model
        if model is None:
            return None
        if is_m3(model):
            from bge_integrations.core.m3_embedder import BGEM3Embedder

            embedder: BGEEmbedder = BGEM3Embedder(model, **self.settings.embedder_settings)
        else:
            embedder = BGEEmbedder(model, **self.settings.embedder_settings)
        batches = self.metrics.batch_size.labels(model="embedder")
        embedder._coalescer.add_listener(lambda _key, texts: batches.observe(len(texts)))
        return embedder

    @cached_property
    def reranker(self) -> BGEReranker | None:
        """The reranker, or None."""
        if self.settings.reranker is None:
            return None
        reranker = BGEReranker(self.settings.reranker, **self.settings.reranker_settings)
        pairs = self.metrics.batch_size.labels(model="reranker")
        reranker._coalescer.add_listener(lambda _key, requests: pairs.observe(sum(len(docs) for _q, docs in requests)))
        return reranker

    @property
    def sparse(self) -> bool:
        """Whether ``/embed_sparse`` is served (a bge-m3 embedder)."""
        return self.settings.model is not None and is_m3(self.settings.model)

    def check(self) -> None:
        """Build the model objects (nothing loads), so a setting that does not fit fails now.

        Raises:
            ValueError: Naming the setting, e.g. ``backend='onnx'`` with ``device='cuda'``, or a
                backend other than torch for bge-m3.

        """
        _ = self.embedder, self.reranker

    def warm_up(self) -> None:
        """Load every model now (the server does this before it accepts requests)."""
        for handle in (self.embedder, self.reranker):
            if handle is not None:
                handle.warm_up()

    def need_embedder(self) -> BGEEmbedder:
        """The embedder, or a 404 error saying the server has none."""
        if self.embedder is None:
            msg = "this server has no embedding model (start it with --model)"
            raise ApiError(404, msg)
        return self.embedder

    def need_reranker(self) -> BGEReranker:
        """The reranker, or a 404 error saying the server has none."""
        if self.reranker is None:
            msg = "this server has no reranker (start it with --reranker)"
            raise ApiError(404, msg)
        return self.reranker

    async def embed(self, texts: list[str], *, query: bool) -> list[list[float]]:
        """One vector per text, queries with the model's instruction."""
        embedder = self.need_embedder()
        return await (embedder.aembed_queries(texts) if query else embedder.aembed_documents(texts))

    async def embed_sparse(self, texts: list[str], *, query: bool) -> list[SparseEmbedding]:
        """bge-m3 lexical weights, one per text."""
        embedder = self.need_embedder()
        if not self.sparse:
            msg = f"{self.settings.served_name!r} has no sparse output (it is served for bge-m3 models only)"
            raise ApiError(400, msg)
        from bge_integrations.core.m3_embedder import BGEM3Embedder

        assert isinstance(embedder, BGEM3Embedder)  # noqa: S101 - sparse implies bge-m3
        return await (embedder.aembed_sparse_queries(texts) if query else embedder.aembed_sparse_documents(texts))

    async def rank(self, query: str, documents: list[str], *, top_n: int | None, raw: bool) -> list[RankedText]:
        """Documents by score, best first; sigmoid scores unless raw."""
        return await self.need_reranker().arank(query, documents, top_n, normalize=not raw)

    async def count_tokens(self, texts: list[str], *, reranker: bool = False) -> int:
        """Tokens the model's tokenizer makes of texts (usage reporting), special tokens included.

        Counted on a private copy of the tokenizer (the model's own is in use by the model's
        thread), in a worker thread.
        """
        handle: Any = self.reranker if reranker else self.embedder
        if handle is None or not texts:
            return 0
        return await asyncio.to_thread(self._count, handle, [valid_unicode(text) for text in texts])

    def _count(self, handle: Any, texts: list[str]) -> int:
        loaded = handle._loaded()
        counter: TokenCounter | None = getattr(loaded, "counter", None)
        if counter is None:
            with self._lock:
                if id(loaded) not in self._counters:
                    self._counters = {id(loaded): (loaded, TokenCounter(loaded.tokenizer))}
                counter = self._counters[id(loaded)][1]
        return sum(counter.lengths(texts))


__all__ = ["ModelService", "is_m3"]
