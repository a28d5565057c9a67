"""Fine-tuning BGE models the way BGE was trained: hard-negative mining, embedder and reranker training.

* :mod:`~bge_integrations.training.examples`: FlagEmbedding's training format
  (``{"query", "pos", "neg"}`` per line), read, written, or derived from a BEIR collection;
* :mod:`~bge_integrations.training.mining`: hard negatives from the embedder's own ranking
  (FlagEmbedding's ``hn_mine.py``), optionally vetted by a reranker;
* :mod:`~bge_integrations.training.embedder_training` and
  :mod:`~bge_integrations.training.reranker_training`: fine-tuning on sentence-transformers'
  trainers with BGE's losses, resumable, evaluated before and after, saved with a model card
  that records the base model.

Training needs ``pip install "bge-integrations[train]"`` (datasets, accelerate); reading and
writing examples does not.

Example:
    >>> from bge_integrations.training import TrainingExample, TrainingSettings
    >>> TrainingExample("what is BGE?", ["BGE embeds text."]).to_dict()
    {'query': 'what is BGE?', 'pos': ['BGE embeds text.'], 'neg': []}
    >>> TrainingSettings().temperature
    0.02

"""

from bge_integrations.training.embedder_training import finetune_embedder
from bge_integrations.training.examples import TrainingExample, examples_from_beir, read_examples, write_examples
from bge_integrations.training.mining import mine_hard_negatives
from bge_integrations.training.model_card import write_model_card
from bge_integrations.training.reranker_training import finetune_reranker
from bge_integrations.training.settings import FinetuneResult, TrainingSettings

__all__ = [
    "FinetuneResult",
    "TrainingExample",
    "TrainingSettings",
    "examples_from_beir",
    "finetune_embedder",
    "finetune_reranker",
    "mine_hard_negatives",
    "read_examples",
    "write_examples",
    "write_model_card",
]
