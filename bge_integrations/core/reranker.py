"""BGEReranker: scores (query, passage) pairs with a BGE cross-encoder.

Scores are on one scale everywhere: the sigmoid of the model's relevance logit (0..1) by
default, or the raw logit with ``normalize=False`` (FlagEmbedding's ``compute_score`` switch).
The query is kept whole; passages longer than the window are read as overlapping windows and
the pair's score is the best window's (``aggregation="max"``), unless ``windows=False``;
``max_windows`` bounds how many windows of one passage are read.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import replace
from functools import cached_property
from typing import Any, ClassVar, Literal, get_args

import torch

from bge_integrations.core.checkpoints import is_local_checkpoint, read_local_checkpoint
from bge_integrations.core.coalescing import Coalescer
from bge_integrations.core.configs import SCORING_SETTINGS, Aggregation, RerankerBackend, RerankerConfig
from bge_integrations.core.dedup import deduplicate
from bge_integrations.core.devices import check_device_settings, resolve_device
from bge_integrations.core.handle import ModelHandle
from bge_integrations.core.hf_options import (
    check_folder,
    check_options,
    dtype_option,
    hub_key_options,
    resolve_fp16_option,
    tokenizer_max_length,
)
from bge_integrations.core.llm_pairs import LLMPairEncoder
from bge_integrations.core.llm_reranking_model import LayerOptions, LoadedLLMReranker
from bge_integrations.core.loading import REGISTRY, check_flag, check_token
from bge_integrations.core.pairs import PairBatch, PairEncoder
from bge_integrations.core.presets import DEFAULT_RERANKER, find_preset
from bge_integrations.core.progress import progress_bar
from bge_integrations.core.reranking_model import LoadedReranker, check_llm_settings, load_reranker
from bge_integrations.core.types import RankedText
from bge_integrations.core.validation import (
    check_layers,
    check_non_negative_int,
    check_optional_float,
    check_pairs,
    check_positive_int,
    check_text,
    check_texts,
)


class BGEReranker(ModelHandle):
    """Scores and ranks passages for a query with a BGE reranker (cross-encoder).

    Every passage gets exactly one score, in input order. Scores are sigmoid-normalised
    (0..1, comparable across queries, usable with a threshold) unless ``normalize=False``,
    which gives the raw logits.

    Args:
        model_name: Hub id or local path of a cross-encoder with one relevance logit.
        max_length: Tokens per (query, passage) pair. None: 512 for the BGE rerankers.
        max_query_length: Tokens of the query kept at most. None: three quarters of
            ``max_length``. The query is never cut to make room for the passage.
        windows: Read passages longer than the window as overlapping windows. Off: only the
            beginning is read (counted and warned about once per model).
        window_overlap: Tokens shared by consecutive windows (at most half a window).
        max_windows: Windows read per passage at most. A passage that needs more is read up to
            there (counted and warned about once per model): this bounds the cost of a very
            long passage (for text without spaces between words, only the scoring: it is
            tokenised whole). None: every window.
        aggregation: How window scores make the passage's score: ``"max"`` or ``"mean"``.
        normalize: Sigmoid scores (True) or raw logits (False).
        device: ``"cuda"``, ``"mps"``, ``"cpu"``... None picks CUDA, then MPS, then CPU.
        use_fp16: Half precision. None: on for CUDA, off elsewhere.
        batch_size: Pairs (windows) per forward pass, at most. On the CPU, batches are also cut
            at the padded-token budget a forward pass runs fastest at
            (2,048: :mod:`~bge_integrations.core.cpu_batches`).
        revision: Hub revision.
        trust_remote_code: Run code shipped with the checkpoint. Off unless asked.
        token: Hugging Face access token for a private or gated model. None: the hub library's
            own (``HF_TOKEN``, or a saved login). Kept out of ``config``, ``repr`` and the registry key.
        show_progress_bar: Show a progress bar (standard error) over the (query, passage window)
            pairs of each :meth:`score` call, advancing per forward pass. Scores are the same
            with and without it; it is not a load setting (objects differing only here share a model).
        backend: ``"torch"``, the only reranker backend so far (accepted for drop-in use with
            sentence-transformers' ``CrossEncoder(backend=...)``); another value is a ValueError.
        model_kwargs: Extra keyword arguments of the model's ``from_pretrained``, as for
            :class:`~bge_integrations.BGEEmbedder` (``dtype``/``torch_dtype`` read as ``use_fp16``).
        tokenizer_kwargs: Extra keyword arguments of the tokenizer's ``from_pretrained``.
        config_kwargs: Extra keyword arguments of the config's ``from_pretrained``.
        cache_folder: Where hub models are downloaded and looked up. None: ``HF_HUB_CACHE``.
        local_files_only: Never reach the hub: use files already in the cache.
        prompt: LLM rerankers only: the instruction read after the passage. None: FlagEmbedding's
            default of the model's family.
        cutoff_layers: Layerwise and lightweight LLM rerankers only: the layers that score (an
            int or a list). The deepest one ranks; :meth:`score_layers` gives every one. None: the last layer.
        compress_ratio: Lightweight LLM reranker only: passage tokens merged into one (1, 2, 4 or 8).
            None: FlagEmbedding's default.
        compress_layers: Lightweight LLM reranker only: the layers at which passage tokens are merged.
            None: FlagEmbedding's default.

    LLM rerankers (bge-reranker-v2-gemma, v2-minicpm-layerwise, v2.5-gemma2-lightweight, or a
    local checkpoint of one) are recognised by the checkpoint's architecture and scored as
    FlagEmbedding does (``A: {query}``, ``B: {passage}``, the prompt; the logit of ``Yes`` or a
    layer's head at the last token), in bfloat16 on a CUDA device that has it.

    Example:
        >>> reranker = BGEReranker("BAAI/bge-reranker-base", device="cpu")
        >>> reranker.rank("what is a panda?", ["hi", "The giant panda is a bear."], top_n=1)  # doctest: +SKIP
        [RankedText(index=1, score=0.99..., text='The giant panda is a bear.')]

    """

    kind: ClassVar[Literal["embedder", "reranker"]] = "reranker"

    def __init__(
        self,
        model_name: str = DEFAULT_RERANKER,
        *,
        max_length: int | None = None,
        max_query_length: int | None = None,
        windows: bool = True,
        window_overlap: int = 64,
        max_windows: int | None = None,
        aggregation: Aggregation = "max",
        normalize: bool = True,
        device: str | None = None,
        use_fp16: bool | None = None,
        batch_size: int = 32,
        revision: str | None = None,
        trust_remote_code: bool = False,
        token: str | None = None,
        show_progress_bar: bool = False,
        backend: RerankerBackend = "torch",
        model_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
        cache_folder: str | os.PathLike[str] | None = None,
        local_files_only: bool = False,
        prompt: str | None = None,
        cutoff_layers: int | Sequence[int] | None = None,
        compress_ratio: int | None = None,
        compress_layers: int | Sequence[int] | None = None,
    ) -> None:
        if not isinstance(model_name, str) or not model_name.strip():
            msg = f"model_name must be a hub id or a local path, got {model_name!r}"
            raise ValueError(msg)
        max_length = check_positive_int(max_length, name="max_length", allow_none=True)
        max_query_length = check_positive_int(max_query_length, name="max_query_length", allow_none=True)
        check_flag(windows, name="windows")
        window_overlap = check_non_negative_int(window_overlap, name="window_overlap")
        max_windows = check_positive_int(max_windows, name="max_windows", allow_none=True)
        batch_size = check_positive_int(batch_size, name="batch_size")
        if max_length is not None and max_query_length is not None and max_query_length >= max_length:
            msg = f"max_query_length must be < max_length={max_length}, got {max_query_length}"
            raise ValueError(msg)
        check_flag(normalize, name="normalize")
        check_device_settings(device, use_fp16)
        check_flag(trust_remote_code, name="trust_remote_code")
        check_token(token)
        if aggregation not in ("max", "mean"):
            msg = f"aggregation must be 'max' or 'mean', got {aggregation!r}"
            raise ValueError(msg)
        if backend not in get_args(RerankerBackend):
            msg = (
                f"backend must be 'torch' for a reranker, got {backend!r}: ONNX Runtime and OpenVINO "
                "run BGE embedders only so far (BGEEmbedder(backend=...))"
            )
            raise ValueError(msg)
        model_kwargs = check_options(model_kwargs, name="model_kwargs", allow_dtype=True)
        dtype_option(model_kwargs, use_fp16=use_fp16)
        check_flag(local_files_only, name="local_files_only")
        self.model_name = model_name
        self.max_length = max_length
        self.max_query_length = max_query_length
        self.windows = windows
        self.window_overlap = window_overlap
        self.max_windows = max_windows
        self.aggregation: Aggregation = aggregation
        self.normalize = normalize
        self.device = device
        self.use_fp16 = use_fp16
        self.batch_size = batch_size
        self.revision = revision
        self.trust_remote_code = trust_remote_code
        self.token = token
        self.show_progress_bar = show_progress_bar
        self.backend: RerankerBackend = backend
        self.model_kwargs = model_kwargs
        self.tokenizer_kwargs = check_options(tokenizer_kwargs, name="tokenizer_kwargs")
        self.config_kwargs = check_options(config_kwargs, name="config_kwargs")
        self.cache_folder = check_folder(cache_folder, name="cache_folder")
        self.local_files_only = local_files_only
        if prompt is not None and (not isinstance(prompt, str) or not prompt.strip()):
            msg = f"prompt must be a non-empty string or None, got {prompt!r}"
            raise ValueError(msg)
        self.prompt = prompt
        self.cutoff_layers = check_layers(cutoff_layers, name="cutoff_layers")
        self.compress_layers = check_layers(compress_layers, name="compress_layers", allow_zero=True)
        if compress_ratio is not None and (isinstance(compress_ratio, bool) or compress_ratio not in (1, 2, 4, 8)):
            msg = f"compress_ratio must be 1, 2, 4 or 8 (or None), got {compress_ratio!r}"
            raise ValueError(msg)
        self.compress_ratio = compress_ratio
        super().__init__()

    @cached_property
    def config(self) -> RerankerConfig:
        """The effective settings: presets and defaults applied, explicit values kept."""
        info = read_local_checkpoint(self.model_name) if is_local_checkpoint(self.model_name) else None
        preset = find_preset(self.model_name, info.base_model if info else None, kind="reranker")
        max_length = self.max_length or tokenizer_max_length(self.tokenizer_kwargs)
        max_length = max_length or (preset.max_length if preset else 512)
        max_query_length = self.max_query_length or max_length * 3 // 4
        if max_query_length >= max_length:
            msg = f"max_query_length must be < max_length={max_length}, got {max_query_length}"
            raise ValueError(msg)
        device = resolve_device(self.device)
        return RerankerConfig(
            model_name=self.model_name,
            max_length=max_length,
            max_query_length=max_query_length,
            windows=self.windows,
            window_overlap=self.window_overlap,
            max_windows=self.max_windows,
            aggregation=self.aggregation,
            normalize=self.normalize,
            device=device,
            use_fp16=resolve_fp16_option(self.model_kwargs, use_fp16=self.use_fp16, device=device),
            batch_size=self.batch_size,
            revision=self.revision,
            trust_remote_code=self.trust_remote_code,
            preset=preset.name if preset else None,
            backend=self.backend,
            model_kwargs=self.model_kwargs,
            tokenizer_kwargs=self.tokenizer_kwargs,
            config_kwargs=self.config_kwargs,
            cache_folder=self.cache_folder,
            local_files_only=self.local_files_only,
            prompt=self.prompt,
            cutoff_layers=self.cutoff_layers,
            compress_ratio=self.compress_ratio,
            compress_layers=self.compress_layers,
        )

    def _load_options(self) -> tuple[tuple[str, Any], ...]:
        # Built into the loaded model and tokenizer, so part of what is shared.
        return hub_key_options(self.config)

    def score(self, query: str, documents: list[str], *, normalize: bool | None = None) -> list[float]:
        """Score each document against query: one float per document, in input order.

        Args:
            query: The query.
            documents: Passages to score.
            normalize: Sigmoid (True) or raw logits (False) for this call; None uses the
                reranker's ``normalize`` setting.

        """
        query = check_text(query, name="query")
        documents = check_texts(documents, name="documents")
        if not documents:
            return []
        return self._scale(self._logits([(query, documents)])[0], normalize)

    def score_pairs(self, pairs: Sequence[tuple[str, str]], *, normalize: bool | None = None) -> list[float]:
        """Score (query, passage) pairs: one float per pair, in input order.

        Pairs may have different queries; all of them go through the model in one run, sorted
        into batches by length, each passage read as in :meth:`score` (windows included).

        Args:
            pairs: (query, passage) pairs.
            normalize: Score scale for this call, as in :meth:`score`.

        Raises:
            TypeError: If pairs, or one of them, is not made of two strings (named by index).

        Example:
            >>> reranker = BGEReranker("BAAI/bge-reranker-base", device="cpu")
            >>> reranker.score_pairs([("q1", "p1"), ("q2", "p2"), ("q1", "p3")])  # doctest: +SKIP
            [0.01..., 0.2..., 0.9...]

        """
        checked = check_pairs(pairs)
        groups: dict[str, list[int]] = {}
        for index, (query, _) in enumerate(checked):
            groups.setdefault(query, []).append(index)
        if not groups:
            return []
        requests = [(query, [checked[i][1] for i in indices]) for query, indices in groups.items()]
        scores = [0.0] * len(checked)
        for indices, logits in zip(groups.values(), self._logits(requests), strict=True):
            for index, value in zip(indices, self._scale(logits, normalize), strict=True):
                scores[index] = value
        return scores

    def score_layers(
        self, query: str, documents: list[str], *, normalize: bool | None = None
    ) -> dict[int, list[float]]:
        """Every requested layer's scores of each document (layerwise and lightweight LLM rerankers).

        Returns ``{layer: one score per document, in input order}`` for each of ``cutoff_layers``
        (in the order given), from one forward pass that stops at the deepest. :meth:`score`
        gives the deepest layer's.

        Raises:
            ValueError: If the model is not a layerwise or lightweight LLM reranker.

        Example:
            >>> reranker = BGEReranker("BAAI/bge-reranker-v2-minicpm-layerwise", cutoff_layers=[28, 40])
            >>> reranker.score_layers("what is a panda?", ["hi", "The giant panda is a bear."])  # doctest: +SKIP
            {28: [-6.1..., 9.8...], 40: [-7.0..., 10.2...]}

        """
        query = check_text(query, name="query")
        documents = check_texts(documents, name="documents")
        loaded = self._loaded()
        if not isinstance(loaded, LoadedLLMReranker) or loaded.family == "llm":
            msg = f"score_layers needs a layerwise or lightweight LLM reranker; {self.model_name!r} scores at one layer"
            raise ValueError(msg)
        layers = self.config.cutoff_layers or loaded.default_layers()
        if not documents:
            return {layer: [] for layer in layers}
        (table,) = self._logits([(query, documents)], all_layers=True)
        return {layer: self._scale(table[:, column], normalize) for column, layer in enumerate(layers)}

    def rank(
        self,
        query: str,
        documents: list[str],
        top_n: int | None = None,
        score_threshold: float | None = None,
        *,
        normalize: bool | None = None,
    ) -> list[RankedText]:
        """Documents sorted by score, best first (ties keep input order).

        Args:
            query: The query.
            documents: Texts to rank.
            top_n: Keep the best top_n; None keeps all.
            score_threshold: Drop documents scoring below it (on the scale of this call).
            normalize: Score scale for this call, as in :meth:`score`.

        Returns:
            RankedText items carrying each document's input index, score and text.

        """
        top_n = check_positive_int(top_n, name="top_n", allow_none=True)
        threshold = check_optional_float(score_threshold, name="score_threshold")
        documents = check_texts(documents, name="documents")
        return _ranked(self.score(query, documents, normalize=normalize), documents, top_n, threshold)

    def rank_layers(
        self,
        query: str,
        documents: list[str],
        top_n: int | None = None,
        score_threshold: float | None = None,
        *,
        normalize: bool | None = None,
    ) -> list[RankedText]:
        """:meth:`rank` by the deepest layer, each result with every layer's score in ``layer_scores``.

        For layerwise and lightweight LLM rerankers (one forward pass, as :meth:`score_layers`); the
        threshold applies to the deepest layer's score.

        Example:
            >>> reranker = BGEReranker("BAAI/bge-reranker-v2-minicpm-layerwise", cutoff_layers=[28, 40])
            >>> best = reranker.rank_layers("what is a panda?", ["hi", "A panda is a bear."])[0]  # doctest: +SKIP
            >>> best.index, best.layer_scores  # doctest: +SKIP
            (1, {28: 0.99..., 40: 0.99...})

        """
        top_n = check_positive_int(top_n, name="top_n", allow_none=True)
        threshold = check_optional_float(score_threshold, name="score_threshold")
        documents = check_texts(documents, name="documents")
        layers = self.score_layers(query, documents, normalize=normalize)
        deepest = layers[max(layers)]
        return [
            replace(item, layer_scores={layer: scores[item.index] for layer, scores in layers.items()})
            for item in _ranked(deepest, documents, top_n, threshold)
        ]

    async def arank_layers(
        self,
        query: str,
        documents: list[str],
        top_n: int | None = None,
        score_threshold: float | None = None,
        *,
        normalize: bool | None = None,
    ) -> list[RankedText]:
        """Async :meth:`rank_layers`: the model runs in a worker thread, never blocking the event loop."""
        return await asyncio.to_thread(self.rank_layers, query, documents, top_n, score_threshold, normalize=normalize)

    async def ascore(self, query: str, documents: list[str], *, normalize: bool | None = None) -> list[float]:
        """Async :meth:`score`.

        Never blocks the event loop: the model runs in a worker thread. Concurrent calls on this
        reranker are served together: the pairs of every call waiting while the model is busy
        go into its next run, so concurrent queries fill the model's batches.
        """
        query = check_text(query, name="query")
        documents = check_texts(documents, name="documents")
        if not documents:
            return []
        (logits,) = await self._coalescer.submit(None, [(query, documents)])
        return self._scale(logits, normalize)

    async def arank(
        self,
        query: str,
        documents: list[str],
        top_n: int | None = None,
        score_threshold: float | None = None,
        *,
        normalize: bool | None = None,
    ) -> list[RankedText]:
        """Async :meth:`rank`; concurrent calls share model batches, as in :meth:`ascore`."""
        top_n = check_positive_int(top_n, name="top_n", allow_none=True)
        threshold = check_optional_float(score_threshold, name="score_threshold")
        documents = check_texts(documents, name="documents")
        scores = await self.ascore(query, documents, normalize=normalize)
        return _ranked(scores, documents, top_n, threshold)

    @cached_property
    def _coalescer(self) -> Coalescer[None, tuple[str, list[str]], torch.Tensor]:
        return Coalescer(lambda _key, requests: self._logits(requests), max_items=256)

    def _scale(self, logits: torch.Tensor, normalize: bool | None) -> list[float]:
        if self.config.normalize if normalize is None else normalize:
            logits = torch.sigmoid(logits)
        result: list[float] = logits.tolist()
        return result

    def _logits(self, requests: list[tuple[str, list[str]]], *, all_layers: bool = False) -> list[torch.Tensor]:
        """Each request's passage logits (windows aggregated), all pairs in one model run.

        For a layerwise LLM reranker, the deepest requested layer's (all_layers: every requested
        layer's, as columns in the order asked).
        """
        loaded = self._loaded()
        config = self.config
        encoder: PairEncoder | LLMPairEncoder
        if isinstance(loaded, LoadedLLMReranker):
            encoder = loaded.pair_encoder(
                config.max_length, config.max_query_length, config.window_overlap, config.prompt
            )
        else:
            encoder = loaded.pair_encoder(config.max_length, config.max_query_length, config.window_overlap)
        merged = PairBatch()
        parts = []
        for query, documents in requests:
            unique, inverse = deduplicate(documents)
            batch = encoder.encode(query, unique, windows=config.windows, max_windows=config.max_windows)
            self._record_truncation(batch, inverse)
            parts.append((len(merged.input_ids), len(batch.input_ids), batch.owners, len(unique), inverse))
            merged.input_ids.extend(batch.input_ids)
            merged.token_type_ids.extend(batch.token_type_ids)
            merged.query_lengths.extend(batch.query_lengths)
            merged.prompt_lengths.extend(batch.prompt_lengths)
        count = len(merged.input_ids)
        with progress_bar(count, enabled=self.show_progress_bar, unit="pair", desc="Reranking") as advance:
            if isinstance(loaded, LoadedLLMReranker):
                options = LayerOptions(config.cutoff_layers, config.compress_ratio, config.compress_layers)
                table = loaded.logits(merged, batch_size=self.batch_size, progress=advance, layers=options)
                layers = config.cutoff_layers or loaded.default_layers()
                window_scores = table if all_layers else table[:, layers.index(max(layers))]
            else:
                window_scores = loaded.logits(merged, batch_size=self.batch_size, progress=advance)
        out = []
        for start, size, owners, unique_count, inverse in parts:
            scores = _aggregate(window_scores[start : start + size], owners, unique_count, config.aggregation)
            out.append(scores[inverse])
        return out

    def _loaded(self) -> LoadedReranker | LoadedLLMReranker:
        config = self.config
        loaded: LoadedReranker | LoadedLLMReranker = REGISTRY.get(
            self.load_key, lambda: load_reranker(config, token=self.token)
        )
        # Also when another reranker loaded the shared model: a setting its family ignores is refused.
        check_llm_settings(config, loaded.family if isinstance(loaded, LoadedLLMReranker) else None)
        return loaded

    def _record_truncation(self, batch: PairBatch, inverse: list[int]) -> None:
        config = self.config
        max_length = config.max_length
        if batch.query_truncated:
            self._truncation.record(
                self.model_name, truncated=1, total=1, max_length=config.max_query_length, what="queries"
            )
        if not config.windows or config.max_windows is not None:
            cut = set(batch.cut_passages)
            self._truncation.record(
                self.model_name,
                truncated=sum(owner in cut for owner in inverse),
                total=len(inverse),
                max_length=max_length,
                what="passages (windows=False)" if not config.windows else "passages",
                reads=None if not config.windows else _windows_read(config.max_windows, max_length),
            )


def _windows_read(count: int | None, max_length: int) -> str:
    """'the first 2 windows (512 tokens each, query included)'."""
    first = "the first window" if count == 1 else f"the first {count} windows"
    return f"{first} ({max_length} tokens each, query included)"


def _ranked(scores: list[float], documents: list[str], top_n: int | None, threshold: float | None) -> list[RankedText]:
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    ranked = [RankedText(index=i, score=scores[i], text=documents[i]) for i in order]
    if threshold is not None:
        ranked = [item for item in ranked if item.score >= threshold]
    return ranked if top_n is None else ranked[:top_n]


def _aggregate(window_scores: torch.Tensor, owners: list[int], count: int, how: Aggregation) -> torch.Tensor:
    """Per-passage scores from per-window ones (rows; the columns, if any, are layers)."""
    index = torch.tensor(owners, dtype=torch.long)
    if window_scores.dim() == 2:
        index = index[:, None].expand_as(window_scores)
    shape = (count, *window_scores.shape[1:])
    if how == "max":
        out = torch.full(shape, float("-inf"), dtype=window_scores.dtype)
        return out.scatter_reduce(0, index, window_scores, reduce="amax", include_self=True)
    out = torch.zeros(shape, dtype=window_scores.dtype)
    return out.scatter_reduce(0, index, window_scores, reduce="mean", include_self=False)


__all__ = ["SCORING_SETTINGS", "Aggregation", "BGEReranker", "RerankerConfig"]
