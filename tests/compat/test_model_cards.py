# ruff: noqa: E501  (the snippets are quoted as published, long lines included)
"""The upstream usage snippets run on bge_integrations.compat by changing the import line only.

(FlagEmbedding's example scripts are run as files, unchanged but for the import: test_flag_examples.py.)

Each snippet is copied from its source (trailing spaces dropped), then run with two edits made
by :func:`adapt`: the import line, and the hub model name replaced by a tiny local model. Where
a snippet names a GPU, the device is replaced as the snippet's own comment suggests (noted).
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np

# BAAI/bge-*-v1.5 model cards (Hugging Face), "Using FlagEmbedding".
EMBEDDER_MODEL_CARD = """\
from FlagEmbedding import FlagModel
sentences_1 = ["样例数据-1", "样例数据-2"]
sentences_2 = ["样例数据-3", "样例数据-4"]
model = FlagModel('BAAI/bge-large-zh-v1.5',
                  query_instruction_for_retrieval="为这个句子生成表示以用于检索相关文章：",
                  use_fp16=True) # Setting use_fp16 to True speeds up computation with a slight performance degradation
embeddings_1 = model.encode(sentences_1)
embeddings_2 = model.encode(sentences_2)
similarity = embeddings_1 @ embeddings_2.T
print(similarity)

# for s2p(short query to long passage) retrieval task, suggest to use encode_queries() which will automatically add the instruction to each query
# corpus in retrieval task can still use encode() or encode_corpus(), since they don't need instruction
queries = ['query_1', 'query_2']
passages = ["样例文档-1", "样例文档-2"]
q_embeddings = model.encode_queries(queries)
p_embeddings = model.encode(passages)
scores = q_embeddings @ p_embeddings.T
"""

# bge-model.com, "BGE v1 & v1.5", Usage.
EMBEDDER_DOCS = """\
from FlagEmbedding import FlagModel

model = FlagModel('BAAI/bge-base-en-v1.5')

sentences = ["Hello world", "I am inevitable"]
embeddings = model.encode(sentences)
"""

# BAAI/bge-reranker-base and bge-reranker-large model cards, "Using FlagEmbedding".
RERANKER_MODEL_CARD = """\
from FlagEmbedding import FlagReranker
reranker = FlagReranker('BAAI/bge-reranker-large', use_fp16=True) # Setting use_fp16 to True speeds up computation with a slight performance degradation

score = reranker.compute_score(['query', 'passage'])
print(score)

scores = reranker.compute_score([['what is panda?', 'hi'], ['what is panda?', 'The giant panda (Ailuropoda melanoleuca), sometimes called a panda bear or simply panda, is a bear species endemic to China.']])
print(scores)
"""

# BAAI/bge-reranker-v2-m3 model card, "For normal reranker".
RERANKER_V2_MODEL_CARD = """\
from FlagEmbedding import FlagReranker
reranker = FlagReranker('BAAI/bge-reranker-v2-m3', use_fp16=True) # Setting use_fp16 to True speeds up computation with a slight performance degradation

score = reranker.compute_score(['query', 'passage'])
print(score) # -5.65234375

# You can map the scores into 0-1 by set "normalize=True", which will apply sigmoid function to the score
score = reranker.compute_score(['query', 'passage'], normalize=True)
print(score) # 0.003497010252573502

scores = reranker.compute_score([['what is panda?', 'hi'], ['what is panda?', 'The giant panda (Ailuropoda melanoleuca), sometimes called a panda bear or simply panda, is a bear species endemic to China.']])
print(scores) # [-8.1875, 5.26171875]

# You can map the scores into 0-1 by set "normalize=True", which will apply sigmoid function to the score
scores = reranker.compute_score([['what is panda?', 'hi'], ['what is panda?', 'The giant panda (Ailuropoda melanoleuca), sometimes called a panda bear or simply panda, is a bear species endemic to China.']], normalize=True)
print(scores) # [0.00027803096387751553, 0.9948403768236574]
"""

# FlagEmbedding examples/inference/reranker/README.md, "2. Normal Reranker".
# Edit: devices=['cuda:1'] -> ['cpu']. passage_max_length is not a FlagReranker argument; FlagEmbedding ignores it.
RERANKER_README = """\
from FlagEmbedding import FlagReranker
reranker = FlagReranker(
    'BAAI/bge-reranker-v2-m3',
    query_max_length=256,
    passage_max_length=512,
    use_fp16=True,
    devices=['cuda:1']
) # Setting use_fp16 to True speeds up computation with a slight performance degradation

score = reranker.compute_score(['query', 'passage'])
print(score) # -5.65234375

scores = reranker.compute_score([['what is panda?', 'hi'], ['what is panda?', 'The giant panda (Ailuropoda melanoleuca), sometimes called a panda bear or simply panda, is a bear species endemic to China.']])
print(scores) # [-8.1875, 5.26171875]
"""


def adapt(snippet: str, model: str, path: str, devices: tuple[str, str] | None = None) -> str:
    """Change the import line and the model name (and, where noted, the GPU device)."""
    code = snippet.replace("from FlagEmbedding import", "from bge_integrations.compat import")
    if devices is not None:
        code = code.replace(*devices)
    replaced = code.replace(repr(model), repr(path))
    assert replaced != code, f"{model!r} not found in the snippet"
    return replaced


def run(code: str) -> tuple[dict[str, Any], str]:
    namespace: dict[str, Any] = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<snippet>", "exec"), namespace)  # the snippets under test
    return namespace, out.getvalue()


def test_embedder_model_card(tiny_embedder_path: str) -> None:
    ns, printed = run(adapt(EMBEDDER_MODEL_CARD, "BAAI/bge-large-zh-v1.5", tiny_embedder_path))
    model = ns["model"]
    assert ns["similarity"].shape == (2, 2)
    assert ns["scores"].shape == (2, 2)
    assert ns["embeddings_1"].dtype == np.float32  # fp16 asked for, but FlagEmbedding runs fp32 on the CPU
    np.testing.assert_allclose(np.diag(ns["embeddings_1"] @ ns["embeddings_1"].T), 1.0, atol=1e-5)
    # The instruction goes on the queries only: encode_queries differs from encode, passages do not.
    np.testing.assert_allclose(ns["p_embeddings"], model.encode_corpus(ns["passages"]), atol=0)
    instructed = [model.query_instruction_for_retrieval + q for q in ns["queries"]]
    np.testing.assert_allclose(ns["q_embeddings"], model.encode(instructed), atol=0)
    assert not np.allclose(ns["q_embeddings"], model.encode(ns["queries"]))
    assert printed.startswith("[[")


def test_embedder_docs(tiny_embedder_path: str) -> None:
    ns, _ = run(adapt(EMBEDDER_DOCS, "BAAI/bge-base-en-v1.5", tiny_embedder_path))
    assert ns["embeddings"].shape == (2, 32)


def test_reranker_model_card(tiny_reranker_path: str) -> None:
    ns, printed = run(adapt(RERANKER_MODEL_CARD, "BAAI/bge-reranker-large", tiny_reranker_path))
    assert isinstance(ns["score"], list)
    assert len(ns["score"]) == 1
    assert len(ns["scores"]) == 2
    assert all(type(s) is float for s in ns["score"] + ns["scores"])
    assert printed.splitlines() == [str(ns["score"]), str(ns["scores"])]


def test_reranker_v2_model_card(tiny_reranker_path: str) -> None:
    ns, printed = run(adapt(RERANKER_V2_MODEL_CARD, "BAAI/bge-reranker-v2-m3", tiny_reranker_path))
    reranker = ns["reranker"]
    lines = printed.splitlines()
    assert len(lines) == 4
    raw = reranker.compute_score(["query", "passage"])
    assert lines[0] == str(raw)
    assert lines[1] == str([float(1 / (1 + np.exp(-raw[0])))])
    assert all(0 < s < 1 for s in ns["scores"])


def test_reranker_readme(tiny_reranker_path: str) -> None:
    code = adapt(RERANKER_README, "BAAI/bge-reranker-v2-m3", tiny_reranker_path, devices=("['cuda:1']", "['cpu']"))
    ns, printed = run(code)
    assert ns["reranker"].query_max_length == 256
    assert len(printed.splitlines()) == 2
    assert len(ns["scores"]) == 2
