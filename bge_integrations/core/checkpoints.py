"""What a checkpoint says about itself, read without loading weights.

A local folder is read directly. A hub id is only looked at when its files are needed at load
time, and then through the hub cache (so ``HF_HUB_OFFLINE=1`` works with a filled cache).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import hf_hub_download
from huggingface_hub.errors import RemoteEntryNotFoundError


@dataclass(frozen=True)
class CheckpointInfo:
    """Facts read from a local checkpoint folder.

    Args:
        has_sentence_transformers_config: The folder has a ``modules.json``, so
            sentence-transformers builds its own pipeline (pooling, normalisation).
        query_prompt: The ``"query"`` prompt of ``config_sentence_transformers.json``, if any.
        base_model: The name the checkpoint records for itself (``_name_or_path`` in
            ``config.json``, or the model card's ``base_model``), if any.

    """

    has_sentence_transformers_config: bool = False
    query_prompt: str | None = None
    base_model: str | None = None


def is_local_checkpoint(model: str) -> bool:
    """True when model names an existing folder (not a hub id)."""
    return Path(model).expanduser().is_dir()


def read_local_checkpoint(model: str) -> CheckpointInfo:
    """Read what a local checkpoint folder says about itself."""
    folder = Path(model).expanduser()
    st_config = _read_json(folder / "config_sentence_transformers.json")
    prompts = st_config.get("prompts")
    query_prompt = prompts.get("query") if isinstance(prompts, dict) else None
    if not isinstance(query_prompt, str):
        query_prompt = None
    hf_config = _read_json(folder / "config.json")
    base = hf_config.get("_name_or_path")
    if not isinstance(base, str) or not base or Path(base).expanduser() == folder:
        card = st_config.get("model_card_data")
        base = card.get("base_model") if isinstance(card, dict) else None
    return CheckpointInfo(
        has_sentence_transformers_config=(folder / "modules.json").is_file(),
        query_prompt=query_prompt,
        base_model=base if isinstance(base, str) and base else None,
    )


def has_sentence_transformers_config(model: str, revision: str | None = None, *, token: str | None = None) -> bool:
    """True when the checkpoint ships a sentence-transformers pipeline (``modules.json``).

    For a hub id this asks the hub (or its cache). When the answer is unknown (offline with an
    empty cache) it returns True so that sentence-transformers itself reports the real error.
    """
    if is_local_checkpoint(model):
        return read_local_checkpoint(model).has_sentence_transformers_config
    try:
        hf_hub_download(model, "modules.json", revision=revision, token=token)
    except RemoteEntryNotFoundError:
        return False
    except Exception:  # noqa: BLE001 - unknown here; the real load reports the real error
        return True
    return True


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


__all__ = [
    "CheckpointInfo",
    "has_sentence_transformers_config",
    "is_local_checkpoint",
    "read_local_checkpoint",
]
