"""BGETextEmbedder (queries, with the instruction) and BGEDocumentEmbedder (documents, without).

Both wrap :class:`~bge_integrations.core.embedder.BGEEmbedder`; parameter names follow Haystack's
SentenceTransformers embedders. Embedders configured alike share one model (the core registry).
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.utils import ComponentDevice

from bge_integrations.core.embedder import BGEEmbedder
from bge_integrations.core.presets import DEFAULT_EMBEDDER
from bge_integrations.haystack._common import (
    check_documents,
    check_fields,
    check_model,
    component_device,
    copy_document,
    document_text,
    torch_device,
)

T = TypeVar("T")


class _EmbedderBase:
    """Settings, (de)serialization and model handling shared by both embedders."""

    def _setup(
        self,
        model: str,
        device: str | ComponentDevice | None,
        batch_size: int,
        progress_bar: bool,
        use_fp16: bool | None,
        max_length: int | None,
        revision: str | None,
        trust_remote_code: bool,
        query_instruction: str | None = None,
    ) -> None:
        self.model = check_model(model)
        self.device = component_device(device)
        self.batch_size = batch_size
        self.progress_bar = progress_bar
        self.use_fp16 = use_fp16
        self.max_length = max_length
        self.revision = revision
        self.trust_remote_code = trust_remote_code
        self._embedder = BGEEmbedder(
            model,
            query_instruction=query_instruction,
            device=torch_device(self.device),
            use_fp16=self.use_fp16,
            batch_size=self.batch_size,
            max_length=self.max_length,
            revision=self.revision,
            trust_remote_code=self.trust_remote_code,
            show_progress_bar=self.progress_bar,
        )

    def _to_dict(self, **extra: Any) -> dict[str, Any]:
        return default_to_dict(
            self,
            model=self.model,
            device=self.device,
            batch_size=self.batch_size,
            progress_bar=self.progress_bar,
            use_fp16=self.use_fp16,
            max_length=self.max_length,
            revision=self.revision,
            trust_remote_code=self.trust_remote_code,
            **extra,
        )

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        """Rebuild the component from :meth:`to_dict`'s output."""
        return default_from_dict(cls, data)

    @property
    def embedder(self) -> BGEEmbedder:
        """The core embedder doing the work (same settings; shares the model)."""
        return self._embedder

    def warm_up(self) -> None:
        """Load the model unless it is in memory already (cheap to call on every run)."""
        self._embedder.warm_up()

    async def warm_up_async(self) -> None:
        """Async :meth:`warm_up` (used by ``Pipeline.run_async``): loads in a worker thread."""
        await asyncio.to_thread(self._embedder.warm_up)

    def release(self) -> bool:
        """Free the model, shared by every component configured alike; True if it was loaded."""
        return self._embedder.release()


@component
class BGETextEmbedder(_EmbedderBase):
    """Embeds a query string, with the model's query instruction, for an embedding retriever.

    Args:
        model: Hub id or local path of a BGE embedding model.
        device: ``"cpu"``, ``"cuda:1"``... or a ``ComponentDevice``. None: CUDA, then MPS, then CPU,
            chosen when the model loads.
        batch_size: Texts per forward pass.
        progress_bar: Show a progress bar while embedding (off: one query is one batch).
        use_fp16: Half precision. None: on for CUDA, off elsewhere.
        query_instruction: Prefix for queries. None: the model's official one; ``""``: none.
        max_length: Tokens read per text. None: the model's (512 for BGE v1.5).
        revision: Hub revision (branch, tag or commit).
        trust_remote_code: Run code shipped with the checkpoint.

    Example:
        >>> embedder = BGETextEmbedder(model="BAAI/bge-small-en-v1.5", device="cpu")
        >>> embedder.run(text="what is BGE?")["embedding"][:2]  # doctest: +SKIP
        [0.012..., -0.034...]

    """

    def __init__(
        self,
        *,
        model: str = DEFAULT_EMBEDDER,
        device: str | ComponentDevice | None = None,
        batch_size: int = 32,
        progress_bar: bool = False,
        use_fp16: bool | None = None,
        query_instruction: str | None = None,
        max_length: int | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        self.query_instruction = query_instruction
        self._setup(
            model,
            device,
            batch_size,
            progress_bar,
            use_fp16,
            max_length,
            revision,
            trust_remote_code,
            query_instruction,
        )

    def to_dict(self) -> dict[str, Any]:
        """Serialize the component; ``device`` becomes Haystack's device dict (None stays None)."""
        return self._to_dict(query_instruction=self.query_instruction)

    @component.output_types(embedding=list[float])
    def run(self, text: str) -> dict[str, list[float]]:
        """Embed one query, instruction first.

        Returns:
            ``{"embedding": [...]}``.

        Raises:
            TypeError: If text is not a string (use BGEDocumentEmbedder for Documents).

        """
        return {"embedding": self._embedder.embed_query(_check_query(text))}

    @component.output_types(embedding=list[float])
    async def run_async(self, text: str) -> dict[str, list[float]]:
        """Async :meth:`run`: embeds in a worker thread."""
        return {"embedding": await self._embedder.aembed_query(_check_query(text))}


@component
class BGEDocumentEmbedder(_EmbedderBase):
    """Embeds Documents (no instruction) and returns copies with ``embedding`` set, in input order.

    Args:
        model, device, batch_size, use_fp16, max_length, revision, trust_remote_code: As in
            :class:`BGETextEmbedder`; keep them equal to the text embedder's.
        progress_bar: Show a progress bar while embedding.
        meta_fields_to_embed: Meta fields read before the content (those set on a document).
        embedding_separator: Joins those meta values and the content.

    Example:
        >>> embedder = BGEDocumentEmbedder(model="BAAI/bge-small-en-v1.5", meta_fields_to_embed=["title"])
        >>> docs = [Document(content="Pandas eat bamboo.", meta={"title": "Pandas"})]
        >>> embedder.run(documents=docs)["documents"][0].embedding[:2]  # doctest: +SKIP
        [0.021..., 0.005...]

    """

    def __init__(
        self,
        *,
        model: str = DEFAULT_EMBEDDER,
        device: str | ComponentDevice | None = None,
        batch_size: int = 32,
        progress_bar: bool = True,
        use_fp16: bool | None = None,
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
        max_length: int | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        self.meta_fields_to_embed = check_fields(meta_fields_to_embed, embedding_separator)
        self.embedding_separator = embedding_separator
        self._setup(model, device, batch_size, progress_bar, use_fp16, max_length, revision, trust_remote_code)

    def to_dict(self) -> dict[str, Any]:
        """Serialize the component; ``device`` becomes Haystack's device dict (None stays None)."""
        return self._to_dict(
            meta_fields_to_embed=self.meta_fields_to_embed, embedding_separator=self.embedding_separator
        )

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, list[Document]]:
        """Embed documents; the inputs are not modified.

        Returns:
            ``{"documents": [...]}``: one copy per input, in input order, with ``embedding`` set.

        Raises:
            TypeError: If documents is not a list of Documents (use BGETextEmbedder for a string).

        """
        texts = self._texts(documents)
        return {"documents": _with_embeddings(documents, self._embedder.embed_documents(texts))}

    @component.output_types(documents=list[Document])
    async def run_async(self, documents: list[Document]) -> dict[str, list[Document]]:
        """Async :meth:`run`: embeds in a worker thread."""
        texts = self._texts(documents)
        return {"documents": _with_embeddings(documents, await self._embedder.aembed_documents(texts))}

    def _texts(self, documents: Any) -> list[str]:
        checked = check_documents(documents, "BGEDocumentEmbedder", "To embed a string, use BGETextEmbedder.")
        return [document_text(doc, self.meta_fields_to_embed, self.embedding_separator) for doc in checked]


def _check_query(text: Any) -> str:
    if not isinstance(text, str):
        msg = (
            f"BGETextEmbedder expects a string as text, got {type(text).__name__}: {text!r:.80}. "
            "To embed Documents, use BGEDocumentEmbedder."
        )
        raise TypeError(msg)
    return text


def _with_embeddings(documents: list[Document], vectors: list[list[float]]) -> list[Document]:
    return [copy_document(doc, embedding=vector) for doc, vector in zip(documents, vectors, strict=True)]


__all__ = ["BGEDocumentEmbedder", "BGETextEmbedder"]
