# ruff: noqa: E501  (the snippets are quoted as published, long lines included)
"""The bge-m3 model card's usage snippets run on bge_integrations.compat by changing the import line only.

Quoted from FlagEmbedding's research/BGE_M3/README.md ("Generate Embedding for text" and
"Compute score for text pairs"; the BAAI/bge-m3 model card has the same code), trailing spaces
dropped, and run through :func:`tests.compat.test_model_cards.adapt`: the import line, and
'BAAI/bge-m3' replaced by the tiny bge-m3 (tests/data/bge-m3-tiny). The printed numbers in the
comments are bge-m3's; what is checked here is that every printed value is what the package's
own core computes for the tiny model, with FlagEmbedding's types.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bge_integrations import BGEM3Embedder
from bge_integrations.core.m3_scoring import colbert_score, lexical_score
from tests.compat.test_model_cards import adapt, run

M3 = "BAAI/bge-m3"

# Edit: devices=['cuda:0'] -> ['cpu'] (no GPU in the test run).
DENSE = """\
from FlagEmbedding import BGEM3FlagModel

model = BGEM3FlagModel('BAAI/bge-m3',
                       use_fp16=True,
                       devices=['cuda:0']) # Setting use_fp16 to True speeds up computation with a slight performance degradation

sentences_1 = ["What is BGE M3?", "Defination of BM25"]
sentences_2 = ["BGE M3 is an embedding model supporting dense retrieval, lexical matching and multi-vector interaction.",
               "BM25 is a bag-of-words retrieval function that ranks a set of documents based on the query terms appearing in each document"]

embeddings_1 = model.encode(sentences_1,
                            batch_size=12,
                            max_length=8192, # If you don't need such a long length, you can set a smaller value to speed up the encoding process.
                            )['dense_vecs']
embeddings_2 = model.encode(sentences_2)['dense_vecs']
similarity = embeddings_1 @ embeddings_2.T
print(similarity)
# [[0.6265, 0.3477], [0.3499, 0.678 ]]
"""

SPARSE = """\
from FlagEmbedding import BGEM3FlagModel

model = BGEM3FlagModel('BAAI/bge-m3',  use_fp16=True) # Setting use_fp16 to True speeds up computation with a slight performance degradation

sentences_1 = ["What is BGE M3?", "Defination of BM25"]
sentences_2 = ["BGE M3 is an embedding model supporting dense retrieval, lexical matching and multi-vector interaction.",
               "BM25 is a bag-of-words retrieval function that ranks a set of documents based on the query terms appearing in each document"]

output_1 = model.encode(sentences_1, return_dense=True, return_sparse=True, return_colbert_vecs=False)
output_2 = model.encode(sentences_2, return_dense=True, return_sparse=True, return_colbert_vecs=False)

# you can see the weight for each token:
print(model.convert_id_to_token(output_1['lexical_weights']))
# [{'What': 0.08356, 'is': 0.0814, 'B': 0.1296, 'GE': 0.252, 'M': 0.1702, '3': 0.2695, '?': 0.04092},
#  {'De': 0.05005, 'fin': 0.1368, 'ation': 0.04498, 'of': 0.0633, 'BM': 0.2515, '25': 0.3335}]


# compute the scores via lexical mathcing
lexical_scores = model.compute_lexical_matching_score(output_1['lexical_weights'][0], output_2['lexical_weights'][0])
print(lexical_scores)
# 0.19554901123046875

print(model.compute_lexical_matching_score(output_1['lexical_weights'][0], output_1['lexical_weights'][1]))
# 0.0
"""

COLBERT = """\
from FlagEmbedding import BGEM3FlagModel

model = BGEM3FlagModel('BAAI/bge-m3',  use_fp16=True)

sentences_1 = ["What is BGE M3?", "Defination of BM25"]
sentences_2 = ["BGE M3 is an embedding model supporting dense retrieval, lexical matching and multi-vector interaction.",
               "BM25 is a bag-of-words retrieval function that ranks a set of documents based on the query terms appearing in each document"]

output_1 = model.encode(sentences_1, return_dense=True, return_sparse=True, return_colbert_vecs=True)
output_2 = model.encode(sentences_2, return_dense=True, return_sparse=True, return_colbert_vecs=True)

print(model.colbert_score(output_1['colbert_vecs'][0], output_2['colbert_vecs'][0]))
print(model.colbert_score(output_1['colbert_vecs'][0], output_2['colbert_vecs'][1]))
# 0.7797
# 0.4620
"""

COMPUTE_SCORE = """\
from FlagEmbedding import BGEM3FlagModel

model = BGEM3FlagModel('BAAI/bge-m3',  use_fp16=True)

sentences_1 = ["What is BGE M3?", "Defination of BM25"]
sentences_2 = ["BGE M3 is an embedding model supporting dense retrieval, lexical matching and multi-vector interaction.",
               "BM25 is a bag-of-words retrieval function that ranks a set of documents based on the query terms appearing in each document"]

sentence_pairs = [[i,j] for i in sentences_1 for j in sentences_2]

print(model.compute_score(sentence_pairs,
                          max_passage_length=128, # a smaller max length leads to a lower latency
                          weights_for_different_modes=[0.4, 0.2, 0.4])) # weights_for_different_modes(w) is used to do weighted sum: w[0]*dense_score + w[1]*sparse_score + w[2]*colbert_score

# {
#   'colbert': [0.7796499729156494, 0.4621465802192688, 0.4523794651031494, 0.7898575067520142],
#   'sparse': [0.195556640625, 0.00879669189453125, 0.0, 0.1802978515625],
#   'dense': [0.6259765625, 0.347412109375, 0.349853515625, 0.67822265625],
#   'sparse+dense': [0.482503205537796, 0.23454029858112335, 0.2332356721162796, 0.5122477412223816],
#   'colbert+sparse+dense': [0.6013619303703308, 0.3255828022956848, 0.32089319825172424, 0.6232916116714478]
# }
"""

SENTENCES_1 = ["What is BGE M3?", "Defination of BM25"]
SENTENCES_2 = [
    "BGE M3 is an embedding model supporting dense retrieval, lexical matching and multi-vector interaction.",
    "BM25 is a bag-of-words retrieval function that ranks a set of documents based on the query terms appearing in each document",
]
ATOL = 1e-5


def core_outputs(path: str, texts: list[str], max_length: int | None = None) -> Any:
    """The same texts through the core's BGEM3Embedder (an independent path to the same numbers)."""
    return BGEM3Embedder(path, device="cpu", max_length=max_length).encode_documents(
        texts, outputs=["dense", "sparse", "colbert"]
    )


def test_dense(tiny_m3_path: str) -> None:
    code = adapt(DENSE, M3, tiny_m3_path, devices=("['cuda:0']", "['cpu']"))
    ns, printed = run(code)
    assert ns["model"].target_devices == ["cpu"]
    assert ns["embeddings_1"].dtype == np.float32  # fp16 asked for, but FlagEmbedding runs fp32 on the CPU
    np.testing.assert_allclose(ns["embeddings_1"], core_outputs(tiny_m3_path, SENTENCES_1).dense, atol=ATOL)
    np.testing.assert_allclose(ns["embeddings_2"], core_outputs(tiny_m3_path, SENTENCES_2).dense, atol=ATOL)
    assert ns["similarity"].shape == (2, 2)
    assert printed.splitlines()[0].startswith("[[")


def test_sparse(tiny_m3_path: str) -> None:
    ns, printed = run(adapt(SPARSE, M3, tiny_m3_path))
    model, lines = ns["model"], printed.splitlines()
    assert len(lines) == 3
    core_1 = core_outputs(tiny_m3_path, SENTENCES_1).sparse
    core_2 = core_outputs(tiny_m3_path, SENTENCES_2).sparse
    tokenizer = model.tokenizer
    expected_tokens = [{tokenizer.decode([i]): np.float32(w) for i, w in s} for s in core_1]
    assert lines[0] == str(expected_tokens)  # a list of two {token: weight} dicts, as the comment shows
    assert abs(float(ns["lexical_scores"]) - lexical_score(core_1[0], core_2[0])) <= ATOL
    assert abs(float(lines[1]) - lexical_score(core_1[0], core_2[0])) <= ATOL
    assert abs(float(lines[2]) - lexical_score(core_1[0], core_1[1])) <= ATOL


def test_colbert(tiny_m3_path: str) -> None:
    ns, printed = run(adapt(COLBERT, M3, tiny_m3_path))
    lines = printed.splitlines()
    assert len(lines) == 2
    assert all(line.startswith("tensor(") for line in lines)  # FlagEmbedding prints a torch scalar
    q = core_outputs(tiny_m3_path, SENTENCES_1).colbert[0]
    p = core_outputs(tiny_m3_path, SENTENCES_2).colbert
    model, out_1, out_2 = ns["model"], ns["output_1"], ns["output_2"]
    for j in range(2):
        assert (
            abs(float(model.colbert_score(out_1["colbert_vecs"][0], out_2["colbert_vecs"][j])) - colbert_score(q, p[j]))
            <= ATOL
        )
        assert abs(float(lines[j].removeprefix("tensor(").removesuffix(")")) - colbert_score(q, p[j])) <= 1e-4


def test_compute_score(tiny_m3_path: str) -> None:
    ns, printed = run(adapt(COMPUTE_SCORE, M3, tiny_m3_path))
    pairs = ns["sentence_pairs"]
    assert len(pairs) == 4
    scores = ns["model"].compute_score(pairs, max_passage_length=128, weights_for_different_modes=[0.4, 0.2, 0.4])
    assert printed.strip() == str(scores)
    queries = core_outputs(tiny_m3_path, SENTENCES_1)
    passages = core_outputs(tiny_m3_path, SENTENCES_2, max_length=128)
    widest = max(len(v) for v in passages.colbert)  # all four pairs are one batch: passages padded to the widest
    for n, (i, j) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        dense = float(queries.dense[i] @ passages.dense[j])
        sparse = lexical_score(queries.sparse[i], passages.sparse[j])
        sims = queries.colbert[i] @ passages.colbert[j].T
        best = sims.max(axis=1)
        if len(passages.colbert[j]) < widest:
            best = np.maximum(best, 0.0)  # FlagEmbedding's max also runs over the zero padding rows
        colbert = float(best.mean())
        assert abs(scores["dense"][n] - dense) <= 1e-4
        assert abs(scores["sparse"][n] - sparse) <= 1e-4
        assert abs(scores["colbert"][n] - colbert) <= 1e-4
        assert abs(scores["sparse+dense"][n] - (0.2 * sparse + 0.4 * dense) / 0.6) <= 1e-4
        assert abs(scores["colbert+sparse+dense"][n] - (0.4 * dense + 0.2 * sparse + 0.4 * colbert)) <= 1e-4
