"""FlagEmbedding's LLM rerankers (``compute_score``) on the core engine.

``FlagLLMReranker`` (bge-reranker-v2-gemma), ``LayerWiseFlagLLMReranker`` (bge-reranker-v2-minicpm-layerwise)
and ``LightWeightFlagLLMReranker`` (bge-reranker-v2.5-gemma2-lightweight), with FlagEmbedding 1.3.5's
signatures, defaults and results; also under their 1.3 class names (``BaseLLMReranker``,
``LayerWiseLLMReranker``, ``LightweightLLMReranker``). The core's :class:`~bge_integrations.BGEReranker`
does all the scoring with ``windows=False``: FlagEmbedding truncates long passages, so does this.

What FlagEmbedding does and is kept here:

- ``compute_score`` returns one float per pair (a list even for one pair), raw unless ``normalize``;
  with several cutoff layers, one such list per layer, in increasing layer order.
- Cutoff layers outside the model's range are dropped (with a logged warning) when others remain;
  none left is a ValueError.
- Precision: ``use_fp16`` is float16 except on the CPU (float32 there); ``use_bf16`` loads bfloat16
  (also on the CPU). With neither, the layerwise reranker warns and runs float16 (except on the CPU)
  while the lightweight one warns the same but stays float32: FlagEmbedding sets the flag only on the first.
- ``compress_layer`` is the deprecated spelling of ``compress_layers`` (it wins when both are given).

What the core cannot do raises an error naming the argument: query/passage instructions other
than FlagEmbedding's ``"A: "``/``"B: "`` (the core builds that layout), ``peft_path``,
``use_dataloader=True``, and, for the layerwise reranker, cutoff layers that are not in increasing
order (FlagEmbedding then scores each layer with another layer's head).
"""

from __future__ import annotations

import importlib.util
import logging
import numbers
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

from bge_integrations.compat._checks import (
    Pair,
    check_formats,
    check_instructions,
    check_lengths,
    check_no_extra_kwargs,
    check_pairs,
    ignore_extra_kwargs,
)
from bge_integrations.compat._compute import sigmoid
from bge_integrations.compat._devices import DeviceSpec, Handles, run_on_devices, target_devices
from bge_integrations.compat._hub import resolve_model
from bge_integrations.core.llm_pairs import PASSAGE_PREFIX, QUERY_PREFIX
from bge_integrations.core.llm_reranking_model import LLMFamily, llm_family
from bge_integrations.core.reranker import BGEReranker

logger = logging.getLogger(__name__)

Scores = list[float] | list[list[float]]
"""``compute_score``'s result: one float per pair, or one such list per cutoff layer."""

_SENTINEL = "\ue000text\ue001"
_NO_HALF = (
    "Due to model constraints, `use_bf16` and `use_fp16` cannot both be `False`. "
    "Here, `use_fp16` is set to `True` by default."
)
"""FlagEmbedding's warning (layerwise and lightweight rerankers) when neither half precision is asked for."""

_FAMILY_CLASSES: dict[LLMFamily, str] = {
    "llm": "FlagLLMReranker",
    "llm-layerwise": "LayerWiseFlagLLMReranker",
    "llm-lightweight": "LightWeightFlagLLMReranker",
}
_FAMILY_MODELS: dict[LLMFamily, str] = {
    "llm": "an LLM reranker such as bge-reranker-v2-gemma",
    "llm-layerwise": "a layerwise LLM reranker such as bge-reranker-v2-minicpm-layerwise",
    "llm-lightweight": "a lightweight LLM reranker such as bge-reranker-v2.5-gemma2-lightweight",
}


class _LLMReranker:
    """What the three LLM rerankers share: settings, checks, core handles and scoring."""

    _family: ClassVar[LLMFamily]

    def _setup(
        self,
        model_name_or_path: str,
        *,
        peft_path: str | None,
        use_fp16: bool,
        use_bf16: bool,
        instructions: tuple[str | None, str, str | None, str],
        cache_dir: str | None,
        trust_remote_code: bool,
        devices: DeviceSpec,
        prompt: str | None,
        batch_size: int,
        query_max_length: int | None,
        max_length: int,
        normalize: bool,
        kwargs: dict[str, Any],
    ) -> None:
        owner = type(self).__name__
        self.passage_max_length = kwargs.pop("passage_max_length", None)  # FlagEmbedding's docs pass it; no effect
        ignore_extra_kwargs(owner, kwargs)
        if peft_path is not None:
            _refuse_peft(peft_path)
        query_instruction, query_format, passage_instruction, passage_format = instructions
        check_instructions(
            query_instruction_for_rerank=query_instruction, passage_instruction_for_rerank=passage_instruction
        )
        check_formats(query_instruction_format=query_format, passage_instruction_format=passage_format)
        _check_layout("query", query_instruction, query_format, QUERY_PREFIX)
        _check_layout("passage", passage_instruction, passage_format, PASSAGE_PREFIX)
        _check_prompt(prompt)
        check_lengths(batch_size=batch_size)
        self.model_name_or_path = model_name_or_path
        self.use_fp16 = use_fp16
        self.use_bf16 = use_bf16
        self.query_instruction_for_rerank = query_instruction
        self.query_instruction_format = query_format
        self.passage_instruction_for_rerank = passage_instruction
        self.passage_instruction_format = passage_format
        self.cache_dir = cache_dir
        self.trust_remote_code = trust_remote_code
        self.target_devices = target_devices(devices)
        self.prompt = prompt
        self.batch_size = batch_size
        self.query_max_length = query_max_length
        self.max_length = max_length
        self.normalize = normalize
        self._model = resolve_model(model_name_or_path, cache_dir)
        self._config = _checkpoint_config(self._model)
        self._check_family()
        self._handles = Handles(_make_reranker)
        self._logged: set[tuple[int, ...]] = set()

    def stop_self_pool(self) -> None:
        """Free this reranker's weights on every device (FlagEmbedding's clean-up call)."""
        self._handles.release()

    def _check_family(self) -> None:
        architectures = self._config.get("architectures") or []
        family = llm_family([str(name) for name in architectures])
        if family == self._family:
            return
        what = _FAMILY_MODELS[family] if family is not None else "not an LLM reranker (a cross-encoder?)"
        use = f"use {_FAMILY_CLASSES[family]}" if family is not None else "use FlagReranker for a cross-encoder"
        msg = (
            f"{self.model_name_or_path!r} is {what} (architectures {architectures!r}); "
            f"{type(self).__name__} runs {_FAMILY_MODELS[self._family]}: {use}"
        )
        raise ValueError(msg)

    def _handles_for(
        self,
        *,
        batch_size: int | None,
        query_max_length: int | None,
        max_length: int | None,
        prompt: str | None,
        layers: tuple[int, ...] | None = None,
        compress_ratio: int | None = None,
        compress_layers: tuple[int, ...] | None = None,
    ) -> list[BGEReranker]:
        size = self.batch_size if batch_size is None else batch_size
        length = self.max_length if max_length is None else max_length
        query_length = self.query_max_length if query_max_length is None else query_max_length
        check_lengths(batch_size=size, max_length=length)
        if query_length is None:
            query_length = length * 3 // 4
        check_lengths(query_max_length=query_length)
        if query_length >= length:
            msg = f"query_max_length must be < max_length={length}, got {query_length}"
            raise ValueError(msg)
        _check_prompt(prompt)
        settings: dict[str, Any] = {}
        if layers is not None:
            settings["cutoff_layers"] = layers
        if compress_ratio is not None:
            settings["compress_ratio"] = compress_ratio
            settings["compress_layers"] = compress_layers
        return self._handles.get(
            self.target_devices,
            use_fp16=self.use_fp16,  # FlagEmbedding's model.half(), never on the CPU
            use_bf16=self.use_bf16,
            model_name=self._model,
            max_length=length,
            max_query_length=query_length,
            windows=False,  # FlagEmbedding truncates: the core's first window only
            normalize=False,
            batch_size=size,
            trust_remote_code=self.trust_remote_code,
            prompt=self.prompt if prompt is None else prompt,
            **settings,
        )

    def _warm_up(self, **settings: Any) -> None:
        self._handles_for(batch_size=None, query_max_length=None, max_length=None, prompt=None, **settings)

    def _columns(
        self, sentence_pairs: Any, handles: list[BGEReranker], several: bool, normalize: bool | None
    ) -> list[list[float]]:
        """Each cutoff layer's scores of the pairs (one column; one per layer when several); none for no pairs."""
        pairs = check_pairs(sentence_pairs)
        if not pairs:
            return []

        def work(handle: BGEReranker, chunk: list[Pair]) -> list[list[float]]:
            return _layer_columns(handle, chunk) if several else [handle.score_pairs(chunk, normalize=False)]

        parts = run_on_devices(handles, pairs, work)
        columns = [[score for part in parts for score in part[column]] for column in range(len(parts[0]))]
        if self.normalize if normalize is None else normalize:
            columns = [[sigmoid(score) for score in column] for column in columns]
        return columns

    def _valid_layers(self) -> range:
        """The cutoff layers the checkpoint has heads for (FlagEmbedding's model code's check)."""
        config = self._config
        count = int(config.get("num_hidden_layers", 0))
        if self._family == "llm-layerwise":
            return range(int(config.get("start_layer", 8)), count + 1)
        return range(int(config.get("start_layer", 28)), count + 1, int(config.get("layer_sep", 28)))

    def _cutoff_layers(self, cutoff_layers: Any) -> tuple[int, ...] | None:
        """FlagEmbedding's cutoff layers: out-of-range ones dropped, then sorted (the order of its results)."""
        if cutoff_layers is None:
            return None
        layers = _int_list(cutoff_layers, name="cutoff_layers")
        valid = self._valid_layers()
        removed = [layer for layer in layers if layer not in valid]
        if removed and tuple(removed) not in self._logged:  # FlagEmbedding's warning_once
            self._logged.add(tuple(removed))
            logger.warning("layers %s are incompatible with the setting. They will be removed...", removed)
        kept = [layer for layer in layers if layer in valid]
        if not kept:
            msg = f"Your cutoff layers must in [{valid.start}, {valid.stop - 1}] (got cutoff_layers={cutoff_layers!r})"
            raise ValueError(msg)
        ordered = tuple(sorted(set(kept)))
        self._check_order(kept, ordered, cutoff_layers)
        return ordered

    def _check_order(self, kept: list[int], ordered: tuple[int, ...], given: Any) -> None:
        """Nothing to check here: FlagEmbedding pairs heads with layers correctly in any order."""


class FlagLLMReranker(_LLMReranker):
    """FlagEmbedding's ``FlagLLMReranker`` (bge-reranker-v2-gemma) on this package's engine: change the import only.

    Arguments mean what they mean in FlagEmbedding 1.3.5. :meth:`compute_score` returns a list of
    floats, one per pair, even for a single pair: the logit of ``Yes`` after FlagEmbedding's prompt,
    or its sigmoid with ``normalize=True``. The model loads in the constructor.

    Example:
        >>> from bge_integrations.compat import FlagLLMReranker  # was: from FlagEmbedding import FlagLLMReranker
        >>> reranker = FlagLLMReranker("BAAI/bge-reranker-v2-gemma", use_fp16=True)  # doctest: +SKIP
        >>> pairs = [["what is panda?", "hi"], ["what is panda?", "The giant panda ..."]]
        >>> reranker.compute_score(pairs)  # doctest: +SKIP
        [-7.7..., 9.3...]

    """

    _family: ClassVar[LLMFamily] = "llm"

    def __init__(
        self,
        model_name_or_path: str,
        peft_path: str | None = None,
        use_fp16: bool = False,
        use_bf16: bool = False,
        query_instruction_for_rerank: str = "A: ",
        query_instruction_format: str = "{}{}",
        passage_instruction_for_rerank: str = "B: ",
        passage_instruction_format: str = "{}{}",
        cache_dir: str | None = None,
        trust_remote_code: bool = False,
        devices: DeviceSpec = None,
        prompt: str | None = None,
        batch_size: int = 128,
        query_max_length: int | None = None,
        max_length: int = 512,
        normalize: bool = False,
        **kwargs: Any,
    ) -> None:
        self._setup(
            model_name_or_path,
            peft_path=peft_path,
            use_fp16=use_fp16,
            use_bf16=use_bf16,
            instructions=(
                query_instruction_for_rerank,
                query_instruction_format,
                passage_instruction_for_rerank,
                passage_instruction_format,
            ),
            cache_dir=cache_dir,
            trust_remote_code=trust_remote_code,
            devices=devices,
            prompt=prompt,
            batch_size=batch_size,
            query_max_length=query_max_length,
            max_length=max_length,
            normalize=normalize,
            kwargs=kwargs,
        )
        self._warm_up()  # FlagEmbedding loads in the constructor

    def compute_score(
        self,
        sentence_pairs: Sequence[str] | Sequence[Sequence[str]],
        batch_size: int | None = None,
        query_max_length: int | None = None,
        max_length: int | None = None,
        prompt: str | None = None,
        normalize: bool | None = None,
        use_dataloader: bool = False,
        num_workers: int | None = None,
        **kwargs: Any,
    ) -> list[float]:
        """Score (query, passage) pairs: one float per pair, in input order.

        Args:
            sentence_pairs: One ``[query, passage]`` pair, or a list of pairs (lists or tuples).
            batch_size: Pairs per forward pass; None: ``self.batch_size``.
            query_max_length: Query tokens kept; None: ``self.query_max_length``, else 3/4 of max_length.
            max_length: Passage tokens (and pair budget, as in FlagEmbedding); None: ``self.max_length``.
            prompt: The instruction after the passage; None: ``self.prompt``, else FlagEmbedding's.
            normalize: Sigmoid of the logits (True) or raw logits (False); None: ``self.normalize``.
            use_dataloader: Only False (FlagEmbedding's default) is supported.
            num_workers: The dataloader's workers: unused without it, as in FlagEmbedding.
            kwargs: None accepted (FlagEmbedding passes them to the tokenizer).

        Raises:
            TypeError: If a pair is not two strings (naming its index), or for any other keyword argument.
            ValueError: For ``use_dataloader=True``.

        """
        check_no_extra_kwargs("compute_score", kwargs)
        _check_dataloader(use_dataloader)
        handles = self._handles_for(
            batch_size=batch_size, query_max_length=query_max_length, max_length=max_length, prompt=prompt
        )
        columns = self._columns(sentence_pairs, handles, False, normalize)
        return columns[0] if columns else []


class LayerWiseFlagLLMReranker(_LLMReranker):
    """FlagEmbedding's ``LayerWiseFlagLLMReranker`` (bge-reranker-v2-minicpm-layerwise): change the import line only.

    Arguments mean what they mean in FlagEmbedding 1.3.5. :meth:`compute_score` returns a list of
    floats, one per pair (a layer head's output at the last token, or its sigmoid with
    ``normalize=True``), for the last layer or the one cutoff layer asked for; with several cutoff
    layers, one such list per layer, in increasing layer order. Layers outside the model's are
    dropped when others remain. With neither ``use_fp16`` nor ``use_bf16`` it warns and runs in
    float16 (float32 on the CPU), as FlagEmbedding does. The model loads in the constructor.

    Example:
        >>> from bge_integrations.compat import LayerWiseFlagLLMReranker
        >>> model = "BAAI/bge-reranker-v2-minicpm-layerwise"
        >>> reranker = LayerWiseFlagLLMReranker(model, use_fp16=True)  # doctest: +SKIP
        >>> reranker.compute_score(["query", "passage"], cutoff_layers=[28])  # doctest: +SKIP
        [-7.0...]
        >>> reranker.compute_score(["query", "passage"], cutoff_layers=[28, 40])  # doctest: +SKIP
        [[-7.0...], [-6.6...]]

    """

    _family: ClassVar[LLMFamily] = "llm-layerwise"

    def __init__(
        self,
        model_name_or_path: str,
        peft_path: str | None = None,
        use_fp16: bool = False,
        use_bf16: bool = False,
        query_instruction_for_rerank: str = "A: ",
        query_instruction_format: str = "{}{}",
        passage_instruction_for_rerank: str = "B: ",
        passage_instruction_format: str = "{}{}",
        cache_dir: str | None = None,
        trust_remote_code: bool = False,
        devices: DeviceSpec = None,
        cutoff_layers: list[int] | None = None,
        prompt: str | None = None,
        batch_size: int = 128,
        query_max_length: int | None = None,
        max_length: int = 512,
        normalize: bool = False,
        **kwargs: Any,
    ) -> None:
        self._setup(
            model_name_or_path,
            peft_path=peft_path,
            use_fp16=use_fp16,
            use_bf16=use_bf16,
            instructions=(
                query_instruction_for_rerank,
                query_instruction_format,
                passage_instruction_for_rerank,
                passage_instruction_format,
            ),
            cache_dir=cache_dir,
            trust_remote_code=trust_remote_code,
            devices=devices,
            prompt=prompt,
            batch_size=batch_size,
            query_max_length=query_max_length,
            max_length=max_length,
            normalize=normalize,
            kwargs=kwargs,
        )
        self.cutoff_layers = cutoff_layers
        if not use_fp16 and not use_bf16:
            warnings.warn(_NO_HALF, UserWarning, stacklevel=2)
            self.use_fp16 = True  # FlagEmbedding's: float16 on a GPU
        self._warm_up(layers=self._cutoff_layers(cutoff_layers))

    def compute_score(
        self,
        sentence_pairs: Sequence[str] | Sequence[Sequence[str]],
        batch_size: int | None = None,
        query_max_length: int | None = None,
        max_length: int | None = None,
        cutoff_layers: list[int] | None = None,
        prompt: str | None = None,
        normalize: bool | None = None,
        use_dataloader: bool = False,
        num_workers: int | None = None,
        **kwargs: Any,
    ) -> Scores:
        """Score (query, passage) pairs at each cutoff layer, in input order.

        Args:
            sentence_pairs: One ``[query, passage]`` pair, or a list of pairs (lists or tuples).
            batch_size: Pairs per forward pass; None: ``self.batch_size``.
            query_max_length: Query tokens kept; None: ``self.query_max_length``, else 3/4 of max_length.
            max_length: Passage tokens (and pair budget, as in FlagEmbedding); None: ``self.max_length``.
            cutoff_layers: Layers that score (an int or a list); None: ``self.cutoff_layers``, else the last.
            prompt: The instruction after the passage; None: ``self.prompt``, else FlagEmbedding's.
            normalize: Sigmoid of the scores (True) or raw (False); None: ``self.normalize``.
            use_dataloader: Only False (FlagEmbedding's default) is supported.
            num_workers: The dataloader's workers: unused without it, as in FlagEmbedding.
            kwargs: None accepted (FlagEmbedding passes them to the tokenizer).

        Returns:
            One float per pair; with several cutoff layers, one list per layer, in increasing layer order.

        Raises:
            TypeError: If a pair is not two strings (naming its index), or for any other keyword argument.
            ValueError: If no cutoff layer is in the model's range, the layers (after dropping those
                outside it) are not in increasing order, or for ``use_dataloader=True``.

        """
        check_no_extra_kwargs("compute_score", kwargs)
        _check_dataloader(use_dataloader)
        layers = self._cutoff_layers(self.cutoff_layers if cutoff_layers is None else cutoff_layers)
        handles = self._handles_for(
            batch_size=batch_size,
            query_max_length=query_max_length,
            max_length=max_length,
            prompt=prompt,
            layers=layers,
        )
        return _result(self._columns(sentence_pairs, handles, layers is not None and len(layers) > 1, normalize))

    def _check_order(self, kept: list[int], ordered: tuple[int, ...], given: Any) -> None:
        # FlagEmbedding scores the i-th layer reached with the head of the i-th layer *given*.
        if self._config.get("head_multi", True) and tuple(kept[: len(ordered)]) != ordered:
            msg = (
                f"cutoff_layers={given!r}: FlagEmbedding scores layers given out of increasing order with "
                f"each other's heads (layer {ordered[0]}'s hidden states with layer {kept[0]}'s head), which "
                f"is not a relevance score; give them in increasing order: {list(ordered)!r}"
            )
            raise ValueError(msg)


class LightWeightFlagLLMReranker(_LLMReranker):
    """FlagEmbedding's ``LightWeightFlagLLMReranker`` (bge-reranker-v2.5-gemma2-lightweight): change the import only.

    Arguments mean what they mean in FlagEmbedding 1.3.5. :meth:`compute_score` returns a list of
    floats, one per pair, for the last layer or the one cutoff layer asked for; with several, one
    such list per layer, in increasing layer order. ``compress_ratio`` (1, 2, 4 or 8) merges passage
    tokens before each of ``compress_layers`` (``compress_layer`` is the deprecated spelling). With
    neither ``use_fp16`` nor ``use_bf16`` it warns as FlagEmbedding does and, as there, runs in
    float32. The model loads in the constructor.

    Example:
        >>> from bge_integrations.compat import LightWeightFlagLLMReranker
        >>> model = "BAAI/bge-reranker-v2.5-gemma2-lightweight"
        >>> reranker = LightWeightFlagLLMReranker(model, use_fp16=True)  # doctest: +SKIP
        >>> reranker.compute_score(["query", "passage"], cutoff_layers=[28], compress_ratio=2,
        ...                        compress_layers=[24, 40])  # doctest: +SKIP
        [-1.9...]

    """

    _family: ClassVar[LLMFamily] = "llm-lightweight"

    def __init__(
        self,
        model_name_or_path: str,
        peft_path: str | None = None,
        use_fp16: bool = False,
        use_bf16: bool = False,
        query_instruction_for_rerank: str = "A: ",
        query_instruction_format: str = "{}{}",
        passage_instruction_for_rerank: str = "B: ",
        passage_instruction_format: str = "{}{}",
        cache_dir: str | None = None,
        trust_remote_code: bool = False,
        devices: DeviceSpec = None,
        cutoff_layers: list[int] | None = None,
        compress_layers: list[int] = [8],  # noqa: B006  (FlagEmbedding's default, never mutated)
        compress_ratio: int = 1,
        prompt: str | None = None,
        batch_size: int = 128,
        query_max_length: int | None = None,
        max_length: int = 512,
        normalize: bool = False,
        **kwargs: Any,
    ) -> None:
        self._setup(
            model_name_or_path,
            peft_path=peft_path,
            use_fp16=use_fp16,
            use_bf16=use_bf16,
            instructions=(
                query_instruction_for_rerank,
                query_instruction_format,
                passage_instruction_for_rerank,
                passage_instruction_format,
            ),
            cache_dir=cache_dir,
            trust_remote_code=trust_remote_code,
            devices=devices,
            prompt=prompt,
            batch_size=batch_size,
            query_max_length=query_max_length,
            max_length=max_length,
            normalize=normalize,
            kwargs=kwargs,
        )
        self.cutoff_layers = cutoff_layers
        self.compress_layers = compress_layers
        self.compress_ratio = compress_ratio
        if not use_fp16 and not use_bf16:
            # FlagEmbedding warns, but sets only a local flag: the model stays float32.
            warnings.warn(_NO_HALF, UserWarning, stacklevel=2)
        self._warm_up(
            layers=self._cutoff_layers(cutoff_layers),
            **_compression(compress_ratio, compress_layers),
        )

    def compute_score(
        self,
        sentence_pairs: Sequence[str] | Sequence[Sequence[str]],
        batch_size: int | None = None,
        query_max_length: int | None = None,
        max_length: int | None = None,
        cutoff_layers: list[int] | None = None,
        compress_layer: list[int] | None = None,
        compress_layers: list[int] | None = None,
        compress_ratio: int | None = None,
        prompt: str | None = None,
        normalize: bool | None = None,
        **kwargs: Any,
    ) -> Scores:
        """Score (query, passage) pairs at each cutoff layer, in input order.

        Args:
            sentence_pairs: One ``[query, passage]`` pair, or a list of pairs (lists or tuples).
            batch_size: Pairs per forward pass; None: ``self.batch_size``.
            query_max_length: Query tokens kept; None: ``self.query_max_length``, else 3/4 of max_length.
            max_length: Passage tokens (and pair budget, as in FlagEmbedding); None: ``self.max_length``.
            cutoff_layers: Layers that score (an int or a list); None: ``self.cutoff_layers``, else the last.
            compress_layer: Deprecated spelling of compress_layers (warns; wins over compress_layers).
            compress_layers: Layers before which passage tokens are merged; None: ``self.compress_layers``.
            compress_ratio: Passage tokens merged into one (1: none, 2, 4, 8); None: ``self.compress_ratio``.
            prompt: The instruction after the passage; None: ``self.prompt``, else FlagEmbedding's.
            normalize: Sigmoid of the scores (True) or raw (False); None: ``self.normalize``.
            kwargs: None accepted (FlagEmbedding passes them to the tokenizer).

        Returns:
            One float per pair; with several cutoff layers, one list per layer, in increasing layer order.

        Raises:
            TypeError: If a pair is not two strings (naming its index), or for any other keyword argument.
            ValueError: If no cutoff layer is in the model's range, or compress_ratio is not 1, 2, 4 or 8.

        """
        check_no_extra_kwargs("compute_score", kwargs)
        layers = self._cutoff_layers(self.cutoff_layers if cutoff_layers is None else cutoff_layers)
        if compress_layers is None:
            compress_layers = self.compress_layers
        if compress_layer is not None:
            warnings.warn(
                "Try not to use the parameter `compress_layer`; use `compress_layers` instead.",
                FutureWarning,
                stacklevel=2,
            )
            compress_layers = compress_layer
        handles = self._handles_for(
            batch_size=batch_size,
            query_max_length=query_max_length,
            max_length=max_length,
            prompt=prompt,
            layers=layers,
            **_compression(self.compress_ratio if compress_ratio is None else compress_ratio, compress_layers),
        )
        return _result(self._columns(sentence_pairs, handles, layers is not None and len(layers) > 1, normalize))


BaseLLMReranker = FlagLLMReranker
"""FlagEmbedding 1.3's class name for :class:`FlagLLMReranker`."""
LayerWiseLLMReranker = LayerWiseFlagLLMReranker
"""FlagEmbedding 1.3's class name for :class:`LayerWiseFlagLLMReranker`."""
LightweightLLMReranker = LightWeightFlagLLMReranker
"""FlagEmbedding 1.3's class name for :class:`LightWeightFlagLLMReranker`."""


def _make_reranker(*, use_fp16: bool, use_bf16: bool, **settings: Any) -> BGEReranker:
    """A core reranker in FlagEmbedding's precision: float16 if use_fp16, else bfloat16 if use_bf16."""
    dtype = "float16" if use_fp16 else "bfloat16" if use_bf16 else None
    return BGEReranker(use_fp16=use_fp16, model_kwargs=None if dtype is None else {"dtype": dtype}, **settings)


def _layer_columns(handle: BGEReranker, pairs: list[Pair]) -> list[list[float]]:
    """Every cutoff layer's raw scores of pairs (one column per layer, in the handle's layer order)."""
    groups: dict[str, list[int]] = {}
    for index, (query, _) in enumerate(pairs):
        groups.setdefault(query, []).append(index)
    columns: list[list[float]] = []
    for query, indices in groups.items():
        table = handle.score_layers(query, [pairs[i][1] for i in indices], normalize=False)
        if not columns:
            columns = [[0.0] * len(pairs) for _ in table]
        for column, scores in zip(columns, table.values(), strict=True):
            for index, score in zip(indices, scores, strict=True):
                column[index] = score
    return columns


def _checkpoint_config(model: str) -> dict[str, Any]:
    from transformers import PretrainedConfig  # slow import

    raw, _ = PretrainedConfig.get_config_dict(model)
    return dict(raw)


def _check_layout(part: str, instruction: str | None, instruction_format: str, prefix: str) -> None:
    """Refuse an instruction that does not give FlagEmbedding's ``prefix + text`` (the core's layout)."""
    text = _SENTINEL
    if instruction is not None:  # FlagEmbedding's get_detailed_instruct
        text = instruction_format.replace("\\n", "\n").format(instruction, _SENTINEL)
    if text != prefix + _SENTINEL:
        msg = (
            f"{part}_instruction_for_rerank={instruction!r} with {part}_instruction_format={instruction_format!r} "
            f"is not supported: the LLM rerankers here read every {part} as {prefix!r} + {part} "
            f"(FlagEmbedding's default, {part}_instruction_for_rerank={prefix!r} and format '{{}}{{}}')"
        )
        raise ValueError(msg)


def _check_prompt(prompt: Any) -> None:
    if prompt is not None and not isinstance(prompt, str):
        msg = f"prompt must be a string or None, got {type(prompt).__name__}: {prompt!r:.80}"
        raise TypeError(msg)


def _check_dataloader(use_dataloader: Any) -> None:
    if use_dataloader is not False and use_dataloader is not None:
        msg = (
            f"use_dataloader={use_dataloader!r} is not supported: pairs are tokenized and batched by the "
            "core (the scores are the same); leave use_dataloader at False"
        )
        raise ValueError(msg)


def _refuse_peft(peft_path: str) -> None:
    missing = "" if importlib.util.find_spec("peft") is not None else " (and peft is not installed)"
    msg = (
        f"peft_path={peft_path!r} is not supported{missing}: merge the adapter into the model first "
        "(peft.PeftModel.from_pretrained(model, peft_path).merge_and_unload().save_pretrained(folder), "
        "with the tokenizer saved there too) and pass that folder as model_name_or_path"
    )
    raise ValueError(msg)


def _compress_ratio(value: Any) -> int:
    if isinstance(value, bool) or value not in (1, 2, 4, 8):
        msg = f"compress_ratio must be 1, 2, 4 or 8, got {value!r}"
        raise ValueError(msg)
    return int(value)


def _compress_layers(value: Any) -> tuple[int, ...] | None:
    """The layers FlagEmbedding can compress before (it never matches a negative one); None: none of them."""
    layers = sorted({layer for layer in _int_list(value, name="compress_layers") if layer >= 0})
    return tuple(layers) or None


def _compression(ratio: Any, layers: Any) -> dict[str, Any]:
    """The core's compression settings for FlagEmbedding's compress_ratio and compress_layers."""
    checked_ratio, checked_layers = _compress_ratio(ratio), _compress_layers(layers)
    if checked_layers is None:
        return {"compress_ratio": 1, "compress_layers": None}  # no layer to compress at: no compression
    return {"compress_ratio": checked_ratio, "compress_layers": checked_layers}


def _int_list(value: Any, *, name: str) -> list[int]:
    items = [value] if _is_int(value) else value
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence) or not all(_is_int(i) for i in items):
        msg = f"{name} must be an int or a list of ints, got {value!r}"
        raise ValueError(msg)
    return [int(item) for item in items]


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _result(columns: list[list[float]]) -> Scores:
    """FlagEmbedding's shape: the one layer's list, else one list per layer (no pairs: an empty list)."""
    return columns[0] if len(columns) == 1 else columns


__all__ = [
    "BaseLLMReranker",
    "FlagLLMReranker",
    "LayerWiseFlagLLMReranker",
    "LayerWiseLLMReranker",
    "LightWeightFlagLLMReranker",
    "LightweightLLMReranker",
]
