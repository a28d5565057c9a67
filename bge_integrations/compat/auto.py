"""FlagEmbedding's ``FlagAutoModel`` and ``FlagAutoReranker``: pick the class from the model's name.

The rules are FlagEmbedding's (``inference/auto_embedder.py``, ``auto_reranker.py``): the model
name is the last part of ``model_name_or_path`` (the folder above a ``checkpoint-*`` folder), looked
up in the model table (:mod:`bge_integrations.compat._mapping`), whose row gives the class and the
defaults of ``pooling_method``, ``trust_remote_code`` and ``query_instruction_format``; or
``model_class`` names the class and those defaults are the class's, each logged as FlagEmbedding does.

One addition: a name the table lacks is also recognised as a fine-tuned BGE model when the
checkpoint's recorded base model (``_name_or_path`` of a local ``config.json``) is in the table,
or when the name or the base model contains a BGE model's name (``bge-base-en-v1.5-finetuned``),
as the core recognises fine-tuned checkpoints. FlagEmbedding raises there only because it cannot know.

Encoder-only models and the LLM rerankers run here (:class:`~bge_integrations.compat.FlagModel`,
:class:`~bge_integrations.compat.BGEM3FlagModel`, :class:`~bge_integrations.compat.FlagReranker`,
:class:`~bge_integrations.compat.FlagLLMReranker`, :class:`~bge_integrations.compat.LayerWiseFlagLLMReranker`,
:class:`~bge_integrations.compat.LightWeightFlagLLMReranker`). Decoder-only embedders raise
NotImplementedError naming the model, never loading something else.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from enum import Enum
from typing import Any, TypeVar

from bge_integrations.compat._mapping import (
    AUTO_EMBEDDER_MAPPING,
    AUTO_RERANKER_MAPPING,
    DEFAULT_POOLING,
    EmbedderEntry,
    EmbedderModelClass,
    RerankerEntry,
    RerankerModelClass,
)
from bge_integrations.compat.flag_llm_reranker import (
    FlagLLMReranker,
    LayerWiseFlagLLMReranker,
    LightWeightFlagLLMReranker,
)
from bge_integrations.compat.flag_model import FlagModel
from bge_integrations.compat.flag_reranker import FlagReranker
from bge_integrations.compat.m3 import BGEM3FlagModel
from bge_integrations.core.checkpoints import is_local_checkpoint, read_local_checkpoint
from bge_integrations.core.presets import ModelKind, find_preset

logger = logging.getLogger(__name__)

E = TypeVar("E", bound=Enum)
Entry = TypeVar("Entry", EmbedderEntry, RerankerEntry)
AnyReranker = FlagReranker | FlagLLMReranker | LayerWiseFlagLLMReranker | LightWeightFlagLLMReranker

_FLAG_CLASS_NAMES: Mapping[Enum, str] = {
    EmbedderModelClass.ENCODER_ONLY_BASE: "FlagModel",
    EmbedderModelClass.ENCODER_ONLY_M3: "BGEM3FlagModel",
    EmbedderModelClass.DECODER_ONLY_BASE: "FlagLLMModel",
    EmbedderModelClass.DECODER_ONLY_ICL: "FlagICLModel",
    EmbedderModelClass.DECODER_ONLY_PSEUDO_MOE: "FlagPseudoMoEModel",
    RerankerModelClass.ENCODER_ONLY_BASE: "FlagReranker",
    RerankerModelClass.DECODER_ONLY_BASE: "FlagLLMReranker",
    RerankerModelClass.DECODER_ONLY_LAYERWISE: "LayerWiseFlagLLMReranker",
    RerankerModelClass.DECODER_ONLY_LIGHTWEIGHT: "LightWeightFlagLLMReranker",
}
"""FlagEmbedding's class for each model class, for error messages."""

RERANKER_CLASSES: Mapping[RerankerModelClass, type[AnyReranker]] = {
    RerankerModelClass.ENCODER_ONLY_BASE: FlagReranker,
    RerankerModelClass.DECODER_ONLY_BASE: FlagLLMReranker,
    RerankerModelClass.DECODER_ONLY_LAYERWISE: LayerWiseFlagLLMReranker,
    RerankerModelClass.DECODER_ONLY_LIGHTWEIGHT: LightWeightFlagLLMReranker,
}
"""FlagEmbedding 1.3.5's ``RERANKER_CLASS_MAPPING``: the class of each reranker model class."""

_TABLE_URL = "https://github.com/FlagOpen/FlagEmbedding/tree/master/FlagEmbedding/inference/{}"


class FlagAutoModel:
    """FlagEmbedding's ``FlagAutoModel``: ``from_finetuned`` picks the embedder class from the model's name.

    Encoder-only models (the BGE v1/v1.5 family, e5, gte, bce: FlagEmbedding's ``FlagModel``) give a
    :class:`~bge_integrations.compat.FlagModel`; BGE-M3 (``"encoder-only-m3"``) a
    :class:`~bge_integrations.compat.BGEM3FlagModel`; decoder-only (LLM) embedders raise
    NotImplementedError. docs/compat.md has the table.

    Example:
        >>> from bge_integrations.compat import FlagAutoModel  # was: from FlagEmbedding import FlagAutoModel
        >>> model = FlagAutoModel.from_finetuned(
        ...     "BAAI/bge-base-en-v1.5",
        ...     query_instruction_for_retrieval="Represent this sentence for searching relevant passages: ",
        ...     devices="cpu",
        ... )  # doctest: +SKIP
        >>> model.encode_queries(["what is panda?"]).shape  # doctest: +SKIP
        (1, 768)

    """

    def __init__(self) -> None:
        msg = (
            "FlagAutoModel is designed to be instantiated using the "
            "`FlagAutoModel.from_finetuned(model_name_or_path)` method."
        )
        raise OSError(msg)

    @classmethod
    def from_finetuned(
        cls,
        model_name_or_path: str,
        model_class: str | EmbedderModelClass | None = None,
        normalize_embeddings: bool = True,
        use_fp16: bool = True,
        query_instruction_for_retrieval: str | None = None,
        devices: str | int | list[str] | list[int] | None = None,
        pooling_method: str | None = None,
        trust_remote_code: bool | None = None,
        query_instruction_format: str | None = None,
        **kwargs: Any,
    ) -> FlagModel | BGEM3FlagModel:
        """Load an embedding model with the class (and defaults) its name calls for.

        Args:
            model_name_or_path: Hub id or local folder (a fine-tuned model, a ``checkpoint-*`` folder).
            model_class: The class, by name (``"encoder-only-base"``, ...) or
                :class:`EmbedderModelClass`; needed for a name the model table lacks.
            normalize_embeddings: See :class:`~bge_integrations.compat.FlagModel`.
            use_fp16: See :class:`~bge_integrations.compat.FlagModel`.
            query_instruction_for_retrieval: See :class:`~bge_integrations.compat.FlagModel`.
            devices: See :class:`~bge_integrations.compat.FlagModel`.
            pooling_method: None: the table's (``"cls"`` or ``"mean"``), or the class's default.
            trust_remote_code: None: the table's, or False.
            query_instruction_format: None: the table's, or ``"{}{}"``.
            kwargs: FlagModel's (or BGEM3FlagModel's) other arguments (``batch_size``,
                ``query_max_length``, ``passage_max_length``, ``cache_dir``, ``return_sparse``, ...).

        Raises:
            ValueError: If the model's name is not in the table and no model_class is given
                (FlagEmbedding's message), or model_class is not a class name.
            NotImplementedError: If the model needs a class that does not run here yet
                (decoder-only embedders), naming the model.

        """
        name = flag_model_name(model_name_or_path)
        if model_class is not None:
            kind = chosen = _model_class(EmbedderModelClass, model_class)
            _refuse_unsupported(model_name_or_path, kind)
            if pooling_method is None:
                pooling_method = DEFAULT_POOLING[kind]
                logger.warning("`pooling_method` is not specified, use default pooling method '%s'.", pooling_method)
            trust_remote_code, query_instruction_format = _class_defaults(trust_remote_code, query_instruction_format)
        else:
            entry = _lookup(AUTO_EMBEDDER_MAPPING, model_name_or_path, name, kind="embedder")
            chosen = entry.model_class
            _refuse_unsupported(model_name_or_path, chosen)
            if pooling_method is None:
                pooling_method = entry.pooling_method
            if trust_remote_code is None:
                trust_remote_code = _table_remote_code(AUTO_EMBEDDER_MAPPING, name, entry)
            if query_instruction_format is None:
                query_instruction_format = entry.query_instruction_format
        flag_class = BGEM3FlagModel if chosen is EmbedderModelClass.ENCODER_ONLY_M3 else FlagModel
        return flag_class(
            model_name_or_path,
            normalize_embeddings=normalize_embeddings,
            use_fp16=use_fp16,
            query_instruction_for_retrieval=query_instruction_for_retrieval,
            query_instruction_format=query_instruction_format if query_instruction_format is not None else "{}{}",
            devices=devices,
            pooling_method=pooling_method,
            trust_remote_code=bool(trust_remote_code),
            **kwargs,
        )


class FlagAutoReranker:
    """FlagEmbedding's ``FlagAutoReranker``: ``from_finetuned`` picks the reranker class from the model's name.

    bge-reranker-base, bge-reranker-large and bge-reranker-v2-m3 (and their fine-tuned
    checkpoints) give a :class:`~bge_integrations.compat.FlagReranker`; bge-reranker-v2-gemma a
    :class:`~bge_integrations.compat.FlagLLMReranker`, bge-reranker-v2-minicpm-layerwise a
    :class:`~bge_integrations.compat.LayerWiseFlagLLMReranker` and bge-reranker-v2.5-gemma2-lightweight a
    :class:`~bge_integrations.compat.LightWeightFlagLLMReranker`, as in FlagEmbedding 1.3.5.

    Example:
        >>> from bge_integrations.compat import FlagAutoReranker  # was: from FlagEmbedding import FlagAutoReranker
        >>> reranker = FlagAutoReranker.from_finetuned("BAAI/bge-reranker-v2-m3", devices=["cpu"])  # doctest: +SKIP
        >>> reranker.compute_score([["what is panda?", "The giant panda is a bear."]])  # doctest: +SKIP
        [5.26171875]

    """

    def __init__(self) -> None:
        msg = (
            "FlagAutoReranker is designed to be instantiated using the "
            "`FlagAutoReranker.from_finetuned(model_name_or_path)` method."
        )
        raise OSError(msg)

    @classmethod
    def from_finetuned(
        cls,
        model_name_or_path: str,
        model_class: str | RerankerModelClass | None = None,
        use_fp16: bool = False,
        trust_remote_code: bool | None = None,
        **kwargs: Any,
    ) -> AnyReranker:
        """Load a reranker with the class its name calls for.

        Args:
            model_name_or_path: Hub id or local folder (a fine-tuned model, a ``checkpoint-*`` folder).
            model_class: The class, by name (``"encoder-only-base"``, ...) or
                :class:`RerankerModelClass`; needed for a name the model table lacks.
            use_fp16: See :class:`~bge_integrations.compat.FlagReranker`.
            trust_remote_code: None: the table's, or False.
            kwargs: The class's other arguments (``batch_size``, ``query_max_length``,
                ``max_length``, ``devices``, ``cache_dir``, ``normalize``; ``use_bf16``, ``prompt``,
                ``cutoff_layers``, ... for the LLM rerankers).

        Raises:
            ValueError: If the model's name is not in the table and no model_class is given
                (FlagEmbedding's message), or model_class is not a class name.

        """
        name = flag_model_name(model_name_or_path)
        if model_class is not None:
            kind = _model_class(RerankerModelClass, model_class)
            if trust_remote_code is None:
                trust_remote_code = False
                logger.warning("`trust_remote_code` is not specified, set to default value '%s'.", trust_remote_code)
        else:
            entry = _lookup(AUTO_RERANKER_MAPPING, model_name_or_path, name, kind="reranker")
            kind = entry.model_class
            if trust_remote_code is None:
                trust_remote_code = _table_remote_code(AUTO_RERANKER_MAPPING, name, entry)
        flag_class = RERANKER_CLASSES[kind]
        return flag_class(model_name_or_path, use_fp16=use_fp16, trust_remote_code=bool(trust_remote_code), **kwargs)


def flag_model_name(model_name_or_path: str) -> str:
    """FlagEmbedding's model name: the last part of the path, or the folder above a ``checkpoint-*``.

    Example:
        >>> flag_model_name("output/bge-base-en-v1.5/checkpoint-500")
        'bge-base-en-v1.5'

    """
    if not isinstance(model_name_or_path, str):
        msg = f"model_name_or_path must be a hub id or a local path, got {model_name_or_path!r}"
        raise TypeError(msg)
    name = os.path.basename(model_name_or_path)
    if name.startswith("checkpoint-"):
        name = os.path.basename(os.path.dirname(model_name_or_path))
    return name


def _model_class(enum: type[E], value: object) -> E:
    if isinstance(value, enum):
        return value
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(repr(member.value) for member in enum)
        msg = f"model_class must be one of {choices}, got {value!r}"
        raise ValueError(msg) from None


def _class_defaults(trust_remote_code: bool | None, query_instruction_format: str | None) -> tuple[bool, str]:
    """FlagEmbedding's defaults (each logged) when model_class is given without them."""
    if trust_remote_code is None:
        trust_remote_code = False
        logger.warning("`trust_remote_code` is not specified, set to default value '%s'.", trust_remote_code)
    if query_instruction_format is None:
        query_instruction_format = "{}{}"
        logger.warning(
            "`query_instruction_format` is not specified, set to default value '%s'.", query_instruction_format
        )
    return trust_remote_code, query_instruction_format


def _table_remote_code(table: Mapping[str, Entry], name: str, entry: Entry) -> bool:
    """The row's ``trust_remote_code`` when the name given in code chose the row, else False.

    A row found through the checkpoint's own files (its recorded base model) must not switch
    remote code on: that would let a downloaded ``config.json`` decide to run its own code.
    """
    if name in table:
        return entry.trust_remote_code
    if entry.trust_remote_code:
        logger.warning(
            "'%s' was matched to a model that runs remote code through its recorded base model; "
            "trust_remote_code stays False unless passed",
            name,
        )
    return False


def _lookup(table: Mapping[str, Entry], model_name_or_path: str, name: str, *, kind: ModelKind) -> Entry:
    """The table's row for name; else the row of the BGE model a fine-tuned checkpoint comes from."""
    if name in table:
        return table[name]
    base = read_local_checkpoint(model_name_or_path).base_model if is_local_checkpoint(model_name_or_path) else None
    if base is not None and flag_model_name(base) in table:
        return table[flag_model_name(base)]
    preset = find_preset(name, base, kind=kind)
    if preset is not None:
        for key, entry in table.items():
            if key.lower() == preset.short_name:
                return entry
    url = _TABLE_URL.format(kind)
    msg = (
        f"Model name '{name}' not found in the model mapping. You can pull request to add the model to "
        f"`{url}/model_mapping.py`. "
        f"If need, you can create a new `<model>.py` file in `{url}/encoder_only` or `{url}/decoder_only`. "
        "Welcome to contribute! You can also directly specify the corresponding `model_class` to instantiate "
        f"the model. (bge_integrations.compat also looked for a BGE model in the name and in the checkpoint's "
        f"recorded base model ({base!r}): none.)"
    )
    raise ValueError(msg)


def _refuse_unsupported(model_name_or_path: str, model_class: EmbedderModelClass) -> None:
    if model_class in (EmbedderModelClass.ENCODER_ONLY_BASE, EmbedderModelClass.ENCODER_ONLY_M3):
        return
    flag_class = _FLAG_CLASS_NAMES[model_class]
    detail = "decoder-only (embedder) models are not supported yet by bge_integrations.compat"
    msg = (
        f"{model_name_or_path!r} needs model_class={model_class.value!r} (FlagEmbedding's {flag_class}): "
        f"{detail}. Only 'encoder-only-base' and 'encoder-only-m3' models run here; nothing was loaded."
    )
    raise NotImplementedError(msg)


__all__ = ["RERANKER_CLASSES", "FlagAutoModel", "FlagAutoReranker", "flag_model_name"]
