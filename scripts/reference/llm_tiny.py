"""The tokenizer shared by the tiny LLM-reranker checkpoints (Gemma, MiniCPM-layerwise, lightweight Gemma2).

Not part of the package. The reference scripts (``make_llm_*_reference.py``) run it once in the throwaway
FlagEmbedding venv to build the checkpoints under ``tests/data/``; the saved files are committed and
never rebuilt (BPE training is deterministic here, but the committed files are what the references
were made from).

The tokenizer is Gemma-shaped: ``<pad>`` 0, ``<eos>`` 1, ``<bos>`` 2, ``<unk>`` 3, a byte-level BPE
without a prefix space, so that ``"Yes"`` is one token (FlagEmbedding reads the logit of
``tokenizer("Yes", add_special_tokens=False).input_ids[0]``), ``"\\n"`` is one token, and the
default prompts split into several tokens. Right padding, as FlagEmbedding's lightweight reranker
forces and as the tiny models are scored.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>"]

CORPUS = [
    "Given a query A and a passage B, determine whether the passage contains an answer to the query "
    "by providing a prediction of either 'Yes' or 'No'.",
    "Predict whether passage B contains an answer to query A.",
    "A: what is a panda?\nB: The giant panda is a bear native to China.\nYes No Yes No",
    "the cat sat on the mat and the cat sat again. hello world, how are you? fine thanks.",
    "a quick brown fox jumps over the lazy dog, while the small bird sings near the old river bank.",
    "retrieval augmented generation ranks passages for a question with a reranker model.",
    "Paris is the capital of France. Berlin is the capital of Germany. 2024-12-31: 100% ok.",
]


# The (query, passage) pairs the layerwise and lightweight references score.
PAIRS: list[list[str]] = [
    ["what is panda?", "hi"],
    [
        "what is panda?",
        "The giant panda (Ailuropoda melanoleuca), sometimes called a panda bear or simply panda, "
        "is a bear species endemic to China.",
    ],
    ["what is panda?", ""],
    ["hello world", "hello world, how are you? fine thanks."],
    [
        "a quick brown fox jumps over the lazy dog",
        "a quick brown fox jumps over the lazy dog, while the small bird sings near the old river bank. "
        "the cat sat on the mat and the cat sat again.",
    ],
    ["Paris", "Paris is the capital of France. Berlin is the capital of Germany."],
    ["naïve café ☃ 🙂", "中文 测试 señor"],
    ["what is panda?", "The giant panda is a bear native to China."],
    ["Yes or No?", "Yes"],
    ["retrieval augmented generation", "a reranker model ranks passages for a question."],
]


def sha256(path: Path) -> str:
    """The hex sha256 of a file (recorded for every checkpoint file)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_tokenizer(vocab_size: int = 400) -> PreTrainedTokenizerFast:
    """Train the tiny byte-level BPE tokenizer (deterministic for a fixed corpus and vocab size)."""
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(CORPUS * 4, trainer=trainer)
    bos = backend.token_to_id("<bos>")
    backend.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", bos)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        pad_token="<pad>",
        padding_side="right",
        model_max_length=8192,
    )
    if len(tokenizer("Yes", add_special_tokens=False)["input_ids"]) != 1:
        msg = "the tiny tokenizer must keep 'Yes' as one token"
        raise RuntimeError(msg)
    return tokenizer


def save_tokenizer(folder: Path) -> PreTrainedTokenizerFast:
    """Build the tokenizer and save it in folder."""
    tokenizer = build_tokenizer()
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder)
    return tokenizer
