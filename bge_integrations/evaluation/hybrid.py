r"""Sparse and hybrid retrieval: a lexical signal alone, or fused with dense, scored exactly.

Two lexical signals:

* ``"m3"``: bge-m3's own lexical weights (:meth:`~bge_integrations.BGEM3Embedder.embed_sparse_documents`),
  scored by the lexical matching score (the sum, over token ids in both texts, of the product of
  their weights), for every query and document at once as one sparse matrix product;
* ``"bm25"``: Okapi BM25 (:mod:`bge_integrations.evaluation.bm25`), for models without a sparse head.

Three fusions of a dense score ``d`` and a lexical score ``s``, each per (query, document):

* ``"weighted"``: ``(w_sparse * s + w_dense * d) / (w_sparse + w_dense)`` on the raw scores,
  FlagEmbedding's ``compute_score(...)["sparse+dense"]``. Defaults 0.4 dense, 0.2 sparse: the
  bge-m3 model card's (0.4, 0.2, 0.4) without ColBERT. Only for ``"m3"``: its lexical scores sit
  on the scale of the dense ones (a few tenths), BM25's do not (tens, and varying per query).
* ``"minmax"``: the same weighted sum after rescaling each signal, per query, to 0..1 over the
  whole corpus (``(x - min) / (max - min)``; a query whose signal is flat gets 0 from it). The
  default for ``"bm25"``: BM25 is unbounded and its range changes with query length and term
  rarity, so raw sums would let BM25 decide alone; rescaling per query puts both signals on
  one scale and keeps how far apart the documents are within each (which rank fusion throws
  away). Convex combination of normalised scores is also what Bruch et al. (2023, "An Analysis
  of Fusion Functions for Hybrid Retrieval", ACM TOIS) found at least as good as RRF.
* ``"rrf"``: reciprocal rank fusion (Cormack et al., 2009), ``1 / (k + rank_d) + 1 / (k + rank_s)``
  with ``k = 60``; ranks over the whole corpus, tied scores share the best rank. Unweighted, as
  published; it needs no scale at all.

Every document is scored by both signals (exact search, no candidate lists), so the fused
ranking does not depend on how deep each first stage went. Through a framework
(``framework="langchain"``...), the dense scores come from that framework's vector store,
asked for the whole corpus per query; the lexical side always runs in the core.
Runs are cut at the top ``top_k`` (plus the documents tied with the last), then scored by
:func:`~bge_integrations.evaluation.retrieval.score_run` as dense runs are: trec_eval order,
a document whose id equals the query id dropped, nDCG@10, Recall@100, MRR@10.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

# scipy comes with sentence-transformers (a dependency); it ships no type stubs.
from scipy import sparse as sp
from scipy.stats import rankdata

from bge_integrations.core.embedder import BGEEmbedder
from bge_integrations.core.m3_types import SparseEmbedding
from bge_integrations.evaluation.beir import RetrievalDataset
from bge_integrations.evaluation.bm25 import BM25
from bge_integrations.evaluation.retrieval import RerankFn, RetrievalReport, Run, score_run

Retrieval = Literal["dense", "sparse", "hybrid"]
Lexical = Literal["m3", "bm25"]
Fusion = Literal["weighted", "minmax", "rrf"]
RETRIEVALS: tuple[str, ...] = get_args(Retrieval)
LEXICALS: tuple[str, ...] = get_args(Lexical)
FUSIONS: tuple[str, ...] = get_args(Fusion)
DEFAULT_DENSE_WEIGHT = 0.4
DEFAULT_SPARSE_WEIGHT = 0.2
RRF_K = 60
_BLOCK = 256  # queries scored at once: memory is block x documents x 8 bytes per signal


@dataclass(frozen=True)
class HybridSettings:
    """How a lexical signal is fused with dense: checked on construction.

    Args:
        lexical: ``"m3"`` (bge-m3 lexical weights) or ``"bm25"``.
        fusion: ``"weighted"``, ``"minmax"`` or ``"rrf"``; None: ``"weighted"`` for m3,
            ``"minmax"`` for bm25.
        dense_weight: Weight of the dense score (weighted and minmax).
        sparse_weight: Weight of the lexical score (weighted and minmax).
        rrf_k: The constant of reciprocal rank fusion (rrf).

    Raises:
        ValueError: For an unknown lexical or fusion, ``"weighted"`` with ``"bm25"``, negative or
            non-finite weights, weights summing to 0, or rrf_k < 0.

    Example:
        >>> HybridSettings("bm25").fusion
        'minmax'
        >>> HybridSettings("m3", dense_weight=1.0, sparse_weight=0.3).describe()
        'dense + m3 lexical, weighted sum 1/0.3'

    """

    lexical: Lexical = "m3"
    fusion: Fusion | None = None
    dense_weight: float = DEFAULT_DENSE_WEIGHT
    sparse_weight: float = DEFAULT_SPARSE_WEIGHT
    rrf_k: float = RRF_K

    def __post_init__(self) -> None:
        if self.lexical not in LEXICALS:
            msg = f"lexical must be one of {', '.join(LEXICALS)}; got {self.lexical!r}"
            raise ValueError(msg)
        fusion = self.fusion or ("weighted" if self.lexical == "m3" else "minmax")
        if fusion not in FUSIONS:
            msg = f"fusion must be one of {', '.join(FUSIONS)}; got {fusion!r}"
            raise ValueError(msg)
        if fusion == "weighted" and self.lexical == "bm25":
            msg = (
                "fusion 'weighted' adds raw scores, which suits bge-m3's lexical weights (on the dense scale) "
                "but not BM25 (unbounded); use 'minmax' or 'rrf' with lexical 'bm25', got fusion 'weighted'"
            )
            raise ValueError(msg)
        check_fusion_weights(self.dense_weight, self.sparse_weight)
        if not (math.isfinite(self.rrf_k) and self.rrf_k >= 0):
            msg = f"rrf_k must be a finite number >= 0, got {self.rrf_k!r}"
            raise ValueError(msg)
        object.__setattr__(self, "fusion", fusion)

    def describe(self) -> str:
        """One line: the signals and the fusion."""
        if self.fusion == "rrf":
            how = f"reciprocal rank fusion, k={self.rrf_k:g}"
        else:
            kind = "weighted sum" if self.fusion == "weighted" else "min-max normalised weighted sum"
            how = f"{kind} {self.dense_weight:g}/{self.sparse_weight:g}"
        return f"dense + {self.lexical} lexical, {how}"

    def fuse(self, dense: np.ndarray, lexical: np.ndarray) -> np.ndarray:
        """Fused scores of (queries, documents) score matrices of the two signals."""
        if self.fusion == "rrf":
            return reciprocal_rank_fusion(dense, lexical, k=self.rrf_k)
        if self.fusion == "minmax":
            dense, lexical = min_max(dense), min_max(lexical)
        return weighted_sum(dense, lexical, dense_weight=self.dense_weight, sparse_weight=self.sparse_weight)

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values (weights only where the fusion reads them)."""
        if self.fusion == "rrf":
            return {"lexical": self.lexical, "fusion": "rrf", "rrf_k": self.rrf_k}
        return {
            "lexical": self.lexical,
            "fusion": self.fusion,
            "dense_weight": self.dense_weight,
            "sparse_weight": self.sparse_weight,
        }


def check_fusion_weights(dense_weight: float, sparse_weight: float) -> None:
    """Refuse weights that are negative, not finite, or both 0, naming them."""
    for name, weight in (("dense_weight", dense_weight), ("sparse_weight", sparse_weight)):
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            msg = f"{name} must be a number, got {weight!r}"
            raise TypeError(msg)
        if not (math.isfinite(weight) and weight >= 0):
            msg = f"{name} must be finite and >= 0, got {weight!r}"
            raise ValueError(msg)
    if dense_weight + sparse_weight <= 0:
        msg = f"dense_weight and sparse_weight must not both be 0, got {dense_weight!r} and {sparse_weight!r}"
        raise ValueError(msg)


def weighted_sum(dense: np.ndarray, lexical: np.ndarray, *, dense_weight: float, sparse_weight: float) -> np.ndarray:
    """``(sparse_weight * lexical + dense_weight * dense) / (sparse_weight + dense_weight)``, elementwise.

    Example:
        >>> weighted_sum(np.array([0.5]), np.array([0.2]), dense_weight=0.4, sparse_weight=0.2).round(6).tolist()
        [0.4]

    """
    check_fusion_weights(dense_weight, sparse_weight)
    total = dense_weight + sparse_weight
    return np.asarray((sparse_weight * lexical + dense_weight * dense) / total, dtype=np.float64)


def min_max(scores: np.ndarray) -> np.ndarray:
    """Each row rescaled to 0..1 (its minimum to 0, its maximum to 1); a constant row becomes 0.

    Example:
        >>> min_max(np.array([[2.0, 4.0, 3.0], [5.0, 5.0, 5.0]])).tolist()
        [[0.0, 1.0, 0.5], [0.0, 0.0, 0.0]]

    """
    scores = np.asarray(scores, dtype=np.float64)
    low = scores.min(axis=1, keepdims=True)
    spread = scores.max(axis=1, keepdims=True) - low
    out = np.zeros_like(scores)
    np.divide(scores - low, spread, out=out, where=spread > 0)
    return out


def reciprocal_rank_fusion(dense: np.ndarray, lexical: np.ndarray, *, k: float = RRF_K) -> np.ndarray:
    """``1 / (k + rank in dense) + 1 / (k + rank in lexical)`` per row; rank 1 is the best, ties share the best rank.

    Example:
        >>> reciprocal_rank_fusion(np.array([[0.9, 0.1, 0.5]]), np.array([[0.0, 3.0, 3.0]]), k=0).tolist()
        [[1.3333333333333333, 1.3333333333333333, 1.5]]

    """
    total = np.zeros(np.shape(dense), dtype=np.float64)
    for scores in (dense, lexical):
        ranks = rankdata(-np.asarray(scores, dtype=np.float64), method="min", axis=1)
        total += 1.0 / (k + ranks)
    return total


def sparse_matrix(embeddings: Sequence[SparseEmbedding], width: int) -> sp.csr_matrix:
    """Lexical weights as a (texts, width) CSR matrix: row i holds text i's weight per token id.

    Example:
        >>> m = sparse_matrix([SparseEmbedding((3, 1), (0.5, 0.25))], width=4)
        >>> m.toarray().tolist()
        [[0.0, 0.25, 0.0, 0.5]]

    """
    indptr = np.zeros(len(embeddings) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(e) for e in embeddings])
    indices = np.fromiter((i for e in embeddings for i in e.indices), dtype=np.int64, count=int(indptr[-1]))
    values = np.fromiter((v for e in embeddings for v in e.values), dtype=np.float64, count=int(indptr[-1]))
    if indices.size and (indices.min() < 0 or indices.max() >= width):
        msg = f"token ids must lie in 0..{width - 1}, got ids from {indices.min()} to {indices.max()}"
        raise ValueError(msg)
    matrix = sp.csr_matrix((values, indices, indptr), shape=(len(embeddings), width))
    matrix.sort_indices()  # same ids in the same order: duplicate texts score exactly alike
    return matrix


def lexical_scores(queries: Sequence[SparseEmbedding], documents: Sequence[SparseEmbedding]) -> np.ndarray:
    """The lexical matching score of every (query, document) pair, as a dense (queries, documents) array.

    The same numbers as :func:`~bge_integrations.core.m3_scoring.lexical_score` pair by pair,
    from one sparse matrix product.

    Example:
        >>> q = [SparseEmbedding((5, 9), (0.5, 0.25))]
        >>> d = [SparseEmbedding((9, 12), (0.4, 1.0)), SparseEmbedding((7,), (1.0,))]
        >>> lexical_scores(q, d).round(6).tolist()
        [[0.1, 0.0]]

    """
    width = 1 + max((max(e.indices) for e in (*queries, *documents) if len(e)), default=0)
    product = sparse_matrix(queries, width) @ sparse_matrix(documents, width).T
    return np.asarray(product.toarray(), dtype=np.float64)


def dense_scores(queries: np.ndarray, documents: np.ndarray) -> np.ndarray:
    """Inner products of every (query, document), duplicate document vectors scored once (so they tie exactly)."""
    distinct, inverse = np.unique(np.asarray(documents, dtype=np.float32), axis=0, return_inverse=True)
    product = np.asarray(queries, dtype=np.float32) @ distinct.T
    return np.asarray(product[:, inverse.reshape(-1)], dtype=np.float64)


def top_with_ties(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores of a row, plus every index tied with the k-th (in index order).

    Example:
        >>> top_with_ties(np.array([0.1, 0.9, 0.5, 0.5, 0.2]), 2).tolist()
        [1, 2, 3]

    """
    if k >= scores.shape[0]:
        return np.arange(scores.shape[0])
    kth = np.partition(scores, scores.shape[0] - k)[scores.shape[0] - k]
    return np.flatnonzero(scores >= kth)


def evaluate_hybrid(
    dataset: RetrievalDataset,
    *,
    model: str | BGEEmbedder | None = None,
    retrieval: Literal["sparse", "hybrid"] = "hybrid",
    settings: HybridSettings | None = None,
    framework: str = "core",
    device: str | None = None,
    batch_size: int = 32,
    cache_dir: str | None = None,
    top_k: int = 100,
    rerank: RerankFn | None = None,
    rerank_top_k: int = 100,
    ignore_identical_ids: bool = True,
    progress: bool = False,
) -> RetrievalReport:
    """Retrieve by a lexical signal alone (sparse) or fused with dense (hybrid), exactly, and score.

    Args:
        dataset: The collection.
        model: Embedder hub id or path, or a built embedder (a ``BGEM3Embedder`` for lexical
            ``"m3"``); unused (may be None) for sparse retrieval with BM25.
        retrieval: ``"sparse"`` (the lexical signal alone) or ``"hybrid"``.
        settings: Lexical signal and fusion; None: ``HybridSettings()`` (m3, weighted 0.4/0.2).
        framework: ``"core"``, or the framework whose vector store gives the dense scores
            (``"langchain"``, ``"llama-index"``, ``"haystack"``), asked for the whole corpus.
        device: For a model given by name.
        batch_size: For a model given by name.
        cache_dir: Persistent embedding cache for a model given by name (core and m3 only).
        top_k: Documents kept per query (at least 100: Recall@100 reads 100).
        rerank: Optional ``(query, passages) -> scores``; reorders the top ``rerank_top_k``.
        rerank_top_k: Candidates the reranker reads; at most top_k.
        ignore_identical_ids: Drop a document whose id equals the query id (MTEB's default).
        progress: Progress bars (embedding, framework indexing, reranking).

    Returns:
        A :class:`~bge_integrations.evaluation.retrieval.RetrievalReport`, as dense retrieval's.

    Raises:
        ValueError: For an unknown retrieval, a missing model, top_k under 100, rerank_top_k
            over top_k, or a framework with sparse retrieval.
        TypeError: For lexical ``"m3"`` with an embedder that is not a ``BGEM3Embedder``.

    Example:
        >>> from bge_integrations.evaluation import load_beir
        >>> data = load_beir("../shared/data/scifact")  # doctest: +SKIP
        >>> minilm = "sentence-transformers/all-MiniLM-L6-v2"
        >>> report = evaluate_hybrid(data, model=minilm, settings=HybridSettings("bm25"))  # doctest: +SKIP
        >>> round(report.ndcg_at_10, 3)  # MiniLM dense alone: 0.645; BM25 alone: 0.663  # doctest: +SKIP
        0.713

    """
    settings = settings or HybridSettings()
    if retrieval not in ("sparse", "hybrid"):
        msg = f"retrieval must be 'sparse' or 'hybrid' (dense: evaluate_retrieval), got {retrieval!r}"
        raise ValueError(msg)
    if top_k < 100:
        msg = f"top_k must be at least 100 (Recall@100 reads 100 documents), got {top_k}"
        raise ValueError(msg)
    if rerank is not None and not 0 < rerank_top_k <= top_k:
        msg = f"rerank_top_k must be in 1..top_k ({top_k}), got {rerank_top_k}"
        raise ValueError(msg)
    if retrieval == "sparse" and framework != "core":
        msg = f"sparse retrieval runs in the core (a framework path gives dense scores, for hybrid), got {framework!r}"
        raise ValueError(msg)
    needs_model = retrieval == "hybrid" or settings.lexical == "m3"
    if needs_model and model is None:
        msg = f"a model is needed for {retrieval} retrieval with lexical {settings.lexical!r}, got model=None"
        raise ValueError(msg)
    start = time.perf_counter()
    query_ids = list(dataset.queries)
    query_texts = [dataset.queries[q] for q in query_ids]
    embedder = (
        _build_embedder(model, settings.lexical, device, batch_size, cache_dir, progress) if needs_model else None
    )

    dense_block: Callable[[slice], np.ndarray] | None = None
    doc_dense: np.ndarray | None = None
    query_dense: np.ndarray | None = None
    lexical_block: Callable[[slice], np.ndarray]
    if settings.lexical == "m3":
        from bge_integrations.core.m3_embedder import BGEM3Embedder

        if not isinstance(embedder, BGEM3Embedder):
            msg = f"lexical 'm3' needs a BGEM3Embedder (a bge-m3 checkpoint), got {type(embedder).__name__}"
            raise TypeError(msg)
        outputs = ("dense", "sparse") if retrieval == "hybrid" and framework == "core" else ("sparse",)
        docs = embedder.encode_documents(dataset.doc_texts, outputs=outputs)
        queries = embedder.encode_queries(query_texts, outputs=outputs)
        doc_dense, query_dense = docs.dense, queries.dense
        if docs.sparse is None or queries.sparse is None:
            msg = "BGEM3Embedder returned no lexical weights though they were asked for"
            raise RuntimeError(msg)
        width = 1 + max((max(e.indices) for e in (*docs.sparse, *queries.sparse) if len(e)), default=0)
        doc_matrix = sparse_matrix(docs.sparse, width).T.tocsr()
        query_matrix = sparse_matrix(queries.sparse, width)

        def lexical_block(rows: slice) -> np.ndarray:
            return np.asarray((query_matrix[rows] @ doc_matrix).toarray(), dtype=np.float64)

    else:
        index = BM25(dataset.doc_texts)

        def lexical_block(rows: slice) -> np.ndarray:
            return np.stack([index.scores(text) for text in query_texts[rows]]) if query_texts[rows] else np.zeros(0)

    if retrieval == "hybrid":
        if framework == "core":
            if doc_dense is None or query_dense is None:
                doc_dense = np.asarray(_given(embedder).embed_documents(dataset.doc_texts), dtype=np.float32)
                query_dense = np.asarray(_given(embedder).embed_queries(query_texts), dtype=np.float32)
            distinct, inverse = np.unique(doc_dense, axis=0, return_inverse=True)
            query_vectors = query_dense

            def dense_block(rows: slice) -> np.ndarray:
                return np.asarray((query_vectors[rows] @ distinct.T)[:, inverse.reshape(-1)], dtype=np.float64)

        else:
            dense_block = _framework_dense(framework, dataset, _given(embedder), progress)

    run: Run = {}
    for rows in _blocks(len(query_ids)):
        scores = lexical_block(rows)
        if dense_block is not None:
            scores = settings.fuse(dense_block(rows), scores)
        for offset, row in enumerate(scores):
            picked = top_with_ties(row, top_k + 1)
            run[query_ids[rows.start + offset]] = ([dataset.doc_ids[i] for i in picked], row[picked].tolist())
    return score_run(
        dataset,
        run,
        depth=top_k,
        rerank=rerank,
        rerank_top_k=rerank_top_k,
        ignore_identical_ids=ignore_identical_ids,
        start=start,
        progress=progress,
    )


def _given(embedder: BGEEmbedder | None) -> BGEEmbedder:
    if embedder is None:  # evaluate_hybrid builds one whenever the retrieval needs it
        msg = "no embedder: hybrid retrieval needs a model"
        raise ValueError(msg)
    return embedder


def _blocks(count: int) -> Iterator[slice]:
    for first in range(0, count, _BLOCK):
        yield slice(first, min(first + _BLOCK, count))


def _build_embedder(
    model: str | BGEEmbedder | None,
    lexical: str,
    device: str | None,
    batch_size: int,
    cache_dir: str | None,
    progress: bool,
) -> BGEEmbedder:
    if isinstance(model, BGEEmbedder):
        return model
    if not isinstance(model, str):
        msg = f"model must be a hub id, a path or a BGEEmbedder, got {model!r}"
        raise TypeError(msg)
    kind: type[BGEEmbedder] = BGEEmbedder
    if lexical == "m3":
        from bge_integrations.core.m3_embedder import BGEM3Embedder

        kind = BGEM3Embedder
    return kind(model, device=device, batch_size=batch_size, cache_dir=cache_dir, show_progress_bar=progress)


def _framework_dense(
    framework: str, dataset: RetrievalDataset, embedder: BGEEmbedder, progress: bool
) -> Callable[[slice], np.ndarray]:
    """Dense scores of every document per query, as the framework's vector store returned them."""
    from bge_integrations.evaluation.frameworks import retrieve_through

    if framework not in ("langchain", "llama-index", "haystack"):
        msg = f"framework must be one of core, langchain, llama-index, haystack; got {framework!r}"
        raise ValueError(msg)
    config = embedder.config
    run = retrieve_through(
        framework,  # type: ignore[arg-type]
        dataset,
        model=embedder.model_name,
        device=config.device,
        batch_size=config.batch_size,
        k=len(dataset.doc_ids),
        progress=progress,
    )
    position = {doc_id: i for i, doc_id in enumerate(dataset.doc_ids)}
    query_ids = list(dataset.queries)

    def block(rows: slice) -> np.ndarray:
        out = np.full((len(query_ids[rows]), len(dataset.doc_ids)), np.nan)
        for offset, query_id in enumerate(query_ids[rows]):
            doc_ids, scores = run[query_id]
            out[offset, [position[d] for d in doc_ids]] = scores
            # A store that returned fewer than all documents: the rest count as its worst score.
            missing = np.isnan(out[offset])
            if missing.any():
                out[offset, missing] = np.nanmin(out[offset]) if not missing.all() else 0.0
        return out

    return block


__all__ = [
    "DEFAULT_DENSE_WEIGHT",
    "DEFAULT_SPARSE_WEIGHT",
    "FUSIONS",
    "LEXICALS",
    "RETRIEVALS",
    "RRF_K",
    "Fusion",
    "HybridSettings",
    "Lexical",
    "Retrieval",
    "check_fusion_weights",
    "dense_scores",
    "evaluate_hybrid",
    "lexical_scores",
    "min_max",
    "reciprocal_rank_fusion",
    "sparse_matrix",
    "top_with_ties",
    "weighted_sum",
]
