"""bge-m3's two heads and the one forward pass that gives dense, sparse and ColBERT outputs.

A bge-m3 checkpoint is an XLM-RoBERTa encoder (loaded as the dense pipeline, shared with any
:class:`~bge_integrations.BGEEmbedder` of the same model) plus two small files beside it:
``sparse_linear.pt`` (``Linear(hidden, 1)``: a weight per token) and ``colbert_linear.pt``
(``Linear(hidden, dim)``: a vector per token). Both are read as FlagEmbedding's
``EncoderOnlyEmbedderM3Runner.get_model`` reads them; a missing one is an error when its output
is asked for, never a freshly initialised (random) head.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bge_integrations.core.configs import EmbedderConfig
from bge_integrations.core.embedding_model import LoadedEmbedder
from bge_integrations.core.loading import ModelUnavailableError
from bge_integrations.core.m3_types import M3Output, SparseEmbedding

SPARSE_HEAD = "sparse_linear.pt"
COLBERT_HEAD = "colbert_linear.pt"
_HEAD_FILES: dict[M3Output, str] = {"sparse": SPARSE_HEAD, "colbert": COLBERT_HEAD}


class MissingHeadError(ValueError):
    """The checkpoint lacks the head file an output needs (``sparse_linear.pt`` or ``colbert_linear.pt``).

    Example:
        >>> str(MissingHeadError("m", "sparse")).split(":")[0]
        "'m' has no sparse_linear.pt, so no sparse output"

    """

    def __init__(self, model: str, output: M3Output) -> None:
        super().__init__(
            f"{model!r} has no {_HEAD_FILES[output]}, so no {output} output: it is not a bge-m3 checkpoint with "
            "that head (FlagEmbedding saves sparse_linear.pt and colbert_linear.pt beside the encoder's weights). "
            "Use BAAI/bge-m3 or a bge-m3 fine-tune saved with its heads; for dense vectors only, use BGEEmbedder"
        )


@dataclass
class M3Heads:
    """The loaded heads (None where the checkpoint has no file for one), on the encoder's device and dtype.

    Example:
        >>> heads = M3Heads(model="m", sparse=torch.nn.Linear(4, 1), colbert=None, special_ids=frozenset({0, 1}))
        >>> heads.require(("sparse",)) is None
        True

    """

    model: str
    sparse: torch.nn.Linear | None
    colbert: torch.nn.Linear | None
    special_ids: frozenset[int]
    """Ids that never get a lexical weight: the tokenizer's CLS, EOS, PAD and UNK."""

    def require(self, outputs: tuple[M3Output, ...]) -> None:
        """Raise :class:`MissingHeadError` for the first output in outputs whose head is missing."""
        for output in outputs:
            if output != "dense" and getattr(self, output) is None:
                raise MissingHeadError(self.model, output)


def load_heads(loaded: LoadedEmbedder, config: EmbedderConfig, *, token: str | None = None) -> M3Heads:
    """Read the checkpoint's head files into linear layers beside loaded's encoder."""
    first = next(loaded.model.parameters())
    hidden = loaded.model.get_embedding_dimension() or first.shape[-1]
    layers: dict[str, torch.nn.Linear | None] = {}
    for output, filename in _HEAD_FILES.items():
        path = _head_file(config, filename, token=token)
        if path is None:
            layers[output] = None
            continue
        state = torch.load(path, map_location="cpu", weights_only=True)
        weight = state.get("weight") if isinstance(state, dict) else None
        if not isinstance(weight, torch.Tensor) or weight.ndim != 2 or weight.shape[1] != hidden:
            shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else None
            msg = (
                f"{filename} of {config.model_name!r} is not a Linear head on the encoder's {hidden}-wide "
                f"states (weight shape {shape})"
            )
            raise ValueError(msg)
        layer = torch.nn.Linear(int(weight.shape[1]), int(weight.shape[0]), bias="bias" in state)
        layer.load_state_dict(state)
        layers[output] = layer.to(device=first.device, dtype=first.dtype).eval()
    tokenizer = loaded.model.tokenizer
    special = {
        getattr(tokenizer, name, None) for name in ("cls_token_id", "eos_token_id", "pad_token_id", "unk_token_id")
    }
    return M3Heads(
        model=config.model_name,
        sparse=layers["sparse"],
        colbert=layers["colbert"],
        special_ids=frozenset(int(i) for i in special if isinstance(i, int)),
    )


def _head_file(config: EmbedderConfig, filename: str, *, token: str | None) -> Path | None:
    folder = Path(config.model_name).expanduser()
    if folder.is_dir():
        path = folder / filename
        return path if path.is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    try:
        return Path(
            hf_hub_download(
                config.model_name,
                filename,
                revision=config.revision,
                cache_dir=config.cache_folder,
                token=token,
                local_files_only=config.local_files_only,
            )
        )
    except LocalEntryNotFoundError as error:  # not cached and not downloadable now: unknown, not absent
        msg = (
            f"{config.model_name!r}: {filename} is neither in the local Hugging Face cache nor downloadable now "
            "(offline, local_files_only, or the hub unreachable); download it where the hub is reachable, "
            "or pass a local bge-m3 folder"
        )
        raise ModelUnavailableError(msg) from error
    except EntryNotFoundError:  # the repository has no such file
        return None


@dataclass
class M3Rows:
    """Per-text outputs of one :func:`encode_m3` call, in input order (None for outputs not asked)."""

    dense: np.ndarray | None = None
    sparse: list[SparseEmbedding] | None = None
    colbert: list[np.ndarray] | None = None
    truncated: list[bool] = field(default_factory=list)


def encode_m3(
    loaded: LoadedEmbedder,
    heads: M3Heads,
    texts: list[str],
    prompt: str,
    *,
    outputs: tuple[M3Output, ...],
    normalize: bool,
    batch_size: int,
    max_batch_tokens: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> M3Rows:
    """One forward pass per batch; each asked output computed from the same hidden states.

    Dense is the pipeline's own sentence embedding (CLS, normalised as configured); sparse is
    ``relu(sparse_linear(h))``, the largest weight per token id, special tokens and zero weights
    dropped; ColBERT is ``colbert_linear(h[:, 1:])`` over real tokens, normalised when
    ``normalize`` (as FlagEmbedding's ``normalize_embeddings`` does for both).
    """
    heads.require(outputs)
    features = loaded.features
    if not features.available:
        msg = f"{loaded.name!r}: bge-m3 outputs need a fast (Rust) tokenizer that pads on the right"
        raise ValueError(msg)
    prompted = [prompt + text for text in texts] if prompt else texts
    tokenized = features.tokenize(prompted)
    plan = features.plan_for(prompt, texts, tokenized)
    if plan is None:
        msg = f"{loaded.name!r}: the tokenizer's features differ from the pipeline's; bge-m3 outputs need them equal"
        raise ValueError(msg)
    encodings = tokenized.encodings
    count = len(texts)
    dense: list[np.ndarray | None] = [None] * count
    sparse: list[SparseEmbedding | None] = [None] * count
    colbert: list[np.ndarray | None] = [None] * count
    special = np.fromiter(heads.special_ids, dtype=np.int64)

    def forward(rows: list[int]) -> torch.Tensor:
        batch = features.batch([encodings[i] for i in rows], plan, device=loaded.device)
        with torch.inference_mode():
            out = loaded.model(batch)
            hidden: torch.Tensor = out["token_embeddings"]
            mask = batch["attention_mask"]
            lengths = mask.sum(dim=1).tolist()
            if "dense" in outputs:
                vectors = out["sentence_embedding"].float().cpu().numpy()
                for row, index in enumerate(rows):
                    dense[index] = vectors[row]
            if "sparse" in outputs and heads.sparse is not None:
                weights = torch.relu(heads.sparse(hidden)).squeeze(-1).float().cpu().numpy()
                ids = batch["input_ids"].cpu().numpy()
                for row, index in enumerate(rows):
                    n = lengths[row]
                    sparse[index] = _lexical_weights(ids[row, :n], weights[row, :n], special)
            if "colbert" in outputs and heads.colbert is not None:
                tokens = heads.colbert(hidden[:, 1:]) * mask[:, 1:, None].to(hidden.dtype)
                if normalize:
                    tokens = torch.nn.functional.normalize(tokens, dim=-1)
                tokens_np = tokens.float().cpu().numpy()
                for row, index in enumerate(rows):
                    colbert[index] = np.ascontiguousarray(tokens_np[row, : lengths[row] - 1])
        return torch.zeros(len(rows))

    loaded.runner.run(tokenized.lengths, forward, max_items=batch_size, max_tokens=max_batch_tokens, on_batch=progress)
    return M3Rows(
        dense=np.stack(_all(dense)) if "dense" in outputs else None,
        sparse=_all(sparse) if "sparse" in outputs else None,
        colbert=_all(colbert) if "colbert" in outputs else None,
        truncated=tokenized.truncated,
    )


def _lexical_weights(ids: np.ndarray, weights: np.ndarray, special: np.ndarray) -> SparseEmbedding:
    """FlagEmbedding's ``_process_token_weights``: max weight per id, in the order ids first got one."""
    keep = (weights > 0) & ~np.isin(ids, special)
    ids, weights = ids[keep], weights[keep].astype(np.float32)
    unique, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    best = np.zeros(len(unique), dtype=np.float32)
    np.maximum.at(best, inverse, weights)
    order = np.argsort(first, kind="stable")
    return SparseEmbedding(indices=tuple(int(i) for i in unique[order]), values=tuple(float(v) for v in best[order]))


def _all(items: list[Any]) -> list[Any]:
    if any(item is None for item in items):  # the runner forwards every row once; this would be a bug
        msg = "bge-m3 forward pass left rows without output"
        raise RuntimeError(msg)
    return items


__all__ = ["COLBERT_HEAD", "SPARSE_HEAD", "M3Heads", "M3Rows", "MissingHeadError", "encode_m3", "load_heads"]
