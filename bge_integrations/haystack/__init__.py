"""Haystack components for BGE: ``BGETextEmbedder``, ``BGEDocumentEmbedder``, ``BGERanker``.

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
from bge_integrations.haystack.rankers import BGERanker

__all__ = ["BGEDocumentEmbedder", "BGERanker", "BGETextEmbedder"]
