"""The official BGE query instructions, written once.

BGE retrieval models are trained with an instruction in front of short queries and none in
front of passages (FlagEmbedding model cards). bge-m3 is trained without instructions.
"""

from __future__ import annotations

EN_QUERY_INSTRUCTION = "Represent this sentence for searching relevant passages: "
"""Query instruction of the English BGE models (v1 and v1.5)."""

ZH_QUERY_INSTRUCTION = "为这个句子生成表示以用于检索相关文章："
"""Query instruction of the Chinese BGE models (v1 and v1.5)."""

__all__ = ["EN_QUERY_INSTRUCTION", "ZH_QUERY_INSTRUCTION"]
