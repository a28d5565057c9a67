"""Prometheus metrics of one server: requests, latency, items, model batch sizes, queue depth."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ServerMetrics:
    """The server's metrics in a registry of their own (several apps in one process never clash).

    Example:
        >>> metrics = ServerMetrics()
        >>> metrics.requests.labels(route="/v1/embeddings", status="200").inc()
        >>> b'bge_requests_total{route="/v1/embeddings",status="200"} 1.0' in metrics.render()
        True

    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "bge_requests", "HTTP requests answered, by route and status.", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "bge_request_duration_seconds",
            "Time from request to response, by route.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.request_items = Histogram(
            "bge_request_items",
            "Texts (embeddings) or documents (rerank) per request, by route.",
            ["route"],
            buckets=_SIZE_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "bge_model_batch_items",
            "Texts or query-document pairs per model call; concurrent requests share calls.",
            ["model"],
            buckets=_SIZE_BUCKETS,
            registry=self.registry,
        )
        self.queue_items = Gauge(
            "bge_queue_items", "Texts or documents admitted and not yet answered.", registry=self.registry
        )
        self.in_flight = Gauge(
            "bge_requests_in_flight", "Requests admitted and not yet answered.", registry=self.registry
        )
        self.rejected = Counter(
            "bge_rejected_requests",
            "Requests refused before reaching the model, by reason.",
            ["reason"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


__all__ = ["ServerMetrics"]
