"""tiktoken's cl100k_base file, offline: llama-index-core (test group) ships it under tiktoken's cache name."""

from __future__ import annotations

import importlib.util
from pathlib import Path

CL100K_CACHE_NAME = "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"  # sha1 of cl100k_base's download URL


def tiktoken_cache_dir() -> str:
    """A folder for TIKTOKEN_CACHE_DIR holding cl100k_base (found without importing llama_index.core)."""
    try:
        spec = importlib.util.find_spec("llama_index.core")  # imports only the namespace package llama_index
    except ModuleNotFoundError:
        spec = None
    if spec is None or not spec.submodule_search_locations:
        msg = "tests need llama-index-core (the llama-index extra) for tiktoken's cl100k_base file"
        raise RuntimeError(msg)
    folder = Path(next(iter(spec.submodule_search_locations)), "_static", "tiktoken_cache")
    if not (folder / CL100K_CACHE_NAME).is_file():
        msg = f"{folder} lacks {CL100K_CACHE_NAME} (cl100k_base): llama-index-core's layout changed"
        raise RuntimeError(msg)
    return str(folder)
