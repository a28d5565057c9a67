"""The model card (README.md) of a fine-tuned model.

Its YAML front matter records ``base_model``, which :func:`~bge_integrations.core.checkpoints.read_local_checkpoint`
reads back, so the fine-tuned folder is recognised as its base BGE model (query instruction,
pooling) whatever the folder is called.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from bge_integrations.training.settings import FinetuneResult, TrainingSettings


def _yaml_string(value: str) -> str:
    # A JSON string is a valid YAML double-quoted scalar.
    return json.dumps(value, ensure_ascii=False)


def _number(value: float) -> str:
    return f"{value:.4f}"


def write_model_card(
    output: str | Path,
    *,
    base_model: str,
    kind: Literal["embedder", "reranker"],
    settings: TrainingSettings,
    query_instruction: str | None = None,
    examples: int | None = None,
    steps: int | None = None,
    train_loss: float | None = None,
    before: Mapping[str, float] | None = None,
    after: Mapping[str, float] | None = None,
    evaluation_name: str | None = None,
) -> Path:
    """Write ``output/README.md``: front matter (``base_model``, tags), the settings, the evaluation.

    Args:
        output: The fine-tuned model's folder (created if missing).
        base_model: What fine-tuning started from (hub id or path), as given.
        kind: ``"embedder"`` or ``"reranker"``.
        settings: The training settings, listed in a table.
        query_instruction: Embedder only: the instruction put before queries ("" for none).
        examples: How many training examples were read.
        steps: Optimiser steps taken.
        train_loss: Mean training loss.
        before: Metrics of the base model; with ``after``, a before/after table.
        after: Metrics of the fine-tuned model.
        evaluation_name: Name of the evaluation data, shown above the table.

    Returns:
        The path of the README written.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> card = write_model_card(folder, base_model="BAAI/bge-small-en-v1.5", kind="embedder",
        ...                         settings=TrainingSettings(), before={"ndcg@10": 0.7}, after={"ndcg@10": 0.75})
        >>> card.read_text().splitlines()[1]
        'base_model: "BAAI/bge-small-en-v1.5"'

    """
    folder = Path(output)
    folder.mkdir(parents=True, exist_ok=True)
    embedder = kind == "embedder"
    library = "sentence-transformers" if embedder else "transformers"
    pipeline = "sentence-similarity" if embedder else "text-ranking"
    tags = ["bge", "bge-integrations", "fine-tuned", "sentence-transformers" if embedder else "cross-encoder"]
    lines = [
        "---",
        f"base_model: {_yaml_string(base_model)}",
        f"library_name: {library}",
        f"pipeline_tag: {pipeline}",
        "tags:",
        *(f"- {tag}" for tag in tags),
        "---",
        "",
        f"# {folder.resolve().name}",
        "",
        f"A BGE {'embedding model' if embedder else 'reranker'} fine-tuned from `{base_model}` with "
        "bge-integrations (FlagEmbedding's recipe: "
        + (
            "contrastive InfoNCE over in-batch and hard negatives"
            if embedder
            else "grouped softmax over each query's positive and hard negatives"
        )
        + ").",
        "",
    ]
    if embedder:
        shown = "none" if not query_instruction else f"`{query_instruction}`"
        lines += [f"Query instruction: {shown} (queries only; documents take none).", ""]
    run: dict[str, Any] = {"examples": examples, "steps": steps, "train loss": train_loss}
    rows: dict[str, Any] = {**settings.to_dict(), **{k: v for k, v in run.items() if v is not None}}
    lines += ["## Training", "", "| setting | value |", "|---|---|"]
    lines += [f"| {name} | {value if not isinstance(value, float) else f'{value:g}'} |" for name, value in rows.items()]
    lines.append("")
    if before is not None or after is not None:
        lines += ["## Evaluation", ""]
        if evaluation_name:
            lines += [f"On `{evaluation_name}`.", ""]
        lines += ["| metric | base | fine-tuned | change |", "|---|---|---|---|"]
        names = list(dict.fromkeys([*(before or {}), *(after or {})]))
        for name in names:
            old = (before or {}).get(name)
            new = (after or {}).get(name)
            change = f"{new - old:+.4f}" if old is not None and new is not None else ""
            old_text = _number(old) if old is not None else ""
            new_text = _number(new) if new is not None else ""
            lines.append(f"| {name} | {old_text} | {new_text} | {change} |")
        lines.append("")
    lines += [
        "## Usage",
        "",
        "```python",
        f"from bge_integrations import {'BGEEmbedder' if embedder else 'BGEReranker'}",
        "",
        f"model = {'BGEEmbedder' if embedder else 'BGEReranker'}({str(folder)!r})",
        "```",
        "",
    ]
    path = folder / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def finish_run(
    output: Path,
    *,
    base_model: str,
    kind: Literal["embedder", "reranker"],
    settings: TrainingSettings,
    examples: int,
    steps: int,
    train_loss: float | None,
    before: dict[str, float] | None,
    after: dict[str, float] | None,
    evaluation_name: str | None,
    started: float,
    query_instruction: str | None = None,
) -> FinetuneResult:
    """Write the model card of a finished run and return its :class:`FinetuneResult`.

    ``started`` is the run's ``time.perf_counter()`` at its start; the other arguments are as
    :func:`write_model_card` and :class:`FinetuneResult` take them.
    """
    write_model_card(
        output,
        base_model=base_model,
        kind=kind,
        settings=settings,
        query_instruction=query_instruction,
        examples=examples,
        steps=steps,
        train_loss=train_loss,
        before=before,
        after=after,
        evaluation_name=evaluation_name,
    )
    return FinetuneResult(
        output=output,
        base_model=base_model,
        kind=kind,
        steps=steps,
        train_loss=train_loss,
        before=before,
        after=after,
        seconds=time.perf_counter() - started,
    )


__all__ = ["finish_run", "write_model_card"]
