"""Every Python snippet of the README runs, on the tiny models in place of the real BGE names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
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
) -> None:
    code = SNIPPETS[index].replace("BAAI/bge-m3", tiny_m3_path)
    for name in ("BAAI/bge-small-en-v1.5", "BAAI/bge-base-en-v1.5"):
        code = code.replace(name, tiny_embedder_path)
    code = code.replace("BAAI/bge-reranker-base", tiny_reranker_path)
    exec(compile(code, f"README.md snippet {index}", "exec"), {"__name__": "readme"})
    assert capsys.readouterr().out.strip()
