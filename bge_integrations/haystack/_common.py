"""Helpers shared by the Haystack components: devices, document texts, input checks."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from haystack import Document
from haystack.utils import ComponentDevice

from bge_integrations.core.validation import check_text, check_texts


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


def document_text(doc: Document, fields: list[str], separator: str) -> str:
    """The text read for doc: the listed meta values that are set, then the content, joined by separator."""
    values = [str(doc.meta[key]) for key in fields if doc.meta.get(key) is not None]
    return separator.join([*values, doc.content or ""])


def copy_document(doc: Document, **changes: Any) -> Document:
    """A copy of doc with changes and its own top-level ``meta`` dict; doc itself is untouched."""
    return replace(doc, meta=dict(doc.meta), **changes)


__all__ = [
    "check_documents",
    "check_fields",
    "check_model",
    "check_query",
    "component_device",
    "copy_document",
    "document_text",
    "torch_device",
]
