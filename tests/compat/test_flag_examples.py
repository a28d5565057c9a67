"""FlagEmbedding's own encoder-only example scripts run with only their import line changed.

The scripts (tests/compat/flag_examples/, copied verbatim from FlagEmbedding 1.4.0) load
``BAAI/bge-small-en-v1.5``, ``BAAI/bge-reranker-large`` and ``BAAI/bge-m3`` by hub id. They run in
subprocesses (the embedder, the reranker and the six BGE-M3 scripts one group each, in turn, to
import torch once per group) whose
``HF_HOME``/``HF_HUB_CACHE`` point at a hub cache holding tiny models under those ids
(``HF_HUB_OFFLINE=1``), so the script text, ``cache_dir=os.getenv('HF_HUB_CACHE')`` included, is
unchanged. CUDA devices the machine lacks are mapped by tests/compat/run_flag_example.py (cuda:k
to cpu:k without CUDA, as the scripts' comments suggest). What each prints is checked against
FlagEmbedding's computation on the tiny model (the BGE-M3 scripts: against the core's
``BGEM3Embedder`` and ``m3_scoring``, themselves checked against FlagEmbedding's recorded outputs in
tests/core and tests/compat/test_m3_flag_model.py). Not run here: the decoder-only scripts (LLM
embedders and rerankers), which compat does not support yet.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bge_integrations import BGEM3Embedder
from bge_integrations.core import m3_scoring
from tests.compat.hub_cache import make_hub_cache
from tests.compat.run_flag_example import RUNNING
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
M3_ENCODE_SCRIPTS = ["m3_single_device", "auto_m3_single_device", "m3_multi_devices", "auto_m3_multi_devices"]
M3_SCORE_SCRIPTS = ["m3_single_device_compute_score", "m3_multi_devices_compute_score"]
GPUS_NAMED = {
    ("embedder", "base_single_device"): ["cuda:0"],
    ("embedder", "auto_base_single_device"): ["cuda:0"],
    ("embedder", "base_multi_devices"): ["cuda:0", "cuda:1"],
    ("embedder", "auto_base_multi_devices"): ["cuda:0", "cuda:1"],
    ("reranker", "base_single_device"): ["cuda:3"],
    ("reranker", "auto_base_single_device"): ["cuda:3"],
    ("reranker", "base_multi_devices"): ["cuda:3", "cuda:4"],
    ("reranker", "auto_base_multi_devices"): ["cuda:3", "cuda:4"],
    ("embedder", "m3_single_device"): ["cuda:0"],
    ("embedder", "auto_m3_single_device"): ["cuda:0"],
    ("embedder", "m3_single_device_compute_score"): ["cuda:0"],
    ("embedder", "m3_multi_devices"): ["cuda:0", "cuda:1"],
    ("embedder", "auto_m3_multi_devices"): ["cuda:0", "cuda:1"],
    ("embedder", "m3_multi_devices_compute_score"): ["cuda:0", "cuda:1"],
}

M3_QUERIES = ["What is BGE M3?", "Defination of BM25"]
M3_PASSAGES = [
    "BGE M3 is an embedding model supporting dense retrieval, lexical matching and multi-vector interaction.",
    "BM25 is a bag-of-words retrieval function that ranks a set of documents based on the query terms appearing "
    "in each document",
]
"""The bge-m3 scripts' texts (each list repeated 100 times there)."""


FP16_ATOL = 5e-3
"""On CUDA the scripts run in fp16 (their use_fp16=True); the references are fp32."""
FP16_RTOL = 1e-2
"""And relative: bge-m3's lexical scores are sums of fp16 products, up to ~6 on the tiny model."""


@pytest.fixture(scope="module")
def hub_home(
    tmp_path_factory: pytest.TempPathFactory, tiny_embedder_path: str, tiny_reranker_path: str, tiny_m3_path: str
) -> Path:
    home = tmp_path_factory.mktemp("hf-home")
    make_hub_cache(
        home / "hub",
        {
            "BAAI/bge-small-en-v1.5": tiny_embedder_path,
            "BAAI/bge-reranker-large": tiny_reranker_path,
            "BAAI/bge-m3": tiny_m3_path,  # all its files: sparse_linear.pt and colbert_linear.pt too
        },
    )
    return home


def run_examples(kind: str, scripts: list[str], home: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    """Run scripts in one interpreter (see tests/compat/run_flag_example.py); each one's own output.

    The exit status is the run's: a script that raises stops the scripts after it.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "SENTENCE_TRANSFORMERS"))}
    env |= {"HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"), "HF_HUB_OFFLINE": "1"}
    paths = [str(EXAMPLES / kind / "encoder_only" / f"{script}.py") for script in scripts]
    command = [sys.executable, "-m", "tests.compat.run_flag_example", *paths]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    if len(scripts) == 1:
        return {scripts[0]: done}
    outputs = [_sections(done.stdout, paths), _sections(done.stderr, paths)]
    return {
        script: subprocess.CompletedProcess(command, done.returncode, outputs[0][path], outputs[1][path])
        for script, path in zip(scripts, paths, strict=True)
    }


def _sections(text: str, paths: list[str]) -> dict[str, str]:
    """What followed each script's ``run_flag_example: running PATH`` line in text (all of text if it is missing)."""
    sections = dict.fromkeys(paths, text)
    for chunk in ("\n" + text).split("\n" + RUNNING)[1:]:
        path, _, output = chunk.partition("\n")
        if path in sections:
            sections[path] = output
    return sections


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


@pytest.fixture(scope="module")
def embedder_runs(hub_home: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    """The four embedder scripts, run in one interpreter (each is mostly imports)."""
    return run_examples("embedder", EMBEDDER_SCRIPTS, hub_home)


@pytest.fixture(scope="module")
def reranker_runs(hub_home: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    """The four reranker scripts, run in one interpreter."""
    return run_examples("reranker", RERANKER_SCRIPTS, hub_home)


@pytest.mark.parametrize("script", EMBEDDER_SCRIPTS)
def test_embedder_example(
    script: str, embedder_runs: dict[str, subprocess.CompletedProcess[str]], tiny_embedder_path: str
) -> None:
    done = embedder_runs[script]
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
def test_reranker_example(
    script: str, reranker_runs: dict[str, subprocess.CompletedProcess[str]], tiny_reranker_path: str
) -> None:
    done = reranker_runs[script]
    assert done.returncode == 0, done.stderr[-3000:]
    scores = ast.literal_eval(printed_result(done.stdout))
    assert isinstance(scores, list)
    assert all(type(score) is float for score in scores)
    expected = reranker_reference(tiny_reranker_path, PAIRS, max_length=512, query_max_length=256)
    np.testing.assert_allclose(scores, expected, atol=FP16_ATOL if torch.cuda.is_available() else 1e-5)
    check_devices("reranker", script, done.stderr)


@pytest.fixture(scope="module")
def m3_runs(hub_home: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    """The six bge-m3 scripts, run in one interpreter: each is mostly imports, its work takes a second."""
    return run_examples("embedder", M3_ENCODE_SCRIPTS + M3_SCORE_SCRIPTS, hub_home)


@dataclasses.dataclass(frozen=True)
class M3Expected:
    """The core's scores of the bge-m3 scripts' texts: dense and lexical matrices, ColBERT as compute_score pads."""

    dense: np.ndarray
    sparse: np.ndarray
    colbert: np.ndarray


@pytest.fixture(scope="module")
def m3_expected(tiny_m3_path: str) -> M3Expected:
    embedder = BGEM3Embedder(tiny_m3_path, device="cpu")
    outputs = ("dense", "sparse", "colbert")
    queries, passages = (
        embedder.encode_documents(M3_QUERIES, outputs=outputs),
        embedder.encode_documents(M3_PASSAGES, outputs=outputs),
    )
    embedder.release()
    assert queries.dense is not None
    assert queries.sparse is not None
    assert queries.colbert is not None
    assert passages.dense is not None
    assert passages.sparse is not None
    assert passages.colbert is not None
    # compute_score pads the passages of a batch to its longest (here every batch holds both
    # passages) and its MaxSim also sees the padding rows, zero vectors: pad as it does. (On the
    # tiny model these queries' tokens all have a positive best similarity, so the padding's floor
    # at 0 changes nothing here; test_m3_flag_model.py tests that floor on texts where it does.)
    width = max(len(vectors) for vectors in passages.colbert)
    padded = [np.pad(vectors, ((0, width - len(vectors)), (0, 0))) for vectors in passages.colbert]
    return M3Expected(
        dense=queries.dense @ passages.dense.T,
        sparse=np.array([[m3_scoring.lexical_score(q, p) for p in passages.sparse] for q in queries.sparse]),
        colbert=np.array([[m3_scoring.colbert_score(q, p) for p in padded] for q in queries.colbert]),
    )


def numbers_in(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+\.\d*(?:e[-+]?\d+)?", text)]


@pytest.mark.parametrize("script", M3_ENCODE_SCRIPTS)
def test_m3_example(script: str, m3_runs: dict[str, subprocess.CompletedProcess[str]], m3_expected: M3Expected) -> None:
    done = m3_runs[script]
    assert done.returncode == 0, done.stderr[-3000:]
    printed = printed_result(done.stdout)
    dense, separator, sparse = printed.partition("\nSparse score:\n")
    assert separator, printed
    assert dense.startswith("Dense score:\n [["), printed
    assert sparse.startswith(" [["), printed
    atol, rtol = (FP16_ATOL, FP16_RTOL) if torch.cuda.is_available() else (1e-4, 1e-6)  # 8 significant digits
    np.testing.assert_allclose(np.array(numbers_in(dense)).reshape(2, 2), m3_expected.dense, rtol, atol)
    np.testing.assert_allclose(np.array(numbers_in(sparse)).reshape(2, 2), m3_expected.sparse, rtol, atol)
    check_devices("embedder", script, done.stderr)


@pytest.mark.parametrize("script", M3_SCORE_SCRIPTS)
def test_m3_compute_score_example(
    script: str, m3_runs: dict[str, subprocess.CompletedProcess[str]], m3_expected: M3Expected
) -> None:
    done = m3_runs[script]
    assert done.returncode == 0, done.stderr[-3000:]
    printed = printed_result(done.stdout).splitlines()
    upstream = done.stdout.partition("Expected Output:\n")[2].splitlines()
    assert len(printed) == len(upstream) == 2, done.stdout
    weights = (1.0, 0.3, 1.0)  # the scripts' weights_for_different_modes
    # The first two pairs: (query 0, passage 0), (query 1, passage 1); after queries.reverse()
    # the 200 queries alternate the other way round: (query 1, passage 0), (query 0, passage 1).
    for scores_text, upstream_text, pairs in zip(printed, upstream, [[(0, 0), (1, 1)], [(1, 0), (0, 1)]], strict=True):
        scores = ast.literal_eval(scores_text)
        assert isinstance(scores, dict)
        assert list(scores) == list(ast.literal_eval(upstream_text))  # FlagEmbedding's keys, in its order
        assert all(type(value) is float for values in scores.values() for value in values), scores
        dense = [float(m3_expected.dense[q, p]) for q, p in pairs]
        sparse = [float(m3_expected.sparse[q, p]) for q, p in pairs]
        colbert = [float(m3_expected.colbert[q, p]) for q, p in pairs]
        expected = {
            "colbert": colbert,
            "sparse": sparse,
            "dense": dense,
            "sparse+dense": [
                m3_scoring.combined_score(d, s, 0.0, (1.0, 0.3, 0.0)) for d, s in zip(dense, sparse, strict=True)
            ],
            "colbert+sparse+dense": [
                m3_scoring.combined_score(d, s, c, weights) for d, s, c in zip(dense, sparse, colbert, strict=True)
            ],
        }
        atol, rtol = (FP16_ATOL, FP16_RTOL) if torch.cuda.is_available() else (1e-5, 0.0)
        for key, values in expected.items():
            np.testing.assert_allclose(scores[key], values, rtol, atol, err_msg=key)
    check_devices("embedder", script, done.stderr)


UPSTREAM_SHA256 = {
    "embedder/base_single_device": "6957e961e6c84c2acd125e49781d907d282c16b3e99a0cb84c3d438c6f17478e",
    "embedder/auto_base_single_device": "3e1b5527a2c87d431b521ab56a4ac33b353ec581a67bfec9a7056a257dd1dcfd",
    "embedder/base_multi_devices": "d356d2d2ca0e4882b68b1b5f64743af7f7d4b2d3dd7980784c9bb7215cb132ba",
    "embedder/auto_base_multi_devices": "9fce5738b72dd504a43be63a5d43d65c4b17801171d8a64311a75ab7b52ee4b4",
    "reranker/base_single_device": "f17a3a21a85ed56fe29391eb4e0ef3d1817a3716eb86a9a95ed759cf0e8c3b3e",
    "reranker/auto_base_single_device": "929dfdd141f890154eb04e018e6e107630046a487c186d4ee604695a5ffe9718",
    "reranker/base_multi_devices": "f10d82ea84449af4c16c5096a58e3e1f4b60d79fc5d4c0f429ff6d58fb4c1843",
    "reranker/auto_base_multi_devices": "78aeb293b92d26df77156436f75dbc4f44e9a62d1ed2d507b31e3dbf427cff1d",
    "embedder/m3_single_device": "28433a4ee3ec0516789415a9d5cafa6eecc21a11f285d210f31f70203998e7b5",
    "embedder/m3_single_device_compute_score": "8f94f60437386fa28935f6354120502506b2181b06b155ebf44e046cf1480dec",
    "embedder/auto_m3_single_device": "f941f08408e0317f189b43f2f92fa6e85d7883b8c17d6b902179e23afd55c633",
    "embedder/m3_multi_devices": "2aae191e7a0b0464745fbffe8881d648f39fc6f7b92c9fdecb5b0f8196b18148",
    "embedder/m3_multi_devices_compute_score": "2df80100f9cbcd87e4c541fd9c775391b9bf94b19aa727c7d2d8272aca5b566e",
    "embedder/auto_m3_multi_devices": "7acccfc941a1ceb76ded97969cd8e7f356bdd3d1fbec69e927037d7efa307d8d",
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
