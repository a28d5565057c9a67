"""Drop-ins for FlagEmbedding's ``FlagModel``, ``BGEM3FlagModel``, ``FlagReranker``, LLM rerankers and auto classes.

FlagEmbedding 1.4 does not import with transformers 5. Code written for it, such as the usage
snippets of the BGE model cards, runs on this package's engine by changing the import line only:

Example:
    >>> from bge_integrations.compat import FlagModel, FlagReranker  # was: from FlagEmbedding import ...
    >>> model = FlagModel("BAAI/bge-base-en-v1.5", use_fp16=True)  # doctest: +SKIP
    >>> reranker = FlagReranker("BAAI/bge-reranker-base", use_fp16=True)  # doctest: +SKIP
    >>> from bge_integrations.compat import FlagAutoModel  # picks the class from the model's name
    >>> model = FlagAutoModel.from_finetuned("BAAI/bge-small-en-v1.5")  # doctest: +SKIP
    >>> from bge_integrations.compat import BGEM3FlagModel  # bge-m3: dense, lexical weights, ColBERT
    >>> m3 = BGEM3FlagModel("BAAI/bge-m3", use_fp16=True)  # doctest: +SKIP
    >>> from bge_integrations.compat import LayerWiseFlagLLMReranker  # and FlagLLMReranker, LightWeightFlagLLMReranker
    >>> llm = LayerWiseFlagLLMReranker("BAAI/bge-reranker-v2-minicpm-layerwise", use_fp16=True)  # doctest: +SKIP

Same signatures, defaults and results; the differences are listed in docs/compat.md.

"""

from __future__ import annotations

from bge_integrations.compat._mapping import EmbedderModelClass, RerankerModelClass
from bge_integrations.compat.auto import FlagAutoModel, FlagAutoReranker
from bge_integrations.compat.flag_llm_reranker import (
    BaseLLMReranker,
    FlagLLMReranker,
    LayerWiseFlagLLMReranker,
    LayerWiseLLMReranker,
    LightWeightFlagLLMReranker,
    LightweightLLMReranker,
)
from bge_integrations.compat.flag_model import FlagModel
from bge_integrations.compat.flag_reranker import FlagReranker
from bge_integrations.compat.m3 import BGEM3FlagModel

__all__ = [
    "BGEM3FlagModel",
    "BaseLLMReranker",
    "EmbedderModelClass",
    "FlagAutoModel",
    "FlagAutoReranker",
    "FlagLLMReranker",
    "FlagModel",
    "FlagReranker",
    "LayerWiseFlagLLMReranker",
    "LayerWiseLLMReranker",
    "LightWeightFlagLLMReranker",
    "LightweightLLMReranker",
    "RerankerModelClass",
]
