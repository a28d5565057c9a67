"""Fine-tuning a BGE embedder the way FlagEmbedding does, on sentence-transformers' trainer.

FlagEmbedding's recipe (``FlagEmbedding/finetune/embedder/encoder_only/base``): the model as BGE
uses it (CLS pooling, L2 normalisation), the query instruction on queries only, and a
contrastive InfoNCE loss at temperature 0.02 whose candidates for each query are its positive,
its hard negatives, and every other query's positive and hard negatives in the batch.
"""

from __future__ import annotations

import gc
import importlib
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bge_integrations.training.model_card import finish_run
from bge_integrations.training.settings import (
    FinetuneResult,
    TrainingSettings,
    checkpoint_to_resume,
    evaluate_released,
    group_columns,
    load_examples,
    require_training_dependencies,
    sample_groups,
    train_and_save,
    trainer_arguments,
)

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer

    from bge_integrations.evaluation.beir import RetrievalDataset
    from bge_integrations.training.examples import TrainingExample


def contrastive_loss_module(model: SentenceTransformer, temperature: float) -> torch.nn.Module:
    """FlagEmbedding's embedder loss as a sentence-transformers loss: in-batch + hard negatives.

    ``MultipleNegativesRankingLoss(scale=1 / temperature)`` over columns ``(query, positive,
    negative_1, ..., negative_n)``: for each query, cross-entropy of its positive against every
    positive and negative of the batch, similarities divided by the temperature. FlagEmbedding
    (``AbsEmbedderModel._compute_in_batch_neg_loss``) computes the same number: it scores each
    query against all ``batch * group`` passages (``q @ p.T / temperature``) and takes the
    cross-entropy with target ``i * group``. The passages are laid out per query there and per
    column here, which permutes the candidates of the softmax and leaves the loss unchanged.

    One difference: the similarity here is the cosine; FlagEmbedding uses the dot product of
    its embeddings, which BGE normalises (``normalize_embeddings=True``), so the two agree for
    BGE models and differ only for a model trained without normalisation.
    """
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    return MultipleNegativesRankingLoss(model, scale=1.0 / temperature)


def finetune_embedder(
    data: str | os.PathLike[str] | Sequence[TrainingExample],
    *,
    model: str,
    output: str | os.PathLike[str],
    settings: TrainingSettings | None = None,
    query_instruction: str | None = None,
    resume: bool = False,
    evaluation: RetrievalDataset | None = None,
    device: str | None = None,
) -> FinetuneResult:
    """Fine-tune a BGE embedder on query/positive/negative examples; save it in output.

    Args:
        data: A JSONL file in FlagEmbedding's format, or the examples.
        model: The model to start from: a hub id or a local folder, loaded as
            :class:`~bge_integrations.BGEEmbedder` loads it (a plain transformers BGE checkpoint
            gets CLS pooling and normalisation).
        output: Folder of the fine-tuned model; checkpoints go in ``output/checkpoints``.
        settings: How to train (:class:`TrainingSettings`); None: the defaults.
        query_instruction: Put before every query (never before passages). None: the model's
            own (its sentence-transformers ``"query"`` prompt, else its BGE preset's); ``""``: none.
            An example's own ``prompt`` replaces it for that example.
        resume: Continue from the latest checkpoint in ``output/checkpoints`` (from the start,
            with a warning, when there is none).
        evaluation: A retrieval collection scored (nDCG@10, recall@100, MRR@10) with the base
            model before and the fine-tuned one after training.
        device: ``"cpu"`` to train on the CPU; None: CUDA when available.

    Returns:
        A :class:`FinetuneResult`. The output folder is a sentence-transformers model whose
        ``"query"`` prompt is the instruction, with a model card naming its base model.

    Raises:
        ValueError: If an example lacks negatives that others have (naming it), or as
            :class:`~bge_integrations.BGEEmbedder` for the model settings.
        ImportError: Without ``datasets`` and ``accelerate`` (``pip install "bge-integrations[train]"``).

    Example:
        >>> from bge_integrations.training.examples import TrainingExample
        >>> examples = [TrainingExample("what is BGE?", ["BGE embeds text."], ["Pandas eat bamboo."])]
        >>> result = finetune_embedder(examples, model="BAAI/bge-small-en-v1.5", output="my-model",
        ...                            settings=TrainingSettings(max_steps=10))  # doctest: +SKIP
        >>> BGEEmbedder("my-model").config.preset  # doctest: +SKIP
        'BAAI/bge-small-en-v1.5'

    """
    settings = TrainingSettings() if settings is None else settings
    if not isinstance(settings, TrainingSettings):
        msg = f"settings must be a TrainingSettings, got {type(settings).__name__}: {settings!r}"
        raise TypeError(msg)
    if not isinstance(model, str) or not model.strip():
        msg = f"model must be a hub id or a local folder, got {model!r}"
        raise ValueError(msg)
    start = time.perf_counter()
    folder = Path(output).expanduser()
    examples = load_examples(data)
    checkpoint = checkpoint_to_resume(folder, resume)  # before any model loads: a refusal costs nothing
    positives, groups = sample_groups(examples, settings.negatives, settings.seed, require_negatives=False)
    require_training_dependencies()
    datasets = importlib.import_module("datasets")  # ships no type information
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers

    from bge_integrations.core.embedder import BGEEmbedder
    from bge_integrations.core.embedding_model import load_embedder

    base = BGEEmbedder(
        model, query_instruction=query_instruction, max_length=settings.max_length, device=device, use_fp16=False
    )
    config = base.config
    instruction = config.query_instruction
    before = None
    if evaluation is not None:
        before = evaluate_released(base, lambda: _evaluate(base, evaluation, settings.progress))

    st_model = load_embedder(config).model
    own_prompts = any(example.prompt is not None for example in examples)
    if own_prompts:  # per-example instructions: written into the query texts
        queries = [(ex.prompt if ex.prompt is not None else instruction) + ex.query for ex in examples]
    else:
        queries = [example.query for example in examples]
    dataset = datasets.Dataset.from_dict(group_columns(queries, positives, groups))

    prompts = {"query": instruction} if instruction and not own_prompts else None
    args = SentenceTransformerTrainingArguments(
        **trainer_arguments(settings, folder, device=config.device),
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        prompts=prompts,
    )
    loss = contrastive_loss_module(st_model, settings.temperature)
    trainer = SentenceTransformerTrainer(model=st_model, args=args, train_dataset=dataset, loss=loss)

    # The prompt is saved even when empty: without a "query" prompt, a loader falls back to the base preset's.
    steps, train_loss = train_and_save(trainer, checkpoint, folder, prompts={"query": instruction})
    del trainer, loss, st_model  # the weights and optimiser state, before the evaluation loads the output
    gc.collect()
    after = None
    if evaluation is not None:
        tuned = BGEEmbedder(str(folder), device=device, use_fp16=False)
        after = evaluate_released(tuned, lambda: _evaluate(tuned, evaluation, settings.progress))
    return finish_run(
        folder,
        base_model=model,
        kind="embedder",
        settings=settings,
        query_instruction=instruction,
        examples=len(examples),
        steps=steps,
        train_loss=train_loss,
        before=before,
        after=after,
        evaluation_name=evaluation.name if evaluation is not None else None,
        started=start,
    )


def _evaluate(embedder: Any, dataset: RetrievalDataset, progress: bool) -> dict[str, float]:
    from bge_integrations.evaluation.retrieval import evaluate_retrieval

    report = evaluate_retrieval(dataset, embedder.embed_queries, embedder.embed_documents, progress=progress)
    return {"ndcg@10": report.ndcg_at_10, "recall@100": report.recall_at_100, "mrr@10": report.mrr_at_10}


__all__ = ["contrastive_loss_module", "finetune_embedder"]
