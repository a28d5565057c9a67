"""Cutting work into model batches: by real token length, under a token budget, with OOM back-off.

Inputs are sorted by their token count (not their character count) so that a batch pads as
little as possible, and a batch is cut when it reaches ``max_items`` inputs or when its padded
size (rows x longest row) would pass ``max_tokens``: long inputs go in small batches, short ones
in large. A batch that runs out of accelerator memory is halved and retried, and the budget that
worked is remembered for the next calls; any other error surfaces unchanged.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import torch

from bge_integrations.core.devices import free_accelerator_memory
from bge_integrations.core.notices import warn_user


def plan_batches(lengths: Sequence[int], *, max_items: int, max_tokens: int | None = None) -> list[list[int]]:
    """Group input positions into batches, longest inputs first.

    Args:
        lengths: Token count of each input.
        max_items: Inputs per batch at most.
        max_tokens: Padded tokens (rows x longest row) per batch at most; a single input
            longer than this still gets a batch of its own. None: no token budget.

    Example:
        >>> plan_batches([3, 10, 4, 9], max_items=8, max_tokens=20)
        [[1, 3], [2, 0]]

    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    width = 0
    for index in order:
        full = len(current) >= max_items or (max_tokens is not None and (len(current) + 1) * width > max_tokens)
        if current and full:
            batches.append(current)
            current = []
        if not current:
            width = lengths[index]
        current.append(index)
    if current:
        batches.append(current)
    return batches


def is_out_of_memory(error: BaseException) -> bool:
    """Whether error is a real out-of-memory failure of an allocator (CUDA, MPS, CPU)."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    message = str(error)
    return isinstance(error, RuntimeError) and (
        "out of memory" in message.lower() or "can't allocate memory" in message.lower()
    )


class BatchRunner:
    """Runs planned batches through a model, halving a batch that runs out of memory.

    One runner belongs to one loaded model; the token budget it learns from an out-of-memory
    failure is shared by every caller of that model.

    Example:
        >>> runner = BatchRunner("my-model")
        >>> out = runner.run([2, 5, 3], lambda rows: torch.tensor(rows, dtype=torch.float32), max_items=2)
        >>> out.tolist()
        [0.0, 1.0, 2.0]

    """

    def __init__(self, model: str, *, default_max_tokens: int | None = None) -> None:
        self.model = model
        self.default_max_tokens = default_max_tokens
        """Padded tokens per batch when a call sets no budget (on the CPU: :func:`cpu_batch_tokens`)."""
        self.learned_max_tokens: int | None = None
        """Padded tokens per batch that last fitted after an out-of-memory failure, or None."""
        self._lock = threading.Lock()

    def run(
        self,
        lengths: Sequence[int],
        forward: Callable[[list[int]], torch.Tensor],
        *,
        max_items: int,
        max_tokens: int | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> torch.Tensor:
        """Forward every input once; returns the outputs stacked in input order.

        Args:
            lengths: Token count of each input.
            forward: Runs the inputs at the given positions as one batch and returns one row
                (or one value) per position, on the CPU.
            max_items: Inputs per batch at most.
            max_tokens: Padded tokens per batch at most (None: the runner's
                ``default_max_tokens``). Lowered to what fitted, after an out-of-memory failure.
            on_batch: Called with the number of inputs each finished batch held.

        """
        budget = self.budget(max_tokens)
        pending = plan_batches(lengths, max_items=max_items, max_tokens=budget)
        pending.reverse()
        out: torch.Tensor | None = None
        while pending:
            rows = pending.pop()
            try:
                result = forward(rows)
            except Exception as error:
                if not is_out_of_memory(error) or len(rows) == 1:
                    raise
                free_accelerator_memory()
                half = len(rows) // 2
                self._learn(half * max(lengths[i] for i in rows))
                pending.extend([rows[half:], rows[:half]])
                continue
            if out is None:
                out = torch.empty((len(lengths), *result.shape[1:]), dtype=result.dtype)
            out[rows] = result
            if on_batch is not None:
                on_batch(len(rows))
        if out is None:
            return torch.empty(0)
        return out

    def budget(self, max_tokens: int | None = None) -> int | None:
        """Padded tokens per batch that a run with this ``max_tokens`` is cut at; None: no budget.

        ``max_tokens``, or ``default_max_tokens`` when it is None, lowered to ``learned_max_tokens``.
        """
        if max_tokens is None:
            max_tokens = self.default_max_tokens
        with self._lock:
            learned = self.learned_max_tokens
        if learned is None:
            return max_tokens
        return learned if max_tokens is None else min(max_tokens, learned)

    def _learn(self, tokens: int) -> None:
        with self._lock:
            first = self.learned_max_tokens is None
            if first or tokens < (self.learned_max_tokens or 0):
                self.learned_max_tokens = tokens
        if first:
            msg = (
                f"{self.model!r} ran out of memory on a batch; retrying in halves. Batches are now "
                f"capped at {tokens} padded tokens for this model (pass a smaller batch_size or "
                "max_batch_tokens to choose yourself)."
            )
            warn_user(msg, ResourceWarning)


__all__ = ["BatchRunner", "is_out_of_memory", "plan_batches"]
