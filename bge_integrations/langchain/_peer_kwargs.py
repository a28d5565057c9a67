"""The peers' argument tables: what each key of langchain-huggingface's ``*_kwargs`` means here.

``HuggingFaceEmbeddings`` (and ``HuggingFaceBgeEmbeddings``) give ``model_kwargs`` to
``SentenceTransformer(...)`` and ``encode_kwargs``/``query_encode_kwargs`` to ``encode(...)``;
``HuggingFaceCrossEncoder`` gives ``model_kwargs`` to ``CrossEncoder(...)``. The rules
(``_compat.py``) translate each key onto a setting, accept it without effect, or refuse it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from bge_integrations.langchain import _compat as compat

EMBEDDING_MODEL_RULES: dict[str, compat.Rule] = {
    "device": "device",
    "revision": "revision",
    "trust_remote_code": "trust_remote_code",
    "token": compat.token,
    "use_auth_token": compat.token,
    "cache_folder": "cache_folder",
    "local_files_only": "local_files_only",
    "model_kwargs": compat.into("transformers_model_kwargs"),
    "tokenizer_kwargs": compat.into("tokenizer_kwargs"),
    "processor_kwargs": compat.into("tokenizer_kwargs"),
    "config_kwargs": compat.into("config_kwargs"),
    "truncate_dim": "truncate_dim",
    "backend": "backend",
    "prompts": compat.prompt_table,
    "default_prompt_name": "default_prompt_name",
    "similarity_fn_name": compat.no_effect,
    "model_card_data": compat.no_effect,
    # HuggingFaceBgeEmbeddings moves these into sentence-transformers' model_kwargs itself
    "torch_dtype": compat.model_option,
    "attn_implementation": compat.model_option,
}
"""``SentenceTransformer(...)`` keyword arguments (``HuggingFaceEmbeddings.model_kwargs``)."""

ENCODE_RULES: dict[str, compat.Rule] = {
    "batch_size": "batch_size",
    "show_progress_bar": "show_progress",
    "normalize_embeddings": compat.normalize_embeddings,
    "precision": "precision",
    "truncate_dim": "truncate_dim",
    "device": "device",
    "prompt": compat.no_effect,  # read by compat.resolve_prompt
    "prompt_name": compat.no_effect,
    "convert_to_numpy": compat.no_effect,
    "convert_to_tensor": compat.no_effect,
}
"""``encode(...)`` keyword arguments (``encode_kwargs``; ``query_encode_kwargs`` for one query)."""

QUERY_ENCODE_RULES = {**ENCODE_RULES, "batch_size": compat.no_effect, "show_progress_bar": compat.no_effect}

EMBEDDING_HINTS = {
    "provider": "backend= and backend_precision= choose the ONNX/OpenVINO graph",
    "file_name": "backend= and backend_precision= choose the ONNX/OpenVINO graph",
    "export": "graphs are exported on first use (backend_dir=)",
    "output_value": "LangChain embeddings are sentence embeddings",
    "pool": "no process pool: see multi_process",
    "chunk_size": "no process pool: see multi_process",
}


def translate_embeddings(
    owner: BaseModel,
    settings: Mapping[str, Any],
    model_kwargs: Mapping[str, Any],
    encode_kwargs: Mapping[str, Any],
    query_encode_kwargs: Mapping[str, Any],
) -> dict[str, Any]:
    """``settings`` (the owner's fields) with the peer's ``*_kwargs`` of ``BGEEmbeddings`` merged in.

    Besides the fields, the result may hold ``transformers_model_kwargs``, ``tokenizer_kwargs``,
    ``config_kwargs`` and ``local_files_only`` for the core.

    Raises:
        ValueError: For a key that cannot be honoured, a bad value, or a contradiction.

    """
    translation = compat.Translation(owner, settings)
    translation.merge(model_kwargs, EMBEDDING_MODEL_RULES, "model_kwargs", hints=EMBEDDING_HINTS)
    translation.merge(encode_kwargs, ENCODE_RULES, "encode_kwargs", hints=EMBEDDING_HINTS)
    translation.merge(query_encode_kwargs, QUERY_ENCODE_RULES, "query_encode_kwargs", hints=EMBEDDING_HINTS)
    # The peer encodes queries with query_encode_kwargs when given, else with encode_kwargs.
    query_side = (
        ("query_encode_kwargs", query_encode_kwargs) if query_encode_kwargs else ("encode_kwargs", encode_kwargs)
    )
    for field, (what, given) in (
        ("embed_instruction", ("encode_kwargs", encode_kwargs)),
        ("query_instruction", query_side),
    ):
        prompt, where = compat.resolve_prompt(translation, given, what, query=field == "query_instruction")
        if prompt is not ...:
            translation.set(field, prompt, where)
    return translation.values


def _num_labels(translation: compat.Translation, key: str, where: str, value: Any) -> None:
    if value not in (None, 1):
        msg = f"{where} must be 1 or None: a BGE reranker has one relevance logit, got {value!r}"
        raise ValueError(msg)


def _activation(translation: compat.Translation, key: str, where: str, value: Any) -> None:
    """``activation_fn``: ``nn.Sigmoid()`` is ``normalize=True``, ``nn.Identity()`` ``normalize=False``."""
    if value is None:
        return
    import torch  # the core has loaded it already

    if isinstance(value, (torch.nn.Sigmoid, torch.nn.Identity)):
        translation.set("normalize", isinstance(value, torch.nn.Sigmoid), where)
        return
    msg = (
        f"{where} must be torch.nn.Sigmoid() (normalize=True) or torch.nn.Identity() (normalize=False), "
        f"got {value!r:.60}"
    )
    raise ValueError(msg)


def _no_prompts(translation: compat.Translation, key: str, where: str, value: Any) -> None:
    if value:
        msg = f"{where} cannot be honoured by {translation.owner}: BGE rerankers take no prompt, got {value!r:.60}"
        raise ValueError(msg)


CROSS_ENCODER_RULES: dict[str, compat.Rule] = {
    "device": "device",
    "revision": "revision",
    "trust_remote_code": "trust_remote_code",
    "token": compat.token,
    "use_auth_token": compat.token,
    "cache_folder": "cache_folder",
    "cache_dir": "cache_folder",
    "local_files_only": "local_files_only",
    "model_kwargs": compat.into("transformers_model_kwargs"),
    "automodel_args": compat.into("transformers_model_kwargs"),
    "tokenizer_kwargs": compat.into("tokenizer_kwargs"),
    "processor_kwargs": compat.into("tokenizer_kwargs"),
    "tokenizer_args": compat.into("tokenizer_kwargs"),
    "config_kwargs": compat.into("config_kwargs"),
    "config_args": compat.into("config_kwargs"),
    "backend": "backend",
    "max_length": "max_length",
    "num_labels": _num_labels,
    "activation_fn": _activation,
    "default_activation_function": _activation,
    "prompts": _no_prompts,
    "default_prompt_name": _no_prompts,
    "model_card_data": compat.no_effect,
    "classifier_dropout": compat.no_effect,  # dropout is off at inference
}
"""``CrossEncoder(...)`` keyword arguments, with the older spellings sentence-transformers still takes."""

CROSS_ENCODER_HINTS = {
    "keep_in_fp32_modules": "use_fp16= sets the precision of the whole model",
    "modules": "give the checkpoint's path as model_name",
}


def translate_cross_encoder(
    owner: BaseModel, settings: Mapping[str, Any], model_kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """``settings`` (the owner's fields) with ``HuggingFaceCrossEncoder``'s ``model_kwargs`` merged in.

    Raises:
        ValueError: For a key that cannot be honoured, a bad value, or a contradiction.

    """
    translation = compat.Translation(owner, settings)
    translation.merge(model_kwargs, CROSS_ENCODER_RULES, "model_kwargs", hints=CROSS_ENCODER_HINTS)
    return translation.values


__all__ = [
    "CROSS_ENCODER_RULES",
    "EMBEDDING_MODEL_RULES",
    "ENCODE_RULES",
    "QUERY_ENCODE_RULES",
    "translate_cross_encoder",
    "translate_embeddings",
]
