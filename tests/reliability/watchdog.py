"""A watchdog for tests that could deadlock: they fail after a deadline instead of hanging CI."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest


def bounded(function: Callable[[], Any], *, seconds: float) -> Any:
    """Run function in a watchdog thread; fail (instead of hanging the suite) if not done in time."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = function()
        except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
            outcome["error"] = error

    worker = threading.Thread(target=target, daemon=True, name="watched-workload")
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        pytest.fail(f"the workload is still running after {seconds} s: a deadlock")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
