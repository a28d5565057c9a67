"""Fixtures for the RAG examples: loading a script, a fake OpenAI-compatible server, an embedding spy."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from bge_integrations.core.embedder import BGEEmbedder

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
EXAMPLES = ("langchain_rag", "llama_index_rag", "haystack_rag")
LLM_ENV = ("BGE_RAG_LLM_MODEL", "OPENAI_BASE_URL", "OPENAI_API_BASE", "OPENAI_API_KEY")
_LOADED: dict[str, ModuleType] = {}


def load_example(name: str) -> ModuleType:
    """Import examples/<name>.py once per session, as the module ``rag_example_<name>``."""
    if name not in _LOADED:
        module_name = f"rag_example_{name}"
        spec = importlib.util.spec_from_file_location(module_name, EXAMPLES_DIR / f"{name}.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses look their module up while the class is built
        spec.loader.exec_module(module)
        _LOADED[name] = module
    return _LOADED[name]


@pytest.fixture(params=EXAMPLES)
def example(request: pytest.FixtureRequest) -> ModuleType:
    """Each example script, as a module."""
    return load_example(request.param)


@dataclass
class ScriptRuns:
    """The examples run as scripts on ``passages`` (a file), asking ``question``, top_k 3, top_n 2."""

    question: str
    passages: tuple[str, ...]
    folder: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    """Example name to its ``python examples/<name>.py`` process, writing to ``<name>.out``/``.err``."""

    def result(self, name: str) -> tuple[int, str, str]:
        """Wait for the named example's run; its exit status, stdout and stderr."""
        status = self.processes[name].wait(timeout=300)
        stdout, stderr = (self.folder / f"{name}{suffix}" for suffix in (".out", ".err"))
        return status, stdout.read_text(encoding="utf-8"), stderr.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def script_runs(
    tiny_embedder_path: str, tiny_reranker_path: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ScriptRuns]:
    """Every example started at once as a script: offline, without LLM settings, on the tiny models.

    The runs overlap: they spend most of their time importing, on one core each.
    """
    passages = (
        "Honey bees communicate the direction of flowers with a waggle dance.",
        "The Danube flows through ten countries before reaching the Black Sea.",
        "Sourdough bread rises thanks to wild yeast and lactic acid bacteria.",
    )
    runs = ScriptRuns("Which river flows to the Black Sea?", passages, tmp_path_factory.mktemp("scripts"))
    passages_file = runs.folder / "passages.txt"  # blank lines and stray spaces, which the scripts drop
    passages_file.write_text("\n\n".join(f"  {text} " for text in passages) + "\n", encoding="utf-8")
    env = {name: value for name, value in os.environ.items() if name not in LLM_ENV}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HAYSTACK_TELEMETRY_ENABLED="False")
    options = ["--model", tiny_embedder_path, "--reranker", tiny_reranker_path, "--device", "cpu"]
    options += ["--top-k", "3", "--top-n", "2", "--passages", str(passages_file)]
    for name in EXAMPLES:
        with (runs.folder / f"{name}.out").open("wb") as out, (runs.folder / f"{name}.err").open("wb") as err:
            runs.processes[name] = subprocess.Popen(
                [sys.executable, str(EXAMPLES_DIR / f"{name}.py"), runs.question, *options],
                stdout=out,
                stderr=err,
                env=env,
                cwd=runs.folder,
            )
    yield runs
    for process in runs.processes.values():  # those no test waited for (deselected, or a test failed early)
        if process.poll() is None:
            process.kill()
        process.wait()


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No LLM unless a test configures one, and no Haystack telemetry (it posts to PostHog)."""
    for name in LLM_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("haystack.telemetry._telemetry.telemetry", None)


@dataclass
class EmbeddingSpy:
    """Every list of texts embedded as documents (that is, indexed) through the core engine."""

    calls: list[list[str]] = field(default_factory=list)

    @property
    def texts(self) -> list[str]:
        return [text for call in self.calls for text in call]


@pytest.fixture
def embedded_documents(monkeypatch: pytest.MonkeyPatch) -> EmbeddingSpy:
    """Records what ``BGEEmbedder.embed_documents`` embeds; every adapter indexes through it."""
    spy = EmbeddingSpy()
    original = BGEEmbedder.embed_documents

    def embed_documents(self: BGEEmbedder, texts: list[str]) -> list[list[float]]:
        spy.calls.append(list(texts))
        return original(self, texts)

    monkeypatch.setattr(BGEEmbedder, "embed_documents", embed_documents)
    return spy


@dataclass
class FakeLLM:
    """An OpenAI-compatible chat endpoint on 127.0.0.1 that answers every request with ``answer``."""

    base_url: str
    answer: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    """One entry per request: ``path``, ``headers`` (lower-case names) and the JSON ``body``."""

    def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": body.get("model", ""),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.answer},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49},
        }


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    """A fake OpenAI-compatible server: POST /v1/chat/completions, non-streaming; records each request."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            llm.requests.append(
                {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
            )
            if self.path != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
            elif body.get("stream"):
                self._send(400, {"error": {"message": "this fake only answers stream=false", "type": "invalid"}})
            else:
                self._send(200, llm.completion(body))

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    llm = FakeLLM(base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", answer="Giant pandas live in China.")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield llm
    server.shutdown()
    server.server_close()
    thread.join()
