"""Model code for the BGE LLM rerankers whose architectures transformers does not ship.

Inference-only ports of FlagEmbedding's own classes (MIT licence), so that the checkpoints load
without ``trust_remote_code``.
"""
