"""FlagEmbedding's own encoder-only example scripts run with only their import line changed.

The scripts (tests/compat/flag_examples/, copied verbatim from FlagEmbedding 1.4.0) load
``BAAI/bge-small-en-v1.5`` and ``BAAI/bge-reranker-large`` by hub id. Each runs in a subprocess
whose ``HF_HOME``/``HF_HUB_CACHE`` point at a hub cache holding tiny models under those ids
(``HF_HUB_OFFLINE=1``), so the script text, ``cache_dir=os.getenv('HF_HUB_CACHE')`` included, is
unchanged. CUDA devices the machine lacks are mapped by tests/compat/run_flag_example.py (cuda:k
to cpu:k without CUDA, as the scripts' comments suggest). What each prints is checked against
FlagEmbedding's computation on the tiny model. Not run here: the BGE-M3 scripts (issue 13) and the
decoder-only ones (LLM embedders and rerankers), which compat does not support yet.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.compat.hub_cache import make_hub_cache
from tests.compat.test_flag_model import flag_reference as embedder_reference
from tests.compat.test_flag_reranker import flag_reference as reranker_reference

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = Path(__file__).parent / "flag_examples"
SEPARATOR = "--------------------------------"

INSTRUCTION = "Represent this sentence for searching relevant passages: "
QUERIES = ["What is the capital of France?", "What is the population of China?"]
PASSAGES = ["Paris is the capital of France.", "The population of China is over 1.4 billion people."]
PAIRS = [[q, p] for q in QUERIES for p in PASSAGES]

EMBEDDER_SCRIPTS = ["base_single_device", "auto_base_single_device", "base_multi_devices", "auto_base_multi_devices"]
RERANKER_SCRIPTS = EMBEDDER_SCRIPTS
GPUS_NAMED = {
    ("embedder", "base_single_device"): ["cuda:0"],
    ("embedder", "auto_base_single_device"): ["cuda:0"],
    ("embedder", "base_multi_devices"): ["cuda:0", "cuda:1"],
    ("embedder", "auto_base_multi_devices"): ["cuda:0", "cuda:1"],
    ("reranker", "base_single_device"): ["cuda:3"],
    ("reranker", "auto_base_single_device"): ["cuda:3"],
    ("reranker", "base_multi_devices"): ["cuda:3", "cuda:4"],
    ("reranker", "auto_base_multi_devices"): ["cuda:3", "cuda:4"],
}


FP16_ATOL = 5e-3
"""On CUDA the scripts run in fp16 (their use_fp16=True); the references are fp32."""


@pytest.fixture(scope="module")
def hub_home(tmp_path_factory: pytest.TempPathFactory, tiny_embedder_path: str, tiny_reranker_path: str) -> Path:
    home = tmp_path_factory.mktemp("hf-home")
    make_hub_cache(
        home / "hub",
        {"BAAI/bge-small-en-v1.5": tiny_embedder_path, "BAAI/bge-reranker-large": tiny_reranker_path},
    )
    return home


def run_example(kind: str, script: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "SENTENCE_TRANSFORMERS"))}
    env |= {"HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"), "HF_HUB_OFFLINE": "1"}
    path = EXAMPLES / kind / "encoder_only" / f"{script}.py"
    command = [sys.executable, "-m", "tests.compat.run_flag_example", str(path)]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def printed_result(stdout: str) -> str:
    """What the script printed before FlagEmbedding's 'Expected Output' trailer (which is checked)."""
    result, separator, trailer = stdout.partition(SEPARATOR + "\n")
    assert separator, stdout
    assert trailer.startswith("Expected Output:\n"), stdout
    return result.strip()


def check_devices(kind: str, script: str, stderr: str) -> None:
    for device in GPUS_NAMED[kind, script]:
        index = int(device.split(":")[1])
        missing = not torch.cuda.is_available() or index >= torch.cuda.device_count()
        assert (f"run_flag_example: {device} -> " in stderr) == missing, stderr


@pytest.mark.parametrize("script", EMBEDDER_SCRIPTS)
def test_embedder_example(script: str, hub_home: Path, tiny_embedder_path: str) -> None:
    done = run_example("embedder", script, hub_home)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = printed_result(done.stdout)
    numbers = [float(x) for x in re.findall(r"-?\d+\.\d*(?:e[-+]?\d+)?", printed)]
    queries = embedder_reference(tiny_embedder_path, [INSTRUCTION + q for q in QUERIES])
    passages = embedder_reference(tiny_embedder_path, PASSAGES)
    assert printed.startswith("[[")
    atol = FP16_ATOL if torch.cuda.is_available() else 1e-4  # 1e-4: numpy prints 8 significant digits
    np.testing.assert_allclose(np.array(numbers).reshape(2, 2), queries @ passages.T, atol=atol)
    check_devices("embedder", script, done.stderr)


@pytest.mark.parametrize("script", RERANKER_SCRIPTS)
def test_reranker_example(script: str, hub_home: Path, tiny_reranker_path: str) -> None:
    done = run_example("reranker", script, hub_home)
    assert done.returncode == 0, done.stderr[-3000:]
    scores = ast.literal_eval(printed_result(done.stdout))
    assert isinstance(scores, list)
    assert all(type(score) is float for score in scores)
    expected = reranker_reference(tiny_reranker_path, PAIRS, max_length=512, query_max_length=256)
    np.testing.assert_allclose(scores, expected, atol=FP16_ATOL if torch.cuda.is_available() else 1e-5)
    check_devices("reranker", script, done.stderr)


UPSTREAM_SHA256 = {
    "embedder/base_single_device": "6957e961e6c84c2acd125e49781d907d282c16b3e99a0cb84c3d438c6f17478e",
    "embedder/auto_base_single_device": "3e1b5527a2c87d431b521ab56a4ac33b353ec581a67bfec9a7056a257dd1dcfd",
    "embedder/base_multi_devices": "d356d2d2ca0e4882b68b1b5f64743af7f7d4b2d3dd7980784c9bb7215cb132ba",
    "embedder/auto_base_multi_devices": "9fce5738b72dd504a43be63a5d43d65c4b17801171d8a64311a75ab7b52ee4b4",
    "reranker/base_single_device": "f17a3a21a85ed56fe29391eb4e0ef3d1817a3716eb86a9a95ed759cf0e8c3b3e",
    "reranker/auto_base_single_device": "929dfdd141f890154eb04e018e6e107630046a487c186d4ee604695a5ffe9718",
    "reranker/base_multi_devices": "f10d82ea84449af4c16c5096a58e3e1f4b60d79fc5d4c0f429ff6d58fb4c1843",
    "reranker/auto_base_multi_devices": "78aeb293b92d26df77156436f75dbc4f44e9a62d1ed2d507b31e3dbf427cff1d",
}
"""sha256 of each script as FlagEmbedding has it at commit 7ed43d6 (``git show COMMIT:examples/inference/...``)."""

HEADER_LINES = 4
"""The attribution comment put above each copy."""


@pytest.mark.parametrize("name", sorted(UPSTREAM_SHA256))
def test_the_copies_differ_from_flagembedding_only_in_the_import_line(name: str) -> None:
    kind, script = name.split("/")
    lines = (EXAMPLES / kind / "encoder_only" / f"{script}.py").read_text().splitlines(keepends=True)
    header, body = "".join(lines[:HEADER_LINES]), lines[HEADER_LINES:]
    assert f"examples/inference/{kind}/encoder_only/{script}.py" in header
    assert "7ed43d67ec03fbe5c31c0992dbfa941fb1860549" in header
    assert "LICENSE-FlagEmbedding" in header
    changed = [i for i, line in enumerate(body) if line.startswith("from bge_integrations.compat import ")]
    assert len(changed) == 1
    body[changed[0]] = body[changed[0]].replace("from bge_integrations.compat import ", "from FlagEmbedding import ")
    assert f"(was: {body[changed[0]].strip()})" in header
    assert hashlib.sha256("".join(body).encode()).hexdigest() == UPSTREAM_SHA256[name]
    assert "MIT License" in (EXAMPLES / "LICENSE-FlagEmbedding").read_text()
