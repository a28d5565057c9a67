"""Loading BGE's LLM rerankers and running them on encoded pairs.

Three families, told apart by the checkpoint's ``architectures`` (as FlagEmbedding's classes are):

- ``"llm"``: bge-reranker-v2-gemma and any decoder fine-tuned the same way (a ``*ForCausalLM``
  of transformers). The score is the logit of ``Yes`` at the last token; only that one row of the
  output embedding is applied, to the last token only (never the whole vocabulary at every position).
- ``"llm-layerwise"``: bge-reranker-v2-minicpm-layerwise (``LayerWiseMiniCPMForCausalLM``), a
  score per layer from ``start_layer`` on (``cutoff_layers``).
- ``"llm-lightweight"``: bge-reranker-v2.5-gemma2-lightweight (``CostWiseGemmaForCausalLM``), layer
  scores plus token compression of the passage (``compress_ratio``, ``compress_layers``).

The last two run the model code in :mod:`bge_integrations.core.llm_models` (no ``trust_remote_code``).
Rows are right-padded, so every row's positions start at 0 and its score does not depend on the
batch it runs in.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from bge_integrations.core.batching import BatchRunner
from bge_integrations.core.configs import RerankerConfig
from bge_integrations.core.hf_options import dtype_option, without_dtype
from bge_integrations.core.llm_pairs import LLMPairEncoder
from bge_integrations.core.loading import MODEL_LOAD_LOCK
from bge_integrations.core.pairs import PairBatch

LLMFamily = Literal["llm", "llm-layerwise", "llm-lightweight"]

GEMMA_PROMPT = (
    "Given a query A and a passage B, determine whether the passage contains an answer to the query "
    "by providing a prediction of either 'Yes' or 'No'."
)
LIGHTWEIGHT_PROMPT = "Predict whether passage B contains an answer to query A."
DEFAULT_PROMPTS: dict[LLMFamily, str] = {
    "llm": GEMMA_PROMPT,
    "llm-layerwise": GEMMA_PROMPT,
    "llm-lightweight": LIGHTWEIGHT_PROMPT,
}
"""FlagEmbedding's default prompt of each family."""

LIGHTWEIGHT_COMPRESS_LAYERS = (8,)
"""FlagEmbedding's default ``compress_layers`` of the lightweight reranker."""
LIGHTWEIGHT_COMPRESS_RATIO = 1
"""FlagEmbedding's default ``compress_ratio`` of the lightweight reranker (1: no compression)."""

_ARCHITECTURES: dict[str, LLMFamily] = {
    "LayerWiseMiniCPMForCausalLM": "llm-layerwise",
    "CostWiseGemmaForCausalLM": "llm-lightweight",
    # What this package's own classes write when a model is saved with save_pretrained.
    "LayerwiseMiniCPMForReranking": "llm-layerwise",
    "LightweightGemma2ForReranking": "llm-lightweight",
}


def llm_family(architectures: Sequence[str] | None) -> LLMFamily | None:
    """The LLM-reranker family of a checkpoint's ``architectures``, or None for a cross-encoder.

    Example:
        >>> llm_family(["GemmaForCausalLM"]), llm_family(["XLMRobertaForSequenceClassification"])
        ('llm', None)

    """
    for name in architectures or ():
        if name in _ARCHITECTURES:
            return _ARCHITECTURES[name]
        if name.endswith("ForCausalLM"):
            return "llm"
    return None


@dataclass(frozen=True)
class LayerOptions:
    """Which layers score and how the lightweight reranker compresses (None: FlagEmbedding's defaults)."""

    cutoff_layers: tuple[int, ...] | None = None
    compress_ratio: int | None = None
    compress_layers: tuple[int, ...] | None = None


@dataclass
class LoadedLLMReranker:
    """A loaded LLM reranker, its tokenizer, and pair encoders per window and prompt setting."""

    model: Any
    tokenizer: Any
    device: str
    family: LLMFamily
    name: str = "model"
    yes_id: int | None = None
    _encoders: dict[tuple[int, int, int, str], LLMPairEncoder] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    runner: BatchRunner = field(init=False)

    def __post_init__(self) -> None:
        self.runner = BatchRunner(self.name)

    def default_layers(self) -> tuple[int, ...]:
        """The layers scored when none are asked for: the last one (FlagEmbedding's default)."""
        if self.family == "llm":
            return (0,)
        return (int(self.model.config.num_hidden_layers),)

    def pair_encoder(
        self, max_length: int, max_query_length: int, window_overlap: int, prompt: str | None = None
    ) -> LLMPairEncoder:
        """The pair encoder for these settings (built once, then reused); prompt None: the family's."""
        prompt = DEFAULT_PROMPTS[self.family] if prompt is None else prompt
        key = (max_length, max_query_length, window_overlap, prompt)
        with self._lock:
            encoder = self._encoders.get(key)
            if encoder is None:
                encoder = LLMPairEncoder(
                    self.tokenizer,
                    max_length=max_length,
                    max_query_length=max_query_length,
                    window_overlap=window_overlap,
                    prompt=prompt,
                    always_bos=self.family != "llm",
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
        layers: LayerOptions | None = None,
    ) -> torch.Tensor:
        """Scores of every encoded pair, float32 on the CPU, shape (pairs, layers), in pair order.

        One column per requested cutoff layer, in the order asked (one column for ``"llm"``).
        Pairs run longest first in batches of at most ``batch_size`` pairs and ``max_tokens``
        padded tokens; a batch that runs out of memory is halved and retried.
        """
        layers = layers or LayerOptions()
        pad_id = self.tokenizer.pad_token_id or 0

        def forward(rows: list[int]) -> torch.Tensor:
            width = max(len(batch.input_ids[i]) for i in rows)
            ids = np.full((len(rows), width), pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                n = len(batch.input_ids[i])
                ids[r, :n] = batch.input_ids[i]
                mask[r, :n] = 1
            input_ids = _to_device(torch.from_numpy(ids), self.device)
            attention_mask = _to_device(torch.from_numpy(mask), self.device)
            with torch.inference_mode():
                if self.family == "llm":
                    scores = self._yes_logits(input_ids, attention_mask)[:, None]
                else:
                    by_layer = self._layer_scores(input_ids, attention_mask, rows, batch, layers)
                    scores = torch.stack([by_layer[layer] for layer in by_layer], dim=1)
            return scores.float().cpu()

        lengths = [len(ids) for ids in batch.input_ids]
        if not lengths:
            count = 1 if self.family == "llm" else len(layers.cutoff_layers or self.default_layers())
            return torch.empty((0, count), dtype=torch.float32)
        return self.runner.run(lengths, forward, max_items=batch_size, max_tokens=max_tokens, on_batch=progress)

    def _yes_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model.get_decoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        last = attention_mask.sum(dim=1) - 1
        states = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        head = self.model.get_output_embeddings()
        logits = states @ head.weight[self.yes_id]
        if getattr(head, "bias", None) is not None:
            logits = logits + head.bias[self.yes_id]
        softcap = getattr(self.model.config, "final_logit_softcapping", None)
        if softcap is not None:
            logits = torch.tanh(logits / softcap) * softcap
        result: torch.Tensor = logits
        return result

    def _layer_scores(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        rows: list[int],
        batch: PairBatch,
        layers: LayerOptions,
    ) -> dict[int, torch.Tensor]:
        if self.family == "llm-layerwise":
            scores: dict[int, torch.Tensor] = self.model.layer_scores(
                input_ids, attention_mask, cutoff_layers=layers.cutoff_layers
            )
            return scores
        device = input_ids.device
        query_lengths = torch.tensor([batch.query_lengths[i] for i in rows], device=device)
        prompt_lengths = torch.tensor([batch.prompt_lengths[i] for i in rows], device=device)
        scores = self.model.layer_scores(
            input_ids,
            attention_mask,
            query_lengths,
            prompt_lengths,
            cutoff_layers=layers.cutoff_layers,
            compress_layers=LIGHTWEIGHT_COMPRESS_LAYERS if layers.compress_layers is None else layers.compress_layers,
            compress_ratio=LIGHTWEIGHT_COMPRESS_RATIO if layers.compress_ratio is None else layers.compress_ratio,
        )
        return scores


def _to_device(tensor: torch.Tensor, device: str) -> torch.Tensor:
    if device.startswith("cpu"):
        return tensor
    if device.startswith("cuda"):
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def half_dtype(device: str) -> torch.dtype:
    """The half precision an LLM reranker runs in on device.

    bfloat16 where the GPU has it natively (compute capability 8 and up: A100, H100, RTX 30xx...),
    else float16 (T4, V100; MPS).
    """
    target = torch.device(device)
    if target.type == "cuda" and torch.cuda.get_device_properties(target).major >= 8:
        return torch.bfloat16
    return torch.float16


def load_llm_reranker(config: RerankerConfig, family: LLMFamily, hub_kwargs: dict[str, Any]) -> LoadedLLMReranker:
    """Load the LLM reranker that config describes (hub_kwargs: revision, token, cache, offline)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer  # slow import

    model_config = None
    if family != "llm":
        if config.config_kwargs:
            msg = f"config_kwargs are not supported for the {family} reranker {config.model_name!r}"
            raise ValueError(msg)
        with warnings.catch_warnings():
            # The checkpoint's null rope_scaling, read into rope_parameters: nothing to act on.
            warnings.filterwarnings("ignore", message=".*rope_scaling.*deprecated", category=FutureWarning)
            model_config = _model_class(family).config_class.from_pretrained(config.model_name, **hub_kwargs)
    # Given the config, the tokenizer need not look up a model type transformers does not know.
    tokenizer_kwargs = {"config": model_config} if model_config is not None else {}
    tokenizer = AutoTokenizer.from_pretrained(
        config.model_name, **hub_kwargs, **tokenizer_kwargs, **(config.tokenizer_kwargs or {})
    )
    tokenizer.padding_side = "right"
    model_kwargs = {**hub_kwargs, **without_dtype(config.model_kwargs)}
    _, other_dtype = dtype_option(config.model_kwargs, use_fp16=config.use_fp16)
    if config.use_fp16:
        # Half precision is bfloat16 where the device has it, unless model_kwargs ask for float16.
        asked_fp16 = dtype_option(config.model_kwargs, use_fp16=None)[0]
        model_kwargs["dtype"] = torch.float16 if asked_fp16 else half_dtype(config.device)
    elif other_dtype is not None:
        model_kwargs["dtype"] = other_dtype
    elif any((config.model_kwargs or {}).get(key) == "auto" for key in ("dtype", "torch_dtype")):
        model_kwargs["dtype"] = "auto"  # the checkpoint's own dtype
    else:
        model_kwargs["dtype"] = torch.float32
    yes_id = None
    model: Any
    if family == "llm":
        if config.config_kwargs:
            model_kwargs["config"] = AutoConfig.from_pretrained(config.model_name, **hub_kwargs, **config.config_kwargs)
        with MODEL_LOAD_LOCK:
            model = AutoModelForCausalLM.from_pretrained(config.model_name, **model_kwargs)
        yes = tokenizer("Yes", add_special_tokens=False)["input_ids"]
        if not yes:
            msg = f"the tokenizer of {config.model_name!r} gives no token for 'Yes', whose logit is the score"
            raise ValueError(msg)
        yes_id = int(yes[0])
    else:
        with MODEL_LOAD_LOCK:
            model = _model_class(family).from_pretrained(config.model_name, config=model_config, **model_kwargs)
    missing = [name for name, parameter in model.named_parameters() if parameter.device.type == "meta"]
    if missing:
        msg = (
            f"{config.model_name!r} loaded without weights for {missing[:3]}: transformers' weight tying was "
            "left off by a concurrent load outside bge_integrations; load models one at a time"
        )
        raise RuntimeError(msg)
    model.to(config.device)
    model.eval()
    return LoadedLLMReranker(
        model=model, tokenizer=tokenizer, device=config.device, family=family, name=config.model_name, yes_id=yes_id
    )


def _model_class(family: LLMFamily) -> Any:
    if family == "llm-layerwise":
        from bge_integrations.core.llm_models.minicpm_layerwise import LayerwiseMiniCPMForReranking

        return LayerwiseMiniCPMForReranking
    from bge_integrations.core.llm_models.gemma2_lightweight import LightweightGemma2ForReranking

    return LightweightGemma2ForReranking


__all__ = [
    "DEFAULT_PROMPTS",
    "LLMFamily",
    "LayerOptions",
    "LoadedLLMReranker",
    "half_dtype",
    "llm_family",
    "load_llm_reranker",
]
