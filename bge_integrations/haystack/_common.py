"""Helpers shared by the Haystack components: devices, document texts, input checks, secrets."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from haystack import Document
from haystack.utils import ComponentDevice, Secret

from bge_integrations.core.loading import check_serialized_remote_code
from bge_integrations.core.validation import check_text, check_texts

TOKEN_ENV_VARS = ["HF_API_TOKEN", "HF_TOKEN"]
"""Where the components read a Hugging Face token by default, as Haystack's own embedders do."""


def default_token() -> Secret:
    """The default ``token``: the first of ``HF_API_TOKEN``, ``HF_TOKEN`` that is set, else none.

    Serialized as the variables' names, never a value.

    Example:
        >>> default_token().to_dict()
        {'type': 'env_var', 'env_vars': ['HF_API_TOKEN', 'HF_TOKEN'], 'strict': False}

    """
    return Secret.from_env_var(TOKEN_ENV_VARS, strict=False)


def check_token(token: Any) -> Secret | None:
    """Return token after checking that it is a Haystack ``Secret`` or None.

    Raises:
        TypeError: If token is anything else, a plain string included (it would be written
            into ``to_dict()`` and pipeline YAML); the message never shows the value.

    """
    if token is None or isinstance(token, Secret):
        return token
    msg = (
        f"token must be a haystack Secret or None, got {type(token).__name__}: use "
        "Secret.from_env_var('HF_TOKEN') (saved by name) or Secret.from_token(...) (not serializable)"
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
    """Return model after checking that it is a non-empty hub id or path string."""
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


__all__ = [
    "TOKEN_ENV_VARS",
    "check_documents",
    "check_fields",
    "check_model",
    "check_query",
    "check_serialized",
    "check_token",
    "component_device",
    "copy_document",
    "default_token",
    "document_texts",
    "resolve_token",
    "torch_device",
]
