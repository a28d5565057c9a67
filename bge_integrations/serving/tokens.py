"""Token-id input: what LangChain's ``OpenAIEmbeddings`` sends by default, decoded back to text.

OpenAI's embeddings API accepts token ids of its own tokenizer (tiktoken's ``cl100k_base``), and
LangChain's client tokenizes every text that way before sending. A BGE model has a different
vocabulary, so the ids are decoded to the exact text they came from (the encoding is lossless)
and embedded as text.
"""

from __future__ import annotations

import threading
from typing import Any

from bge_integrations.serving.errors import ApiError

_encodings: dict[str, Any] = {}
_lock = threading.Lock()


def decode_tokens(rows: list[list[int]], encoding: str) -> list[str]:
    """The texts that tiktoken's ``encoding`` encodes as ``rows``; 400 errors name a bad id."""
    codec = _encoding(encoding)
    size = codec.n_vocab
    for number, row in enumerate(rows):
        for token in row:
            if not 0 <= token < size:
                msg = f"input[{number}] holds token id {token}, outside {encoding}'s vocabulary (0..{size - 1})"
                raise ApiError(400, msg, param="input")
    return [codec.decode(row) for row in rows]


def _encoding(name: str) -> Any:
    with _lock:
        if name not in _encodings:
            try:
                import tiktoken
            except ImportError as exc:
                msg = 'token-id input needs tiktoken: pip install "bge-integrations[serve]"'
                raise ApiError(400, msg, param="input") from exc
            try:
                _encodings[name] = tiktoken.get_encoding(name)
            except Exception as exc:  # tiktoken raises ValueError, or network errors fetching the file
                msg = (
                    f"token-id input: tiktoken could not load encoding {name!r} ({type(exc).__name__}: {exc}); "
                    "offline, point TIKTOKEN_CACHE_DIR at a folder holding its file, or send text"
                )
                raise ApiError(400, msg, param="input") from exc
        return _encodings[name]


__all__ = ["decode_tokens"]
