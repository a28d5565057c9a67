"""A review of the LLM rerankers (issue 14): regression tests of its defects (R1-R5, fixed) and passing probes.

R1: a family check is skipped when the model is already loaded (settings silently ignored).
R2: a checkpoint saved by the package's own layerwise/lightweight model classes reads as a cross-encoder.
R3: emulated bfloat16 on GPUs without native bf16. R4: model_kwargs dtype="auto" ignored.
R5: tokenizer_kwargs split_special_tokens ignored by the LLM pair encoder.
The passing tests are the probes of the review (tokenization against FlagEmbedding's construction,
sharded checkpoints, hub options, concurrency, pickling) kept as regressions.
"""

from __future__ import annotations

import asyncio
import pickle
import random
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import torch

from bge_integrations.core.llm_pairs import LLMPairEncoder
from bge_integrations.core.llm_reranking_model import DEFAULT_PROMPTS, LLMFamily, _model_class
from bge_integrations.core.loading import REGISTRY
from bge_integrations.core.reranker import BGEReranker

DOCS = ["The giant panda is a bear.", "Paris is the capital of France. " * 12, "", "hi"]
QUERIES = ("what is a panda?", "capital of France")


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=["layerwise", "lightweight"])
def layered(request: pytest.FixtureRequest) -> tuple[str, LLMFamily]:
    if request.param == "layerwise":
        return request.getfixturevalue("tiny_llm_layerwise_path"), "llm-layerwise"
    return request.getfixturevalue("tiny_llm_lightweight_path"), "llm-lightweight"


def _close(a: list[float], b: list[float], tol: float = 1e-5) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


# R1: check_llm_settings runs inside load_reranker only, and prompt/cutoff_layers/compress_* are not
# part of the load key, so a second reranker of an already loaded model never has its settings checked:
# compress_ratio on v2-gemma is a ValueError or silently ignored depending on what ran before.
def test_r1_control_fresh_load_refuses_compress_ratio_on_gemma(tiny_llm_gemma_path: str) -> None:
    reranker = BGEReranker(tiny_llm_gemma_path, device="cpu", compress_ratio=2)
    REGISTRY.release(reranker.load_key)
    with pytest.raises(ValueError, match="compress_ratio=2"):
        reranker.score("q", ["p"])


def test_r1_compress_ratio_refused_when_gemma_already_loaded(tiny_llm_gemma_path: str) -> None:
    plain = BGEReranker(tiny_llm_gemma_path, device="cpu")
    plain.score("q", ["p"])
    with pytest.raises(ValueError, match="compress_ratio=2"):
        BGEReranker(tiny_llm_gemma_path, device="cpu", compress_ratio=2).score("q", ["p"])


def test_r1_cutoff_layers_refused_when_gemma_already_loaded(tiny_llm_gemma_path: str) -> None:
    plain = BGEReranker(tiny_llm_gemma_path, device="cpu")
    plain.score("q", ["p"])
    with pytest.raises(ValueError, match="cutoff_layers"):
        BGEReranker(tiny_llm_gemma_path, device="cpu", cutoff_layers=1).score("q", ["p"])


def test_r1_prompt_refused_when_cross_encoder_already_loaded(tiny_reranker_path: str) -> None:
    plain = BGEReranker(tiny_reranker_path, device="cpu")
    plain.score("q", ["p"])
    with pytest.raises(ValueError, match="prompt"):
        BGEReranker(tiny_reranker_path, device="cpu", prompt="Is B relevant to A?").score("q", ["p"])


# R2: save_pretrained of LayerwiseMiniCPMForReranking / LightweightGemma2ForReranking (the classes the
# docs show loading the hub models) writes architectures=[<that class name>], which llm_family does not
# know, so BGEReranker loads the saved checkpoint as a cross-encoder (or refuses its LLM settings).


def test_r2_checkpoint_saved_by_own_model_class_scores_the_same(layered: tuple[str, LLMFamily], tmp_path: Path) -> None:
    path, family = layered
    expected = BGEReranker(path, device="cpu", normalize=False).score(QUERIES[0], DOCS)
    _model_class(family).from_pretrained(path).save_pretrained(tmp_path)
    for file in Path(path).iterdir():
        if "token" in file.name:
            shutil.copy(file, tmp_path)
    got = BGEReranker(str(tmp_path), device="cpu", normalize=False).score(QUERIES[0], DOCS)
    assert _close(got, expected)


# R3: half_dtype asks torch.cuda.is_bf16_supported() with its default including_emulation=True, which is
# True on pre-Ampere GPUs (T4, V100: compute capability < 8) because a bf16 tensor can be made there; so
# use_fp16 on a Colab T4 runs Gemma in emulated bfloat16 (no bf16 tensor cores) instead of float16 as
# FlagEmbedding does. It also asks about the current device, not the one given (cuda:1).


def test_r3_half_dtype_is_float16_on_a_gpu_without_native_bf16() -> None:
    from types import SimpleNamespace

    from bge_integrations.core.llm_reranking_model import half_dtype

    t4 = SimpleNamespace(major=7, minor=5, name="Tesla T4")
    with (
        mock.patch.object(torch.cuda, "is_available", return_value=True),
        mock.patch.object(torch.cuda, "current_device", return_value=0),
        mock.patch.object(torch.cuda, "get_device_properties", return_value=t4),
        mock.patch.object(torch.cuda, "_check_bf16_tensor_supported", return_value=True),  # what a T4 answers
    ):
        assert half_dtype("cuda") == torch.float16


# R4: load_llm_reranker sets dtype=float32 whenever use_fp16 is off and model_kwargs' dtype is not
# float16/bfloat16, so model_kwargs={"dtype": "auto"} (load the checkpoint's dtype) is silently ignored:
# a bf16 checkpoint is loaded in float32, twice its memory. The cross-encoder path leaves "auto" to transformers.


def test_r4_dtype_auto_loads_the_checkpoint_dtype(tiny_llm_gemma_path: str, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(tiny_llm_gemma_path, dtype=torch.bfloat16).save_pretrained(tmp_path)
    for file in Path(tiny_llm_gemma_path).iterdir():
        if "token" in file.name:
            shutil.copy(file, tmp_path)
    reranker = BGEReranker(str(tmp_path), device="cpu", model_kwargs={"dtype": "auto"})
    reranker.score("q", ["p"])
    loaded: Any = reranker._loaded()
    assert loaded.model.dtype == torch.bfloat16


# R5: LLMPairEncoder copies the backend with Tokenizer.from_str(to_str()), which drops the transformers
# tokenizer's split_special_tokens (encode_special_tokens); its probe texts hold no special token, so the
# copy is judged exact and tokenizer_kwargs={"split_special_tokens": True} is silently ignored: a passage
# containing "<eos>" still puts the <eos> id in the model's input. (The cross-encoder PairEncoder shares this.)


def test_r5_split_special_tokens_reaches_the_pair_encoder(tiny_llm_gemma_path: str) -> None:
    reranker = BGEReranker(
        tiny_llm_gemma_path, device="cpu", windows=False, tokenizer_kwargs={"split_special_tokens": True}
    )
    reranker.score("q", ["p"])
    loaded: Any = reranker._loaded()
    config = reranker.config
    encoder = loaded.pair_encoder(config.max_length, config.max_query_length, config.window_overlap)
    passage = "x <eos> y"
    expected = loaded.tokenizer("B: " + passage, add_special_tokens=False)["input_ids"]
    assert loaded.tokenizer.eos_token_id not in expected
    row = encoder.encode("q", [passage], windows=False).input_ids[0]
    assert loaded.tokenizer.eos_token_id not in row


# Probes that passed.


def test_sharded_checkpoint_scores_the_same(layered: tuple[str, LLMFamily], tmp_path: Path) -> None:
    path, family = layered
    expected = BGEReranker(path, device="cpu", normalize=False).score(QUERIES[0], DOCS)
    _model_class(family).from_pretrained(path).save_pretrained(tmp_path, max_shard_size="100KB")
    assert len(list(tmp_path.glob("model-*.safetensors"))) > 1
    for file in Path(path).iterdir():
        if not file.name.endswith(".safetensors"):
            shutil.copy(file, tmp_path)  # the original config.json (architectures) and tokenizer
    got = BGEReranker(str(tmp_path), device="cpu", normalize=False).score(QUERIES[0], DOCS)
    assert _close(got, expected)


@pytest.mark.parametrize("family", ["llm", "llm-layerwise", "llm-lightweight"])
def test_pair_encoder_matches_flagembedding_construction(
    family: LLMFamily, tiny_llm_gemma_path: str, tiny_llm_layerwise_path: str, tiny_llm_lightweight_path: str
) -> None:
    """windows=False ids equal FlagEmbedding's prepare_for_model(only_second) + sep + prompt, fuzzed."""
    from transformers import AutoTokenizer

    path = {"llm": tiny_llm_gemma_path, "llm-layerwise": tiny_llm_layerwise_path}.get(family, tiny_llm_lightweight_path)
    config = None if family == "llm" else _model_class(family).config_class.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path, **({} if config is None else {"config": config}))
    prompt = DEFAULT_PROMPTS[family]
    always = family != "llm"
    rng = random.Random(0)
    words = ["the", "panda", " ", "  ", "\n", "\t", "naïve", "☃", "🙂", "Yes", "B:", "<eos>", "12345", ".", "\u00a0"]

    def text(n: int) -> str:
        return "".join(rng.choice(words) + rng.choice(["", " "]) for _ in range(n))

    sep = tok("\n", add_special_tokens=False)["input_ids"]
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    start = [tok.bos_token_id] if always or tok.bos_token_id != tok.pad_token_id else []
    for _ in range(60):
        max_length = rng.choice([8, 12, 16, 32, 64])
        max_query_length = rng.randint(2, max_length - 1)
        encoder = LLMPairEncoder(
            tok,
            max_length=max_length,
            max_query_length=max_query_length,
            window_overlap=4,
            prompt=prompt,
            always_bos=always,
        )
        query, passages = text(rng.randint(0, 20)), [text(rng.randint(0, 60)) for _ in range(3)]
        batch = encoder.encode(query, passages, windows=False)
        q = tok("A: " + query, add_special_tokens=False, truncation=True, max_length=max_query_length)["input_ids"]
        limit = max_length + len(sep) + len(prompt_ids)
        for i, passage in enumerate(passages):
            p = tok("B: " + passage, add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"]
            first = start + q
            assert batch.input_ids[i] == first + (sep + p)[: limit - len(first)] + sep + prompt_ids


def test_score_pairs_async_and_threads_mixing_queries_with_layers(layered: tuple[str, LLMFamily]) -> None:
    path, _ = layered
    reranker = BGEReranker(
        path, device="cpu", normalize=False, cutoff_layers=[3, 6], max_length=32, max_query_length=16
    )
    ref = {q: reranker.score(q, DOCS) for q in QUERIES}
    pairs = [(q, d) for d in DOCS for q in QUERIES]
    assert _close(reranker.score_pairs(pairs), [ref[q][DOCS.index(d)] for q, d in pairs])

    async def both() -> list[list[float]]:
        return list(await asyncio.gather(*[reranker.ascore(q, DOCS) for q in QUERIES * 3]))

    assert all(_close(row, ref[q]) for row, q in zip(asyncio.run(both()), QUERIES * 3, strict=True))
    with ThreadPoolExecutor(4) as pool:
        rows = list(pool.map(lambda q: reranker.score(q, DOCS), QUERIES * 4))
    assert all(_close(row, ref[q]) for row, q in zip(rows, QUERIES * 4, strict=True))
    layers = reranker.score_layers(QUERIES[0], DOCS)
    assert list(layers) == [3, 6]
    assert _close(layers[6], ref[QUERIES[0]])


def test_pickles_after_async_use(layered: tuple[str, LLMFamily]) -> None:
    path, _ = layered
    reranker = BGEReranker(path, device="cpu", cutoff_layers=[2, 6])
    scores = asyncio.run(reranker.ascore(QUERIES[0], DOCS))
    assert _close(pickle.loads(pickle.dumps(reranker)).score(QUERIES[0], DOCS), scores)


def test_hub_options_reach_config_tokenizer_and_weights_without_remote_code(
    tiny_llm_layerwise_path: str, tmp_path: Path
) -> None:
    import transformers

    family_class = _model_class("llm-layerwise")
    calls: list[tuple[str, dict[str, Any]]] = []

    def spy(owner: Any) -> Any:
        original = owner.from_pretrained.__func__

        def wrapped(cls: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append((owner.__name__, kwargs))
            return original(cls, *args, **kwargs)

        return mock.patch.object(owner, "from_pretrained", classmethod(wrapped))

    with spy(transformers.AutoTokenizer), spy(family_class), spy(family_class.config_class):
        BGEReranker(
            tiny_llm_layerwise_path,
            device="cpu",
            revision="main",
            token="hf_x",
            cache_folder=tmp_path,
            local_files_only=True,
        ).score("q", ["p"])
    assert len(calls) == 3
    for _, kwargs in calls:
        assert kwargs["revision"] == "main"
        assert kwargs["token"] == "hf_x"
        assert kwargs["cache_dir"] == str(tmp_path)
        assert kwargs["local_files_only"] is True
        assert not kwargs.get("trust_remote_code")


def test_two_settings_share_one_loaded_model_concurrently(tiny_llm_lightweight_path: str) -> None:
    """Different prompt/layers/compression on one loaded model, from threads: each keeps its own scores."""
    docs = DOCS * 3
    first = BGEReranker(
        tiny_llm_lightweight_path,
        device="cpu",
        normalize=False,
        cutoff_layers=[3, 6],
        compress_ratio=2,
        compress_layers=[2],
        batch_size=3,
    )
    second = BGEReranker(
        tiny_llm_lightweight_path, device="cpu", normalize=False, prompt="Is B relevant to A?", cutoff_layers=4
    )
    ref = [first.score(QUERIES[0], docs), second.score(QUERIES[0], docs)]
    assert first._loaded() is second._loaded()
    assert not _close(ref[0], ref[1], tol=1e-3)
    with ThreadPoolExecutor(4) as pool:
        rows = list(pool.map(lambda i: (first, second)[i % 2].score(QUERIES[0], docs), range(12)))
    assert all(_close(row, ref[i % 2]) for i, row in enumerate(rows))


def test_concurrent_loads_leave_weight_tying_on(
    tiny_st_embedder_path: str, tiny_reranker_path: str, tiny_llm_gemma_path: str
) -> None:
    """transformers 5 swaps ``PreTrainedModel.tie_weights`` out on the class while it loads; two loads in
    two threads could leave it swapped out for good, and Gemma's tied output head then never loaded.
    Loads through this package are serialised (``MODEL_LOAD_LOCK``)."""
    from transformers import PreTrainedModel

    from bge_integrations import BGEEmbedder
    from bge_integrations.core.loading import REGISTRY

    tie_weights = PreTrainedModel.tie_weights
    for _ in range(3):
        REGISTRY.clear()
        with ThreadPoolExecutor(8) as pool:
            jobs = [pool.submit(BGEEmbedder(tiny_st_embedder_path, device="cpu").embed_query, "q") for _ in range(4)]
            jobs += [pool.submit(BGEReranker(tiny_reranker_path, device="cpu").score, "q", ["p"]) for _ in range(4)]
            for job in jobs:
                job.result()
    assert PreTrainedModel.tie_weights is tie_weights
    assert len(BGEReranker(tiny_llm_gemma_path, device="cpu").score("what is a panda?", ["a bear"])) == 1
