"""A Hugging Face hub cache on disk, filled with local tiny models under hub ids (no network)."""

from __future__ import annotations

import shutil
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def make_hub_cache(root: Path, models: dict[str, str]) -> Path:
    """Lay out root as a hub cache holding each hub id's files (copied from a local folder) at main.

    The layout is the hub library's: ``models--ORG--NAME/refs/main`` names a commit whose files
    are in ``snapshots/COMMIT/``. Point ``HF_HUB_CACHE`` (or a ``cache_dir`` argument) at root and
    set ``HF_HUB_OFFLINE=1``: loading the hub id reads these files.
    """
    for hub_id, folder in models.items():
        repo = root / ("models--" + hub_id.replace("/", "--"))
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(COMMIT)
        shutil.copytree(folder, repo / "snapshots" / COMMIT, dirs_exist_ok=True)
    return root
