"""Model code for the BGE LLM rerankers whose architectures transformers does not ship.

Inference-only ports of FlagEmbedding's own classes (MIT licence), so that the checkpoints load
without ``trust_remote_code``.
"""

from bge_integrations.core.llm_models.gemma2_lightweight import LightweightGemma2Config, LightweightGemma2ForReranking
from bge_integrations.core.llm_models.minicpm_layerwise import LayerwiseMiniCPMConfig, LayerwiseMiniCPMForReranking

__all__ = [
    "LayerwiseMiniCPMConfig",
    "LayerwiseMiniCPMForReranking",
    "LightweightGemma2Config",
    "LightweightGemma2ForReranking",
]
