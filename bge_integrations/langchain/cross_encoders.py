"""BGECrossEncoder: LangChain's ``BaseCrossEncoder`` on the core :class:`BGEReranker`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.cross_encoders import BaseCrossEncoder
from typing_extensions import override

from bge_integrations.langchain._settings import RerankerSettings


class BGECrossEncoder(RerankerSettings, BaseCrossEncoder):
    """Scores (query, passage) pairs with a BGE reranker, for ``CrossEncoderReranker``.

    Pairs sharing a query are scored in one call of the core reranker (windows for long
    passages included); scores come back in input order, as plain floats. Prefer
    :class:`BGERerank` as a compressor: it also keeps the scores in the documents' metadata.

    Example:
        >>> from langchain_classic.retrievers.document_compressors import CrossEncoderReranker
        >>> from bge_integrations.langchain import BGECrossEncoder
        >>> encoder = BGECrossEncoder(model_name="BAAI/bge-reranker-base", device="cpu")
        >>> compressor = CrossEncoderReranker(model=encoder, top_n=3)
        >>> encoder.score([("what do pandas eat?", "Pandas eat bamboo.")])  # doctest: +SKIP
        [0.99...]

    """

    @override
    def score(self, text_pairs: list[tuple[str, str]]) -> list[float]:
        """Score each (query, passage) pair: one float per pair, in input order.

        Raises:
            TypeError: If text_pairs, or one of its pairs, is not made of strings (named by index).

        """
        groups: dict[str, list[int]] = {}
        for index, pair in enumerate(_pairs(text_pairs)):
            groups.setdefault(pair[0], []).append(index)
        scores = [0.0] * len(text_pairs)
        for query, indices in groups.items():
            passages = [text_pairs[index][1] for index in indices]
            for index, value in zip(indices, self.client.score(query, passages), strict=True):
                scores[index] = value
        return scores


def _pairs(text_pairs: Any) -> Sequence[tuple[str, str]]:
    if isinstance(text_pairs, (str, bytes)) or not isinstance(text_pairs, Sequence):
        msg = f"text_pairs must be a list of (query, passage) pairs, got {type(text_pairs).__name__}"
        raise TypeError(msg)
    for index, pair in enumerate(text_pairs):
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            msg = f"text_pairs[{index}] must be a (query, passage) pair, got {pair!r:.80}"
            raise TypeError(msg)
        for side, text in enumerate(pair):
            if not isinstance(text, str):
                what = "query" if side == 0 else "passage"
                msg = (
                    f"text_pairs[{index}] must hold two strings; text_pairs[{index}][{side}] (the {what}) "
                    f"is {type(text).__name__}: {text!r:.80}"
                )
                raise TypeError(msg)
    return text_pairs


__all__ = ["BGECrossEncoder"]
