"""Tokenising texts once, and building the model's batches from those tokens.

sentence-transformers tokenises inside every batch and sorts inputs by character count; here
each text is tokenised once (in Rust, all texts in one call), which gives its real token count
for sorting and the token budget, tells which texts the window cuts, and provides the batch
tensors. Before a prompt's first use the features are compared with what the model's own
``preprocess`` makes of the same texts; if they differ in anything, that prompt goes through
sentence-transformers' own path instead, so the fast path can never change a vector. A text far
longer than the window is tokenised from a prefix where that cannot change its window
(``core/clipping.py``), and that same prefix is what ``preprocess`` is compared on: a 5 MB text
costs milliseconds, not seconds, on the first call as on every other.

:class:`TokenCounter` counts tokens without truncation, to know which texts a model will cut
on the paths that do not go through :class:`TextFeatures`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch
from tokenizers import Encoding, Tokenizer

from bge_integrations.core.clipping import encode_prefixes, splits_locally

_TENSOR_KEYS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(frozen=True)
class Tokenized:
    """Texts tokenised once: their encodings (cut to the window) and which were cut."""

    encodings: list[Encoding]
    truncated: list[bool]
    sources: list[str] | None = None
    """What was tokenised of each text: the text, or a prefix whose window is the text's (None: the texts)."""

    def read(self, index: int, prompt: str, text: str) -> str:
        """The part of text (given without prompt, tokenised with it) whose tokens were read: text, or a prefix."""
        source = None if self.sources is None else self.sources[index]
        if source is None or len(source) == len(prompt) + len(text):
            return text
        return text[: max(0, len(source) - len(prompt))]

    @property
    def lengths(self) -> list[int]:
        """Tokens per text, special tokens included, after truncation."""
        return [len(encoding.ids) for encoding in self.encodings]


@dataclass(frozen=True)
class FeaturePlan:
    """Which tensors the model takes, and the constant features its preprocess adds."""

    keys: tuple[str, ...]
    extras: dict[str, Any]


class TextFeatures:
    """Tokenises texts the way a sentence-transformers text model does, and batches them.

    Args:
        model: A loaded ``SentenceTransformer`` whose first module tokenises text.
        max_length: The model's window, in tokens.

    Example:
        >>> features = TextFeatures(model, max_length=512)  # doctest: +SKIP
        >>> tokenized = features.tokenize(["query: hello"])  # doctest: +SKIP
        >>> plan = features.plan_for("query: ", ["hello"], tokenized)  # doctest: +SKIP
        >>> batch = features.batch(tokenized.encodings, plan)  # doctest: +SKIP

    """

    def __init__(self, model: Any, max_length: int) -> None:
        self._model = model
        self.max_length = max_length
        tokenizer = getattr(model, "tokenizer", None)
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self._backend: Tokenizer | None = None
        if isinstance(backend, Tokenizer) and getattr(tokenizer, "padding_side", "right") == "right":
            self._backend = Tokenizer.from_str(backend.to_str())
            self._backend.no_padding()
            self._backend.enable_truncation(max_length)
        self._clips = self._backend is not None and splits_locally(self._backend)
        self.pad_id = int(getattr(tokenizer, "pad_token_id", None) or 0)
        self._plans: dict[str, FeaturePlan | None] = {}
        self._lock = threading.Lock()

    @cached_property
    def available(self) -> bool:
        """Whether the tokenizer allows this path at all (a fast, right-padding tokenizer)."""
        return self._backend is not None and _plain_text_pipeline(self._model)

    def tokenize(self, texts: list[str]) -> Tokenized:
        """Tokenise texts (prompts already in front), cut to the window."""
        backend = self._backend
        if backend is None:
            msg = "this tokenizer has no fast backend"
            raise RuntimeError(msg)

        def encode(batch: list[str]) -> list[Encoding]:
            if len(batch) == 1:  # a lone text: skips the thread-pool hand-off of encode_batch
                return [backend.encode(batch[0], add_special_tokens=True)]
            return backend.encode_batch(batch, add_special_tokens=True)

        encodings, sources = encode_prefixes(texts, self.max_length, encode, clips=self._clips)
        return Tokenized(encodings, truncated=[bool(encoding.overflowing) for encoding in encodings], sources=sources)

    def plan_for(self, prompt: str, texts: list[str], tokenized: Tokenized) -> FeaturePlan | None:
        """How to build batches for prompt, or None when this path does not match the model's.

        The first call for a prompt compares our features for two of texts (the longest and
        the shortest) with the model's own ``preprocess``; the verdict is kept. ``preprocess``
        gets what was tokenised of each (:meth:`Tokenized.read`), never a whole 5 MB text.
        """
        with self._lock:
            if prompt in self._plans:
                return self._plans[prompt]
        lengths = tokenized.lengths
        picks = sorted({lengths.index(max(lengths)), lengths.index(min(lengths))})
        reference = self._model.preprocess([tokenized.read(i, prompt, texts[i]) for i in picks], prompt=prompt or None)
        tensors = tuple(key for key, value in reference.items() if isinstance(value, torch.Tensor))
        plan: FeaturePlan | None = None
        if set(tensors) <= set(_TENSOR_KEYS) and {"input_ids", "attention_mask"} <= set(tensors):
            candidate = FeaturePlan(
                keys=tensors, extras={key: value for key, value in reference.items() if key not in tensors}
            )
            ours = self.batch([tokenized.encodings[i] for i in picks], candidate, device="cpu")
            if all(torch.equal(ours[key], reference[key].cpu()) for key in tensors):
                plan = candidate
        with self._lock:
            self._plans.setdefault(prompt, plan)
            return self._plans[prompt]

    def batch(self, encodings: list[Encoding], plan: FeaturePlan, *, device: str = "cpu") -> dict[str, Any]:
        """Pad encodings into the model's input tensors, on device."""
        width = max(len(encoding.ids) for encoding in encodings)
        ids = np.full((len(encodings), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        types = np.zeros((len(encodings), width), dtype=np.int64) if "token_type_ids" in plan.keys else None
        for row, encoding in enumerate(encodings):
            length = len(encoding.ids)
            ids[row, :length] = encoding.ids
            mask[row, :length] = 1
            if types is not None:
                types[row, :length] = encoding.type_ids
        arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        pin = str(device).startswith("cuda")
        features: dict[str, Any] = {}
        for key in plan.keys:
            tensor = torch.from_numpy(arrays[key])
            if not str(device).startswith("cpu"):
                tensor = (tensor.pin_memory() if pin else tensor).to(device, non_blocking=pin)
            features[key] = tensor
        features.update(plan.extras)
        return features


def _plain_text_pipeline(model: Any) -> bool:
    """A single text Transformer first, and no Router (which routes by task) anywhere."""
    from sentence_transformers.base.modules import Router, Transformer

    modules = list(model)
    if not modules or not isinstance(modules[0], Transformer):
        return False
    if any(isinstance(module, Router) for module in modules):
        return False
    config = getattr(modules[0], "modality_config", None)
    return config is None or set(config) <= {"text"}


class TokenCounter:
    """Counts the tokens (special tokens included) that a tokenizer makes of each text.

    It works on a private copy of the fast tokenizer with truncation and padding off, so it
    never disturbs the model's own tokenizer.

    Example:
        >>> from transformers import AutoTokenizer
        >>> counter = TokenCounter(AutoTokenizer.from_pretrained("BAAI/bge-small-en-v1.5"))  # doctest: +SKIP
        >>> counter.lengths(["hello"])  # doctest: +SKIP
        [3]

    """

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self._backend: Tokenizer | None = None
        if isinstance(backend, Tokenizer):
            self._backend = Tokenizer.from_str(backend.to_str())
            self._backend.no_truncation()
            self._backend.no_padding()

    def lengths(self, texts: list[str]) -> list[int]:
        """Token counts of texts, special tokens included."""
        if self._backend is None:
            return [len(ids) for ids in self._tokenizer(texts, add_special_tokens=True)["input_ids"]]
        return [len(e.ids) for e in self._backend.encode_batch(texts, add_special_tokens=True)]


__all__ = ["FeaturePlan", "TextFeatures", "TokenCounter", "Tokenized"]
