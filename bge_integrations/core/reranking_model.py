"""Loading a cross-encoder and running it on encoded pairs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from bge_integrations.core.batching import BatchRunner
from bge_integrations.core.configs import RerankerConfig
from bge_integrations.core.cpu_batches import cpu_batch_tokens
from bge_integrations.core.hf_options import dtype_option, without_dtype
from bge_integrations.core.llm_reranking_model import LLMFamily, LoadedLLMReranker, llm_family, load_llm_reranker
from bge_integrations.core.loading import MODEL_LOAD_LOCK
from bge_integrations.core.pairs import PairBatch, PairEncoder


@dataclass
class LoadedReranker:
    """A loaded cross-encoder, its tokenizer, and pair encoders per window setting."""

    model: Any
    tokenizer: Any
    device: str
    _encoders: dict[tuple[int, int, int], PairEncoder] = field(default_factory=dict)
    name: str = "model"
    _lock: threading.Lock = field(default_factory=threading.Lock)
    runner: BatchRunner = field(init=False)

    def __post_init__(self) -> None:
        self.runner = BatchRunner(self.name, default_max_tokens=cpu_batch_tokens(self.device))

    def pair_encoder(self, max_length: int, max_query_length: int, window_overlap: int) -> PairEncoder:
        """The pair encoder for these window settings (built once, then reused)."""
        key = (max_length, max_query_length, window_overlap)
        with self._lock:
            encoder = self._encoders.get(key)
            if encoder is None:
                encoder = PairEncoder(
                    self.tokenizer,
                    max_length=max_length,
                    max_query_length=max_query_length,
                    window_overlap=window_overlap,
                )
                self._encoders[key] = encoder
            return encoder

    def logits(
        self,
        batch: PairBatch,
        *,
        batch_size: int,
        max_tokens: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> torch.Tensor:
        """The relevance logit of every encoded pair, as float32 on the CPU, in pair order.

        Pairs run longest first in batches of at most ``batch_size`` pairs and ``max_tokens``
        padded tokens; a batch that runs out of memory is halved and retried.
        """
        use_types = "token_type_ids" in self.tokenizer.model_input_names
        pad_id = self.tokenizer.pad_token_id or 0

        def forward(rows: list[int]) -> torch.Tensor:
            width = max(len(batch.input_ids[i]) for i in rows)
            ids = np.full((len(rows), width), pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            types = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                n = len(batch.input_ids[i])
                ids[r, :n] = batch.input_ids[i]
                mask[r, :n] = 1
                types[r, :n] = batch.token_type_ids[i]
            arrays = {"input_ids": ids, "attention_mask": mask}
            if use_types:
                arrays["token_type_ids"] = types
            inputs = {key: _to_device(torch.from_numpy(value), self.device) for key, value in arrays.items()}
            with torch.inference_mode():
                logits: torch.Tensor = self.model(**inputs).logits
            return logits[:, 0].float().cpu()

        lengths = [len(ids) for ids in batch.input_ids]
        if not lengths:
            return torch.empty(0, dtype=torch.float32)
        return self.runner.run(lengths, forward, max_items=batch_size, max_tokens=max_tokens, on_batch=progress)


def _to_device(tensor: torch.Tensor, device: str) -> torch.Tensor:
    if device.startswith("cpu"):
        return tensor
    if device.startswith("cuda"):
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def load_reranker(config: RerankerConfig, *, token: str | None = None) -> LoadedReranker | LoadedLLMReranker:
    """Load the reranker that config describes (token: for a private hub model).

    A cross-encoder, or one of BGE's LLM rerankers (told apart by the checkpoint's ``architectures``).
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer  # slow import

    hub_kwargs: dict[str, Any] = {"revision": config.revision, "trust_remote_code": config.trust_remote_code}
    if token is not None:
        hub_kwargs["token"] = token
    if config.cache_folder is not None:
        hub_kwargs["cache_dir"] = config.cache_folder
    if config.local_files_only:
        hub_kwargs["local_files_only"] = True
    family = llm_family(checkpoint_architectures(config.model_name, hub_kwargs))
    if family is not None:
        check_llm_settings(config, family)
        return load_llm_reranker(config, family, hub_kwargs)
    check_llm_settings(config, None)
    tokenizer = AutoTokenizer.from_pretrained(config.model_name, **hub_kwargs, **(config.tokenizer_kwargs or {}))
    model_kwargs = {**hub_kwargs, **without_dtype(config.model_kwargs)}
    _, other_dtype = dtype_option(config.model_kwargs, use_fp16=config.use_fp16)
    if config.use_fp16:
        model_kwargs["dtype"] = torch.float16
    elif other_dtype is not None:
        model_kwargs["dtype"] = other_dtype
    if config.config_kwargs:
        model_kwargs["config"] = AutoConfig.from_pretrained(config.model_name, **hub_kwargs, **config.config_kwargs)
    with MODEL_LOAD_LOCK:
        model = AutoModelForSequenceClassification.from_pretrained(config.model_name, **model_kwargs)
    if model.config.num_labels != 1:
        msg = (
            f"{config.model_name!r} has {model.config.num_labels} output labels; a BGE reranker has one relevance logit"
        )
        raise ValueError(msg)
    model.to(config.device)
    model.eval()
    return LoadedReranker(model=model, tokenizer=tokenizer, device=config.device, name=config.model_name)


def checkpoint_architectures(model_name: str, hub_kwargs: dict[str, Any]) -> list[str]:
    """The ``architectures`` of a checkpoint's config.json (read as a plain file: no model code runs)."""
    from transformers import PretrainedConfig  # slow import

    keys = ("revision", "token", "cache_dir", "local_files_only")
    raw, _ = PretrainedConfig.get_config_dict(model_name, **{k: v for k, v in hub_kwargs.items() if k in keys})
    architectures = raw.get("architectures") or []
    return [str(name) for name in architectures]


_LLM_SETTINGS = {
    "prompt": ("llm", "llm-layerwise", "llm-lightweight"),
    "cutoff_layers": ("llm-layerwise", "llm-lightweight"),
    "compress_ratio": ("llm-lightweight",),
    "compress_layers": ("llm-lightweight",),
}
_FAMILY_MODELS = {
    "llm": "an LLM reranker such as bge-reranker-v2-gemma",
    "llm-layerwise": "a layerwise LLM reranker such as bge-reranker-v2-minicpm-layerwise",
    "llm-lightweight": "the lightweight LLM reranker bge-reranker-v2.5-gemma2-lightweight",
}


_FAMILY_NAMES = {
    "llm": "an LLM reranker that scores at its last layer (as bge-reranker-v2-gemma)",
    "llm-layerwise": "a layerwise LLM reranker (as bge-reranker-v2-minicpm-layerwise)",
    "llm-lightweight": "a lightweight LLM reranker (as bge-reranker-v2.5-gemma2-lightweight)",
}


def check_llm_settings(config: RerankerConfig, family: LLMFamily | None) -> None:
    """Refuse an LLM-reranker setting that the loaded model's family does not read (naming both)."""
    for name, families in _LLM_SETTINGS.items():
        if getattr(config, name) is not None and family not in families:
            what = "a cross-encoder" if family is None else _FAMILY_NAMES[family]
            msg = (
                f"{name}={getattr(config, name)!r} applies to {_FAMILY_MODELS[families[0]]}, "
                f"but {config.model_name!r} is {what}"
            )
            raise ValueError(msg)


__all__ = ["LoadedReranker", "check_llm_settings", "checkpoint_architectures", "load_reranker"]
