"""The BGE model family as data: what each model needs to be used correctly.

One row per model of the FlagEmbedding model list. A name resolves to a preset when it is the
hub id, or when a local checkpoint's folder name or recorded base model contains the preset's
short name (``bge-base-en-v1.5-finetuned`` resolves to ``bge-base-en-v1.5``); the longest
matching short name wins, so ``bge-large-zh-noinstruct`` is not mistaken for ``bge-large-zh``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bge_integrations.core.instructions import EN_QUERY_INSTRUCTION, ZH_QUERY_INSTRUCTION

ModelKind = Literal["embedder", "reranker"]
Pooling = Literal["cls", "mean", "lasttoken"]


@dataclass(frozen=True)
class ModelPreset:
    """What a BGE model needs: its kind, instruction, pooling, normalisation and window.

    Args:
        name: Hub id, e.g. ``"BAAI/bge-base-en-v1.5"``.
        kind: ``"embedder"`` (bi-encoder) or ``"reranker"`` (cross-encoder).
        query_instruction: Prefix for queries; ``""`` for none. Rerankers take none.
        pooling: How token states become one vector (embedders only).
        normalize: Whether embeddings are L2-normalised (embedders only).
        max_length: Tokens the model reads at most, special tokens included.
        dimension: Width of the embedding (embedders only).

    """

    name: str
    kind: ModelKind
    query_instruction: str = ""
    pooling: Pooling = "cls"
    normalize: bool = True
    max_length: int = 512
    dimension: int | None = None

    @property
    def short_name(self) -> str:
        """The hub id without its organisation, e.g. ``"bge-base-en-v1.5"``."""
        return self.name.rsplit("/", 1)[-1].lower()


def _embedder(name: str, instruction: str, dimension: int, max_length: int = 512) -> ModelPreset:
    return ModelPreset(
        name=name,
        kind="embedder",
        query_instruction=instruction,
        dimension=dimension,
        max_length=max_length,
    )


def _reranker(name: str) -> ModelPreset:
    return ModelPreset(name=name, kind="reranker", max_length=512)


EN, ZH = EN_QUERY_INSTRUCTION, ZH_QUERY_INSTRUCTION

PRESETS: tuple[ModelPreset, ...] = (
    _embedder("BAAI/bge-small-en-v1.5", EN, 384),
    _embedder("BAAI/bge-base-en-v1.5", EN, 768),
    _embedder("BAAI/bge-large-en-v1.5", EN, 1024),
    _embedder("BAAI/bge-small-zh-v1.5", ZH, 512),
    _embedder("BAAI/bge-base-zh-v1.5", ZH, 768),
    _embedder("BAAI/bge-large-zh-v1.5", ZH, 1024),
    _embedder("BAAI/bge-small-en", EN, 384),
    _embedder("BAAI/bge-base-en", EN, 768),
    _embedder("BAAI/bge-large-en", EN, 1024),
    _embedder("BAAI/bge-small-zh", ZH, 512),
    _embedder("BAAI/bge-base-zh", ZH, 768),
    _embedder("BAAI/bge-large-zh", ZH, 1024),
    _embedder("BAAI/bge-large-zh-noinstruct", "", 1024),
    _embedder("BAAI/bge-m3", "", 1024, max_length=8192),
    _reranker("BAAI/bge-reranker-base"),
    _reranker("BAAI/bge-reranker-large"),
    _reranker("BAAI/bge-reranker-v2-m3"),
    _reranker("BAAI/bge-reranker-v2-gemma"),
    _reranker("BAAI/bge-reranker-v2-minicpm-layerwise"),
    _reranker("BAAI/bge-reranker-v2.5-gemma2-lightweight"),
)
"""Every BGE embedder and reranker of the FlagEmbedding model list."""

DEFAULT_EMBEDDER = "BAAI/bge-small-en-v1.5"
DEFAULT_RERANKER = "BAAI/bge-reranker-base"


def find_preset(*names: str | None, kind: ModelKind | None = None) -> ModelPreset | None:
    """Return the preset that the first matching name refers to, or None.

    Each name is tried in turn (a hub id, a folder name, a checkpoint's recorded base model);
    within one name the longest matching short name wins.

    Args:
        names: Candidate names, best first; ``None`` entries are skipped.
        kind: Only consider presets of this kind.

    Returns:
        The matching preset, or None when no name matches.

    Example:
        >>> find_preset("/models/bge-base-en-v1.5-finetuned").name
        'BAAI/bge-base-en-v1.5'

    """
    candidates = [p for p in PRESETS if kind is None or p.kind == kind]
    for name in names:
        if not name:
            continue
        lowered = name.lower().replace("\\", "/")
        exact = [p for p in candidates if p.name.lower() == lowered]
        if exact:
            return exact[0]
        base = lowered.rstrip("/").rsplit("/", 1)[-1]
        matches = [p for p in candidates if _contains_name(base, p.short_name)]
        if matches:
            return max(matches, key=lambda p: len(p.short_name))
    return None


def _contains_name(text: str, short_name: str) -> bool:
    """True when short_name occurs in text and is not the prefix of a longer version tag."""
    start = text.find(short_name)
    while start != -1:
        end = start + len(short_name)
        following = text[end : end + 2]
        # "bge-small-en" must not match "bge-small-en-v1.5"; "-v1" after it means another model.
        if not following.startswith("-v") and not following[:1].isalnum():
            return True
        start = text.find(short_name, start + 1)
    return False


__all__ = ["DEFAULT_EMBEDDER", "DEFAULT_RERANKER", "PRESETS", "ModelPreset", "find_preset"]
