"""BGERanker: reranks Documents for a query with a BGE reranker (long passages by windows).

Wraps :class:`~bge_integrations.core.reranker.BGEReranker`; parameter names follow Haystack's
``SentenceTransformersSimilarityRanker``. Unlike it, documents are never deduplicated: every input
document gets exactly one scored copy before ``top_k`` and ``score_threshold`` apply. As it does,
a document without content is scored as the empty text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from haystack import Document, component
from haystack.utils import ComponentDevice, Secret

from bge_integrations.core.configs import RERANKER_SETTINGS
from bge_integrations.core.loading import check_flag
from bge_integrations.core.presets import DEFAULT_RERANKER
from bge_integrations.core.remote import RemoteReranker
from bge_integrations.core.reranker import Aggregation, BGEReranker
from bge_integrations.core.slot import CoreSlot
from bge_integrations.core.types import RankedText
from bge_integrations.core.validation import check_optional_float, check_positive_int, check_text
from bge_integrations.haystack._common import (
    check_documents,
    check_fields,
    check_model,
    check_token,
    component_device,
    copy_document,
    default_api_key,
    default_token,
    document_texts,
    plain,
)
from bge_integrations.haystack._component import CoreComponent


@component
class BGERanker(CoreComponent):
    """Ranks Documents by relevance to a query; returns scored copies, best first.

    Args:
        model: Hub id or local path of a BGE reranker: a cross-encoder with one relevance logit, or an
            LLM reranker.
        device: ``"cpu"``, ``"cuda:1"``... or a ``ComponentDevice``. None: CUDA, then MPS, then CPU,
            chosen when the model loads.
        top_k: Documents returned at most (overridable per run).
        score_threshold: Drop documents scoring below it, on the scale of the run. None keeps all.
        scale_score: Sigmoid scores in 0..1 (True) or raw logits (False); the core's ``normalize``.
        meta_fields_to_embed: Meta fields read before the content (those set on a document).
        embedding_separator: Joins those meta values and the content.
        windows: Read passages longer than ``max_length`` as overlapping windows and keep the best
            window's score (``aggregation``). Off: only their beginning is read.
        window_overlap: Tokens shared by consecutive windows.
        max_windows: Windows read per passage at most; a passage that needs more is read up to
            there (counted, warned about once). None: every window.
        aggregation: ``"max"`` or ``"mean"`` of the window scores.
        max_length: Tokens per (query, passage) pair. None: the model's (512 for BGE rerankers).
        max_query_length: Query tokens kept at most. None: three quarters of ``max_length``.
        batch_size: Pairs (windows) per forward pass.
        use_fp16: Half precision. None: on for CUDA, off elsewhere.
        revision: Hub revision (branch, tag or commit).
        trust_remote_code: Run code shipped with the checkpoint. A saved pipeline cannot switch it
            on by itself (see :func:`~bge_integrations.core.loading.allow_remote_code`).
        token: Hugging Face token for private or gated models, a ``Secret``. Default: the
            ``HF_API_TOKEN`` or ``HF_TOKEN`` environment variable, saved by name only.
        query_prefix, query_suffix: Put before / after the query (BGE rerankers take no
            instruction: leave them ``""``).
        document_prefix, document_suffix: Put before / after each document's text; with
            ``windows``, a long passage's prefix is in its first window, its suffix in its last.
        model_kwargs, tokenizer_kwargs, config_kwargs: Extra arguments for the model's,
            tokenizer's and config's ``from_pretrained``; keys that are settings here
            (``device``, ``revision``...) are refused, ``dtype`` is read as ``use_fp16``.
            ``tokenizer_kwargs["model_max_length"]`` also sets ``max_length``.
        backend: ``"torch"`` only for now; ``"onnx"`` and ``"openvino"`` are refused at
            construction, naming the value.
        prompt: LLM rerankers only (bge-reranker-v2-gemma, v2-minicpm-layerwise,
            v2.5-gemma2-lightweight): the instruction read after the passage. None:
            FlagEmbedding's default for the model.
        cutoff_layers: Layerwise and lightweight LLM rerankers only: the layers that score, an int
            or a list. The deepest layer's score is the document's ``score``; with several layers,
            ``meta["layer_scores"]`` holds every one's (``{layer: score}``, one forward pass).
            None: the last layer.
        compress_ratio: Lightweight LLM reranker only: passage tokens merged into one (1, 2, 4 or
            8). None: FlagEmbedding's default.
        compress_layers: Lightweight LLM reranker only: the layers at which passage tokens are
            merged. None: FlagEmbedding's default.
        base_url: A BGE server (``bge-integrations serve``) that scores instead of a local model;
            no model loads here, ``scale_score`` still picks the scale, ``batch_size`` is
            documents per request, and a setting the server owns (``device``, ``max_length``...)
            is refused by name. None: a local model.
        api_key: The server's API key (``base_url`` only), a ``Secret``. Default: the
            ``BGE_API_KEY`` environment variable, saved by name only.

    Raises:
        ValueError: If a setting is invalid (e.g. top_k is not an int > 0), naming the value; an
            LLM-reranker setting that the model's family does not read, when the model loads.

    Example:
        >>> ranker = BGERanker(model="BAAI/bge-reranker-base", top_k=1)
        >>> docs = [Document(content="Paris is in France."), Document(content="Pandas live in China.")]
        >>> ranker.run(query="Where do pandas live?", documents=docs)["documents"][0].content  # doctest: +SKIP
        'Pandas live in China.'
        >>> layerwise = BGERanker(model="BAAI/bge-reranker-v2-minicpm-layerwise", cutoff_layers=[28, 40])
        >>> layerwise.run(query="Where do pandas live?", documents=docs)["documents"][0].meta  # doctest: +SKIP
        {'layer_scores': {28: 0.97..., 40: 0.98...}}

    """

    SETTINGS = RERANKER_SETTINGS

    def __init__(
        self,
        *,
        model: str | Path = DEFAULT_RERANKER,
        device: str | ComponentDevice | None = None,
        top_k: int = 10,
        score_threshold: float | None = None,
        scale_score: bool = True,
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
        windows: bool = True,
        window_overlap: int = 64,
        max_windows: int | None = None,
        aggregation: Aggregation = "max",
        max_length: int | None = None,
        max_query_length: int | None = None,
        batch_size: int = 32,
        use_fp16: bool | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
        token: Secret | None = default_token(),  # noqa: B008 - Haystack's convention; a Secret is immutable
        query_prefix: str = "",
        query_suffix: str = "",
        document_prefix: str = "",
        document_suffix: str = "",
        model_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
        backend: Literal["torch", "onnx", "openvino"] = "torch",
        prompt: str | None = None,
        cutoff_layers: int | list[int] | None = None,
        compress_ratio: int | None = None,
        compress_layers: int | list[int] | None = None,
        base_url: str | None = None,
        api_key: Secret | None = default_api_key(),  # noqa: B008 - Haystack's convention; a Secret is immutable
    ) -> None:
        top_k = plain(top_k)
        check_positive_int(top_k, name="top_k")
        self.model = check_model(model)
        self.device = component_device(device)
        self.top_k = top_k
        self.score_threshold = check_optional_float(plain(score_threshold), name="score_threshold")
        self.scale_score = scale_score
        self.meta_fields_to_embed = check_fields(meta_fields_to_embed, embedding_separator)
        self.embedding_separator = embedding_separator
        self.windows = windows
        self.window_overlap = plain(window_overlap)
        self.max_windows = plain(max_windows)
        self.aggregation: Aggregation = aggregation
        self.max_length = plain(max_length)
        self.max_query_length = plain(max_query_length)
        self.batch_size = plain(batch_size)
        self.use_fp16 = use_fp16
        self.revision = revision
        self.trust_remote_code = trust_remote_code
        self.token = check_token(token)
        self.query_prefix = query_prefix
        self.query_suffix = query_suffix
        self.document_prefix = document_prefix
        self.document_suffix = document_suffix
        self.model_kwargs = model_kwargs
        self.tokenizer_kwargs = tokenizer_kwargs
        self.config_kwargs = config_kwargs
        self.backend = backend
        self.prompt = prompt
        self.cutoff_layers = plain(cutoff_layers)
        self.compress_ratio = plain(compress_ratio)
        self.compress_layers = plain(compress_layers)
        self.base_url = base_url
        self.api_key = check_token(api_key, name="api_key")
        self._slot: CoreSlot[BGEReranker | RemoteReranker] = CoreSlot()
        _ = self.reranker  # built now, so bad settings fail here, naming the value

    @property
    def reranker(self) -> BGEReranker | RemoteReranker:
        """The core reranker doing the work, built from the current settings (shares the model).

        With ``base_url``, a :class:`~bge_integrations.core.remote.RemoteReranker`.
        """
        if self.base_url is not None:
            client_side = {"normalize", "batch_size", "show_progress_bar"}
            remote = self._remote_settings(BGEReranker, client_side=client_side, default_model=DEFAULT_RERANKER)
            remote["normalize"] = check_flag(self.scale_score, name="scale_score")
            return self._slot.get(remote, RemoteReranker)
        return self._slot.get(self._core_settings(), BGEReranker)

    def _core(self) -> BGEReranker | RemoteReranker:
        return self.reranker

    def _remote_names(self) -> dict[str, str]:
        return {"model_name": "model", "normalize": "scale_score"}

    def _core_settings(self) -> dict[str, Any]:
        settings = CoreComponent._core_settings(self)
        settings["normalize"] = check_flag(self.scale_score, name="scale_score")
        for name in ("query_prefix", "query_suffix", "document_prefix", "document_suffix"):
            check_text(getattr(self, name), name=name)  # here too: __init__ builds the core, so they fail there
        return settings

    @component.output_types(documents=list[Document])
    def run(
        self,
        *,
        query: str,
        documents: list[Document],
        top_k: int | None = None,
        scale_score: bool | None = None,
        score_threshold: float | None = None,
    ) -> dict[str, list[Document]]:
        """Score every document against query; inputs are not modified.

        Args:
            query: The query.
            documents: Documents to rank (duplicates are kept and scored alike).
            top_k: Overrides the init ``top_k`` for this run.
            scale_score: Overrides the init ``scale_score`` for this run.
            score_threshold: Overrides the init ``score_threshold``, on this run's scale.

        Returns:
            ``{"documents": [...]}``: copies with ``score`` set, best first (ties keep input order).

        Raises:
            TypeError: If query is not a string or documents is not a list of Documents.
            ValueError: If top_k is not an int > 0 or score_threshold is not a number.

        """
        query, top_k, scale_score, score_threshold, texts = self._prepare(
            query, documents, top_k, scale_score, score_threshold
        )
        reranker = self.reranker
        rank = reranker.rank_layers if isinstance(reranker, BGEReranker) and self._several_layers() else reranker.rank
        ranked = rank(query, texts, top_k, score_threshold, normalize=scale_score)
        return {"documents": _scored(documents, ranked)}

    @component.output_types(documents=list[Document])
    async def run_async(
        self,
        *,
        query: str,
        documents: list[Document],
        top_k: int | None = None,
        scale_score: bool | None = None,
        score_threshold: float | None = None,
    ) -> dict[str, list[Document]]:
        """Async :meth:`run`: scores in a worker thread."""
        query, top_k, scale_score, score_threshold, texts = self._prepare(
            query, documents, top_k, scale_score, score_threshold
        )
        reranker = self.reranker
        layers = isinstance(reranker, BGEReranker) and self._several_layers()
        arank = reranker.arank_layers if isinstance(reranker, BGEReranker) and layers else reranker.arank
        ranked = await arank(query, texts, top_k, score_threshold, normalize=scale_score)
        return {"documents": _scored(documents, ranked)}

    def _several_layers(self) -> bool:
        reranker = self.reranker
        return isinstance(reranker, BGEReranker) and len(reranker.cutoff_layers or ()) > 1

    def _prepare(
        self,
        query: Any,
        documents: Any,
        top_k: int | None,
        scale_score: bool | None,
        score_threshold: float | None,
    ) -> tuple[Any, int, bool, float | None, list[str]]:
        checked = check_documents(documents, "BGERanker", "Pass Documents, e.g. a retriever's output.")
        # The run's values, or the attributes (which may have been set since __init__), under
        # this component's names; numpy scalars as Python numbers.
        top_k = plain(self.top_k if top_k is None else top_k)
        check_positive_int(top_k, name="top_k")
        scale = check_flag(plain(self.scale_score if scale_score is None else scale_score), name="scale_score")
        threshold = check_optional_float(
            plain(self.score_threshold if score_threshold is None else score_threshold), name="score_threshold"
        )
        fields = check_fields(self.meta_fields_to_embed, self.embedding_separator)
        texts = document_texts(checked, fields, self.embedding_separator)
        before, after = self._affix("document_prefix"), self._affix("document_suffix")
        if before or after:
            texts = [before + text + after for text in texts]
        before, after = self._affix("query_prefix"), self._affix("query_suffix")
        if (before or after) and isinstance(query, str):  # a non-string query: the core's error names it
            query = before + query + after
        return query, top_k, scale, threshold, texts

    def _affix(self, name: str) -> str:
        return check_text(getattr(self, name), name=name)


def _scored(documents: list[Document], ranked: list[RankedText]) -> list[Document]:
    out = []
    for item in ranked:
        doc = copy_document(documents[item.index], score=item.score)
        if item.layer_scores is not None:
            doc.meta["layer_scores"] = item.layer_scores
        out.append(doc)
    return out


__all__ = ["BGERanker"]
