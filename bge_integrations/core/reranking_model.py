"""Loading a cross-encoder and running it on encoded pairs."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from bge_integrations.core.pairs import PairBatch, PairEncoder

if TYPE_CHECKING:
    from bge_integrations.core.reranker import RerankerConfig


@dataclass
class LoadedReranker:
    """A loaded cross-encoder, its tokenizer, and pair encoders per window setting."""

    model: Any
    tokenizer: Any
    device: str
    _encoders: dict[tuple[int, int, int], PairEncoder] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

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

    @torch.inference_mode()
    def logits(self, batch: PairBatch, *, batch_size: int) -> torch.Tensor:
        """The relevance logit of every encoded pair, as float32 on the CPU, in pair order."""
        count = len(batch.input_ids)
        out = torch.empty(count, dtype=torch.float32)
        order = sorted(range(count), key=lambda i: -len(batch.input_ids[i]))
        use_types = "token_type_ids" in self.tokenizer.model_input_names
        pad_id = self.tokenizer.pad_token_id or 0
        for start in range(0, count, batch_size):
            rows = order[start : start + batch_size]
            width = max(len(batch.input_ids[i]) for i in rows)
            ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            types = torch.zeros((len(rows), width), dtype=torch.long)
            for r, i in enumerate(rows):
                n = len(batch.input_ids[i])
                ids[r, :n] = torch.tensor(batch.input_ids[i])
                mask[r, :n] = 1
                types[r, :n] = torch.tensor(batch.token_type_ids[i])
            inputs = {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}
            if use_types:
                inputs["token_type_ids"] = types.to(self.device)
            logits = self.model(**inputs).logits
            out[rows] = logits[:, 0].float().cpu()
        return out


def load_reranker(config: RerankerConfig) -> LoadedReranker:
    """Load the cross-encoder that config describes."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer  # slow import, needed only here

    hub_kwargs: dict[str, Any] = {"revision": config.revision, "trust_remote_code": config.trust_remote_code}
    tokenizer = AutoTokenizer.from_pretrained(config.model_name, **hub_kwargs)
    model_kwargs = dict(hub_kwargs)
    if config.use_fp16:
        model_kwargs["dtype"] = torch.float16
    model = AutoModelForSequenceClassification.from_pretrained(config.model_name, **model_kwargs)
    if model.config.num_labels != 1:
        msg = (
            f"{config.model_name!r} has {model.config.num_labels} output labels; a BGE reranker has one relevance logit"
        )
        raise ValueError(msg)
    model.to(config.device)
    model.eval()
    return LoadedReranker(model=model, tokenizer=tokenizer, device=config.device)


__all__ = ["LoadedReranker", "load_reranker"]
