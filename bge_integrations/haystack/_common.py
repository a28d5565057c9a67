"""Helpers shared by the Haystack components: devices, document texts, input checks, secrets."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
from haystack import Document
from haystack.utils import ComponentDevice, Secret

from bge_integrations.core.loading import check_serialized_remote_code
from bge_integrations.core.validation import check_text, check_texts

TOKEN_ENV_VARS = ["HF_API_TOKEN", "HF_TOKEN"]
"""Where the components read a Hugging Face token by default, as Haystack's own embedders do."""
API_KEY_ENV_VAR = "BGE_API_KEY"
"""Where the components read a BGE server's API key by default (with ``base_url``)."""


def default_token() -> Secret:
    """The default ``token``: the first of ``HF_API_TOKEN``, ``HF_TOKEN`` that is set, else none.

    Serialized as the variables' names, never a value.

    Example:
        >>> default_token().to_dict()
        {'type': 'env_var', 'env_vars': ['HF_API_TOKEN', 'HF_TOKEN'], 'strict': False}

    """
    return Secret.from_env_var(TOKEN_ENV_VARS, strict=False)


def default_api_key() -> Secret:
    """The default ``api_key``: the ``BGE_API_KEY`` environment variable if set, else none.

    Example:
        >>> default_api_key().to_dict()
        {'type': 'env_var', 'env_vars': ['BGE_API_KEY'], 'strict': False}

    """
    return Secret.from_env_var(API_KEY_ENV_VAR, strict=False)


def check_token(token: Any, name: str = "token") -> Secret | None:
    """Return token after checking that it is a Haystack ``Secret`` or None.

    Raises:
        TypeError: If token is anything else, a plain string included (it would be written
            into ``to_dict()`` and pipeline YAML); the message never shows the value.

    """
    if token is None or isinstance(token, Secret):
        return token
    variable = API_KEY_ENV_VAR if name == "api_key" else "HF_TOKEN"
    msg = (
        f"{name} must be a haystack Secret or None, got {type(token).__name__}: use "
        f"Secret.from_env_var({variable!r}) (saved by name) or Secret.from_token(...) (not serializable)"
    )
    raise TypeError(msg)


def resolve_token(token: Secret | None) -> str | None:
    """The token's value for the core, read now (None: no token; the hub library's own then)."""
    if token is None:
        return None
    value = token.resolve_value()
    return value if isinstance(value, str) and value else None


def check_serialized(owner: str, data: dict[str, Any]) -> None:
    """Check a component's serialized form before it is rebuilt: no remote code switched on by a file.

    Raises:
        ValueError: If ``init_parameters`` switch ``trust_remote_code`` on, anywhere, outside
            :func:`~bge_integrations.core.loading.allow_remote_code`.

    """
    init_parameters = data.get("init_parameters")
    if isinstance(init_parameters, dict):
        check_serialized_remote_code(owner, init_parameters)


def check_model(model: Any) -> str:
    """Return model as a string after checking that it is a non-empty hub id or path (a ``Path`` too)."""
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    if not isinstance(model, str) or not model.strip():
        msg = f"model must be a hub id or a local path, got {model!r}"
        raise ValueError(msg)
    return model


def component_device(device: str | ComponentDevice | None) -> ComponentDevice | None:
    """Return device as a single-device ``ComponentDevice`` (None stays None: chosen at load).

    Raises:
        TypeError: If device is neither a string, a ComponentDevice nor None.
        ValueError: If the string names no device type Haystack knows, or device is a device map.

    """
    if device is None:
        return None
    if isinstance(device, str):
        try:
            return ComponentDevice.from_str(device)
        except ValueError as exc:
            msg = f"device must be a device string such as 'cpu', 'cuda' or 'cuda:1', got {device!r}"
            raise ValueError(msg) from exc
    if not isinstance(device, ComponentDevice):
        msg = f"device must be a string, a ComponentDevice or None, got {type(device).__name__}: {device!r:.80}"
        raise TypeError(msg)
    if device.has_multiple_devices:
        msg = f"BGE components run on one device, got a device map: {device.to_dict()!r}"
        raise ValueError(msg)
    return device


def torch_device(device: ComponentDevice | None) -> str | None:
    """The torch device string the core expects (None: CUDA, then MPS, then CPU)."""
    return None if device is None else device.to_torch_str()


def check_fields(fields: list[str] | None, separator: str) -> list[str]:
    """Return meta_fields_to_embed as a new list after checking it and the separator."""
    check_text(separator, name="embedding_separator")
    return check_texts(fields or [], name="meta_fields_to_embed")


def check_documents(documents: Any, owner: str, hint: str) -> list[Document]:
    """Return documents after checking that it is a list of Documents; errors name the bad value."""
    if not isinstance(documents, list):
        msg = f"{owner} expects a list of Documents, got {type(documents).__name__}: {documents!r:.80}. {hint}"
        raise TypeError(msg)
    for index, doc in enumerate(documents):
        if not isinstance(doc, Document):
            msg = f"{owner} expects a list of Documents, documents[{index}] is {type(doc).__name__}: {doc!r:.80}"
            raise TypeError(msg)
    return documents


def check_query(text: Any) -> str:
    """Return text after checking that it is a string (the text embedder's input)."""
    if not isinstance(text, str):
        msg = (
            f"BGETextEmbedder expects a string as text, got {type(text).__name__}: {text!r:.80}. "
            "To embed Documents, use BGEDocumentEmbedder."
        )
        raise TypeError(msg)
    return text


def document_texts(documents: list[Document], fields: list[str], separator: str) -> list[str]:
    """The text read for each document: the listed meta values that are set, then the content.

    As Haystack's SentenceTransformers components do, meta values are read with ``str()`` (any
    type, JSON or not) and a document without content (``None``) is read as ``""``: it still gets
    its vector or score, in its place.

    Raises:
        TypeError: If a document's content is neither a string nor None, naming its position and id.

    """
    texts = []
    for index, doc in enumerate(documents):
        content = doc.content
        if content is not None and not isinstance(content, str):
            msg = (
                f"documents[{index}] (id {doc.id!r}) has content of type {type(content).__name__}: "
                f"{content!r:.80}; Document.content must be a string or None"
            )
            raise TypeError(msg)
        values = [str(doc.meta[key]) for key in fields if doc.meta.get(key) is not None]
        texts.append(separator.join([*values, content or ""]))
    return texts


def copy_document(doc: Document, **changes: Any) -> Document:
    """A copy of doc with changes and its own top-level ``meta`` dict; doc itself is untouched."""
    return replace(doc, meta=dict(doc.meta), **changes)


def plain(value: Any) -> Any:
    """Return value with numpy scalars made Python ones (``np.int64(3)`` -> ``3``), anything else as it is.

    Settings and run arguments often come from numpy (``top_k=np.argmax(...)``,
    ``score_threshold=np.float32(0.5)``); the checks want Python numbers and a saved pipeline
    can only hold Python values.

    Example:
        >>> plain(np.int64(3)), plain(np.float32(0.5)), plain("x")
        (3, 0.5, 'x')

    """
    return value.item() if isinstance(value, np.generic) else value


def serializable(value: Any) -> Any:
    """A copy of value where numpy scalars and arrays (at any depth) are Python values and lists."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {key: serializable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [serializable(item) for item in value]
    return value


ENCODE_KWARGS: dict[str, str] = {
    "batch_size": "batch_size",
    "show_progress_bar": "progress_bar",
    "normalize_embeddings": "normalize_embeddings",
    "precision": "precision",
    "truncate_dim": "truncate_dim",
    "prompt": "prefix",
}
"""The ``encode_kwargs`` keys the embedders take, each to the component setting it overrides."""


def check_encode_kwargs(encode_kwargs: Any) -> dict[str, Any]:
    """The settings that encode_kwargs overrides, by component setting name (``show_progress_bar`` -> ``progress_bar``).

    Only the ``SentenceTransformer.encode`` arguments that mean something for a BGE embedder
    are taken (:data:`ENCODE_KWARGS`); each overrides the component setting of the same meaning.

    Raises:
        TypeError: If encode_kwargs is neither a dict nor None.
        ValueError: If it has other keys, naming them.

    Example:
        >>> check_encode_kwargs({"show_progress_bar": False, "batch_size": 8})
        {'progress_bar': False, 'batch_size': 8}

    """
    if encode_kwargs is None:
        return {}
    if not isinstance(encode_kwargs, Mapping):
        msg = f"encode_kwargs must be a dict or None, got {type(encode_kwargs).__name__}: {encode_kwargs!r:.80}"
        raise TypeError(msg)
    unknown = sorted(str(key) for key in encode_kwargs if key not in ENCODE_KWARGS)
    if unknown:
        msg = (
            f"encode_kwargs has keys that BGE embedders do not take: {unknown}; the keys taken are "
            f"{sorted(ENCODE_KWARGS)}, each overriding the component setting of the same meaning "
            "(prompt: prefix, show_progress_bar: progress_bar)"
        )
        raise ValueError(msg)
    return {ENCODE_KWARGS[key]: plain(value) for key, value in encode_kwargs.items()}


def merge_prompt(prefix: Any, encode_overrides: dict[str, Any]) -> str:
    """The prefix in use: ``prefix``, or ``encode_kwargs["prompt"]``; both set and different is an error."""
    check_text(prefix, name="prefix")
    prompt = encode_overrides.get("prefix", "")
    check_text(prompt, name="encode_kwargs['prompt']")
    if prefix and prompt and prefix != prompt:
        msg = f"prefix={prefix!r} and encode_kwargs['prompt']={prompt!r} both set the prefix: pass one of them"
        raise ValueError(msg)
    return str(prefix or prompt)


def query_instruction_setting(query_instruction: Any, prefix: str) -> Any:
    """The core's ``query_instruction`` for a text embedder given its ``query_instruction`` and ``prefix``.

    ``prefix=""`` (the SentenceTransformers default, always in its saved pipelines) means "not
    set": the query instruction applies (None: the model's official one). A non-empty prefix
    *is* the query instruction, so it is never added on top of the official one.

    Raises:
        ValueError: If both are set and differ, naming both.

    Example:
        >>> query_instruction_setting(None, ""), query_instruction_setting(None, "Q: ")
        (None, 'Q: ')

    """
    if not prefix or query_instruction == prefix:
        return query_instruction
    if query_instruction is None:
        return prefix
    msg = (
        f"prefix={prefix!r} and query_instruction={query_instruction!r} both set the query "
        "instruction: pass one of them (prefix is the SentenceTransformers name for it)"
    )
    raise ValueError(msg)


__all__ = [
    "API_KEY_ENV_VAR",
    "ENCODE_KWARGS",
    "TOKEN_ENV_VARS",
    "check_documents",
    "check_encode_kwargs",
    "check_fields",
    "check_model",
    "check_query",
    "check_serialized",
    "check_token",
    "component_device",
    "copy_document",
    "default_api_key",
    "default_token",
    "document_texts",
    "merge_prompt",
    "plain",
    "query_instruction_setting",
    "resolve_token",
    "serializable",
    "torch_device",
]
