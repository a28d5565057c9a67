"""How a fine-tuning run trains: the settings both trainers take, and what a run returns.

The names follow FlagEmbedding's fine-tuning arguments where they have one (``temperature``,
``negatives`` = ``train_group_size - 1``, ``warmup_ratio``); the defaults are FlagEmbedding's
recipe for BGE (learning rate 1e-5, temperature 0.02, seven hard negatives per query).
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import re
import sys
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

if TYPE_CHECKING:
    from bge_integrations.training.examples import TrainingExample

TRAIN_EXTRA = 'pip install "bge-integrations[train]"'
"""What installs the training dependencies (``datasets``, ``accelerate``)."""


def _positive_int(value: Any, name: str, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        extra = " or None" if allow_none else ""
        msg = f"{name} must be a positive integer{extra}, got {value!r}"
        raise ValueError(msg)


def _positive_float(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        msg = f"{name} must be a positive number, got {value!r}"
        raise ValueError(msg)


@dataclass(frozen=True)
class TrainingSettings:
    """How ``finetune_embedder`` and ``finetune_reranker`` train (FlagEmbedding's recipe by default).

    Args:
        epochs: Passes over the examples (may be fractional); ignored when ``max_steps`` is set.
        learning_rate: Peak learning rate of the linear schedule.
        batch_size: Queries per step (each with one positive and ``negatives`` negatives).
        temperature: Embedder only: the InfoNCE temperature (similarities are divided by it).
        max_steps: Stop after this many optimiser steps; None: ``epochs`` decides.
        negatives: Hard negatives per query (FlagEmbedding's ``train_group_size - 1``), sampled
            with ``seed`` from each example's ``neg``; fewer than that are repeated.
        warmup_ratio: Share of the steps over which the learning rate warms up.
        seed: Seeds the negative sampling, the batch order and the trainer.
        save_steps: A checkpoint every this many steps (in ``output/checkpoints``).
        save_total_limit: Checkpoints kept at most; None: all.
        max_length: Tokens per text (pair, for the reranker); None: the model's own limit.
        progress: Show the trainer's progress bar.
        fp16: Mixed precision; None: on when training on CUDA.

    Raises:
        ValueError: Naming the setting and its value, for a value out of range.

    Example:
        >>> settings = TrainingSettings(batch_size=32, max_steps=1000)
        >>> settings.negatives, settings.temperature
        (7, 0.02)
        >>> TrainingSettings(temperature=0)
        Traceback (most recent call last):
        ...
        ValueError: temperature must be a positive number, got 0

    """

    epochs: float = 1.0
    learning_rate: float = 1e-5
    batch_size: int = 16
    temperature: float = 0.02
    max_steps: int | None = None
    negatives: int = 7
    warmup_ratio: float = 0.1
    seed: int = 0
    save_steps: int = 500
    save_total_limit: int | None = 2
    max_length: int | None = None
    progress: bool = True
    fp16: bool | None = None

    def __post_init__(self) -> None:
        _positive_float(self.epochs, "epochs")
        _positive_float(self.learning_rate, "learning_rate")
        _positive_int(self.batch_size, "batch_size")
        _positive_float(self.temperature, "temperature")
        _positive_int(self.max_steps, "max_steps", allow_none=True)
        if isinstance(self.negatives, bool) or not isinstance(self.negatives, int) or self.negatives < 0:
            msg = f"negatives must be a non-negative integer, got {self.negatives!r}"
            raise ValueError(msg)
        ratio = self.warmup_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio < 1:
            msg = f"warmup_ratio must be a number in [0, 1), got {ratio!r}"
            raise ValueError(msg)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            msg = f"seed must be a non-negative integer, got {self.seed!r}"
            raise ValueError(msg)
        _positive_int(self.save_steps, "save_steps")
        _positive_int(self.save_total_limit, "save_total_limit", allow_none=True)
        _positive_int(self.max_length, "max_length", allow_none=True)
        if not isinstance(self.progress, bool):
            msg = f"progress must be True or False, got {self.progress!r}"
            raise ValueError(msg)
        if self.fp16 is not None and not isinstance(self.fp16, bool):
            msg = f"fp16 must be True, False or None, got {self.fp16!r}"
            raise ValueError(msg)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dictionary (for the model card and logs)."""
        return asdict(self)


@dataclass(frozen=True)
class FinetuneResult:
    """What a fine-tuning run did and where it left the model.

    Args:
        output: The folder of the fine-tuned model (loadable by BGEEmbedder / BGEReranker).
        base_model: The model fine-tuning started from, as given.
        kind: ``"embedder"`` or ``"reranker"``.
        steps: Optimiser steps taken in all (a resumed run counts the steps before it too).
        train_loss: The trainer's mean training loss over the steps this call ran, or None when none ran.
        before: Evaluation of the base model (metric name to value), or None without evaluation.
        after: The same metrics for the fine-tuned model, or None.
        seconds: Wall time of the run, evaluation included.

    Example:
        >>> result = FinetuneResult(Path("my-model"), "BAAI/bge-small-en-v1.5", "embedder", 100, 0.4,
        ...                         {"ndcg@10": 0.71}, {"ndcg@10": 0.75}, 60.0)
        >>> round(result.gain()["ndcg@10"], 2)
        0.04

    """

    output: Path
    base_model: str
    kind: Literal["embedder", "reranker"]
    steps: int
    train_loss: float | None
    before: dict[str, float] | None
    after: dict[str, float] | None
    seconds: float

    def gain(self) -> dict[str, float]:
        """``after - before`` per metric both have; empty without evaluation."""
        if self.before is None or self.after is None:
            return {}
        return {name: self.after[name] - value for name, value in self.before.items() if name in self.after}


def require_training_dependencies() -> None:
    """Raise an ImportError naming the extra when ``datasets`` or ``accelerate`` is missing."""
    missing = []
    for module in ("datasets", "accelerate"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        msg = f"fine-tuning needs {' and '.join(missing)}: {TRAIN_EXTRA}"
        raise ImportError(msg)


def load_examples(data: str | os.PathLike[str] | Sequence[TrainingExample]) -> list[TrainingExample]:
    """The examples of data: a JSONL file (read with ``read_examples``) or the examples themselves."""
    from bge_integrations.training.examples import TrainingExample, read_examples

    if isinstance(data, (str, os.PathLike)):
        examples = read_examples(data)
    elif isinstance(data, Sequence):
        examples = list(cast("Sequence[TrainingExample]", data))
        for index, example in enumerate(examples):
            if not isinstance(example, TrainingExample):
                msg = f"data[{index}] must be a TrainingExample, got {type(example).__name__}: {example!r}"
                raise TypeError(msg)
    else:
        msg = f"data must be a JSONL path or a sequence of TrainingExample, got {type(data).__name__}: {data!r}"
        raise TypeError(msg)
    if not examples:
        msg = f"data holds no training example: {data!r}"
        raise ValueError(msg)
    return examples


def sample_groups(
    examples: Sequence[TrainingExample], negatives: int, seed: int, *, require_negatives: bool
) -> tuple[list[str], list[list[str]]]:
    """One positive and ``negatives`` negatives per example, drawn as FlagEmbedding's datasets draw them.

    FlagEmbedding (``AbsEmbedderTrainDataset.__getitem__``): the positive is a random choice
    among ``pos``; the negatives a ``random.sample`` of ``neg``, or of ``neg`` repeated until
    long enough when it holds fewer. Here one seeded draw per example per run (FlagEmbedding
    draws again each epoch, unseeded).

    Returns:
        The positives, and per example its negatives (an empty list each when no example has
        negatives and ``require_negatives`` is False: in-batch negatives only).

    Raises:
        ValueError: Naming the example, when some examples have negatives and this one has
            none, or when ``require_negatives`` and it has none.

    """
    rng = random.Random(seed)  # noqa: S311 - sampling, not secrets
    if negatives and not require_negatives and not any(example.neg for example in examples):
        negatives = 0
    positives: list[str] = []
    groups: list[list[str]] = []
    for index, example in enumerate(examples):
        positives.append(example.pos[rng.randrange(len(example.pos))])
        if not negatives:
            groups.append([])
            continue
        if not example.neg:
            msg = (
                f"example {index} (query {example.query!r}) has no negatives, but training uses "
                f"negatives={negatives} per query; mine some (mine_hard_negatives) or drop the example"
            )
            raise ValueError(msg)
        pool = list(example.neg)
        if len(pool) < negatives:
            pool = pool * math.ceil(negatives / len(pool))
        groups.append(rng.sample(pool, negatives))
    return positives, groups


def last_checkpoint(folder: Path) -> Path | None:
    """The ``checkpoint-N`` folder with the highest N in folder, or None."""
    if not folder.is_dir():
        return None
    found = [
        (int(m.group(1)), path) for path in folder.iterdir() if (m := re.fullmatch(r"checkpoint-(\d+)", path.name))
    ]
    found = [(step, path) for step, path in found if path.is_dir()]
    return max(found)[1] if found else None


def group_columns(queries: list[str], positives: list[str], groups: list[list[str]]) -> dict[str, list[str]]:
    """The trainers' dataset columns: ``query``, ``positive``, then ``negative_1`` .. ``negative_n``."""
    columns = {"query": queries, "positive": positives}
    for index in range(len(groups[0]) if groups else 0):
        columns[f"negative_{index + 1}"] = [group[index] for group in groups]
    return columns


def train_and_save(
    trainer: Any, checkpoint: Path | None, folder: Path, *, prompts: dict[str, str] | None = None
) -> tuple[int, float | None]:
    """Run trainer (from checkpoint when given), save its model in folder, and return (steps, mean loss).

    The trainer prints its loss logs: they go to standard error, standard output is the
    caller's (the CLI prints its tables there). ``prompts`` (embedders) become the saved model's
    prompts. The model card is the caller's. After saving, models this process loaded from
    folder are forgotten: their weights are stale now.
    """
    with contextlib.redirect_stdout(sys.stderr):
        outcome = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    model = trainer.model
    if prompts is not None:
        model.prompts = prompts
        model.default_prompt_name = None
    model.eval()
    model.save(str(folder), create_model_card=False)
    forget_folder(folder)
    steps = int(trainer.state.global_step)
    return steps, float(outcome.training_loss) if steps else None


def checkpoint_to_resume(folder: Path, resume: bool) -> Path | None:
    """The checkpoint a run into folder continues from: the latest with resume, else none.

    Raises:
        ValueError: Without resume, when ``folder/checkpoints`` already holds checkpoints: they
            belong to an earlier run, and a later ``resume=True`` would take the highest-numbered
            one, possibly that run's. The message names the folder and both ways out.

    """
    checkpoints = folder / "checkpoints"
    latest = last_checkpoint(checkpoints)
    if resume:
        if latest is None:
            msg = f"resume=True but {str(checkpoints)!r} holds no checkpoint; training from the start"
            warnings.warn(msg, UserWarning, stacklevel=3)
        return latest
    if latest is not None:
        msg = (
            f"{str(checkpoints)!r} holds checkpoints of an earlier run (latest: {latest.name}); "
            "resume=True (--resume) continues it, or remove the folder (or choose another output) to start afresh"
        )
        raise ValueError(msg)
    return None


def forget_folder(folder: Path) -> int:
    """Drop the models this process loaded from folder; return how many.

    Training saves new weights there, and the shared registry keys a model by its path, not its
    files: without this, a :class:`~bge_integrations.BGEEmbedder` of the folder (the after-training
    evaluation included) would go on computing with the weights of an earlier run.
    """
    from bge_integrations.core.loading import REGISTRY

    target = folder.expanduser().resolve()
    stale = [key for key in REGISTRY.loaded_keys() if _is_folder(key.model, target)]
    return sum(REGISTRY.release(key) for key in stale)


def _is_folder(model: str, target: Path) -> bool:
    try:
        return Path(model).expanduser().resolve() == target
    except (OSError, RuntimeError, ValueError):
        return False


def evaluate_released(handle: Any, evaluate: Any) -> Any:
    """evaluate(), then free handle's model unless it was loaded before (training needs the memory)."""
    from bge_integrations.core.loading import REGISTRY

    loaded = REGISTRY.peek(handle.load_key) is not None
    try:
        return evaluate()
    finally:
        if not loaded:
            handle.release()


def trainer_arguments(settings: TrainingSettings, output: Path, *, device: str | None) -> dict[str, Any]:
    """The ``TrainingArguments`` keywords that settings stand for (checkpoints in ``output/checkpoints``)."""
    import torch

    on_cpu = device is not None and device.startswith("cpu")
    cuda = torch.cuda.is_available() and not on_cpu
    fp16 = cuda if settings.fp16 is None else settings.fp16
    return {
        "output_dir": str(output / "checkpoints"),
        "num_train_epochs": float(settings.epochs),
        "max_steps": settings.max_steps if settings.max_steps is not None else -1,
        "per_device_train_batch_size": settings.batch_size,
        "learning_rate": float(settings.learning_rate),
        "warmup_steps": float(settings.warmup_ratio),  # a float in [0, 1) is a ratio of all steps
        "seed": settings.seed,
        "data_seed": settings.seed,
        "save_strategy": "steps",
        "save_steps": settings.save_steps,
        "save_total_limit": settings.save_total_limit,
        "fp16": fp16,
        "use_cpu": on_cpu or not torch.cuda.is_available(),
        "logging_steps": max(1, min(settings.save_steps, 50)),
        "report_to": "none",
        "disable_tqdm": not settings.progress,
        "dataloader_num_workers": 0,
    }


__all__ = ["TRAIN_EXTRA", "FinetuneResult", "TrainingSettings", "require_training_dependencies"]
