"""BGEEmbedder against the reference code of the BGE model card, on tiny offline models."""

from __future__ import annotations

import asyncio
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from bge_integrations import BGEEmbedder, TruncationWarning
from bge_integrations.core.checkpoints import read_local_checkpoint
from bge_integrations.core.instructions import EN_QUERY_INSTRUCTION
from bge_integrations.core.loading import REGISTRY

TEXTS = [
    "The giant panda is a bear species endemic to China.",
    "Paris is the capital and most populous city of France.",
    "short",
    "",
]


def reference_cls_embeddings(path: str, texts: list[str], max_length: int = 512) -> np.ndarray:
    """The BGE model card's transformers code: CLS of the last hidden state, L2-normalised."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    encoded = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        cls = model(**encoded)[0][:, 0]
    return torch.nn.functional.normalize(cls, p=2, dim=1).numpy()


class TestEquivalence:
    def test_documents_equal_reference_cls_pooling(self, tiny_embedder_path: str) -> None:
        ours = np.array(BGEEmbedder(tiny_embedder_path, device="cpu").embed_documents(TEXTS))
        np.testing.assert_allclose(ours, reference_cls_embeddings(tiny_embedder_path, TEXTS), atol=1e-5)

    def test_queries_equal_reference_with_instruction(self, tiny_embedder_path: str) -> None:
        ours = np.array(BGEEmbedder(tiny_embedder_path, device="cpu").embed_queries(TEXTS))
        expected = reference_cls_embeddings(tiny_embedder_path, [EN_QUERY_INSTRUCTION + t for t in TEXTS])
        np.testing.assert_allclose(ours, expected, atol=1e-5)

    def test_truncated_inputs_equal_reference(self, tiny_embedder_path: str) -> None:
        long_texts = ["panda bear china " * 300, "capital of france " * 5]
        with pytest.warns(TruncationWarning, match="1 of 2 documents"):
            ours = np.array(BGEEmbedder(tiny_embedder_path, device="cpu", max_length=64).embed_documents(long_texts))
        np.testing.assert_allclose(ours, reference_cls_embeddings(tiny_embedder_path, long_texts, 64), atol=1e-5)

    def test_sentence_transformers_checkpoint_equals_plain_one(
        self, tiny_embedder_path: str, tiny_st_embedder_path: str
    ) -> None:
        plain = BGEEmbedder(tiny_embedder_path, device="cpu")
        packaged = BGEEmbedder(tiny_st_embedder_path, device="cpu")
        np.testing.assert_allclose(plain.embed_queries(TEXTS), packaged.embed_queries(TEXTS), atol=1e-6)
        np.testing.assert_allclose(plain.embed_documents(TEXTS), packaged.embed_documents(TEXTS), atol=1e-6)


class TestInstruction:
    def test_instruction_on_queries_only(self, tiny_embedder_path: str) -> None:
        embedder = BGEEmbedder(tiny_embedder_path, device="cpu")
        no_instruction = BGEEmbedder(tiny_embedder_path, device="cpu", query_instruction="")
        assert embedder.config.query_instruction == EN_QUERY_INSTRUCTION
        np.testing.assert_allclose(embedder.embed_documents(TEXTS), no_instruction.embed_queries(TEXTS), atol=1e-6)
        assert not np.allclose(embedder.embed_queries(TEXTS), embedder.embed_documents(TEXTS))

    def test_explicit_instruction_wins(self, tiny_embedder_path: str) -> None:
        embedder = BGEEmbedder(tiny_embedder_path, device="cpu", query_instruction="query: ")
        assert embedder.config.query_instruction == "query: "
        expected = reference_cls_embeddings(tiny_embedder_path, ["query: " + t for t in TEXTS])
        np.testing.assert_allclose(embedder.embed_queries(TEXTS), expected, atol=1e-5)

    def test_document_instruction(self, tiny_embedder_path: str) -> None:
        embedder = BGEEmbedder(tiny_embedder_path, device="cpu", document_instruction="passage: ")
        expected = reference_cls_embeddings(tiny_embedder_path, ["passage: " + t for t in TEXTS])
        np.testing.assert_allclose(embedder.embed_documents(TEXTS), expected, atol=1e-5)

    def test_checkpoint_prompt_is_used(self, tiny_st_embedder_path: str) -> None:
        assert BGEEmbedder(tiny_st_embedder_path).config.query_instruction == EN_QUERY_INSTRUCTION

    def test_same_model_different_instructions_share_weights(self, tiny_embedder_path: str) -> None:
        a = BGEEmbedder(tiny_embedder_path, device="cpu")
        b = BGEEmbedder(tiny_embedder_path, device="cpu", query_instruction="")
        a.embed_query("x")
        b.embed_query("x")
        assert REGISTRY.load_count == 1

    def test_embed_query_equals_embed_queries(self, tiny_embedder_path: str) -> None:
        embedder = BGEEmbedder(tiny_embedder_path, device="cpu")
        assert embedder.embed_query(TEXTS[0]) == embedder.embed_queries([TEXTS[0]])[0]


class TestPoolingAndNormalisation:
    def test_plain_checkpoint_uses_cls_and_normalises(self, tiny_embedder_path: str) -> None:
        config = BGEEmbedder(tiny_embedder_path).config
        assert (config.pooling, config.normalize, config.max_length) == ("cls", True, 512)
        vectors = np.array(BGEEmbedder(tiny_embedder_path, device="cpu").embed_documents(TEXTS))
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)

    def test_unknown_plain_checkpoint_gets_bge_conventions_and_a_warning(
        self, tiny_embedder_path: str, tmp_path: Path
    ) -> None:
        unknown = tmp_path / "checkpoint-1000"
        shutil.copytree(tiny_embedder_path, unknown)
        embedder = BGEEmbedder(str(unknown), device="cpu")
        assert embedder.config.preset is None
        assert embedder.config.query_instruction == ""
        with pytest.warns(UserWarning, match="not a known BGE model"):
            vectors = embedder.embed_documents(TEXTS)
        np.testing.assert_allclose(vectors, reference_cls_embeddings(tiny_embedder_path, TEXTS), atol=1e-5)

    def test_recorded_base_model_is_recognised(self, tiny_embedder_path: str, tmp_path: Path) -> None:
        folder = tmp_path / "my-finetune"
        shutil.copytree(tiny_embedder_path, folder)
        config = json.loads((folder / "config.json").read_text())
        config["_name_or_path"] = "BAAI/bge-base-zh-v1.5"
        (folder / "config.json").write_text(json.dumps(config))
        assert BGEEmbedder(str(folder)).config.preset == "BAAI/bge-base-zh-v1.5"

    @pytest.mark.parametrize(
        "line",
        [
            'base_model: "BAAI/bge-base-zh-v1.5"',
            "base_model: BAAI/bge-base-zh-v1.5  # the base",
            "base_model: 'BAAI/bge-base-zh-v1.5'",
            "base_model: [BAAI/bge-base-zh-v1.5, other/model]",
            "base_model:\n- BAAI/bge-base-zh-v1.5",
        ],
    )
    def test_model_card_base_model_is_recognised(self, tiny_embedder_path: str, tmp_path: Path, line: str) -> None:
        folder = tmp_path / "my-model"
        shutil.copytree(tiny_embedder_path, folder)
        config = json.loads((folder / "config.json").read_text())
        config.pop("_name_or_path", None)
        (folder / "config.json").write_text(json.dumps(config))
        assert BGEEmbedder(str(folder)).config.preset is None
        (folder / "README.md").write_text(f"---\nlicense: mit\n{line}\ntags:\n- bge\n---\n# my model\n")
        assert read_local_checkpoint(str(folder)).base_model == "BAAI/bge-base-zh-v1.5"
        assert BGEEmbedder(str(folder)).config.preset == "BAAI/bge-base-zh-v1.5"

    def test_model_card_without_front_matter_names_no_base(self, tiny_embedder_path: str, tmp_path: Path) -> None:
        folder = tmp_path / "my-model"
        shutil.copytree(tiny_embedder_path, folder)
        config = json.loads((folder / "config.json").read_text())
        config.pop("_name_or_path", None)
        (folder / "config.json").write_text(json.dumps(config))
        (folder / "README.md").write_text("# my model\nbase_model: BAAI/bge-base-zh-v1.5\n")
        assert read_local_checkpoint(str(folder)).base_model is None

    def test_mean_pooling_override(self, tiny_embedder_path: str) -> None:
        embedder = BGEEmbedder(tiny_embedder_path, device="cpu", pooling="mean")
        tokenizer = AutoTokenizer.from_pretrained(tiny_embedder_path)
        model = AutoModel.from_pretrained(tiny_embedder_path).eval()
        encoded = tokenizer(TEXTS, padding=True, return_tensors="pt")
        with torch.no_grad():
            states = model(**encoded)[0]
        mask = encoded["attention_mask"].unsqueeze(-1).float()
        mean = torch.nn.functional.normalize((states * mask).sum(1) / mask.sum(1), dim=1).numpy()
        np.testing.assert_allclose(embedder.embed_documents(TEXTS), mean, atol=1e-5)

    def test_normalize_false_is_respected(self, tiny_st_embedder_path: str) -> None:
        vectors = np.array(BGEEmbedder(tiny_st_embedder_path, device="cpu", normalize=False).embed_documents(TEXTS))
        assert not np.allclose(np.linalg.norm(vectors, axis=1), 1.0)

    def test_model_own_mean_pooling_is_respected(self, minilm_path: str) -> None:
        embedder = BGEEmbedder(minilm_path, device="cpu")
        assert embedder.config.pooling is None
        assert embedder.config.query_instruction == ""
        loaded = embedder._loaded()
        assert loaded.max_length == 256
        assert "mean" in repr(loaded.model)


class TestShapesAndOrder:
    def test_one_vector_per_input_in_order(self, tiny_embedder_path: str) -> None:
        embedder = BGEEmbedder(tiny_embedder_path, device="cpu", batch_size=2)
        texts = [f"text number {i} " * (i % 7 + 1) for i in range(23)]
        together = embedder.embed_documents(texts)
        one_by_one = [embedder.embed_documents([t])[0] for t in texts]
        assert len(together) == len(texts)
        np.testing.assert_allclose(together, one_by_one, atol=1e-5)

    def test_floats_and_dimension(self, tiny_embedder_path: str) -> None:
        embedder = BGEEmbedder(tiny_embedder_path, device="cpu")
        vector = embedder.embed_query("hello")
        assert all(type(x) is float for x in vector)
        assert len(vector) == embedder.dimension == 32

    def test_empty_input(self, tiny_embedder_path: str) -> None:
        embedder = BGEEmbedder(tiny_embedder_path, device="cpu")
        assert embedder.embed_documents([]) == []
        assert embedder.embed_queries([]) == []
        assert REGISTRY.load_count == 0

    def test_tuple_and_generator_inputs(self, tiny_embedder_path: str) -> None:
        embedder = BGEEmbedder(tiny_embedder_path, device="cpu")
        expected = embedder.embed_documents(["a", "b"])
        assert embedder.embed_documents(("a", "b")) == expected
        assert embedder.embed_documents(t for t in ["a", "b"]) == expected  # type: ignore[arg-type]


class TestTruncation:
    def test_counted_and_warned_once_per_model(self, tiny_embedder_path: str) -> None:
        embedder = BGEEmbedder(tiny_embedder_path, device="cpu", max_length=16)
        with pytest.warns(TruncationWarning, match="2 of 3 documents"):
            embedder.embed_documents(["word " * 50, "short", "word " * 60])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            embedder.embed_documents(["word " * 50])
        assert embedder.truncated_count == 3

    def test_instruction_counts_towards_length(self, tiny_embedder_path: str) -> None:
        embedder = BGEEmbedder(tiny_embedder_path, device="cpu", max_length=12)
        with pytest.warns(TruncationWarning):
            embedder.embed_query("the giant panda")
        assert embedder.truncated_count == 1

    def test_no_warning_when_nothing_is_cut(self, tiny_embedder_path: str) -> None:
        embedder = BGEEmbedder(tiny_embedder_path, device="cpu")
        with warnings.catch_warnings():
            warnings.simplefilter("error", TruncationWarning)
            embedder.embed_documents(TEXTS)
        assert embedder.truncated_count == 0


class TestErrors:
    @pytest.mark.parametrize(
        ("texts", "match"),
        [
            (None, "got None"),
            ("a single string", "single str"),
            (["ok", None], r"texts\[1\] must be a string, got NoneType"),
            (["ok", 3], r"texts\[1\] must be a string, got int"),
            (5, "got int"),
        ],
    )
    def test_bad_texts_are_named(self, tiny_embedder_path: str, texts: object, match: str) -> None:
        with pytest.raises(TypeError, match=match):
            BGEEmbedder(tiny_embedder_path, device="cpu").embed_documents(texts)  # type: ignore[arg-type]

    def test_bad_query(self, tiny_embedder_path: str) -> None:
        with pytest.raises(TypeError, match="text must be a string, got NoneType"):
            BGEEmbedder(tiny_embedder_path, device="cpu").embed_query(None)  # type: ignore[arg-type]

    @pytest.mark.parametrize("batch_size", [0, -1, 1.5, True, None])
    def test_bad_batch_size(self, batch_size: object) -> None:
        with pytest.raises(ValueError, match=f"batch_size must be an int > 0, got {batch_size!r}"):
            BGEEmbedder("BAAI/bge-small-en-v1.5", batch_size=batch_size)  # type: ignore[arg-type]

    def test_bad_pooling(self) -> None:
        with pytest.raises(ValueError, match=r"pooling must be one of .* got .max."):
            BGEEmbedder("BAAI/bge-small-en-v1.5", pooling="max")  # type: ignore[arg-type]

    def test_normalize_must_be_true_false_or_none(self) -> None:
        with pytest.raises(TypeError, match="normalize must be True or False, got str: 'false'"):
            BGEEmbedder("BAAI/bge-small-en-v1.5", normalize="false")  # type: ignore[arg-type]
        assert BGEEmbedder("BAAI/bge-small-en-v1.5", normalize=None).normalize is None

    @pytest.mark.parametrize("name", ["", "   ", None])
    def test_bad_model_name(self, name: object) -> None:
        with pytest.raises(ValueError, match="model_name must be"):
            BGEEmbedder(name)  # type: ignore[arg-type]

    def test_fp16_on_cpu_is_refused(self) -> None:
        with pytest.raises(ValueError, match="use_fp16=True needs a CUDA or MPS device, got device='cpu'"):
            BGEEmbedder("BAAI/bge-small-en-v1.5", device="cpu", use_fp16=True)

    def test_unparsable_device_is_refused_at_construction(self) -> None:
        with pytest.raises(ValueError, match="got 'gpu0'"):
            BGEEmbedder("BAAI/bge-small-en-v1.5", device="gpu0")

    def test_constructor_loads_nothing(self, tiny_embedder_path: str) -> None:
        BGEEmbedder(tiny_embedder_path, device="cpu")
        assert REGISTRY.load_count == 0


class TestSharingAndRelease:
    def test_same_settings_share_one_model(self, tiny_embedder_path: str) -> None:
        a = BGEEmbedder(tiny_embedder_path, device="cpu")
        b = BGEEmbedder(tiny_embedder_path, device="cpu", batch_size=4)
        a.warm_up()
        b.embed_documents(["x"])
        assert REGISTRY.load_count == 1
        assert a._loaded() is b._loaded()

    def test_different_weights_settings_load_separately(self, tiny_embedder_path: str) -> None:
        BGEEmbedder(tiny_embedder_path, device="cpu").warm_up()
        BGEEmbedder(tiny_embedder_path, device="cpu", max_length=64).warm_up()
        assert REGISTRY.load_count == 2

    def test_release_frees_and_reloads_on_next_use(self, tiny_embedder_path: str) -> None:
        embedder = BGEEmbedder(tiny_embedder_path, device="cpu")
        before = embedder.embed_documents(["x"])
        assert embedder.release() is True
        assert REGISTRY.loaded_keys() == []
        assert embedder.release() is False
        assert embedder.embed_documents(["x"]) == before
        assert REGISTRY.load_count == 2

    def test_concurrent_first_use_loads_once(self, tiny_embedder_path: str) -> None:
        from concurrent.futures import ThreadPoolExecutor

        embedders = [BGEEmbedder(tiny_embedder_path, device="cpu") for _ in range(6)]
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(lambda e: e.embed_documents(TEXTS), embedders))
        assert REGISTRY.load_count == 1
        assert all(np.allclose(r, results[0]) for r in results)

    def test_repr_and_config(self, tiny_embedder_path: str) -> None:
        embedder = BGEEmbedder(tiny_embedder_path, device="cpu")
        assert "preset='BAAI/bge-small-en-v1.5'" in repr(embedder)
        assert embedder.config.to_dict()["query_instruction"] == EN_QUERY_INSTRUCTION


class TestAsync:
    def test_async_equals_sync(self, tiny_embedder_path: str) -> None:
        embedder = BGEEmbedder(tiny_embedder_path, device="cpu")

        async def run() -> tuple[list[list[float]], list[list[float]], list[float]]:
            return await asyncio.gather(
                embedder.aembed_documents(TEXTS), embedder.aembed_queries(TEXTS), embedder.aembed_query("q")
            )

        docs, queries, query = asyncio.run(run())
        # Concurrent calls share model batches, so a text may sit next to other texts than in
        # a sequential call: equal up to float rounding, not bit for bit.
        np.testing.assert_allclose(docs, embedder.embed_documents(TEXTS), atol=1e-6)
        np.testing.assert_allclose(queries, embedder.embed_queries(TEXTS), atol=1e-6)
        np.testing.assert_allclose(query, embedder.embed_query("q"), atol=1e-6)

    def test_async_does_not_block_the_loop(self, tiny_embedder_path: str) -> None:
        embedder = BGEEmbedder(tiny_embedder_path, device="cpu")
        ticks: list[int] = []

        async def ticker() -> None:
            while True:
                ticks.append(1)
                await asyncio.sleep(0.001)

        async def run() -> None:
            task = asyncio.create_task(ticker())
            await asyncio.sleep(0)
            before = len(ticks)
            # The first call also loads the model: seconds of work that must happen off the loop.
            await embedder.aembed_documents(["panda " * 100] * 64)
            during = len(ticks) - before
            task.cancel()
            assert during > 3

        asyncio.run(run())

    def test_async_errors_propagate(self, tiny_embedder_path: str) -> None:
        embedder = BGEEmbedder(tiny_embedder_path, device="cpu")
        with pytest.raises(TypeError, match="got None"):
            asyncio.run(embedder.aembed_documents(None))  # type: ignore[arg-type]


def test_repr_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    embedder = BGEEmbedder("BAAI/bge-small-en-v1.5", device="cuda:1")  # fine here, fails to resolve
    assert repr(embedder) == "BGEEmbedder(model_name='BAAI/bge-small-en-v1.5', device='cuda:1', use_fp16=None)"


def test_truncation_warning_points_at_the_callers_line(tiny_embedder_path: str) -> None:
    embedder = BGEEmbedder(tiny_embedder_path, device="cpu", max_length=8)
    with pytest.warns(TruncationWarning) as record:
        embedder.embed_documents(["word " * 20])
    assert record[0].filename == __file__


def test_copies_and_pickles_share_the_model_without_copying_weights(tiny_embedder_path: str) -> None:
    import copy
    import pickle

    embedder = BGEEmbedder(tiny_embedder_path, device="cpu", query_instruction="q: ")
    expected = embedder.embed_queries(TEXTS)
    payload = pickle.dumps(embedder)
    assert len(payload) < 2_000
    for clone in (pickle.loads(payload), copy.deepcopy(embedder), copy.copy(embedder)):
        assert clone.embed_queries(TEXTS) == expected
        assert clone.config == embedder.config
    assert REGISTRY.load_count == 1


def test_duplicates_get_identical_vectors_in_place(tiny_embedder_path: str) -> None:
    embedder = BGEEmbedder(tiny_embedder_path, device="cpu")
    vectors = embedder.embed_documents(["a", "b", "a", "a"])
    assert vectors[0] == vectors[2] == vectors[3]
    assert vectors[0] is not vectors[2]
    assert [vectors[0], vectors[1]] == embedder.embed_documents(["a", "b"])


def test_unknown_checkpoint_warning_points_at_the_caller(tiny_embedder_path: str, tmp_path: Path) -> None:
    unknown = tmp_path / "checkpoint-7"
    shutil.copytree(tiny_embedder_path, unknown)
    with pytest.warns(UserWarning, match="not a known BGE model") as record:
        BGEEmbedder(str(unknown), device="cpu").embed_query("x")
    assert record[0].filename == __file__


def test_async_truncation_warning_points_at_the_awaiting_line(tiny_embedder_path: str) -> None:
    embedder = BGEEmbedder(tiny_embedder_path, device="cpu", max_length=8)

    async def run() -> None:
        with pytest.warns(TruncationWarning) as record:
            await embedder.aembed_documents(["word " * 20])
        assert record[0].filename == __file__

    asyncio.run(run())
