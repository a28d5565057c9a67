"""Run one of FlagEmbedding's example scripts (tests/compat/flag_examples/) as ``__main__``, unchanged.

Usage: ``python -m tests.compat.run_flag_example SCRIPT [SCRIPT ...]``

Several scripts run one after the other in this one interpreter (each as ``__main__``, as a fresh
``python SCRIPT`` would, but importing torch and the package once); before each, a line
``run_flag_example: running SCRIPT`` goes to standard output and to standard error.

The scripts name GPUs (``"cuda:0"``, ``["cuda:3", "cuda:4"]``). FlagEmbedding, like
``bge_integrations.compat``, refuses a CUDA device the machine lacks, so the scripts' own comments
say to use ``"cpu"`` or ``["cpu", "cpu"]`` without GPUs. Rather than edit the script, this runner
maps each missing CUDA device when compat resolves it: ``cuda:k`` becomes ``cpu:k`` without CUDA
(distinct names: a two-GPU script still runs on two devices, in two threads, as on two GPUs), or
``cuda:(k mod n)`` with n < k + 1 GPUs. Each mapping is reported on standard error. Devices that
exist are left alone.
"""

from __future__ import annotations

import runpy
import sys

import torch

from bge_integrations.compat import _devices
from bge_integrations.core.devices import resolve_device


def available(device: str) -> str:
    """The device itself if this machine has it, else the stand-in described above."""
    parsed = torch.device(device)
    if parsed.type != "cuda":
        return device
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = parsed.index or 0
    if index < count:
        return device
    stand_in = f"cuda:{index % count}" if count else f"cpu:{index}"
    print(f"run_flag_example: {device} -> {stand_in} (this machine has {count} CUDA devices)", file=sys.stderr)
    return stand_in


def _resolve(device: str | None = None) -> str:
    return resolve_device(None if device is None else available(device))


RUNNING = "run_flag_example: running "
"""Start of the line put before each script's output when several run."""


def main(*scripts: str) -> None:
    _devices.resolve_device = _resolve  # type: ignore[assignment]
    for script in scripts:
        if len(scripts) > 1:
            print(RUNNING + script, flush=True)
            print(RUNNING + script, file=sys.stderr, flush=True)
        sys.argv = [script]
        runpy.run_path(script, run_name="__main__")
        sys.stdout.flush()


if __name__ == "__main__":
    main(*sys.argv[1:])
