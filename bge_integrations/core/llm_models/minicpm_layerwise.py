"""MiniCPM layerwise reranker (BAAI/bge-reranker-v2-minicpm-layerwise), inference only, for transformers 5.

Adapted from FlagEmbedding (https://github.com/FlagOpen/FlagEmbedding, MIT licence),
FlagEmbedding/inference/reranker/decoder_only/models/modeling_minicpm_reranker.py and
configuration_minicpm_reranker.py, scored as FlagEmbedding/inference/reranker/decoder_only/layerwise.py does.

The checkpoint's config.json and weights load unchanged (same parameter names as FlagEmbedding's
``LayerWiseMiniCPMForCausalLM``), without ``trust_remote_code``. What is left out: the KV cache,
generation, training, flash-attention and tensor-parallel code. ``pretraining_tp`` only split FlagEmbedding's
matrix products into slices (the same product); it is ignored here.

FlagEmbedding's score for cutoff layer ``k`` (``start_layer <= k <= num_hidden_layers``) is
``lm_head[k - start_layer](norm(h_k))`` at each row's last real token, where ``h_k`` is the hidden state
after ``k`` decoder layers and ``norm`` the model's final RMSNorm (``h_0`` is the scaled embedding). The
hub checkpoint uses ``head_type="simple"`` (a bias-free ``Linear(hidden_size, 1)`` per layer,
``head_multi=True``), which FlagEmbedding applies without the ``hidden / (hidden_size / dim_model_base)``
scaling that its "raw" and "complex" vocabulary heads use. Those two give vocabulary-sized logits that
FlagEmbedding's reranker flattens to ``(batch, -1)`` before picking one column per row, which is not a
relevance score, so they are refused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from torch.nn.functional import scaled_dot_product_attention
from transformers import PreTrainedConfig, PreTrainedModel
from transformers.activations import ACT2FN

__all__ = ["LayerwiseMiniCPMConfig", "LayerwiseMiniCPMForReranking"]


@strict
class LayerwiseMiniCPMConfig(PreTrainedConfig):  # type: ignore[no-untyped-call]
    """Configuration of the MiniCPM layerwise reranker; reads the hub checkpoint's config.json as is.

    Field names and defaults are those of FlagEmbedding's ``LayerWiseMiniCPMConfig`` (``model_type``
    "minicpm"), except ``tie_word_embeddings``: False here, since the one-output heads are never tied to
    the embeddings. ``rope_scaling``/``rope_theta`` become transformers 5's ``rope_parameters``.

    Example:
        >>> config = LayerwiseMiniCPMConfig(hidden_size=64, num_attention_heads=4, num_hidden_layers=6,
        ...                                 start_layer=2, vocab_size=400)
        >>> list(range(config.start_layer, config.num_hidden_layers + 1))
        [2, 3, 4, 5, 6]

    """

    model_type = "minicpm"

    vocab_size: int = 32000
    hidden_size: int = 4096
    intermediate_size: int = 11008
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int | None = None
    hidden_act: str = "silu"
    max_position_embeddings: int = 2048
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-6
    use_cache: bool = False
    pad_token_id: int | None = None
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    pretraining_tp: int = 1
    tie_word_embeddings: bool = False
    rope_parameters: dict | None = None  # type: ignore[type-arg]
    attention_bias: bool = False
    attention_dropout: float = 0.0
    scale_emb: float = 1
    dim_model_base: float = 1
    scale_depth: float = 1
    start_layer: int = 8
    head_multi: bool = True
    head_type: str = "simple"

    def __post_init__(self, **kwargs: object) -> None:
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        super().__post_init__(**kwargs)  # type: ignore[no-untyped-call]


def _rms_norm(hidden: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    # FlagEmbedding's rms_layernorm, cast for cast (variance in float32, back to the input dtype).
    variance = hidden.to(torch.float32).pow(2).mean(dim=-1, keepdim=True)
    return (hidden * torch.rsqrt(variance + eps)).to(hidden.dtype) * weight


class MiniCPMRMSNorm(nn.Module):
    """RMSNorm with a float32 variance (transformers' default init sets its weight to ones)."""

    def __init__(self, hidden_size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return _rms_norm(hidden, self.weight, self.eps)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class MiniCPMAttention(nn.Module):
    """Causal self-attention with rotary embeddings and grouped key/value heads (SDPA)."""

    def __init__(self, config: LayerwiseMiniCPMConfig) -> None:
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // self.num_heads
        self.num_kv_heads = config.num_key_value_heads or self.num_heads
        if self.head_dim * self.num_heads != config.hidden_size:
            msg = f"hidden_size must be divisible by num_attention_heads, got {config.hidden_size} and {self.num_heads}"
            raise ValueError(msg)
        bias = config.attention_bias
        self.q_proj = nn.Linear(config.hidden_size, self.num_heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(config.hidden_size, self.num_kv_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(config.hidden_size, self.num_kv_heads * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, config.hidden_size, bias=bias)

    def forward(self, hidden: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, seq, _ = hidden.shape
        q = self.q_proj(hidden).view(batch, seq, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(hidden).view(batch, seq, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(hidden).view(batch, seq, self.num_kv_heads, self.head_dim).transpose(1, 2)
        # FlagEmbedding's apply_rotary_pos_emb: cos/sin in the model dtype, the rotation in float32.
        cos, sin = cos.to(hidden.dtype), sin.to(hidden.dtype)
        q32, k32 = q.float(), k.float()
        q = ((q32 * cos) + (_rotate_half(q32) * sin)).to(hidden.dtype)
        k = ((k32 * cos) + (_rotate_half(k32) * sin)).to(hidden.dtype)
        if self.num_kv_heads != self.num_heads:
            groups = self.num_heads // self.num_kv_heads
            k = k.repeat_interleave(groups, dim=1)
            v = v.repeat_interleave(groups, dim=1)
        out = scaled_dot_product_attention(q.contiguous(), k.contiguous(), v.contiguous(), attn_mask=mask)
        out = out.transpose(1, 2).reshape(batch, seq, self.num_heads * self.head_dim)
        result: torch.Tensor = self.o_proj(out)
        return result


class MiniCPMMLP(nn.Module):
    """Gated MLP: ``down(act(gate(x)) * up(x))``."""

    def __init__(self, config: LayerwiseMiniCPMConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))
        return result


class MiniCPMDecoderLayer(nn.Module):
    """Pre-norm decoder layer whose residual branches are scaled by ``scale_depth / sqrt(num_layers)``."""

    def __init__(self, config: LayerwiseMiniCPMConfig) -> None:
        super().__init__()
        self.self_attn = MiniCPMAttention(config)
        self.mlp = MiniCPMMLP(config)
        self.input_layernorm = MiniCPMRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = MiniCPMRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.residual_scale = config.scale_depth / math.sqrt(config.num_hidden_layers)

    def forward(self, hidden: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        attn: torch.Tensor = self.self_attn(self.input_layernorm(hidden), cos, sin, mask)
        hidden = hidden + attn * self.residual_scale
        mlp: torch.Tensor = self.mlp(self.post_attention_layernorm(hidden))
        return hidden + mlp * self.residual_scale


class LayerwiseMiniCPMModel(nn.Module):
    """The decoder stack (``model.*`` in the checkpoint): embeddings, layers, final norm."""

    def __init__(self, config: LayerwiseMiniCPMConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.layers = nn.ModuleList(MiniCPMDecoderLayer(config) for _ in range(config.num_hidden_layers))
        self.norm = MiniCPMRMSNorm(config.hidden_size, config.rms_norm_eps)


class LayerWiseHead(nn.Module):
    """One score head (``lm_head[.i].linear_head`` in the checkpoint)."""

    def __init__(self, input_size: int, output_size: int) -> None:
        super().__init__()
        self.linear_head = nn.Linear(input_size, output_size, bias=False)


class LayerwiseMiniCPMForReranking(PreTrainedModel):  # type: ignore[no-untyped-call]
    """FlagEmbedding's layerwise MiniCPM reranker: one relevance score per chosen decoder layer.

    Loads ``BAAI/bge-reranker-v2-minicpm-layerwise`` (or a fine-tune of it) with ``from_pretrained``,
    without ``trust_remote_code``. Inputs are right-padded; each row is scored at its last real token.

    Example:
        >>> import torch
        >>> model = LayerwiseMiniCPMForReranking.from_pretrained(
        ...     "BAAI/bge-reranker-v2-minicpm-layerwise", dtype=torch.bfloat16)  # doctest: +SKIP
        >>> model.score_layers  # doctest: +SKIP
        range(8, 41)
        >>> ids = torch.tensor([[1, 5, 6, 7], [1, 5, 6, 0]])
        >>> mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
        >>> scores = model.layer_scores(ids, mask, cutoff_layers=[28, 40])  # doctest: +SKIP
        >>> scores[28].shape, scores[28].dtype  # doctest: +SKIP
        (torch.Size([2]), torch.float32)

    """

    config_class = LayerwiseMiniCPMConfig
    config: LayerwiseMiniCPMConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    _no_split_modules = ["MiniCPMDecoderLayer"]  # noqa: RUF012 (an instance attribute in PreTrainedModel)
    _supports_sdpa = True

    def __init__(self, config: LayerwiseMiniCPMConfig) -> None:
        super().__init__(config)
        if config.head_type != "simple":
            msg = (
                f"head_type {config.head_type!r} is not supported, only 'simple': FlagEmbedding's layerwise "
                "reranker flattens the vocabulary logits of 'raw' and 'complex' heads into no usable score"
            )
            raise ValueError(msg)
        rope = config.rope_parameters or {}
        if rope.get("rope_type", "default") not in ("default", "linear"):
            msg = f"rope_scaling type {rope.get('rope_type')!r} is not supported, only None or 'linear'"
            raise ValueError(msg)
        if not 0 <= config.start_layer <= config.num_hidden_layers:
            msg = f"start_layer must be in [0, {config.num_hidden_layers}], got {config.start_layer}"
            raise ValueError(msg)
        self.model = LayerwiseMiniCPMModel(config)
        self.lm_head: nn.Module
        if config.head_multi:
            count = config.num_hidden_layers + 1 - config.start_layer
            self.lm_head = nn.ModuleList(LayerWiseHead(config.hidden_size, 1) for _ in range(count))
        else:
            self.lm_head = LayerWiseHead(config.hidden_size, 1)
        self.post_init()  # type: ignore[no-untyped-call]

    @property
    def score_layers(self) -> range:
        """The cutoff layers a score can come from: ``start_layer`` to ``num_hidden_layers``, both included."""
        return range(self.config.start_layer, self.config.num_hidden_layers + 1)

    @property
    def default_cutoff_layers(self) -> tuple[int, ...]:
        """FlagEmbedding's default (``cutoff_layers=None``): the last layer only."""
        return (self.config.num_hidden_layers,)

    def _rotary(self, seq_len: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        rope = self.config.rope_parameters or {}
        head_dim = self.config.hidden_size // self.config.num_attention_heads
        base = float(rope.get("rope_theta", 10000.0))
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, device=device).float() / head_dim))
        t = torch.arange(seq_len, device=device, dtype=torch.float32)
        if rope.get("rope_type", "default") == "linear":
            t = t / float(rope["factor"])
        emb = torch.cat((torch.outer(t, inv_freq),) * 2, dim=-1)
        return emb.cos(), emb.sin()

    def _head(self, layer: int) -> nn.Linear:
        head = self.lm_head
        if isinstance(head, nn.ModuleList):
            head = head[layer - self.config.start_layer]
        if not isinstance(head, LayerWiseHead):
            msg = f"lm_head must hold LayerWiseHead modules, got {type(head).__name__}"
            raise TypeError(msg)
        return head.linear_head

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        cutoff_layers: Sequence[int] | None = None,
    ) -> dict[int, torch.Tensor]:
        """Same as :meth:`layer_scores` (module hooks see these arguments)."""
        given = list(self.default_cutoff_layers if cutoff_layers is None else cutoff_layers)
        if not given:
            msg = f"cutoff_layers must name at least one layer in {self.score_layers}, got {cutoff_layers!r}"
            raise ValueError(msg)
        for layer in given:
            if isinstance(layer, bool) or not isinstance(layer, Integral) or layer not in self.score_layers:
                valid = f"[{self.score_layers.start}, {self.score_layers.stop - 1}]"
                msg = f"cutoff layer {layer!r} is outside the valid range {valid}"
                raise ValueError(msg)
        layers = [int(layer) for layer in given]
        if input_ids.dim() != 2 or attention_mask.shape != input_ids.shape:
            msg = (
                "input_ids and attention_mask must both be (batch, seq), got "
                f"{tuple(input_ids.shape)} and {tuple(attention_mask.shape)}"
            )
            raise ValueError(msg)

        batch, seq = input_ids.shape
        device = input_ids.device
        rows = torch.arange(batch, device=device)
        last = attention_mask.sum(dim=1) - 1  # right padding: each row's last real token
        keys = attention_mask.bool()[:, None, None, :]
        causal = torch.ones(seq, seq, dtype=torch.bool, device=device).tril()
        mask = keys & causal  # (batch, 1, seq, seq)
        cos, sin = self._rotary(seq, device)

        wanted = set(layers)
        picked: dict[int, torch.Tensor] = {}
        with torch.no_grad():
            hidden = self.model.embed_tokens(input_ids) * self.config.scale_emb
            for depth in range(max(layers) + 1):
                if depth in wanted:
                    picked[depth] = self.model.norm(hidden[rows, last])
                if depth < max(layers):
                    hidden = self.model.layers[depth](hidden, cos, sin, mask)
            return {layer: self._head(layer)(picked[layer]).float().reshape(batch) for layer in layers}

    def layer_scores(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        cutoff_layers: Sequence[int] | None = None,
    ) -> dict[int, torch.Tensor]:
        """Score each right-padded row at each requested cutoff layer, as FlagEmbedding does (before sigmoid).

        Runs the decoder only up to the deepest requested layer, and applies each head to the last real
        token of each row only.

        Args:
            input_ids: (batch, seq) token ids, right-padded.
            attention_mask: (batch, seq), 1 for real tokens, 0 for padding after them.
            cutoff_layers: Layers to score at, each in :attr:`score_layers`. None means FlagEmbedding's
                default, the last layer.

        Returns:
            For each requested layer, in the order given (repeats collapse), a float32 tensor of shape
            (batch,).

        Raises:
            ValueError: A layer outside :attr:`score_layers`, an empty list, or mismatched shapes.

        """
        result: dict[int, torch.Tensor] = self(input_ids, attention_mask, cutoff_layers)
        return result
