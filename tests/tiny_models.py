"""Tiny BGE-shaped models built offline: real architectures, random weights, trained tokenizers.

* ``build_embedder``: a 1-layer BERT saved the way ``transformers`` saves a fine-tuned BGE
  (no sentence-transformers config); ``add_sentence_transformers_config`` copies it and adds
  the config the hub's BGE repos have (CLS pooling, Normalize, a query prompt).
  Tokenizer training is not deterministic, so derived checkpoints copy, never rebuild.
* ``build_reranker``: a 1-layer XLM-RoBERTa sequence classifier with one label, the
  architecture of bge-reranker-base/large and bge-reranker-v2-m3, with a Unigram tokenizer.
* ``build_m3``: the bge-m3 layout: an XLM-RoBERTa encoder with ``sparse_linear.pt`` and
  ``colbert_linear.pt`` beside it and the hub repo's sentence-transformers config (CLS pooling,
  Normalize). The copy in ``tests/data/bge-m3-tiny`` is the one FlagEmbedding's reference
  outputs were computed on (``scripts/reference/make_m3_reference.py``); tests use that copy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import (
    BertConfig,
    BertModel,
    BertTokenizer,
    XLMRobertaConfig,
    XLMRobertaForSequenceClassification,
    XLMRobertaModel,
    XLMRobertaTokenizer,
)

from bge_integrations.core.instructions import EN_QUERY_INSTRUCTION

CORPUS = [
    "Represent this sentence for searching relevant passages: ",
    "The giant panda is a bear species endemic to China.",
    "Paris is the capital and most populous city of France.",
    "BGE models map text to dense vectors for retrieval.",
    "A cross-encoder reads the query and the passage together.",
    "Mitochondria are the powerhouse of the cell.",
    "The quick brown fox jumps over the lazy dog.",
    "Retrieval augmented generation grounds answers in documents.",
    "Vitamin D deficiency is common in northern latitudes.",
    "What is the capital of France? Where do pandas live?",
    "0123456789 numbers, punctuation; and symbols: % & ( ) [ ] ! ?",
    "为这个句子生成表示以用于检索相关文章：熊猫生活在中国。",
]
VOCAB_SIZE = 400
INIT_RANGE = 0.5
"""Weight scale of the tiny models. BERT's default (0.02) makes a 1-layer model nearly constant:
every text's vector has cosine ~1.0 with every other and reranker logits agree to 1e-5, so an
equivalence test at 1e-5 could not tell two texts apart. At 0.5, cosines spread over 0.5-0.95
and logits over about -0.2..1.1."""


def _bert_tokenizer() -> BertTokenizer:
    trained = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    trained.normalizer = normalizers.BertNormalizer(lowercase=True)
    trained.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    )
    trained.train_from_iterator(CORPUS * 20, trainer)
    vocab = dict(sorted(trained.get_vocab().items(), key=lambda item: item[1]))
    return BertTokenizer(vocab=vocab, model_max_length=512)


def _xlmr_tokenizer() -> XLMRobertaTokenizer:
    trained = Tokenizer(models.Unigram())
    trained.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], unk_token="<unk>"
    )
    trained.train_from_iterator(CORPUS * 20, trainer)
    vocab = [tuple(piece) for piece in json.loads(trained.to_str())["model"]["vocab"]]
    return XLMRobertaTokenizer(vocab=vocab, model_max_length=512)


def build_embedder(folder: Path, *, max_length: int = 512) -> Path:
    """Save a tiny BERT embedder in folder and return folder."""
    torch.manual_seed(0)
    tokenizer = _bert_tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_length,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=INIT_RANGE,
    )
    model = BertModel(config, add_pooling_layer=False)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def add_sentence_transformers_config(source: Path, folder: Path) -> Path:
    """Copy the plain checkpoint source to folder and add a sentence-transformers config
    (CLS pooling, Normalize, the EN query prompt), as the hub's BGE repos have."""
    shutil.copytree(source, folder)
    hidden = json.loads((folder / "config.json").read_text())["hidden_size"]
    max_length = 512
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_length, "do_lower_case": True}))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    pooling = {"word_embedding_dimension": hidden, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    (folder / "2_Normalize").mkdir(exist_ok=True)
    (folder / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": {"query": EN_QUERY_INSTRUCTION}, "default_prompt_name": None})
    )
    return folder


def build_reranker(folder: Path, *, max_length: int = 512) -> Path:
    """Save a tiny XLM-RoBERTa cross-encoder (one label) in folder and return folder."""
    torch.manual_seed(0)
    tokenizer = _xlmr_tokenizer()
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_length + 2,
        type_vocab_size=1,
        num_labels=1,
        initializer_range=INIT_RANGE,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = XLMRobertaForSequenceClassification(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_m3(folder: Path, *, max_length: int = 512) -> Path:
    """Save a tiny bge-m3 (XLM-RoBERTa encoder, sparse and ColBERT heads) in folder and return folder."""
    torch.manual_seed(0)
    tokenizer = _xlmr_tokenizer()
    hidden = 32
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_length + 2,
        type_vocab_size=1,
        initializer_range=INIT_RANGE,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = XLMRobertaModel(config)  # with the pooler, as the real checkpoint (unused: CLS pooling)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    # bge-m3's heads: Linear(hidden, 1) for lexical weights, Linear(hidden, hidden) for ColBERT.
    sparse = torch.nn.Linear(hidden, 1)
    with torch.no_grad():
        # A random head gives most tokens a negative logit (weight 0 after relu): shift it so that
        # about 60% of the corpus's tokens get a weight, as a trained head gives most words.
        batch = tokenizer(CORPUS, padding=True, return_tensors="pt")
        states = model(**batch).last_hidden_state[batch["attention_mask"].bool()]
        sparse.bias -= torch.quantile(sparse(states).squeeze(-1), 0.4)
    torch.save(sparse.state_dict(), folder / "sparse_linear.pt")
    torch.save(torch.nn.Linear(hidden, hidden).state_dict(), folder / "colbert_linear.pt")
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules, indent=2))
    st_config = {"max_seq_length": max_length, "do_lower_case": False}
    (folder / "sentence_bert_config.json").write_text(json.dumps(st_config))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    pooling = {"word_embedding_dimension": hidden, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2))
    (folder / "2_Normalize").mkdir(exist_ok=True)
    return folder
