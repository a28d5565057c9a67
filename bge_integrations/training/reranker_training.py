"""Fine-tuning a BGE reranker (cross-encoder) the way FlagEmbedding does.

FlagEmbedding's recipe (``FlagEmbedding/finetune/reranker/encoder_only/base``): each query is read
with its positive and ``train_group_size - 1`` hard negatives; the raw logits of the group go
through a softmax and the loss is the cross-entropy with the positive (index 0) as the target.
"""

from __future__ import annotations

import gc
import importlib
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

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
    from sentence_transformers.cross_encoder import CrossEncoder

    from bge_integrations.evaluation.reranking import RerankingSet
    from bge_integrations.training.examples import TrainingExample


def grouped_softmax_loss(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each row's softmax with target 0: ``logits`` is ``(queries, 1 + negatives)``.

    FlagEmbedding's ``AbsRerankerModel.forward``: ``grouped_logits = ranker_logits.view(batch, -1)``,
    ``target = zeros(batch)``, ``CrossEntropyLoss(reduction="mean")(grouped_logits, target)``.

    Example:
        >>> round(float(grouped_softmax_loss(torch.tensor([[0.0, 0.0]]))), 4)  # log 2
        0.6931

    """
    target = torch.zeros(logits.size(0), dtype=torch.long, device=logits.device)
    return nn.functional.cross_entropy(logits, target)


class GroupedSoftmaxLoss(nn.Module):
    """A sentence-transformers cross-encoder loss: FlagEmbedding's grouped softmax.

    Takes the columns ``(query, positive, negative_1, ..., negative_n)``; scores each query with
    its own positive and negatives (no in-batch negatives, as FlagEmbedding), raw logits (no
    activation), and returns :func:`grouped_softmax_loss` of the ``(batch, 1 + n)`` logits.

    Example:
        >>> from sentence_transformers.cross_encoder import CrossEncoder
        >>> loss = GroupedSoftmaxLoss(CrossEncoder("BAAI/bge-reranker-base"))  # doctest: +SKIP

    """

    def __init__(self, model: CrossEncoder) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, inputs: list[list[str]], labels: torch.Tensor | None = None, prompt: str | None = None, task: Any = None
    ) -> torch.Tensor:
        """The loss of one batch of columns (labels are not used)."""
        from sentence_transformers.util import batch_to_device

        queries = inputs[0]
        group = len(inputs) - 1
        # Per query, its passages in order (positive first), as FlagEmbedding lays out a batch.
        pairs = [[query, inputs[1 + j][i]] for i, query in enumerate(queries) for j in range(group)]
        features = self.model.preprocess(pairs, prompt=prompt, task=task)
        features = batch_to_device(features, self.model.device)
        logits = self.model(features)["scores"].view(len(queries), group)
        return grouped_softmax_loss(logits)

    def get_config_dict(self) -> dict[str, Any]:
        """What the model card lists for this loss."""
        return {"target": 0, "activation": None}


def finetune_reranker(
    data: str | os.PathLike[str] | Sequence[TrainingExample],
    *,
    model: str,
    output: str | os.PathLike[str],
    settings: TrainingSettings | None = None,
    resume: bool = False,
    evaluation: RerankingSet | None = None,
    device: str | None = None,
) -> FinetuneResult:
    """Fine-tune a BGE reranker on query/positive/negative examples; save it in output.

    Every example needs negatives (``settings.negatives`` per query are drawn, repeated when
    fewer): the loss compares the positive with them only. An example's ``prompt`` is not used.

    Args:
        data: A JSONL file in FlagEmbedding's format, or the examples.
        model: The cross-encoder to start from (hub id or local folder, one output label).
        output: Folder of the fine-tuned model; checkpoints go in ``output/checkpoints``.
        settings: How to train; ``temperature`` is not used. None: the defaults.
        resume: Continue from the latest checkpoint in ``output/checkpoints``.
        evaluation: A reranking set scored (MAP, MRR@10, raw logits) with the base model
            before and the fine-tuned one after training.
        device: ``"cpu"`` to train on the CPU; None: CUDA when available.

    Returns:
        A :class:`FinetuneResult`; the output folder loads in :class:`~bge_integrations.BGEReranker`.

    Raises:
        ValueError: If ``settings.negatives`` is 0 or an example has no negatives (naming it).
        ImportError: Without ``datasets`` and ``accelerate`` (``pip install "bge-integrations[train]"``).

    Example:
        >>> from bge_integrations.training.examples import TrainingExample
        >>> examples = [TrainingExample("what is BGE?", ["BGE embeds text."], ["Pandas eat bamboo."])]
        >>> finetune_reranker(examples, model="BAAI/bge-reranker-base", output="my-reranker",
        ...                   settings=TrainingSettings(max_steps=10))  # doctest: +SKIP

    """
    settings = TrainingSettings() if settings is None else settings
    if not isinstance(settings, TrainingSettings):
        msg = f"settings must be a TrainingSettings, got {type(settings).__name__}: {settings!r}"
        raise TypeError(msg)
    if not isinstance(model, str) or not model.strip():
        msg = f"model must be a hub id or a local folder, got {model!r}"
        raise ValueError(msg)
    if settings.negatives < 1:
        msg = f"a reranker trains against negatives: settings.negatives must be at least 1, got {settings.negatives!r}"
        raise ValueError(msg)
    start = time.perf_counter()
    folder = Path(output).expanduser()
    examples = load_examples(data)
    checkpoint = checkpoint_to_resume(folder, resume)  # before any model loads: a refusal costs nothing
    positives, groups = sample_groups(examples, settings.negatives, settings.seed, require_negatives=True)
    require_training_dependencies()
    datasets = importlib.import_module("datasets")  # ships no type information
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments

    from bge_integrations.core.devices import resolve_device

    resolved = resolve_device(device)
    before = _evaluate(model, evaluation, resolved, settings.progress) if evaluation is not None else None
    cross_encoder = CrossEncoder(model, num_labels=1, max_length=settings.max_length, device=resolved)
    columns = group_columns([example.query for example in examples], positives, groups)
    args = CrossEncoderTrainingArguments(**trainer_arguments(settings, folder, device=resolved))
    trainer = CrossEncoderTrainer(
        model=cross_encoder,
        args=args,
        train_dataset=datasets.Dataset.from_dict(columns),
        loss=GroupedSoftmaxLoss(cross_encoder),
    )
    steps, train_loss = train_and_save(trainer, checkpoint, folder)
    del trainer, cross_encoder  # the weights and optimiser state, before the evaluation loads the output
    gc.collect()
    after = _evaluate(str(folder), evaluation, resolved, settings.progress) if evaluation is not None else None
    return finish_run(
        folder,
        base_model=model,
        kind="reranker",
        settings=settings,
        examples=len(examples),
        steps=steps,
        train_loss=train_loss,
        before=before,
        after=after,
        evaluation_name=evaluation.name if evaluation is not None else None,
        started=start,
    )


def _evaluate(model: str, data: RerankingSet, device: str, progress: bool) -> dict[str, float]:
    from bge_integrations.core.reranker import BGEReranker
    from bge_integrations.evaluation.reranking import evaluate_reranking

    reranker = BGEReranker(model, normalize=False, device=device, use_fp16=False)
    report = evaluate_released(reranker, lambda: evaluate_reranking(data, reranker=reranker, progress=progress))
    return {"map": report.map, f"mrr@{report.k}": report.mrr}


__all__ = ["GroupedSoftmaxLoss", "finetune_reranker", "grouped_softmax_loss"]
