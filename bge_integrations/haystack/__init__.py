"""Haystack components for BGE: ``BGETextEmbedder``, ``BGEDocumentEmbedder``, ``BGERanker``, and ``BGEM3*``.

The bge-m3 components live in ``m3.py`` (dense + sparse embedders) and ``m3_rankers.py`` (the ranker).

Pipelines that hold these components load with Haystack's allowlist step::

    Pipeline.loads(text, allowed_modules=["bge_integrations.*"])

See ``docs/haystack.md``.
"""

from __future__ import annotations

try:
    import haystack  # noqa: F401
except ImportError as exc:
    msg = 'bge_integrations.haystack needs Haystack: pip install "bge-integrations[haystack]"'
    raise ImportError(msg) from exc

from bge_integrations.haystack.embedders import BGEDocumentEmbedder, BGETextEmbedder
from bge_integrations.haystack.m3 import (
    BGEM3DocumentEmbedder,
    BGEM3SparseDocumentEmbedder,
    BGEM3SparseTextEmbedder,
    BGEM3TextEmbedder,
)
from bge_integrations.haystack.m3_rankers import BGEM3Ranker
from bge_integrations.haystack.rankers import BGERanker

__all__ = [
    "BGEDocumentEmbedder",
    "BGEM3DocumentEmbedder",
    "BGEM3Ranker",
    "BGEM3SparseDocumentEmbedder",
    "BGEM3SparseTextEmbedder",
    "BGEM3TextEmbedder",
    "BGERanker",
    "BGETextEmbedder",
]
