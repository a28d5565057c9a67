"""BGERerank: a LlamaIndex node postprocessor on :class:`~bge_integrations.BGEReranker`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llama_index.core.bridge.pydantic import ConfigDict, Field, PrivateAttr, SecretStr, field_validator
from llama_index.core.callbacks import CallbackManager
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import BaseNode, MetadataMode, NodeWithScore, QueryBundle

from bge_integrations.core.configs import RERANKER_SETTINGS, passed_through
from bge_integrations.core.loading import check_serialized_remote_code
from bge_integrations.core.presets import DEFAULT_RERANKER
from bge_integrations.core.remote import RemoteReranker, remote_arguments
from bge_integrations.core.reranker import Aggregation, BGEReranker
from bge_integrations.core.slot import CoreSlot
from bge_integrations.core.types import RankedText
from bge_integrations.core.validation import check_items, check_text
from bge_integrations.llama_index._events import rerank_events
from bge_integrations.llama_index._remote_code import RemoteCodeFromDataRefused

if TYPE_CHECKING:
    from typing_extensions import Self

_SETTINGS = passed_through(RERANKER_SETTINGS, "llama_index")
"""Field name -> :class:`BGEReranker` argument, for the fields given to the core as they are."""

RETRIEVAL_SCORE_KEY = "retrieval_score"
"""Metadata key of the score a node had before reranking (hidden from the LLM and embedder)."""
LAYER_SCORES_KEY = "layer_scores"
"""Metadata key of every ``cutoff_layers`` layer's score, ``{layer: score}`` (hidden from the LLM and embedder)."""


class BGERerank(RemoteCodeFromDataRefused, BaseNodePostprocessor):
    """Reranks nodes with a BGE reranker; returns copies, best first, with the new scores.

    Parameters follow LlamaIndex's ``SentenceTransformerRerank``. The text of a node is
    ``node.get_content(metadata_mode=MetadataMode.EMBED)``; passages longer than the model's
    window are read as overlapping windows. Input nodes are never changed: each result is a new
    ``NodeWithScore``. With ``keep_retrieval_score`` (the default) its node is a shallow copy
    carrying the score it arrived with in ``metadata["retrieval_score"]`` (excluded from LLM and
    embedding text); without it, the result shares the caller's node, unchanged. Emits LlamaIndex's
    ``ReRankStartEvent``/``ReRankEndEvent`` and the ``RERANKING`` callback event.

    BGE's LLM rerankers (bge-reranker-v2-gemma, v2-minicpm-layerwise, v2.5-gemma2-lightweight)
    rerank too, with FlagEmbedding's ``prompt``, ``cutoff_layers``, ``compress_ratio`` and
    ``compress_layers``. With several ``cutoff_layers``, the deepest layer's score is the node's
    score and every layer's is in ``metadata["layer_scores"]`` (``{layer: score}``, one forward
    pass; excluded from LLM and embedding text; the node is then copied even without
    ``keep_retrieval_score``).

    Args:
        model: Hub id or local path of a BGE reranker.
        top_n: Nodes kept, best first; None keeps all.
        score_threshold: Drop nodes scoring below it (on the ``normalize`` scale).
        keep_retrieval_score: Put the incoming score in ``metadata["retrieval_score"]``.
        device: ``"cuda"``, ``"mps"``, ``"cpu"``... None picks CUDA, then MPS, then CPU.
        batch_size: Pairs (windows) per forward pass.
        use_fp16: Half precision. None: on for CUDA, off elsewhere.
        max_length: Tokens per (query, passage) pair. None: 512 for the BGE rerankers.
        max_query_length: Query tokens kept. None: three quarters of ``max_length``.
        windows: Read long passages as overlapping windows (off: only their beginning).
        window_overlap: Tokens shared by consecutive windows.
        max_windows: Windows read per passage at most (a longer passage is cut there, counted,
            warned about once). None: every window.
        aggregation: Window scores to a node's score: ``"max"`` or ``"mean"``.
        normalize: Sigmoid scores in 0..1 (True) or raw logits (False).
        revision: Hub revision.
        trust_remote_code: Run code shipped with the checkpoint. Data cannot switch it on:
            ``from_dict``/``from_json`` (see :meth:`from_dict`), ``model_validate``,
            ``model_validate_json`` and ``model_construct`` refuse it outside
            :func:`~bge_integrations.core.loading.allow_remote_code`.
        token: Hugging Face token for private or gated models (None: ``HF_TOKEN``); kept out of
            ``to_dict``, ``to_json`` and ``repr``.
        prompt: LLM rerankers only: the instruction read after the passage. None: FlagEmbedding's
            default for the model.
        cutoff_layers: Layerwise and lightweight LLM rerankers only: the layers that score, an int
            or a list (the deepest ranks). None: the last layer.
        compress_ratio: Lightweight LLM reranker only: passage tokens merged into one (1, 2, 4 or
            8). None: FlagEmbedding's default.
        compress_layers: Lightweight LLM reranker only: the layers at which passage tokens are
            merged. None: FlagEmbedding's default.
        base_url: A BGE server (``bge-integrations serve``) that scores instead of a local model;
            no model loads here, ``core`` is a :class:`~bge_integrations.core.remote.RemoteReranker`,
            ``normalize`` still picks the scale, ``batch_size`` is nodes per request, and a
            setting the server owns (``device``, ``max_length``...) is refused by name. None: local.
        api_key: The server's API key (``base_url`` only); kept out of ``to_dict`` and ``repr``.
        callback_manager: LlamaIndex's legacy callback manager.

    Example:
        >>> reranker = BGERerank(model="BAAI/bge-reranker-base", top_n=3, device="cpu")
        >>> engine = index.as_query_engine(similarity_top_k=10, node_postprocessors=[reranker])  # doctest: +SKIP
        >>> engine.query("Where do pandas live?").source_nodes[0].score  # doctest: +SKIP
        0.98...
        >>> layerwise = BGERerank("BAAI/bge-reranker-v2-minicpm-layerwise", cutoff_layers=[28, 40], device="cpu")
        >>> best = layerwise.postprocess_nodes(nodes, query_str="Where do pandas live?")[0]  # doctest: +SKIP
        >>> best.score, best.node.metadata["layer_scores"]  # doctest: +SKIP
        (0.98..., {28: 0.97..., 40: 0.98...})

    """

    model_config = ConfigDict(extra="forbid")

    model: str = Field(default=DEFAULT_RERANKER, description="Hub id or local path of a BGE reranker.")
    top_n: int | None = Field(default=2, gt=0, description="Nodes kept, best first; None keeps all.")
    score_threshold: float | None = Field(default=None, allow_inf_nan=False, description="Drop nodes scoring below it.")
    keep_retrieval_score: bool = Field(default=True, description="Keep the incoming score in metadata.")
    device: str | None = Field(default=None, description="Device; None picks CUDA, then MPS, then CPU.")
    batch_size: int = Field(default=32, gt=0, description="Pairs (windows) per forward pass.")
    use_fp16: bool | None = Field(default=None, description="Half precision; None: on for CUDA only.")
    max_length: int | None = Field(default=None, gt=0, description="Tokens per pair; None: the model's.")
    max_query_length: int | None = Field(default=None, gt=0, description="Query tokens kept at most.")
    windows: bool = Field(default=True, description="Read long passages as overlapping windows.")
    window_overlap: int = Field(default=64, ge=0, description="Tokens shared by consecutive windows.")
    max_windows: int | None = Field(default=None, gt=0, description="Windows read per passage at most; None: all.")
    aggregation: Aggregation = Field(default="max", description="Window scores to a node's score.")
    normalize: bool = Field(default=True, description="Sigmoid scores (True) or raw logits (False).")
    revision: str | None = Field(default=None, description="Hub revision (branch, tag or commit).")
    trust_remote_code: bool = Field(default=False, description="Run code shipped with the checkpoint.")
    token: SecretStr | None = Field(
        default=None, exclude=True, repr=False, description="Hugging Face token; never in to_dict or repr."
    )
    prompt: str | None = Field(default=None, description="LLM rerankers: the instruction after the passage.")
    cutoff_layers: int | list[int] | None = Field(
        default=None, description="Layerwise/lightweight LLM rerankers: the scoring layers (the deepest ranks)."
    )
    compress_ratio: int | None = Field(
        default=None, description="Lightweight LLM reranker: passage tokens merged into one (1, 2, 4 or 8)."
    )
    compress_layers: int | list[int] | None = Field(
        default=None, description="Lightweight LLM reranker: the layers at which passage tokens are merged."
    )
    base_url: str | None = Field(default=None, description="A BGE server that scores instead; None: a local model.")
    api_key: SecretStr | None = Field(
        default=None, exclude=True, repr=False, description="The server's API key; never in to_dict or repr."
    )

    _slot: CoreSlot[BGEReranker | RemoteReranker] = PrivateAttr(default_factory=CoreSlot)

    def __init__(self, model: str = DEFAULT_RERANKER, **data: Any) -> None:
        """Take the model positionally too, as :class:`BGEEmbedding` and the core reranker do."""
        super().__init__(**{"model": model, **data})

    @field_validator("model")
    @classmethod
    def _check_model(cls, model: str) -> str:
        if not model.strip():
            msg = f"model must be a hub id or a local path, got {model!r}"
            raise ValueError(msg)
        return model

    def model_post_init(self, context: Any, /) -> None:
        """Build the core now, so bad settings fail at construction, naming the value."""
        if self.callback_manager is None:  # LlamaIndex code passes None for "no callbacks"
            self.callback_manager = CallbackManager([])
        _ = self.core

    @classmethod
    def class_name(cls) -> str:
        """Name used by LlamaIndex serialisation."""
        return "BGERerank"

    @classmethod
    def from_dict(cls, data: dict[str, Any], **kwargs: Any) -> Self:
        """Rebuild from :meth:`to_dict` (or ``to_json``); the data cannot switch ``trust_remote_code`` on.

        Keyword arguments are code, not data: ``from_dict(data, trust_remote_code=True)`` is an
        explicit opt-in, as is :func:`~bge_integrations.core.loading.allow_remote_code`.

        Raises:
            ValueError: If data asks for ``trust_remote_code`` without such an opt-in.

        """
        check_serialized_remote_code(cls.class_name(), {k: v for k, v in data.items() if k not in kwargs})
        return super().from_dict(data, **kwargs)

    @property
    def core(self) -> BGEReranker | RemoteReranker:
        """The :class:`BGEReranker` doing the work, built from the current fields (no weights).

        With ``base_url``, a :class:`~bge_integrations.core.remote.RemoteReranker`.
        """
        settings: dict[str, Any] = {core: getattr(self, name) for name, core in _SETTINGS.items()}
        settings["token"] = None if self.token is None else self.token.get_secret_value()
        if self.base_url is not None:
            return self._slot.get(self._remote_settings(settings), RemoteReranker)
        return self._slot.get(settings, BGEReranker)

    def _remote_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        return remote_arguments(
            "BGERerank",
            self.base_url,
            None if self.api_key is None else self.api_key.get_secret_value(),
            settings,
            BGEReranker,
            default_model=DEFAULT_RERANKER,
            client_side={"normalize", "batch_size"},
            names=_NAMES,
        )

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        bundle = _require_query(query_bundle)
        texts = _texts(nodes)
        with rerank_events(self.callback_manager, self.model, nodes, bundle, self._event_top_n(nodes)) as out:
            core = self.core
            rank = core.rank_layers if isinstance(core, BGEReranker) and self._several_layers() else core.rank
            out.extend(self._results(nodes, rank(bundle.query_str, texts, self.top_n, self.score_threshold)))
        return out

    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        bundle = _require_query(query_bundle)
        texts = _texts(nodes)
        with rerank_events(self.callback_manager, self.model, nodes, bundle, self._event_top_n(nodes)) as out:
            core = self.core
            arank = core.arank_layers if isinstance(core, BGEReranker) and self._several_layers() else core.arank
            out.extend(self._results(nodes, await arank(bundle.query_str, texts, self.top_n, self.score_threshold)))
        return out

    def _several_layers(self) -> bool:
        core = self.core
        return isinstance(core, BGEReranker) and len(core.cutoff_layers or ()) > 1

    def _event_top_n(self, nodes: list[NodeWithScore]) -> int:
        return len(nodes) if self.top_n is None else self.top_n

    def _results(self, nodes: list[NodeWithScore], ranked: list[RankedText]) -> list[NodeWithScore]:
        return [
            NodeWithScore(node=self._node_copy(nodes[item.index], item.layer_scores), score=item.score)
            for item in ranked
        ]

    def _node_copy(self, scored: NodeWithScore, layer_scores: dict[int, float] | None = None) -> BaseNode:
        node = scored.node
        added: dict[str, Any] = {}
        if self.keep_retrieval_score:
            added[RETRIEVAL_SCORE_KEY] = scored.score
        if layer_scores is not None:
            added[LAYER_SCORES_KEY] = layer_scores
        if not added:
            return node
        return node.model_copy(
            update={
                "metadata": {**node.metadata, **added},
                "excluded_llm_metadata_keys": _with_keys(node.excluded_llm_metadata_keys, added),
                "excluded_embed_metadata_keys": _with_keys(node.excluded_embed_metadata_keys, added),
            }
        )


_NAMES = {core: name for name, core in _SETTINGS.items()}
"""Core argument -> field name, for errors."""


def _require_query(bundle: QueryBundle | None) -> QueryBundle:
    if bundle is None:
        msg = "BGERerank needs a query: pass query_str= or query_bundle= to postprocess_nodes, got query_bundle=None"
        raise ValueError(msg)
    check_text(bundle.query_str, name="query")  # before LlamaIndex's events validate it
    return bundle


def _texts(nodes: Any) -> list[str]:
    """The text read for each node; errors name the bad node by position."""
    checked = check_items(
        nodes, NodeWithScore, name="nodes", sequence="a list of NodeWithScore", item="a NodeWithScore", hint=_wrap_hint
    )
    return [scored.node.get_content(metadata_mode=MetadataMode.EMBED) for scored in checked]


def _wrap_hint(item: Any) -> str:
    return " (wrap a node as NodeWithScore(node=node))" if isinstance(item, BaseNode) else ""


def _with_keys(keys: list[str], added: dict[str, Any]) -> list[str]:
    return [*keys, *(key for key in added if key not in keys)]


__all__ = ["LAYER_SCORES_KEY", "RETRIEVAL_SCORE_KEY", "BGERerank"]
