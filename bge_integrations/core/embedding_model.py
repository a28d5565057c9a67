"""Loading a BGE embedding model as a sentence-transformers pipeline.

A checkpoint with its own sentence-transformers config (``modules.json``) keeps its pooling
(all-MiniLM-L6-v2 is mean-pooled, BGE's hub repos are CLS-pooled). A plain transformers
checkpoint, such as a BGE fine-tuned with ``transformers`` and saved with ``save_pretrained``,
gets what BGE needs: CLS pooling and L2 normalisation. sentence-transformers' own fallback
for such a folder is mean pooling, which would silently give wrong vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bge_integrations.core.checkpoints import has_sentence_transformers_config
from bge_integrations.core.lengths import TokenCounter
from bge_integrations.core.notices import warn_user

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from bge_integrations.core.embedder import EmbedderConfig


@dataclass
class LoadedEmbedder:
    """A loaded pipeline plus what is needed to count truncated inputs."""

    model: SentenceTransformer
    counter: TokenCounter
    max_length: int


def load_embedder(config: EmbedderConfig) -> LoadedEmbedder:
    """Load the sentence-transformers pipeline that config describes."""
    # Imported here: sentence-transformers takes seconds to import, and importing this
    # package (or an adapter) should not.
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    hub_kwargs: dict[str, Any] = {"revision": config.revision, "trust_remote_code": config.trust_remote_code}
    model_kwargs: dict[str, Any] = dict(hub_kwargs)
    if config.use_fp16:
        model_kwargs["dtype"] = torch.float16
    if has_sentence_transformers_config(config.model_name, config.revision):
        model = SentenceTransformer(
            config.model_name,
            device=config.device,
            revision=config.revision,
            trust_remote_code=config.trust_remote_code,
            model_kwargs=model_kwargs if config.use_fp16 else None,
        )
        if config.pooling is not None:
            _set_pooling(model, config.pooling)
    else:
        if config.preset is None:
            msg = (
                f"{config.model_name!r} has no sentence-transformers config and is not a known BGE "
                "model; using BGE's conventions: CLS pooling, L2 normalisation, and "
                f"query_instruction={config.query_instruction!r}. Pass pooling= and "
                "query_instruction= to choose otherwise."
            )
            warn_user(msg, UserWarning)
        transformer = Transformer(
            config.model_name,
            max_seq_length=config.max_length,
            model_kwargs=model_kwargs,
            processor_kwargs=hub_kwargs,
            config_kwargs=hub_kwargs,
        )
        pooling = Pooling(transformer.get_embedding_dimension(), config.pooling or "cls")
        model = SentenceTransformer(modules=[transformer, pooling, Normalize()], device=config.device)
    if config.normalize is not None:
        _set_normalize(model, config.normalize)
    if config.max_length is not None:
        model.max_seq_length = config.max_length
    model.eval()
    max_length = int(model.max_seq_length or config.max_length or 512)
    return LoadedEmbedder(model=model, counter=TokenCounter(model.tokenizer), max_length=max_length)


def _set_pooling(model: SentenceTransformer, mode: str) -> None:
    from sentence_transformers.sentence_transformer.modules import Pooling

    for index, module in enumerate(model):
        if isinstance(module, Pooling):
            if module.get_config_dict().get("pooling_mode") != mode:
                model[index] = Pooling(module.get_embedding_dimension(), mode)
            return
    model.insert(1, Pooling(model.get_embedding_dimension(), mode))


def _set_normalize(model: SentenceTransformer, normalize: bool) -> None:
    from sentence_transformers.sentence_transformer.modules import Normalize

    positions = [i for i, module in enumerate(model) if isinstance(module, Normalize)]
    if normalize and not positions:
        model.append(Normalize())
    elif not normalize:
        for index in reversed(positions):
            del model[index]


__all__ = ["LoadedEmbedder", "load_embedder"]
