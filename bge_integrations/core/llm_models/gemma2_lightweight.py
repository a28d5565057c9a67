"""Lightweight Gemma2 reranker (BAAI/bge-reranker-v2.5-gemma2-lightweight), inference only, for transformers 5.

Adapted from FlagEmbedding (https://github.com/FlagOpen/FlagEmbedding, MIT licence),
FlagEmbedding/inference/reranker/decoder_only/models/gemma_model.py and gemma_config.py, scored as
FlagEmbedding/inference/reranker/decoder_only/lightweight.py does. The decoder layers follow
transformers 4.46's Gemma2 (Apache 2.0), the version FlagEmbedding's model code runs under.

The checkpoint's config.json and weights load unchanged (same parameter names as FlagEmbedding's
``CostWiseGemmaForCausalLM``), without ``trust_remote_code``. Left out: the KV cache, generation,
training, flash-attention and the non-layerwise (vocabulary head) variant, which FlagEmbedding's reranker
cannot score.

What FlagEmbedding computes, kept here exactly:

- Embeddings times ``sqrt(hidden_size)`` (rounded to the model dtype), Gemma2 decoder layers (RMSNorm
  scaling by ``1 + weight``, four norms per layer, ``query_pre_attn_scalar ** -0.5`` attention scaling,
  a sliding window on the ``sliding_attention`` layers: the even ones).
- Attention: FlagEmbedding's model class does not switch transformers' default SDPA off (transformers'
  own Gemma2 does), so it runs ``Gemma2SdpaAttention``, which skips ``attn_logit_softcapping``. The
  default here (``attn_implementation="sdpa"``) does the same; ``attn_implementation="eager"`` applies the
  softcapping, as FlagEmbedding does when loaded with ``attn_implementation="eager"``.
- The score for cutoff layer ``k`` is ``softcap(lm_head[i].linear_head(norm(h_k)))`` at each row's last
  real token, ``h_k`` the hidden state before decoder layer ``k`` (after all of them for
  ``k = num_hidden_layers``), ``softcap(x) = c * tanh(x / c)`` with ``c = final_logit_softcapping``.
  The head index ``i`` is the rank of ``k`` among the requested layers (sorted, duplicates merged),
  NOT ``k - start_layer``: FlagEmbedding pairs ``lm_head[i]`` with its ``i``-th collected hidden state.
  So ``cutoff_layers=[28]`` on the hub model is scored by ``lm_head[0]``.
- Token compression (``token_compress``): before decoder layer ``j`` in ``compress_layers`` (``j != 0``,
  ``j`` below the deepest cutoff layer), each row's passage tokens (between ``query_length`` and the
  last ``prompt_length`` real tokens) are averaged in groups of ``compress_ratio`` (the last group over
  its real tokens only); positions restart at 0 and the mask is rebuilt for the shorter rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from torch.nn.functional import scaled_dot_product_attention, softmax
from torch.nn.utils.rnn import pad_sequence
from transformers import PreTrainedModel
from transformers.activations import ACT2FN
from transformers.models.gemma2.configuration_gemma2 import Gemma2Config

__all__ = ["COMPRESS_RATIOS", "LightweightGemma2Config", "LightweightGemma2ForReranking", "token_compress"]

COMPRESS_RATIOS = (1, 2, 4, 8)
"""The compression ratios FlagEmbedding's lightweight reranker supports (1: no compression)."""

DEFAULT_COMPRESS_LAYERS = (8,)
"""FlagEmbedding's ``LightweightLLMReranker`` default for ``compress_layers`` (not in the config)."""


@strict
class LightweightGemma2Config(Gemma2Config):  # type: ignore[no-untyped-call]
    """Configuration of the lightweight Gemma2 reranker; reads the hub checkpoint's config.json as is.

    transformers 5's ``Gemma2Config`` plus FlagEmbedding's ``CostWiseGemmaConfig`` fields (``model_type``
    "cost_wise_gemma"): ``start_layer``, ``layer_sep`` (the scored layers are
    ``range(start_layer, num_hidden_layers + 1, layer_sep)``) and ``layer_wise``. ``tie_word_embeddings``
    defaults to False: the one-output heads are never tied to the embeddings. Extra hub keys
    (``hidden_act``, ``sliding_window_size``, ``cache_implementation``) are kept and unused.

    Example:
        >>> config = LightweightGemma2Config(hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
        ...                                  head_dim=16, num_hidden_layers=6, start_layer=2, layer_sep=1,
        ...                                  layer_wise=True, vocab_size=400)
        >>> list(range(config.start_layer, config.num_hidden_layers + 1, config.layer_sep))
        [2, 3, 4, 5, 6]

    """

    model_type = "cost_wise_gemma"

    tie_word_embeddings: bool = False
    start_layer: int = 28
    layer_sep: int = 28
    layer_wise: bool = False


class Gemma2RMSNorm(nn.Module):
    """Gemma's RMSNorm: computed in float32, scaled by ``1 + weight``, cast back."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return (h * (1.0 + self.weight.float())).type_as(x)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Gemma2Attention(nn.Module):
    """Grouped-query self-attention with rotary positions (no cache)."""

    def __init__(self, config: LightweightGemma2Config) -> None:
        super().__init__()
        self.head_dim = config.head_dim
        self.groups = config.num_attention_heads // config.num_key_value_heads
        self.scaling = config.query_pre_attn_scalar**-0.5
        self.softcap = config.attn_logit_softcapping
        bias = config.attention_bias
        hidden, heads, kv_heads = config.hidden_size, config.num_attention_heads, config.num_key_value_heads
        self.q_proj = nn.Linear(hidden, heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(hidden, kv_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(hidden, kv_heads * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(heads * self.head_dim, hidden, bias=bias)

    def forward(
        self, hidden: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor, eager: bool
    ) -> torch.Tensor:
        batch, seq, _ = hidden.shape
        shape = (batch, seq, -1, self.head_dim)
        q = self.q_proj(hidden).view(shape).transpose(1, 2)
        k = self.k_proj(hidden).view(shape).transpose(1, 2)
        v = self.v_proj(hidden).view(shape).transpose(1, 2)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        k = k.repeat_interleave(self.groups, dim=1)
        v = v.repeat_interleave(self.groups, dim=1)
        if eager:
            weights = torch.matmul(q, k.transpose(2, 3)) * self.scaling
            if self.softcap is not None:
                weights = torch.tanh(weights / self.softcap) * self.softcap
            weights = softmax(weights + mask, dim=-1, dtype=torch.float32).to(q.dtype)
            out = torch.matmul(weights, v)
        else:  # transformers 4.46's Gemma2SdpaAttention: no logit softcapping
            out = scaled_dot_product_attention(
                q.contiguous(), k.contiguous(), v.contiguous(), attn_mask=mask, scale=self.scaling
            )
        projected: torch.Tensor = self.o_proj(out.transpose(1, 2).reshape(batch, seq, -1))
        return projected


class Gemma2MLP(nn.Module):
    """Gated feed-forward block."""

    def __init__(self, config: LightweightGemma2Config) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)
        self.act_fn = ACT2FN[config.hidden_activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))
        return out


class Gemma2DecoderLayer(nn.Module):
    """Gemma2 block: norms before and after both the attention and the MLP."""

    def __init__(self, config: LightweightGemma2Config, layer_idx: int) -> None:
        super().__init__()
        self.is_sliding = config.layer_types is not None and config.layer_types[layer_idx] == "sliding_attention"
        eps = config.rms_norm_eps
        self.self_attn = Gemma2Attention(config)
        self.mlp = Gemma2MLP(config)
        self.input_layernorm = Gemma2RMSNorm(config.hidden_size, eps)
        self.post_attention_layernorm = Gemma2RMSNorm(config.hidden_size, eps)
        self.pre_feedforward_layernorm = Gemma2RMSNorm(config.hidden_size, eps)
        self.post_feedforward_layernorm = Gemma2RMSNorm(config.hidden_size, eps)

    def forward(
        self, hidden: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor, eager: bool
    ) -> torch.Tensor:
        attn = self.self_attn(self.input_layernorm(hidden), cos, sin, mask, eager)
        hidden = hidden + self.post_attention_layernorm(attn)
        out: torch.Tensor = hidden + self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(hidden)))
        return out


class LightweightGemma2Model(nn.Module):
    """The decoder stack (``model.*`` in the checkpoint)."""

    def __init__(self, config: LightweightGemma2Config) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.layers = nn.ModuleList(Gemma2DecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = Gemma2RMSNorm(config.hidden_size, config.rms_norm_eps)


class CostWiseHead(nn.Module):
    """One score head (``lm_head.<i>.linear_head`` in the checkpoint)."""

    def __init__(self, input_size: int) -> None:
        super().__init__()
        self.linear_head = nn.Linear(input_size, 1, bias=False)


def token_compress(
    ratio: int, hidden: torch.Tensor, mask: torch.Tensor, query_lengths: Sequence[int], prompt_lengths: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Average each row's passage tokens in groups of ``ratio``; FlagEmbedding's ``token_compress``.

    Row ``i`` is ``[query (query_lengths[i]) | passage | prompt (prompt_lengths[i]) | padding]``; it
    becomes ``[query | ceil(len(passage) / ratio) averages | prompt | zeros]``. Returns the new
    right-padded hidden states and attention mask.

    Example:
        >>> h = torch.arange(6.0).reshape(1, 6, 1)
        >>> new, mask = token_compress(2, h, torch.ones(1, 6), [1], [2])
        >>> new.flatten().tolist(), mask.tolist()
        ([0.0, 1.5, 3.0, 4.0, 5.0], [[1.0, 1.0, 1.0, 1.0, 1.0]])

    """
    rows = []
    for row, length, q_len, p_len in zip(hidden, mask.sum(dim=1).tolist(), query_lengths, prompt_lengths, strict=True):
        n = int(length) - q_len - p_len
        groups = -(-n // ratio)
        padded = row.new_zeros(groups * ratio, row.shape[-1])
        padded[:n] = row[q_len : q_len + n]
        weights = row.new_zeros(groups * ratio)
        weights[:n] = 1
        weights = weights.view(groups, ratio)
        weights = (weights / weights.sum(dim=-1, keepdim=True)).view(-1, 1)
        pooled = (padded * weights).view(groups, ratio, -1).sum(dim=1)
        rows.append(torch.cat((row[:q_len], pooled, row[q_len + n : q_len + n + p_len])))
    lengths = torch.tensor([len(r) for r in rows], device=mask.device)
    new_mask = torch.arange(int(lengths.max()), device=mask.device) < lengths[:, None]
    return pad_sequence(rows, batch_first=True), new_mask.to(mask.dtype)


class LightweightGemma2ForReranking(PreTrainedModel):  # type: ignore[no-untyped-call]
    """FlagEmbedding's lightweight Gemma2 reranker: layerwise scores with optional token compression.

    Loads ``BAAI/bge-reranker-v2.5-gemma2-lightweight`` (or a fine-tune of it) with ``from_pretrained``,
    without ``trust_remote_code``. Inputs are right-padded ``[bos] query sep passage sep prompt`` rows.

    Example:
        >>> import torch
        >>> model = LightweightGemma2ForReranking.from_pretrained(
        ...     "BAAI/bge-reranker-v2.5-gemma2-lightweight", dtype=torch.bfloat16)  # doctest: +SKIP
        >>> model.score_layers  # doctest: +SKIP
        range(8, 43)
        >>> scores = model.layer_scores(ids, mask, query_lengths, prompt_lengths, cutoff_layers=[28],
        ...                             compress_layers=[24, 40], compress_ratio=2)  # doctest: +SKIP
        >>> scores[28].shape, scores[28].dtype  # doctest: +SKIP
        (torch.Size([2]), torch.float32)

    """

    config_class = LightweightGemma2Config
    config: LightweightGemma2Config
    base_model_prefix = "model"
    main_input_name = "input_ids"
    _no_split_modules = ["Gemma2DecoderLayer"]  # noqa: RUF012
    _supports_sdpa = True

    def __init__(self, config: LightweightGemma2Config) -> None:
        super().__init__(config)
        if not config.layer_wise:
            msg = "layer_wise=False (a vocabulary head) is not supported: FlagEmbedding's reranker cannot score it"
            raise ValueError(msg)
        if config.layer_sep < 1 or not 0 <= config.start_layer <= config.num_hidden_layers:
            msg = (
                f"need layer_sep >= 1 and start_layer in [0, {config.num_hidden_layers}], "
                f"got layer_sep={config.layer_sep}, start_layer={config.start_layer}"
            )
            raise ValueError(msg)
        self.model = LightweightGemma2Model(config)
        self.lm_head = nn.ModuleList(CostWiseHead(config.hidden_size) for _ in self.score_layers)
        self.post_init()  # type: ignore[no-untyped-call]

    @property
    def score_layers(self) -> range:
        """The cutoff layers a score can come from: ``range(start_layer, num_hidden_layers + 1, layer_sep)``."""
        return range(self.config.start_layer, self.config.num_hidden_layers + 1, self.config.layer_sep)

    @property
    def default_cutoff_layers(self) -> tuple[int, ...]:
        """FlagEmbedding's default (``cutoff_layers=None``): the last layer only."""
        return (self.config.num_hidden_layers,)

    def _check_layers(self, cutoff_layers: Sequence[int] | None) -> list[int]:
        layers = list(self.default_cutoff_layers if cutoff_layers is None else cutoff_layers)
        valid = self.score_layers
        if not layers:
            msg = f"cutoff_layers must name at least one layer of {valid}, got {cutoff_layers!r}"
            raise ValueError(msg)
        for layer in layers:
            if isinstance(layer, bool) or not isinstance(layer, int) or layer not in valid:
                msg = f"cutoff layer {layer!r} is outside the valid layers {valid}"
                raise ValueError(msg)
        return layers

    def _masks(self, attention_mask: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Additive (batch, 1, seq, seq) masks: causal + padding, and that plus the sliding window."""
        pos = torch.arange(attention_mask.shape[1], device=attention_mask.device)
        allowed = (pos[None, :] <= pos[:, None]) & attention_mask.bool()[:, None, None, :]
        lowest = torch.finfo(dtype).min
        full = torch.zeros(allowed.shape, dtype=dtype, device=pos.device).masked_fill(~allowed, lowest)
        if self.config.sliding_window is None:
            return full, full
        window = pos[None, :] > pos[:, None] - self.config.sliding_window
        return full, full.masked_fill(~window, lowest)

    def _rotary(self, seq_len: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        head_dim = self.config.head_dim
        rope: dict[str, Any] = dict(self.config.rope_parameters or {})
        base = float(rope.get("rope_theta", 10000.0))
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.int64, device=device).float() / head_dim))
        freqs = torch.arange(seq_len, device=device).float()[:, None] * inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(dtype), emb.sin().to(dtype)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        query_lengths: torch.Tensor,
        prompt_lengths: torch.Tensor,
        cutoff_layers: Sequence[int] | None = None,
        compress_layers: Sequence[int] | None = None,
        compress_ratio: int | None = None,
    ) -> dict[int, torch.Tensor]:
        """Same as :meth:`layer_scores` (module hooks see these arguments)."""
        layers = self._check_layers(cutoff_layers)
        ratio = 1 if compress_ratio is None else compress_ratio
        if isinstance(ratio, bool) or ratio not in COMPRESS_RATIOS:
            msg = f"compress_ratio must be one of {COMPRESS_RATIOS}, got {compress_ratio!r}"
            raise ValueError(msg)
        if input_ids.dim() != 2 or attention_mask.shape != input_ids.shape:
            msg = (
                "input_ids and attention_mask must both be (batch, seq), got "
                f"{tuple(input_ids.shape)} and {tuple(attention_mask.shape)}"
            )
            raise ValueError(msg)
        batch = input_ids.shape[0]
        if query_lengths.shape != (batch,) or prompt_lengths.shape != (batch,):
            msg = (
                f"query_lengths and prompt_lengths must be ({batch},), "
                f"got {tuple(query_lengths.shape)} and {tuple(prompt_lengths.shape)}"
            )
            raise ValueError(msg)
        compress_at = set(DEFAULT_COMPRESS_LAYERS if compress_layers is None else compress_layers) - {0}
        if ratio == 1:
            compress_at = set()
        q_lens, p_lens = query_lengths.tolist(), prompt_lengths.tolist()
        eager = self.config._attn_implementation == "eager"
        collected = sorted(set(layers))  # FlagEmbedding's head i scores its i-th collected layer
        deepest = collected[-1]

        with torch.no_grad():
            hidden = self.model.embed_tokens(input_ids)
            hidden = hidden * torch.tensor(self.config.hidden_size**0.5, dtype=hidden.dtype)
            mask = attention_mask
            full, sliding = self._masks(mask, hidden.dtype)
            cos, sin = self._rotary(hidden.shape[1], hidden.device, hidden.dtype)
            last: dict[int, torch.Tensor] = {}
            for depth in range(deepest + 1):
                if depth in collected:  # right padding: each row's last real token
                    last[depth] = hidden[torch.arange(batch, device=hidden.device), mask.sum(dim=1) - 1]
                if depth == deepest:
                    break
                if depth in compress_at:
                    hidden, mask = token_compress(ratio, hidden, mask, q_lens, p_lens)
                    full, sliding = self._masks(mask, hidden.dtype)
                    cos, sin = self._rotary(hidden.shape[1], hidden.device, hidden.dtype)
                layer = self.model.layers[depth]
                hidden = layer(hidden, cos, sin, sliding if layer.is_sliding else full, eager)

            cap = self.config.final_logit_softcapping
            scores: dict[int, torch.Tensor] = {}
            for index, depth in enumerate(collected):
                logits = self.lm_head[index].linear_head(self.model.norm(last[depth]))
                if cap is not None:
                    logits = torch.tanh(logits / cap) * cap
                scores[depth] = logits.float().reshape(batch)
            return {layer: scores[layer] for layer in layers}

    def layer_scores(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        query_lengths: torch.Tensor,
        prompt_lengths: torch.Tensor,
        cutoff_layers: Sequence[int] | None = None,
        compress_layers: Sequence[int] | None = None,
        compress_ratio: int | None = None,
    ) -> dict[int, torch.Tensor]:
        """Score each right-padded row at each requested cutoff layer, as FlagEmbedding does (before sigmoid).

        Args:
            input_ids: (batch, seq) ``[bos] query sep passage sep prompt`` ids, right-padded.
            attention_mask: (batch, seq), 1 for real tokens.
            query_lengths: (batch,) ``len([bos] + query + sep)`` per row.
            prompt_lengths: (batch,) ``len(sep + prompt)`` per row.
            cutoff_layers: Layers of :attr:`score_layers` to score at; None means the last layer.
            compress_layers: Layers before which passages are compressed (0 and layers at or past the
                deepest cutoff layer do nothing, as in FlagEmbedding); None means FlagEmbedding's ``[8]``.
            compress_ratio: One of 1, 2, 4, 8; None or 1 means no compression.

        Returns:
            ``{layer: float32 (batch,) scores}`` in the order of ``cutoff_layers`` (duplicates merged).
            The decoder stops at the deepest requested layer.

        Raises:
            ValueError: A cutoff layer outside :attr:`score_layers`, an unsupported ``compress_ratio``, or
                mis-shaped inputs.

        """
        scores: dict[int, torch.Tensor] = self(
            input_ids,
            attention_mask,
            query_lengths,
            prompt_lengths,
            cutoff_layers=cutoff_layers,
            compress_layers=compress_layers,
            compress_ratio=compress_ratio,
        )
        return scores
