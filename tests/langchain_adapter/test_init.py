from __future__ import annotations

import json
import subprocess
import sys

import bge_integrations.langchain

# One interpreter for both checks: importing the core costs seconds.
CODE = """
import json, sys
sys.modules["langchain_core"] = None  # as if LangChain were not installed
try:
    import bge_integrations.langchain
except ImportError as exc:
    hint = str(exc)
else:
    hint = None
del sys.modules["langchain_core"]
import bge_integrations.langchain
loaded = [m for m in sys.modules if m.startswith(("langchain_classic", "langchain_community"))]
print(json.dumps({"hint": hint, "loaded": loaded}))
"""


def test_public_api() -> None:
    assert bge_integrations.langchain.__all__ == [
        "BGECrossEncoder",
        "BGEEmbeddings",
        "BGEM3Compressor",
        "BGERerank",
        "BGERerankRetriever",
    ]
    for name in bge_integrations.langchain.__all__:
        assert getattr(bge_integrations.langchain, name).__doc__


def test_install_hint_and_no_langchain_classic_at_runtime() -> None:
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["hint"] == ('bge_integrations.langchain needs LangChain: pip install "bge-integrations[langchain]"')
    assert result["loaded"] == []
