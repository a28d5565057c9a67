"""bge-m3: the cost of sparse (and ColBERT) outputs from one pass, against dense alone and two-object setups.

``python -m benchmarks.m3`` embeds the same SciFact documents with each contestant, round-robin
over ``--repeats`` (so noise on a shared machine falls on all alike), and prints a Markdown table:
documents/s (median and best repeat) and time as a multiple of dense alone.

Contestants:

* ``dense alone``: ``BGEM3Embedder.embed_documents`` (what any dense integration does);
* ``dense+sparse, one pass`` / ``dense+sparse+colbert, one pass``: ``encode_documents(outputs=...)``,
  what ``BGEM3DocumentEmbedder`` (Haystack), the bulk CLI and the hybrid examples use;
* ``dense object + sparse object``: the usual two-component setup of a hybrid vector store (a
  dense embeddings object and a sparse one, each running the model on the same texts), in the core
  and through each framework's adapters (LangChain ``BGEEmbeddings`` + ``BGEM3SparseEmbeddings``,
  LlamaIndex ``BGEEmbedding`` + ``BGEM3SparseEmbedding``, Haystack dense + sparse document embedders).

The model is ``--model bge-m3``: random weights in bge-m3's shape (XLM-RoBERTa large: 24 layers,
1024 wide, 16 heads; ``sparse_linear`` 1024->1, ``colbert_linear`` 1024->1024), which cost what the
real weights cost. Its real tokenizer (250k SentencePiece pieces) is not available offline, so it
reads BERT WordPiece tokens (MiniLM's): token counts differ a little from the real tokenizer's, cost
per token does not. ``--layers`` builds a shallower one for a quick look (the heads then weigh more).
"""

from __future__ import annotations

import argparse
import random
import statistics
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.backends import load, machine, time_call
from benchmarks.models import CACHE, _tokenizer
from benchmarks.workloads import DEFAULT_DATA
from bge_integrations import BGEM3Embedder, TruncationWarning, clear_model_cache
from bge_integrations.evaluation import load_beir


def m3_path(layers: int = 24, cache: Path = CACHE) -> Path:
    """A random-weight model in bge-m3's shape (layers deep), with both heads, built on first use."""
    import shutil

    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    folder = cache / "models" / ("bge-m3" if layers == 24 else f"bge-m3-{layers}-layers")
    if (folder / "DONE").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    tokenizer = _tokenizer()
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=1024,
        num_hidden_layers=layers,
        num_attention_heads=16,
        intermediate_size=4096,
        max_position_embeddings=514,
        type_vocab_size=2,
        pad_token_id=tokenizer.pad_token_id,
    )
    XLMRobertaModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    torch.save(torch.nn.Linear(1024, 1).state_dict(), folder / "sparse_linear.pt")
    torch.save(torch.nn.Linear(1024, 1024).state_dict(), folder / "colbert_linear.pt")
    (folder / "DONE").touch()
    return folder


def contestants(path: str, batch_size: int) -> dict[str, Callable[[list[str]], Any]]:
    """Name -> a call that embeds a list of documents, all on one shared model."""
    settings: dict[str, Any] = {"device": "cpu", "batch_size": batch_size, "max_length": 512}
    m3 = BGEM3Embedder(path, **settings)
    calls: dict[str, Callable[[list[str]], Any]] = {
        "dense alone": m3.embed_documents,
        "dense+sparse, one pass": lambda texts: m3.encode_documents(texts, outputs="dense,sparse"),
        "dense+sparse+colbert, one pass": lambda texts: m3.encode_documents(texts, outputs="dense,sparse,colbert"),
        "dense object + sparse object (core)": lambda texts: (
            m3.embed_documents(texts),
            m3.embed_sparse_documents(texts),
        ),
    }
    calls.update(_framework_pairs(path, settings))
    return calls


def _framework_pairs(path: str, settings: dict[str, Any]) -> dict[str, Callable[[list[str]], Any]]:
    """The two-object setups through each framework's adapters (where the framework is installed)."""
    calls: dict[str, Callable[[list[str]], Any]] = {}
    try:
        from bge_integrations.langchain import BGEEmbeddings
        from bge_integrations.langchain.m3_qdrant import BGEM3SparseEmbeddings

        lc_dense = BGEEmbeddings(model_name=path, **settings)
        lc_sparse = BGEM3SparseEmbeddings(model_name=path, **settings)
        calls["LangChain dense + sparse objects"] = lambda texts: (
            lc_dense.embed_documents(texts),
            lc_sparse.embed_documents(texts),
        )
    except ImportError as error:
        print(f"(LangChain pair skipped: {error})")
    try:
        from bge_integrations.llama_index import BGEEmbedding
        from bge_integrations.llama_index.m3 import BGEM3SparseEmbedding

        li_dense = BGEEmbedding(model_name=path, **settings)
        li_sparse = BGEM3SparseEmbedding(model_name=path, **settings)
        calls["LlamaIndex dense + sparse objects"] = lambda texts: (
            li_dense.get_text_embedding_batch(texts),
            li_sparse.get_text_embedding_batch(texts),
        )
    except ImportError as error:
        print(f"(LlamaIndex pair skipped: {error})")
    try:
        from haystack import Document

        from bge_integrations.haystack import BGEDocumentEmbedder
        from bge_integrations.haystack.m3 import BGEM3DocumentEmbedder, BGEM3SparseDocumentEmbedder

        hs_dense = BGEDocumentEmbedder(model=path, progress_bar=False, **settings)
        hs_sparse = BGEM3SparseDocumentEmbedder(model=path, progress_bar=False, **settings)
        hs_both = BGEM3DocumentEmbedder(model=path, progress_bar=False, **settings)
        for component in (hs_dense, hs_sparse, hs_both):
            component.warm_up()

        def haystack_pair(texts: list[str]) -> Any:
            docs = [Document(content=text) for text in texts]
            docs = hs_dense.run(documents=docs)["documents"]
            return hs_sparse.run(documents=docs)["documents"]

        calls["Haystack dense + sparse components"] = haystack_pair
        calls["Haystack BGEM3DocumentEmbedder (one pass)"] = lambda texts: hs_both.run(
            documents=[Document(content=text) for text in texts]
        )
    except ImportError as error:
        print(f"(Haystack pair skipped: {error})")
    return calls


def main(argv: list[str] | None = None) -> int:
    """Time every contestant round-robin and print the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.m3", description=__doc__)
    parser.add_argument("--layers", type=int, default=24, help="encoder depth (bge-m3: 24)")
    parser.add_argument("--model-path", help="run this bge-m3 checkpoint folder instead")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--documents", type=int, default=32, help="SciFact documents embedded per timed run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--only", nargs="+", help="run only contestants whose name contains one of these")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=TruncationWarning)
    path = args.model_path or str(m3_path(args.layers))
    corpus = load_beir(args.data).doc_texts
    texts = random.Random(0).sample(corpus, min(args.documents, len(corpus)))
    print(f"Machine: {machine()}")
    print(f"Model: {args.model_path or f'bge-m3 shape, {args.layers} layers, random weights'}; ", end="")
    print(f"{len(texts)} SciFact documents, batch size {args.batch_size}, 512 tokens at most\n")
    calls = contestants(path, args.batch_size)
    if args.only:
        wanted = args.only
        calls = {name: call for name, call in calls.items() if name == "dense alone" or any(o in name for o in wanted)}
    for call in calls.values():  # load, warm up
        call(texts[:2])
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(args.repeats):
        for name, call in calls.items():
            times[name].append(time_call(lambda call=call: call(texts)))
    print(f"Load average after the timed runs: {load()}\n")
    base = statistics.median(times["dense alone"])
    best_base = min(times["dense alone"])
    print(
        "| setup | documents/s (median) | time × dense alone (median) | documents/s (best) "
        "| time × dense alone (best) |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, seconds in times.items():
        median, best = statistics.median(seconds), min(seconds)
        print(
            f"| {name} | {len(texts) / median:.2f} | {median / base:.3f} | {len(texts) / best:.2f} | "
            f"{best / best_base:.3f} |"
        )
    clear_model_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
