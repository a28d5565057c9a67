"""Every Python snippet of the README runs, on the tiny models in place of the real BGE names."""

from __future__ import annotations

import re
from contextlib import ExitStack
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SERVER_URL = "http://127.0.0.1:8080"
SNIPPETS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_has_a_snippet_per_framework() -> None:
    joined = "\n".join(SNIPPETS)
    for module in ("bge_integrations.langchain", "bge_integrations.llama_index", "bge_integrations.haystack"):
        assert f"from {module} import" in joined


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet_runs(
    index: int,
    tiny_embedder_path: str,
    tiny_reranker_path: str,
    tiny_m3_path: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code = SNIPPETS[index].replace("BAAI/bge-m3", tiny_m3_path)
    for name in ("BAAI/bge-small-en-v1.5", "BAAI/bge-base-en-v1.5"):
        code = code.replace(name, tiny_embedder_path)
    code = code.replace("BAAI/bge-reranker-base", tiny_reranker_path)
    with ExitStack() as stack:
        if SERVER_URL in code:  # a serving client snippet: a live server on the tiny models, as `serve` would run
            from bge_integrations.serving import ServerSettings
            from tests.serving.servers import running_server
            from tests.serving.tiktoken_files import tiktoken_cache_dir

            monkeypatch.setenv("TIKTOKEN_CACHE_DIR", tiktoken_cache_dir())  # LangChain's OpenAIEmbeddings, offline
            url = stack.enter_context(
                running_server(ServerSettings(model=tiny_embedder_path, reranker=tiny_reranker_path))
            )
            code = code.replace(SERVER_URL, url)
        exec(compile(code, f"README.md snippet {index}", "exec"), {"__name__": "readme"})
    assert capsys.readouterr().out.strip()
