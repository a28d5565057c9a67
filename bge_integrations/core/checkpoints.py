"""What a checkpoint says about itself, read without loading weights.

A local folder is read directly. A hub id is only looked at when its files are needed at load
time, and then through the hub cache (so ``HF_HUB_OFFLINE=1`` works with a filled cache).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache
from huggingface_hub.errors import RemoteEntryNotFoundError
from huggingface_hub.file_download import _CACHED_NO_EXIST, repo_folder_name

_COMMIT = re.compile(r"[0-9a-f]{40}")


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
    if not isinstance(base, str) or not base:
        base = _front_matter_value(folder / "README.md", "base_model")
    return CheckpointInfo(
        has_sentence_transformers_config=(folder / "modules.json").is_file(),
        query_prompt=query_prompt,
        base_model=base if isinstance(base, str) and base else None,
    )


def has_sentence_transformers_config(
    model: str,
    revision: str | None = None,
    *,
    token: str | None = None,
    cache_folder: str | None = None,
    local_files_only: bool = False,
) -> bool:
    """True when the checkpoint ships a sentence-transformers pipeline (``modules.json``).

    For a hub id this looks in the hub cache first: a cached ``modules.json`` (or the hub's
    record that there is none) answers. Offline (``local_files_only`` or ``HF_HUB_OFFLINE``), a
    cached snapshot without ``modules.json`` is a plain transformers checkpoint. Otherwise it
    asks the hub. When the answer is unknown (offline with nothing cached) it returns True so
    that sentence-transformers itself reports the real error.
    """
    if is_local_checkpoint(model):
        return read_local_checkpoint(model).has_sentence_transformers_config
    try:
        cached = try_to_load_from_cache(model, "modules.json", cache_dir=cache_folder, revision=revision)
        snapshot = try_to_load_from_cache(model, "config.json", cache_dir=cache_folder, revision=revision)
    except ValueError:  # not a valid hub id: the real load reports it
        return True
    if isinstance(cached, str):
        return True
    if cached is _CACHED_NO_EXIST:
        return False
    offline = local_files_only or constants.HF_HUB_OFFLINE
    if offline:
        return not isinstance(snapshot, str)
    try:
        hf_hub_download(model, "modules.json", revision=revision, token=token, cache_dir=cache_folder)
    except RemoteEntryNotFoundError:
        return False
    except Exception:  # noqa: BLE001 - unknown here; the real load reports the real error
        return True
    return True


def cached_commit(model: str, revision: str | None = None, *, cache_folder: str | None = None) -> str | None:
    """The commit that a hub id's revision names in the local hub cache, or None if unknown.

    Read from the cache's ``refs`` files, never from the network. The hub updates them whenever
    it loads or downloads a revision, so after a load this is the commit whose files were
    loaded. Looks in ``cache_folder`` (when given: the model's own download folder),
    ``SENTENCE_TRANSFORMERS_HOME`` (when set) and the standard hub cache (``HF_HUB_CACHE``).
    A revision that is already a full commit hash is returned as it is.

    Example:
        >>> cached_commit("BAAI/bge-small-en-v1.5", "5c38ec7c405ec4b44b94cc5a9bb96e735b38267a")
        '5c38ec7c405ec4b44b94cc5a9bb96e735b38267a'

    """
    wanted = revision or "main"
    if _COMMIT.fullmatch(wanted):
        return wanted
    if Path(wanted).is_absolute() or ".." in Path(wanted).parts:
        return None  # not a ref name; never a path out of the cache
    try:
        folder = repo_folder_name(repo_id=model, repo_type="model")
    except ValueError:  # not a hub id (a local path that does not exist, say)
        return None
    roots = (cache_folder, os.environ.get("SENTENCE_TRANSFORMERS_HOME"), constants.HF_HUB_CACHE)
    for root in roots if cache_folder is None else roots[:1]:
        if not root:
            continue
        ref = Path(root).expanduser() / folder / "refs" / wanted
        try:
            commit = ref.read_text(encoding="utf-8").strip()
        except (OSError, ValueError):
            continue
        if _COMMIT.fullmatch(commit):
            return commit
    return None


def _front_matter_value(path: Path, key: str) -> str | None:
    """A plain ``key: value`` of a model card's YAML front matter (a one-item list too), or None.

    Read without a YAML parser: a model card's ``base_model`` is a plain or quoted scalar, or a
    list whose first item is taken.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    for index, line in enumerate(lines[1:], start=1):
        if line.strip() in ("---", "..."):
            return None
        name, colon, rest = line.partition(":")
        if not colon or name != key:
            continue
        value = rest.strip()
        if not value:  # a block list: the first "- item" below
            following = lines[index + 1] if index + 1 < len(lines) else ""
            value = following.strip()[2:].strip() if following.strip().startswith("- ") else ""
        elif value.startswith("[") and value.endswith("]"):  # a flow list
            value = value[1:-1].split(",")[0].strip()
        return _yaml_scalar(value)
    return None


def _yaml_scalar(value: str) -> str | None:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            loaded = json.loads(value)
        except json.JSONDecodeError:
            loaded = value[1:-1]
        value = loaded if isinstance(loaded, str) else ""
    elif len(value) >= 2 and value[0] == value[-1] == "'":
        value = value[1:-1].replace("''", "'")
    else:
        value = value.split(" #", 1)[0].strip()
    return value or None


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
    "cached_commit",
    "has_sentence_transformers_config",
    "is_local_checkpoint",
    "read_local_checkpoint",
]
