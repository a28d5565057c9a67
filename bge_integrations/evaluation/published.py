"""Published MTEB scores (nDCG@10) of the collections in ``../shared/data``, as data.

Sources: the READMEs of ``../shared/data/{scifact,nfcorpus}`` (MTEB results repository).
"""

from __future__ import annotations

PUBLISHED_NDCG_AT_10: dict[str, dict[str, float]] = {
    "all-MiniLM-L6-v2": {"scifact": 0.64508, "nfcorpus": 0.31594},
    "bge-small-en-v1.5": {"scifact": 0.71273, "nfcorpus": 0.34264},
    "bge-base-en-v1.5": {"scifact": 0.74345, "nfcorpus": 0.37367},
    "bge-large-en-v1.5": {"scifact": 0.74644, "nfcorpus": 0.38061},
}
"""Model short name to collection to MTEB's nDCG@10 (test split)."""

__all__ = ["PUBLISHED_NDCG_AT_10"]
