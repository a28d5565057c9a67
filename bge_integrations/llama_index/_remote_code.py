"""Every way pydantic builds an object from data refuses ``trust_remote_code`` from that data.

``from_dict``/``from_json`` check their data (each class's own ``from_dict``); pydantic's own
loaders (``model_validate``, ``model_validate_json``, ``model_validate_strings``,
``model_construct``, a ``TypeAdapter``, a field of another model) are data too, and are checked
here the same way, by
:func:`~bge_integrations.core.loading.check_serialized_remote_code`: refused outside
:func:`~bge_integrations.core.loading.allow_remote_code`. The constructor is code and may set it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from llama_index.core.bridge.pydantic import BaseModel

from bge_integrations.core.loading import check_serialized_remote_code

if TYPE_CHECKING:
    from typing_extensions import Self


class RemoteCodeFromDataRefused(BaseModel):
    """A pydantic base placed first among a class's bases: its data loaders check ``trust_remote_code``.

    Example:
        >>> from bge_integrations.llama_index import BGERerank
        >>> BGERerank.model_validate({"model": "BAAI/bge-reranker-base", "trust_remote_code": True})
        Traceback (most recent call last):
        ...
        ValueError: BGERerank: serialized settings ask for trust_remote_code=True, ...

    """

    def __init__(self, **data: Any) -> None:
        # pydantic builds models from data through __init__ too (a TypeAdapter, a field of another
        # model): called from pydantic's own code rather than a user's, the settings are data.
        if _called_by_pydantic():
            _check(type(self), data)
        super().__init__(**data)

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        """Pydantic's ``model_validate``, refusing ``trust_remote_code`` from obj (see the module)."""
        _check(cls, obj)
        return super().model_validate(obj, *args, **kwargs)

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, *args: Any, **kwargs: Any) -> Self:
        """Pydantic's ``model_validate_json``, refusing ``trust_remote_code`` from the JSON."""
        try:
            data = json.loads(json_data)
        except (ValueError, TypeError):
            data = None  # not JSON: pydantic says so
        _check(cls, data)
        return super().model_validate_json(json_data, *args, **kwargs)

    @classmethod
    def model_validate_strings(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        """Pydantic's ``model_validate_strings``, refusing ``trust_remote_code`` from obj."""
        _check(cls, obj)
        return super().model_validate_strings(obj, *args, **kwargs)

    @classmethod
    def model_construct(cls, _fields_set: set[str] | None = None, **values: Any) -> Self:
        """Pydantic's ``model_construct`` (no validation at all), refusing ``trust_remote_code`` from values."""
        _check(cls, values)
        return super().model_construct(_fields_set, **values)


def _called_by_pydantic() -> bool:
    """Whether the code that asked for this object is pydantic's (past this package's ``__init__`` chain)."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_name == "__init__" and _module(frame).startswith(__package__ or ""):
        frame = frame.f_back  # type: ignore[assignment]
    return frame is not None and _module(frame).split(".")[0] in ("pydantic", "pydantic_core")


def _module(frame: Any) -> str:
    return str(frame.f_globals.get("__name__", ""))


def _check(cls: type[BaseModel], data: Any) -> None:
    if data is None or isinstance(data, cls):
        return  # nothing to read, or an object already built
    if not isinstance(data, Mapping):  # from_attributes=True: the object's attributes are the data
        data = {"trust_remote_code": getattr(data, "trust_remote_code", None)}
    check_serialized_remote_code(cls.__name__, data)


__all__ = ["RemoteCodeFromDataRefused"]
