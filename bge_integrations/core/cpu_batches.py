"""The batch shape an encoder's forward pass runs fastest at on a CPU: a padded-token budget, measured.

On a GPU, bigger batches fill the card and are faster up to its memory. On a CPU they are not:
a forward pass over 32 texts of 512 tokens moves activations far larger than the caches, and
smaller batches of the same length-sorted texts finish sooner. ``python -m benchmarks.batch_shape``
measured documents/s over batch sizes (SciFact abstracts, 2-core Xeon with AMX; the tables are in
docs/performance.md): the fastest batches held 1,024 - 4,096 padded tokens, about 2,048, whatever
the width: all-MiniLM-L6-v2 (384 wide, 256 tokens) ran 1.18x faster in batches of 8 than of 32,
bge-small's shape (384 wide, 512 tokens) 1.35x in batches of 4, bge-base's (768 wide) 1.9x in
batches of 4.

So on the CPU, when the caller set no ``max_batch_tokens``, batches are cut at
:data:`CPU_BATCH_TOKENS` padded tokens as well as at ``batch_size`` texts. Short texts (queries)
still go ``batch_size`` to a batch; long ones go a few at a time. Vectors do not depend on the
batch shape.
"""

from __future__ import annotations

import torch

CPU_BATCH_TOKENS = 2048
"""Padded tokens (texts x longest text) per batch at which encoders ran fastest on the CPU (measured)."""


def cpu_batch_tokens(device: str) -> int | None:
    """The default padded-token budget per batch on this device: :data:`CPU_BATCH_TOKENS` on the CPU.

    Example:
        >>> cpu_batch_tokens("cpu"), cpu_batch_tokens("cuda:0")
        (2048, None)

    """
    return CPU_BATCH_TOKENS if torch.device(device).type == "cpu" else None


__all__ = ["CPU_BATCH_TOKENS", "cpu_batch_tokens"]
