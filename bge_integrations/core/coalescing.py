"""Concurrent async requests, served by shared model calls.

``await embedder.aembed_query(q)`` from 64 coroutines at once would otherwise be 64 one-text
model calls in 64 worker threads, fighting over the same cores. Here requests that share a key
(same model and settings) queue up per event loop, and one worker drains the queue: everything
waiting goes into one call in a worker thread, and whatever arrives meanwhile goes into the
next. The event loop is never blocked, and each caller gets exactly its own results, in order.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from bge_integrations.core.notices import _deferred, caller_stacklevel

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Request(Generic[T, R]):
    items: list[T]
    future: asyncio.Future[list[R]]
    warnings: list[tuple[str, type[Warning]]] = field(default_factory=list)


@dataclass
class _Queue(Generic[T, R]):
    requests: list[_Request[T, R]] = field(default_factory=list)
    running: list[_Request[T, R]] = field(default_factory=list)
    """The requests of the merged call in flight."""
    worker: asyncio.Task[None] | None = None


class Coalescer(Generic[K, T, R]):
    """Merges concurrent requests with the same key into shared calls of ``run``.

    Args:
        run: ``run(key, items) -> results``, one result per item, in order. Runs in a worker
            thread, one call per key at a time.
        max_items: Items per merged call at most (a bigger single request still goes whole).

    Example:
        >>> import asyncio
        >>> calls = []
        >>> def run(key, items):
        ...     calls.append(len(items))
        ...     return [key + item for item in items]
        >>> coalescer = Coalescer(run, max_items=100)
        >>> async def many():
        ...     return await asyncio.gather(*(coalescer.submit("x", [str(i)]) for i in range(5)))
        >>> asyncio.run(many()), calls
        ([['x0'], ['x1'], ['x2'], ['x3'], ['x4']], [5])

    """

    def __init__(self, run: Callable[[K, list[T]], list[R]], *, max_items: int = 1024) -> None:
        self._run = run
        self.max_items = max_items
        self._queues: dict[tuple[int, K], _Queue[T, R]] = {}
        self._lock = threading.Lock()
        self._listeners: list[Callable[[K, list[T]], None]] = []

    def add_listener(self, listener: Callable[[K, list[T]], None]) -> None:
        """Call ``listener(key, items)`` before each merged call (e.g. to record batch sizes)."""
        self._listeners.append(listener)

    async def submit(self, key: K, items: list[T]) -> list[R]:
        """Queue items under key; returns their results once a shared call has run them."""
        if not items:
            return []
        loop = asyncio.get_running_loop()
        request: _Request[T, R] = _Request(items, loop.create_future())
        slot = (id(loop), key)
        with self._lock:
            queue = self._queues.setdefault(slot, _Queue())
            queue.requests.append(request)
            if queue.worker is None:
                queue.worker = loop.create_task(self._drain(slot, key, queue))
                queue.worker.add_done_callback(lambda _worker: self._abandon(slot, queue))
        results = await request.future
        for message, category in request.warnings:
            warnings.warn(message, category, stacklevel=caller_stacklevel())
        return results

    async def _drain(self, slot: tuple[int, K], key: K, queue: _Queue[T, R]) -> None:
        while True:
            with self._lock:
                taken: list[_Request[T, R]] = []
                count = 0
                while queue.requests and (not taken or count + len(queue.requests[0].items) <= self.max_items):
                    request = queue.requests.pop(0)
                    taken.append(request)
                    count += len(request.items)
                if not taken:
                    queue.worker = None
                    del self._queues[slot]
                    return
            live = [request for request in taken if not request.future.cancelled()]
            if not live:
                continue
            items = [item for request in live for item in request.items]
            queue.running = live
            for listener in self._listeners:
                listener(key, items)
            try:
                results, raised = await asyncio.to_thread(self._call, key, items)
            except Exception as error:  # noqa: BLE001 - handed to every waiting caller
                for request in live:
                    if not request.future.done():
                        request.future.set_exception(error)
                continue
            live[0].warnings = raised
            start = 0
            for request in live:
                end = start + len(request.items)
                if not request.future.done():
                    request.future.set_result(results[start:end])
                start = end

    def _abandon(self, slot: tuple[int, K], queue: _Queue[T, R]) -> None:
        """Clean up after a worker that ended without draining its queue.

        A worker that drained its queue has dropped it already. One that was cancelled (its event
        loop shutting down, or code cancelling every task) has not: cancel the callers it leaves
        waiting and drop the queue, so that the next call on that loop starts a new worker.
        """
        with self._lock:
            if queue.worker is None:
                return
            queue.worker = None
            if self._queues.get(slot) is queue:
                del self._queues[slot]
            stranded = [*queue.running, *queue.requests]
            queue.running, queue.requests = [], []
        for request in stranded:
            if not request.future.done():
                request.future.cancel()

    def _call(self, key: K, items: list[T]) -> tuple[list[R], list[tuple[str, type[Warning]]]]:
        raised: list[tuple[str, type[Warning]]] = []
        token = _deferred.set(raised)
        try:
            results = self._run(key, items)
        finally:
            _deferred.reset(token)
        if len(results) != len(items):
            msg = f"a merged call returned {len(results)} results for {len(items)} inputs"
            raise RuntimeError(msg)
        return results, raised


__all__ = ["Coalescer"]
