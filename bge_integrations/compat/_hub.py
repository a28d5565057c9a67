"""FlagEmbedding's ``cache_dir``: where a hub model's files are kept, for the core to load.

The core loads hub models through the standard Hugging Face cache. A different ``cache_dir``
is honoured by resolving the model to its snapshot folder in that cache (downloading it there
first if needed) and loading that folder.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import constants, snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError

from bge_integrations.core.checkpoints import is_local_checkpoint
from bge_integrations.core.loading import explain_unavailable

OTHER_FORMATS = ["onnx/*", "openvino/*", "coreml/*", "*.onnx", "*.h5", "*.msgpack", "*.ot", "flax_model*", "tf_model*"]
"""Files of other runtimes that the BGE hub repos carry and torch never reads."""


def resolve_model(model: str, cache_dir: str | None) -> str:
    """Return what the core should load: model itself, or its snapshot folder in cache_dir.

    A local folder ignores cache_dir (as ``from_pretrained`` does), and so does the standard
    cache (``cache_dir=os.getenv("HF_HUB_CACHE")`` in FlagEmbedding's examples). A snapshot
    already in cache_dir (for instance one FlagEmbedding downloaded) is used as it is.

    Raises:
        ModelUnavailableError: If model is neither in cache_dir nor downloadable (see
            :func:`~bge_integrations.core.loading.explain_unavailable`).

    Example:
        >>> resolve_model("BAAI/bge-small-en-v1.5", None)
        'BAAI/bge-small-en-v1.5'

    """
    if cache_dir is None or is_local_checkpoint(model):
        return model
    if Path(cache_dir).expanduser().resolve() == Path(constants.HF_HUB_CACHE).expanduser().resolve():
        return model
    try:
        folder = _snapshot(model, cache_dir)
    except Exception as error:
        clear = explain_unavailable(model, error, cache_dir=cache_dir)  # a missing path, an unreachable hub
        if clear is None:
            raise
        raise clear from None
    if not isinstance(folder, str):  # only a dry run returns file infos
        msg = f"could not resolve {model!r} in cache_dir={cache_dir!r}"
        raise TypeError(msg)
    return folder


def _snapshot(model: str, cache_dir: str) -> object:
    try:
        return snapshot_download(model, cache_dir=cache_dir, local_files_only=True)
    except LocalEntryNotFoundError:
        return snapshot_download(model, cache_dir=cache_dir, ignore_patterns=OTHER_FORMATS)


__all__ = ["resolve_model"]
