"""encode_beginnings: a long text's window, tokenised from a prefix, is the whole text's window."""

from __future__ import annotations

import base64
import random

import pytest
from tokenizers import Encoding, Tokenizer

from bge_integrations.core.clipping import (
    CLIP_CHARS_PER_TOKEN,
    CLIP_GROWTH,
    CLIP_MAX_CHARS_PER_TOKEN,
    encode_beginnings,
    encode_prefixes,
    splits_locally,
)
from tests.tiny_models import _bert_tokenizer, _xlmr_tokenizer

WORDS = ["panda", "the", "capital", "France", "为这个句子", "0123", "!?", "mitochondria", "\n", "é", "a" * 300]


@pytest.fixture(scope="module", params=["wordpiece", "unigram"])
def backend(request: pytest.FixtureRequest) -> Tokenizer:
    tokenizer = _bert_tokenizer() if request.param == "wordpiece" else _xlmr_tokenizer()
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_padding()
    backend.no_truncation()
    assert splits_locally(backend)
    return backend


def _texts(seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = [
        "".join(rng.choice(WORDS) + " " * rng.choice([1, 1, 2, 40]) for _ in range(rng.choice([1, 40, 400, 2000])))
        for _ in range(20)
    ]
    return [*texts, "", " " * 5000, "a" * 20_000, "b " * 100 + "c" * 10_000, "x " * 300 + " " * 10_000]


class _Recorder:
    def __init__(self, backend: Tokenizer) -> None:
        self.backend = backend
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> list[Encoding]:
        self.calls.append(texts)
        return self.backend.encode_batch(texts, add_special_tokens=False)


@pytest.mark.parametrize("window", [4, 16, 64])
def test_window_is_the_whole_texts_window(backend: Tokenizer, window: int) -> None:
    texts = _texts(window)
    whole = backend.encode_batch(texts, add_special_tokens=False)
    encoder = _Recorder(backend)
    beginnings = encode_beginnings(texts, window, encoder, clips=True)
    assert len(beginnings) == len(texts)
    for mine, full in zip(beginnings, whole, strict=True):
        assert mine.ids[:window] == full.ids[:window]
        assert mine.offsets[:window] == full.offsets[:window]
        assert (len(mine.ids) > window) == (len(full.ids) > window)
    assert any(len(prefix) < len(text) for prefix, text in zip(encoder.calls[0], texts, strict=True))


@pytest.mark.parametrize("window", [8, 32])
def test_a_truncating_encoder_gives_the_whole_texts_encoding(backend: Tokenizer, window: int) -> None:
    truncating = Tokenizer.from_str(backend.to_str())
    truncating.enable_truncation(window)
    texts = _texts(window + 1)
    whole = truncating.encode_batch(texts, add_special_tokens=True)
    beginnings = encode_beginnings(
        texts, window, lambda batch: truncating.encode_batch(batch, add_special_tokens=True), clips=True
    )
    for mine, full in zip(beginnings, whole, strict=True):
        assert (mine.ids, mine.offsets, bool(mine.overflowing)) == (full.ids, full.offsets, bool(full.overflowing))


def test_a_prefix_that_cannot_settle_the_window_is_encoded_whole(backend: Tokenizer) -> None:
    window = 8
    unsettled = "word" + " " * (CLIP_CHARS_PER_TOKEN * window)  # the prefix's only word is its last
    settled = "word " * (CLIP_CHARS_PER_TOKEN * window)
    encoder = _Recorder(backend)
    encode_beginnings(["short", unsettled, settled], window, encoder, clips=True)
    assert len(encoder.calls) == 2
    assert encoder.calls[0][0] == "short"
    assert len(encoder.calls[0][1]) < len(unsettled)
    assert len(encoder.calls[0][2]) < len(settled)
    assert encoder.calls[1] == [unsettled]


def test_without_clips_texts_are_encoded_as_they_are(backend: Tokenizer) -> None:
    texts = ["word " * 10_000, "short"]
    encoder = _Recorder(backend)
    encodings = encode_beginnings(texts, 4, encoder, clips=False)
    assert encoder.calls == [texts]
    assert len(encodings[0].ids) >= 10_000


@pytest.mark.parametrize("window", [16, 64])
def test_text_without_spaces_is_encoded_from_a_prefix_with_the_whole_texts_window(
    backend: Tokenizer, window: int
) -> None:
    # Cut anywhere, the window holds when it ends before the prefix's last pre-token (BERT splits
    # "a,a,a" at every comma); inside one huge word (SentencePiece: no split at all), two cuts
    # must agree. Before, a text without a space was always tokenised whole.
    rng = random.Random(window)
    texts = [
        "a," * 50_000,
        base64.b64encode(rng.randbytes(60_000)).decode(),
        "".join(rng.choice("abc,.") for _ in range(80_000)),
    ]
    whole = backend.encode_batch(texts, add_special_tokens=False)
    encoder = _Recorder(backend)
    encodings, sources = encode_prefixes(texts, window, encoder, clips=True)
    for mine, full, source, text in zip(encodings, whole, sources, texts, strict=True):
        assert mine.ids[:window] == full.ids[:window]
        assert text.startswith(source)
        assert len(source) <= CLIP_GROWTH * CLIP_CHARS_PER_TOKEN * window < len(text)
    assert max(len(text) for call in encoder.calls for text in call) <= CLIP_GROWTH * CLIP_CHARS_PER_TOKEN * window


def test_a_window_that_no_prefix_settles_stops_at_the_bound(backend: Tokenizer) -> None:
    bound = CLIP_MAX_CHARS_PER_TOKEN * 512
    blank = "x " * 3 + " " * (3 * bound)  # the window never fills
    encoder = _Recorder(backend)
    (encoding,), (source,) = encode_prefixes([blank], 8, encoder, clips=True)
    assert len(source) <= bound
    assert max(len(text) for call in encoder.calls for text in call) <= bound
    assert encoding.ids == backend.encode(blank, add_special_tokens=False).ids  # (here, also exact)


def test_a_prefix_that_holds_is_what_is_returned_as_the_source(backend: Tokenizer) -> None:
    texts = ["short", "word " * 10_000]
    _, sources = encode_prefixes(texts, 8, _Recorder(backend), clips=True)
    assert sources[0] is texts[0]
    assert texts[1].startswith(sources[1])
    assert len(sources[1]) < CLIP_CHARS_PER_TOKEN * 8
