"""``bge-integrations serve``: BGE models behind the HTTP APIs that framework clients already speak.

OpenAI's ``/v1/embeddings``, Hugging Face TEI's ``/embed``, ``/embed_sparse`` and ``/rerank``,
the Cohere/Infinity ``/v1/rerank``, ``/metrics`` for Prometheus. Read ``settings`` (what is
served, the limits), ``app`` (the ASGI app and its middleware), ``service`` (the models), the
``*_routes`` modules (one per API), then ``server`` (uvicorn).
"""

from __future__ import annotations

try:
    import fastapi  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as exc:
    msg = 'bge_integrations.serving needs FastAPI and uvicorn: pip install "bge-integrations[serve]"'
    raise ImportError(msg) from exc

from bge_integrations.serving.app import create_app
from bge_integrations.serving.server import run_server, server_config
from bge_integrations.serving.settings import ServerSettings

__all__ = ["ServerSettings", "create_app", "run_server", "server_config"]
