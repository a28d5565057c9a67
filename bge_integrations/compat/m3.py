"""BGEM3FlagModel: FlagEmbedding's bge-m3 embedder (dense, lexical weights, ColBERT vectors, ``compute_score``).

Same signature, defaults and return formats as ``FlagEmbedding.BGEM3FlagModel`` (its
``M3Embedder``, 1.3/1.4). The work runs on the core's :class:`~bge_integrations.BGEM3Embedder`:
one model per device, whatever ``max_length`` a call asks for. The core fixes a window when it
loads; here each call tokenises with its own window (``tokenizer(..., truncation=True,
max_length=...)``, as FlagEmbedding) and runs the same loaded weights and heads, so
``query_max_length=64`` beside ``passage_max_length=8192`` holds one copy of bge-m3, not two.
"""

from __future__ import annotations

import dataclasses
import numbers
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from bge_integrations.compat._checks import (
    Pair,
    check_formats,
    check_instructions,
    check_lengths,
    check_no_extra_kwargs,
    check_pairs,
    ignore_extra_kwargs,
)
from bge_integrations.compat._compute import with_instruction
from bge_integrations.compat._devices import DeviceSpec, Handles, run_on_devices, target_devices
from bge_integrations.compat._hub import resolve_model
from bge_integrations.core.embedding_model import LoadedEmbedder
from bge_integrations.core.m3_embedder import BGEM3Embedder
from bge_integrations.core.m3_model import encode_m3
from bge_integrations.core.m3_types import M3Output, SparseEmbedding
from bge_integrations.core.validation import check_texts

SCORE_KEYS = ("colbert", "sparse", "dense", "sparse+dense", "colbert+sparse+dense")
"""The keys of :meth:`BGEM3FlagModel.compute_score`'s result, in FlagEmbedding's order."""

_POOLING = {"cls": "cls", "mean": "mean", "last_token": "lasttoken"}
"""FlagEmbedding's pooling names (M3's ``_dense_embedding``) to the core's."""


@dataclasses.dataclass
class _Encoded:
    """One device's outputs for a chunk of texts, in input order (None: not asked)."""

    dense: np.ndarray | None
    sparse: list[SparseEmbedding] | None
    colbert: list[np.ndarray] | None


_MAX_WINDOWS = 4
"""Token windows (max_length values) kept ready per device; older ones are rebuilt when asked again."""


class BGEM3FlagModel:
    """FlagEmbedding's ``BGEM3FlagModel`` on this package's engine: change the import line only.

    ``encode``/``encode_queries``/``encode_corpus`` return FlagEmbedding's dict:
    ``"dense_vecs"`` (an array, one row per text; 1-D for a single string), ``"lexical_weights"``
    (one ``defaultdict(int)`` per text, ``{str(token id): numpy weight}`` in the order of the ids'
    first weighted occurrence; one dict for a single string) and ``"colbert_vecs"`` (one
    (tokens - 1, dim) array per text), each None unless asked for (``return_dense``,
    ``return_sparse``, ``return_colbert_vecs``; defaults: the constructor's). Arrays are
    float32, float16 where the model runs in fp16 (never on CPU). :meth:`compute_score` gives the
    five scores of (query, passage) pairs, padding-exact (see there). The model loads in the
    constructor; the sparse and ColBERT heads on their first use.

    Example:
        >>> from bge_integrations.compat import BGEM3FlagModel
        >>> model = BGEM3FlagModel("BAAI/bge-m3", use_fp16=True)  # doctest: +SKIP
        >>> out = model.encode(["What is BGE M3?"], return_sparse=True)  # doctest: +SKIP
        >>> out["dense_vecs"].shape, model.convert_id_to_token(out["lexical_weights"])  # doctest: +SKIP
        ((1, 1024), {'What': 0.08356, 'is': 0.0814, 'B': 0.1296, 'GE': 0.252, 'M': 0.1702, '3': 0.2695, '?': 0.04092})
        >>> model.compute_score(["What is BGE M3?", "BGE M3 is an embedding model."])["dense"]  # doctest: +SKIP
        0.6259765625

    """

    DEFAULT_POOLING_METHOD = "cls"

    def __init__(
        self,
        model_name_or_path: str,
        normalize_embeddings: bool = True,
        use_fp16: bool = True,
        query_instruction_for_retrieval: str | None = None,
        query_instruction_format: str = "{}{}",
        devices: DeviceSpec = None,
        pooling_method: str = "cls",
        trust_remote_code: bool = False,
        cache_dir: str | None = None,
        colbert_dim: int = -1,
        batch_size: int = 256,
        query_max_length: int = 512,
        passage_max_length: int = 512,
        return_dense: bool = True,
        return_sparse: bool = False,
        return_colbert_vecs: bool = False,
        passage_instruction_for_retrieval: str | None = None,
        passage_instruction_format: str = "{}{}",
        **kwargs: Any,
    ) -> None:
        ignore_extra_kwargs("BGEM3FlagModel", kwargs)
        if pooling_method not in _POOLING:
            msg = f"pooling_method must be one of {sorted(_POOLING)}, got {pooling_method!r}"
            raise ValueError(msg)
        if colbert_dim != -1 and not (isinstance(colbert_dim, int) and colbert_dim > 0):
            msg = f"colbert_dim must be -1 or a positive int, got {colbert_dim!r}"
            raise ValueError(msg)
        check_instructions(
            query_instruction_for_retrieval=query_instruction_for_retrieval,
            passage_instruction_for_retrieval=passage_instruction_for_retrieval,
        )
        check_formats(
            query_instruction_format=query_instruction_format, passage_instruction_format=passage_instruction_format
        )
        check_lengths(batch_size=batch_size, query_max_length=query_max_length, passage_max_length=passage_max_length)
        self.model_name_or_path = model_name_or_path
        self.normalize_embeddings = normalize_embeddings
        self.use_fp16 = use_fp16
        self.query_instruction_for_retrieval = query_instruction_for_retrieval
        self.query_instruction_format = query_instruction_format.replace("\\n", "\n")  # as FlagEmbedding does
        self.passage_instruction_for_retrieval = passage_instruction_for_retrieval
        self.passage_instruction_format = passage_instruction_format
        self.target_devices = target_devices(devices)
        self.pooling_method = pooling_method
        self.trust_remote_code = trust_remote_code
        self.cache_dir = cache_dir
        self.colbert_dim = colbert_dim  # the head's width is read from colbert_linear.pt
        self.batch_size = batch_size
        self.query_max_length = query_max_length
        self.passage_max_length = passage_max_length
        self.return_dense = return_dense
        self.return_sparse = return_sparse
        self.return_colbert_vecs = return_colbert_vecs
        self._model = resolve_model(model_name_or_path, cache_dir)
        self._handles = Handles(BGEM3Embedder)
        self._windows: OrderedDict[tuple[str, int], LoadedEmbedder] = OrderedDict()
        self._lock = threading.Lock()
        self._embedders()  # FlagEmbedding loads in the constructor

    # -- encoding ------------------------------------------------------------------------

    def encode_queries(
        self,
        queries: str | Sequence[str],
        batch_size: int | None = None,
        max_length: int | None = None,
        return_dense: bool | None = None,
        return_sparse: bool | None = None,
        return_colbert_vecs: bool | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """:meth:`encode` with ``query_instruction_for_retrieval``; max_length defaults to query_max_length."""
        return self.encode(
            queries,
            batch_size,
            self.query_max_length if max_length is None else max_length,
            return_dense,
            return_sparse,
            return_colbert_vecs,
            instruction=self.query_instruction_for_retrieval,
            instruction_format=self.query_instruction_format,
            **kwargs,
        )

    def encode_corpus(
        self,
        corpus: str | Sequence[str],
        batch_size: int | None = None,
        max_length: int | None = None,
        return_dense: bool | None = None,
        return_sparse: bool | None = None,
        return_colbert_vecs: bool | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """:meth:`encode` with ``passage_instruction_for_retrieval`` (None by default: no instruction)."""
        return self.encode(
            corpus,
            batch_size,
            max_length,
            return_dense,
            return_sparse,
            return_colbert_vecs,
            instruction=self.passage_instruction_for_retrieval,
            instruction_format=self.passage_instruction_format,
            **kwargs,
        )

    def encode(
        self,
        sentences: str | Sequence[str],
        batch_size: int | None = None,
        max_length: int | None = None,
        return_dense: bool | None = None,
        return_sparse: bool | None = None,
        return_colbert_vecs: bool | None = None,
        instruction: str | None = None,
        instruction_format: str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Encode texts: FlagEmbedding's ``{"dense_vecs", "lexical_weights", "colbert_vecs"}`` dict.

        Args:
            sentences: One text (unwrapped results) or a list of texts (one result each, in input order).
            batch_size: Texts per forward pass; None: ``self.batch_size``.
            max_length: Tokens read per text, special tokens included; None: ``self.passage_max_length``.
            return_dense: Compute ``"dense_vecs"``; None: ``self.return_dense``.
            return_sparse: Compute ``"lexical_weights"``; None: ``self.return_sparse``.
            return_colbert_vecs: Compute ``"colbert_vecs"``; None: ``self.return_colbert_vecs``.
            instruction: Put before every text with ``instruction_format`` (default ``"{}{}"``).
            instruction_format: See instruction.
            kwargs: Only ``convert_to_numpy``, ignored as FlagEmbedding ignores it here.

        Raises:
            TypeError: If sentences is not a string or a list of strings, or for another keyword argument.
            ValueError: If no output is asked for.
            MissingHeadError: If the checkpoint lacks the head of an asked output.

        """
        kwargs.pop("convert_to_numpy", None)  # FlagEmbedding's encode_single_device drops it too
        check_no_extra_kwargs("encode", kwargs)
        texts = [sentences] if isinstance(sentences, str) else check_texts(sentences, name="sentences")
        fmt = "{}{}" if instruction_format is None else instruction_format.replace("\\n", "\n")
        check_instructions(instruction=instruction)
        check_formats(instruction_format=fmt)
        texts = with_instruction(texts, instruction, fmt)
        batch_size = self.batch_size if batch_size is None else batch_size
        max_length = self.passage_max_length if max_length is None else max_length
        check_lengths(batch_size=batch_size, max_length=max_length)
        outputs = _outputs(
            self.return_dense if return_dense is None else return_dense,
            self.return_sparse if return_sparse is None else return_sparse,
            self.return_colbert_vecs if return_colbert_vecs is None else return_colbert_vecs,
        )
        encoded = self._encode(texts, max_length=max_length, batch_size=batch_size, outputs=outputs)
        half = self._half()
        dense = encoded.dense
        if dense is not None and half:
            dense = dense.astype(np.float16)
        lexical = None
        if encoded.sparse is not None:
            lexical = [_flag_weights(sparse, np.float16 if half else np.float32) for sparse in encoded.sparse]
        colbert = encoded.colbert
        if colbert is not None and half:
            colbert = [vectors.astype(np.float16) for vectors in colbert]
        if isinstance(sentences, str):
            return {
                "dense_vecs": None if dense is None else dense[0],
                "lexical_weights": None if lexical is None else lexical[0],
                "colbert_vecs": None if colbert is None else colbert[0],
            }
        return {"dense_vecs": dense, "lexical_weights": lexical, "colbert_vecs": colbert}

    # -- scoring helpers (FlagEmbedding's, same types) -----------------------------------

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer (a ``transformers`` fast tokenizer), as FlagEmbedding's attribute."""
        return self._window(self._embedders()[0], self.passage_max_length).model.tokenizer

    def convert_id_to_token(self, lexical_weights: dict[str, Any] | list[dict[str, Any]]) -> Any:
        """``{token text: weight}`` for each dict of lexical weights; one dict in, or a list of one: one dict out.

        Each id is decoded alone, as FlagEmbedding does; two ids decoding alike keep the later weight.
        """
        if isinstance(lexical_weights, dict):
            lexical_weights = [lexical_weights]
        tokenizer = self.tokenizer
        converted: list[dict[str, Any]] = []
        for item in lexical_weights:
            converted.append({tokenizer.decode([int(index)]): weight for index, weight in item.items()})
        if len(converted) == 1:
            return converted[0]
        return converted

    def compute_lexical_matching_score(
        self,
        lexical_weights_1: dict[str, Any] | list[dict[str, Any]],
        lexical_weights_2: dict[str, Any] | list[dict[str, Any]],
    ) -> Any:
        """Sum of weight products over shared token ids: dict and dict give a number, lists a (len1, len2) array.

        The sum starts at int 0 and adds the weights' products in the first dict's order, as
        FlagEmbedding does (a numpy float32 for float32 weights, ``0`` when nothing is shared).

        Raises:
            ValueError: If the two are not both dicts or both lists (FlagEmbedding's message).

        """
        if isinstance(lexical_weights_1, dict) and isinstance(lexical_weights_2, dict):
            return _lexical_score(lexical_weights_1, lexical_weights_2)
        if isinstance(lexical_weights_1, list) and isinstance(lexical_weights_2, list):
            return np.array([[_lexical_score(a, b) for b in lexical_weights_2] for a in lexical_weights_1])
        msg = (
            "The input format of lexical_weights is not correct. "
            f"(two dicts or two lists expected, got {type(lexical_weights_1).__name__} "
            f"and {type(lexical_weights_2).__name__})"
        )
        raise ValueError(msg)

    def colbert_score(self, q_reps: np.ndarray, p_reps: np.ndarray) -> torch.Tensor:
        """ColBERT score of two (tokens, dim) arrays: mean over query tokens of their best dot product.

        A 0-d torch tensor, as FlagEmbedding returns (``float(...)`` gives the number).
        """
        q, p = torch.from_numpy(np.asarray(q_reps)), torch.from_numpy(np.asarray(p_reps))
        token_scores = torch.einsum("in,jn->ij", q, p)
        scores, _ = token_scores.max(-1)
        return torch.sum(scores) / q.size(0)

    def compute_score(
        self,
        sentence_pairs: Sequence[str] | Sequence[Sequence[str]],
        batch_size: int | None = None,
        max_query_length: int | None = None,
        max_passage_length: int | None = None,
        weights_for_different_modes: Sequence[float] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Score (query, passage) pairs five ways: dense, sparse, colbert and two weighted means.

        Returns ``{"colbert", "sparse", "dense", "sparse+dense", "colbert+sparse+dense"}``, each a
        list of floats in input order (a float each for a single pair; ``[]`` for no pairs).
        ``weights_for_different_modes`` (w) weigh (dense, sparse, colbert), default ``[1, 1, 1]``:
        ``"sparse+dense"`` is ``(w1 * sparse + w0 * dense) / (w1 + w0)``, ``"colbert+sparse+dense"``
        ``(w2 * colbert + w1 * sparse + w0 * dense) / (w0 + w1 + w2)``.

        FlagEmbedding pads the passages of each ``batch_size`` consecutive pairs to the longest,
        and its ColBERT max runs over those padding rows too (zero vectors): for a passage shorter
        than the longest of its batch, each query token's best similarity is at least 0. That is
        reproduced here, so the ``"colbert"`` score of a pair can depend on its neighbours and on
        batch_size, exactly as in FlagEmbedding (``colbert_score`` of the encoded vectors and the
        core's :class:`~bge_integrations.BGEM3Reranker` have no such floor).

        Args:
            sentence_pairs: One ``[query, passage]`` pair, or a list of pairs.
            batch_size: Pairs per batch; None: ``self.batch_size``.
            max_query_length: Query tokens read; None: ``self.query_max_length``.
            max_passage_length: Passage tokens read; None: ``self.passage_max_length``.
            weights_for_different_modes: Three weights for (dense, sparse, colbert).
            kwargs: None accepted (FlagEmbedding passes them to the tokenizer).

        Raises:
            TypeError: If a pair is not two strings (naming its index), or for any keyword argument.
            ValueError: If the weights are not three numbers.

        """
        check_no_extra_kwargs("compute_score", kwargs)
        if isinstance(sentence_pairs, list) and len(sentence_pairs) == 0:
            return []
        items: Any = sentence_pairs
        if not isinstance(items, Sequence) and callable(getattr(items, "tolist", None)):
            items = items.tolist()  # a numpy array of pairs, or one pair
        single = isinstance(items, Sequence) and len(items) > 0 and isinstance(items[0], str)
        pairs = check_pairs(sentence_pairs)
        size = self.batch_size if batch_size is None else batch_size
        query_length = self.query_max_length if max_query_length is None else max_query_length
        passage_length = self.passage_max_length if max_passage_length is None else max_passage_length
        check_lengths(batch_size=size, max_query_length=query_length, max_passage_length=passage_length)
        weights = _weights(weights_for_different_modes)
        handles = self._embedders()

        def work(handle: BGEM3Embedder, chunk: list[Pair]) -> dict[str, list[float]]:
            return self._score_chunk(handle, chunk, size, query_length, passage_length, weights)

        scores: dict[str, list[float]] = {key: [] for key in SCORE_KEYS}
        for part in run_on_devices(handles, pairs, work):
            for key in SCORE_KEYS:
                scores[key].extend(part[key])
        if single:
            return {key: values[0] for key, values in scores.items()}
        return scores

    def stop_self_pool(self) -> None:
        """Free this model's weights (and heads) on every device (FlagEmbedding's clean-up call)."""
        self._handles.release()
        with self._lock:
            self._windows.clear()

    # -- machinery -----------------------------------------------------------------------

    def _half(self) -> bool:
        return self._embedders()[0].config.use_fp16

    def _embedders(self) -> list[BGEM3Embedder]:
        return self._handles.get(
            self.target_devices,
            use_fp16=self.use_fp16,
            model_name=self._model,
            query_instruction="",  # never the core's preset instruction: FlagEmbedding's are explicit
            pooling=_POOLING[self.pooling_method],
            normalize=bool(self.normalize_embeddings),
            max_length=self.passage_max_length,  # the load window; each call tokenises with its own
            trust_remote_code=self.trust_remote_code,
        )

    def _window(self, handle: BGEM3Embedder, max_length: int) -> LoadedEmbedder:
        """The loaded pipeline of handle, tokenising with a max_length-token window (same weights, no copy)."""
        loaded: LoadedEmbedder = handle._loaded()
        key = (handle.config.device, max_length)
        with self._lock:
            view = self._windows.get(key)
            if view is None or view.model is not loaded.model:  # first use, or the model was reloaded
                view = dataclasses.replace(loaded, max_length=max_length)
                if view.features.available:
                    # Fix the batch layout (which tensors, built how) on the empty text, whose tokens
                    # no window cuts: the pipeline's own preprocess cuts at the load window instead.
                    view.features.plan_for("", [""], view.features.tokenize([""]))
                self._windows[key] = view
            self._windows.move_to_end(key)
            # A few windows at most (each holds a tokenizer copy, and the model until it is dropped here).
            while len(self._windows) > _MAX_WINDOWS:
                self._windows.popitem(last=False)
        return view

    def _run(
        self, handle: BGEM3Embedder, texts: list[str], max_length: int, batch_size: int, outputs: tuple[M3Output, ...]
    ) -> _Encoded:
        view = self._window(handle, max_length)
        rows = encode_m3(
            view,
            handle._heads(),
            texts,
            "",
            outputs=outputs,
            normalize=bool(self.normalize_embeddings),
            batch_size=batch_size,
        )
        return _Encoded(dense=rows.dense, sparse=rows.sparse, colbert=rows.colbert)

    def _encode(self, texts: list[str], *, max_length: int, batch_size: int, outputs: tuple[M3Output, ...]) -> _Encoded:
        handles = self._embedders()
        if not texts:
            width = handles[0].dimension
            return _Encoded(
                dense=np.zeros((0, width), dtype=np.float32) if "dense" in outputs else None,
                sparse=[] if "sparse" in outputs else None,
                colbert=[] if "colbert" in outputs else None,
            )

        def work(handle: BGEM3Embedder, chunk: list[str]) -> _Encoded:
            return self._run(handle, chunk, max_length, batch_size, outputs)

        parts = run_on_devices(handles, texts, work)
        return _Encoded(
            dense=np.concatenate([p.dense for p in parts if p.dense is not None]) if "dense" in outputs else None,
            sparse=[s for p in parts for s in p.sparse or []] if "sparse" in outputs else None,
            colbert=[c for p in parts for c in p.colbert or []] if "colbert" in outputs else None,
        )

    def _score_chunk(
        self,
        handle: BGEM3Embedder,
        pairs: list[Pair],
        batch_size: int,
        query_length: int,
        passage_length: int,
        weights: tuple[float, float, float],
    ) -> dict[str, list[float]]:
        """FlagEmbedding's ``compute_score_single_device`` for one device's contiguous chunk of pairs."""
        every: tuple[M3Output, ...] = ("dense", "sparse", "colbert")
        queries = self._run(handle, [q for q, _ in pairs], query_length, batch_size, every)
        passages = self._run(handle, [p for _, p in pairs], passage_length, batch_size, every)
        if queries.dense is None or queries.sparse is None or queries.colbert is None:
            msg = "bge-m3 output missing"
            raise RuntimeError(msg)
        if passages.dense is None or passages.sparse is None or passages.colbert is None:
            msg = "bge-m3 output missing"
            raise RuntimeError(msg)
        dense = np.einsum("ij,ij->i", queries.dense, passages.dense).astype(np.float32)
        sparse = np.array(
            [_sparse_dot(q, p) for q, p in zip(queries.sparse, passages.sparse, strict=True)], dtype=np.float32
        )
        colbert = np.zeros(len(pairs), dtype=np.float32)
        for start in range(0, len(pairs), batch_size):
            stop = min(start + batch_size, len(pairs))
            padded = max(len(passages.colbert[i]) for i in range(start, stop))  # the batch's padded width
            for i in range(start, stop):
                colbert[i] = _padded_colbert(queries.colbert[i], passages.colbert[i], padded)
        w0, w1, w2 = (np.float32(w) for w in weights)
        with np.errstate(divide="ignore", invalid="ignore"):  # FlagEmbedding's nan for zero weights
            sparse_dense = (sparse * w1 + dense * w0) / (w1 + w0)
            combined = (colbert * w2 + sparse * w1 + dense * w0) / np.float32(sum(weights))
        return {
            "colbert": colbert.tolist(),
            "sparse": sparse.tolist(),
            "dense": dense.tolist(),
            "sparse+dense": sparse_dense.astype(np.float32).tolist(),
            "colbert+sparse+dense": combined.astype(np.float32).tolist(),
        }


def _outputs(dense: bool, sparse: bool, colbert: bool) -> tuple[M3Output, ...]:
    asked: tuple[tuple[M3Output, bool], ...] = (("dense", dense), ("sparse", sparse), ("colbert", colbert))
    chosen = tuple(name for name, wanted in asked if wanted)
    if not chosen:
        msg = (
            "Must choose one or more from `return_colbert_vecs`, `return_sparse`, `return_dense` to set `True`! "
            f"(got return_dense={dense!r}, return_sparse={sparse!r}, return_colbert_vecs={colbert!r})"
        )
        raise ValueError(msg)
    return chosen


def _flag_weights(sparse: SparseEmbedding, dtype: type[np.floating[Any]]) -> defaultdict[str, Any]:
    """FlagEmbedding's lexical weights: ``defaultdict(int)``, ``str(id)`` keys, numpy scalar values, same order."""
    weights: defaultdict[str, Any] = defaultdict(int)
    for index, weight in sparse:
        weights[str(index)] = dtype(weight)
    return weights


def _lexical_score(first: dict[str, Any], second: dict[str, Any]) -> Any:
    """FlagEmbedding's ``_compute_single_lexical_matching_score``, step for step (same result type)."""
    scores: Any = 0
    for token, weight in first.items():
        if token in second:
            scores += weight * second[token]
    return scores


def _sparse_dot(query: SparseEmbedding, passage: SparseEmbedding) -> float:
    """Dot product of two lexical weight vectors (FlagEmbedding's vocabulary-wide ``sparse`` score)."""
    return float(sum(np.float64(weight) * passage.get(index) for index, weight in query))


def _padded_colbert(query: np.ndarray, passage: np.ndarray, padded: int) -> float:
    """ColBERT score with passage zero-padded to padded rows, as FlagEmbedding's batched ``compute_colbert_score``."""
    if len(query) == 0:
        return float("nan")  # FlagEmbedding divides by the query's 0 tokens
    if len(passage) == 0:
        best = np.zeros(len(query), dtype=np.float32)
    else:
        best = (query.astype(np.float32) @ passage.astype(np.float32).T).max(axis=1)
    if len(passage) < padded:
        best = np.maximum(best, np.float32(0))  # the padding rows' similarity: 0
    return float(best.sum(dtype=np.float32) / np.float32(len(query)))


def _weights(weights: Sequence[float] | None) -> tuple[float, float, float]:
    if weights is None:
        return 1.0, 1.0, 1.0
    if not isinstance(weights, Sequence) and callable(getattr(weights, "tolist", None)):
        weights = weights.tolist()  # a numpy array
    if (
        isinstance(weights, str)
        or not isinstance(weights, Sequence)
        or len(weights) != 3
        or not all(isinstance(w, numbers.Real) and not isinstance(w, bool) for w in weights)
    ):
        msg = f"weights_for_different_modes must be three numbers for (dense, sparse, colbert), got {weights!r}"
        raise ValueError(msg)
    return float(weights[0]), float(weights[1]), float(weights[2])


__all__ = ["SCORE_KEYS", "BGEM3FlagModel"]
