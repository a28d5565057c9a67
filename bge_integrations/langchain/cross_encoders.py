"""BGECrossEncoder: LangChain's ``BaseCrossEncoder`` on the core :class:`BGEReranker`.

A drop-in replacement for ``HuggingFaceCrossEncoder``: the same ``model_name`` and
``model_kwargs`` (the arguments of sentence-transformers' ``CrossEncoder(...)``), translated onto
the core (``_peer_kwargs.py``); any key that cannot be honoured is refused by name.
"""

from __future__ import annotations

from typing import Any

from langchain_core.cross_encoders import BaseCrossEncoder
from pydantic import Field, model_validator
from typing_extensions import override

from bge_integrations.core.validation import check_pairs
from bge_integrations.langchain import _compat as compat
from bge_integrations.langchain._peer_kwargs import translate_cross_encoder
from bge_integrations.langchain._settings import RerankerSettings

_FIELDS = ("max_length", "normalize", "device", "use_fp16", "revision", "trust_remote_code")


class BGECrossEncoder(RerankerSettings, BaseCrossEncoder):
    """Scores (query, passage) pairs with a BGE reranker, for ``CrossEncoderReranker``.

    Scores come back in input order, as plain floats; every pair goes through the core's
    :meth:`~bge_integrations.core.reranker.BGEReranker.score_pairs` (windows for long passages
    included). Takes ``HuggingFaceCrossEncoder``'s arguments: ``model_kwargs`` keys are
    translated onto the fields (``{"device": "cpu"}``, ``{"max_length": 256}``...) or onto the
    core (``{"model_kwargs": {...}}``, ``{"tokenizer_kwargs": {...}}``, ``{"cache_folder": ...}``).
    Prefer :class:`BGERerank` as a compressor: it also keeps the scores in the documents' metadata.

    BGE's LLM rerankers score too (bge-reranker-v2-gemma, v2-minicpm-layerwise,
    v2.5-gemma2-lightweight), tuned by the fields ``prompt``, ``cutoff_layers`` (the deepest one
    scores), ``compress_ratio`` and ``compress_layers``, as in FlagEmbedding; a setting the
    model's family does not read is a ValueError at the first score.

    Example:
        >>> from langchain_classic.retrievers.document_compressors import CrossEncoderReranker
        >>> from bge_integrations.langchain import BGECrossEncoder
        >>> encoder = BGECrossEncoder(model_name="BAAI/bge-reranker-base", model_kwargs={"device": "cpu"})
        >>> compressor = CrossEncoderReranker(model=encoder, top_n=3)
        >>> encoder.score([("what do pandas eat?", "Pandas eat bamboo.")])  # doctest: +SKIP
        [0.99...]
        >>> gemma = BGECrossEncoder(model_name="BAAI/bge-reranker-v2-gemma", normalize=False)
        >>> gemma.score([("what do pandas eat?", "Pandas eat bamboo.")])  # doctest: +SKIP
        [9.1...]

    """

    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """HuggingFaceCrossEncoder compatibility: ``CrossEncoder(...)`` arguments (docs/langchain.md)."""

    @model_validator(mode="before")
    @classmethod
    def _lift_token(cls, data: Any) -> Any:
        return compat.lift_token(data)

    @override
    def score(self, text_pairs: list[tuple[str, str]]) -> list[float]:
        """Score each (query, passage) pair: one float per pair, in input order.

        Raises:
            TypeError: If text_pairs, or one of its pairs, is not made of strings (named by index).

        """
        return self.client.score_pairs(check_pairs(text_pairs, name="text_pairs"))

    @override
    def _core_settings(self) -> dict[str, Any]:
        settings = super()._core_settings()
        translated = translate_cross_encoder(
            self, {name: settings[name] for name in (*_FIELDS, "token")}, self.model_kwargs
        )
        settings.update({name: translated[name] for name in (*_FIELDS, "token")})
        settings["backend"] = translated.get("backend", "torch")
        settings["model_kwargs"] = translated.get("transformers_model_kwargs")
        settings["tokenizer_kwargs"] = translated.get("tokenizer_kwargs")
        settings["config_kwargs"] = translated.get("config_kwargs")
        settings["cache_folder"] = translated.get("cache_folder")
        settings["local_files_only"] = translated.get("local_files_only", False)
        return settings


__all__ = ["BGECrossEncoder"]
