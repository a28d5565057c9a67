"""BGEEmbedding against the core BGEEmbedder it wraps."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from llama_index.core.callbacks import EventPayload

from bge_integrations import BGEEmbedder, TruncationWarning
from bge_integrations.core.instructions import EN_QUERY_INSTRUCTION
from bge_integrations.core.loading import REGISTRY
from bge_integrations.llama_index import BGEEmbedding
from tests.llama_index_adapter.conftest import PASSAGES, QUERY


class TestVectors:
    def test_texts_equal_core_documents(self, embedding: BGEEmbedding, tiny_embedder_path: str) -> None:
        core = BGEEmbedder(tiny_embedder_path, device="cpu")
        assert embedding.get_text_embedding_batch(PASSAGES) == core.embed_documents(PASSAGES)
        assert embedding.get_text_embedding(PASSAGES[0]) == core.embed_documents(PASSAGES[:1])[0]

    def test_query_equals_core_query(self, embedding: BGEEmbedding, tiny_embedder_path: str) -> None:
        assert embedding.get_query_embedding(QUERY) == BGEEmbedder(tiny_embedder_path, device="cpu").embed_query(QUERY)

    def test_instruction_reaches_queries_only(self, embedding: BGEEmbedding, tiny_embedder_path: str) -> None:
        assert embedding.core.config.query_instruction == EN_QUERY_INSTRUCTION
        bare = BGEEmbedding(tiny_embedder_path, device="cpu", query_instruction="")
        assert embedding.get_query_embedding(QUERY) != embedding.get_text_embedding(QUERY)
        assert bare.get_query_embedding(QUERY) == embedding.get_text_embedding(QUERY)
        assert embedding.get_text_embedding(QUERY) == bare.get_text_embedding(QUERY)

    def test_text_instruction_reaches_texts(self, tiny_embedder_path: str) -> None:
        prefixed = BGEEmbedding(tiny_embedder_path, device="cpu", text_instruction="passage: ")
        plain = BGEEmbedder(tiny_embedder_path, device="cpu")
        assert prefixed.get_text_embedding("x") == plain.embed_documents(["passage: x"])[0]

    def test_settings_reach_the_core(self, tiny_embedder_path: str) -> None:
        mean = BGEEmbedding(tiny_embedder_path, device="cpu", pooling="mean", normalize=False, max_length=8)
        core = BGEEmbedder(tiny_embedder_path, device="cpu", pooling="mean", normalize=False, max_length=8)
        with pytest.warns(TruncationWarning):
            assert mean.get_text_embedding_batch(PASSAGES) == core.embed_documents(PASSAGES)
        assert float(np.linalg.norm(mean.get_text_embedding(PASSAGES[0]))) != pytest.approx(1.0)

    def test_changed_field_rebuilds_the_core(self, embedding: BGEEmbedding) -> None:
        with_instruction = embedding.get_query_embedding(QUERY)
        embedding.query_instruction = ""
        assert embedding.get_query_embedding(QUERY) == embedding.get_text_embedding(QUERY) != with_instruction
        assert REGISTRY.load_count == 1


class TestBatching:
    def test_default_batch_size_is_not_llama_index_10(self, embedding: BGEEmbedding) -> None:
        assert embedding.embed_batch_size == embedding.core.batch_size == 32

    @pytest.mark.parametrize(
        "kwargs", [{"batch_size": 2}, {"embed_batch_size": 2}, {"batch_size": 2, "embed_batch_size": 2}]
    )
    def test_batch_size_is_embed_batch_size(self, tiny_embedder_path: str, kwargs: dict[str, Any]) -> None:
        model = BGEEmbedding(tiny_embedder_path, **kwargs)
        assert model.embed_batch_size == model.batch_size == model.core.batch_size == 2

    def test_conflicting_batch_sizes_are_named(self, tiny_embedder_path: str) -> None:
        with pytest.raises(ValueError, match="got 2 and 4"):
            BGEEmbedding(tiny_embedder_path, batch_size=2, embed_batch_size=4)

    def test_whole_list_in_one_engine_call_with_events_per_chunk(
        self, tiny_embedder_path: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler

        debug = LlamaDebugHandler()
        model = BGEEmbedding(tiny_embedder_path, device="cpu", batch_size=2, callback_manager=CallbackManager([debug]))
        calls: list[list[str]] = []
        original = BGEEmbedder.embed_documents

        def spy(self: BGEEmbedder, texts: list[str]) -> list[list[float]]:
            calls.append(list(texts))
            return original(self, texts)

        monkeypatch.setattr(BGEEmbedder, "embed_documents", spy)
        vectors = model.get_text_embedding_batch(PASSAGES)
        assert calls == [PASSAGES]  # sorted and batched across the whole list by the engine
        pairs = debug.get_event_pairs(CBEventType.EMBEDDING)
        assert [pair[1].payload[EventPayload.CHUNKS] for pair in pairs] == [PASSAGES[0:2], PASSAGES[2:4], PASSAGES[4:5]]
        assert [v for pair in pairs for v in pair[1].payload[EventPayload.EMBEDDINGS]] == vectors
        np.testing.assert_allclose(vectors, model.core.embed_documents(PASSAGES), atol=1e-6)

    def test_forward_passes_honour_the_batch_size(self, tiny_embedder_path: str) -> None:
        model = BGEEmbedding(tiny_embedder_path, device="cpu", batch_size=2)
        runner = model.core._loaded().runner
        sizes: list[int] = []
        run = runner.run

        def spy(lengths: list[int], forward: Any, **kwargs: Any) -> Any:
            return run(lengths, forward, **{**kwargs, "on_batch": sizes.append})

        runner.run = spy  # type: ignore[method-assign]
        try:
            model.get_text_embedding_batch(PASSAGES)
        finally:
            del runner.run
        assert sizes == [2, 2, 1]

    def test_llama_index_loop_kept_with_its_cache(
        self, tiny_embedder_path: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from llama_index.core.storage.kvstore import SimpleKVStore

        model = BGEEmbedding(tiny_embedder_path, device="cpu", batch_size=2, embeddings_cache=SimpleKVStore())
        calls: list[list[str]] = []
        original = BGEEmbedder.embed_documents

        def spy(self: BGEEmbedder, texts: list[str]) -> list[list[float]]:
            calls.append(list(texts))
            return original(self, texts)

        monkeypatch.setattr(BGEEmbedder, "embed_documents", spy)
        model.get_text_embedding_batch(PASSAGES)
        assert calls == [PASSAGES[0:2], PASSAGES[2:4], PASSAGES[4:5]]

    async def test_async_batches_run_off_the_event_loop(
        self, embedding: BGEEmbedding, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        threads: list[int] = []
        original = BGEEmbedder._embed

        def spy(self: BGEEmbedder, texts: list[str], instruction: str, *, query: bool) -> list[list[float]]:
            threads.append(threading.get_ident())
            return original(self, texts, instruction, query=query)

        monkeypatch.setattr(BGEEmbedder, "_embed", spy)
        await embedding.aget_text_embedding_batch(PASSAGES)
        await embedding.aget_text_embedding(QUERY)
        await embedding.aget_query_embedding(QUERY)
        assert len(threads) == 3
        assert threading.get_ident() not in threads


class TestSettings:
    def test_to_dict_holds_every_setting(self) -> None:
        embedding = BGEEmbedding(
            "some/bge-base-en-v1.5",
            query_instruction="q: ",
            text_instruction="p: ",
            pooling="mean",
            normalize=False,
            max_length=128,
            device="cpu",
            revision="v2",
            batch_size=8,
        )
        assert embedding.to_dict() == {
            "model_name": "some/bge-base-en-v1.5",
            "embed_batch_size": 8,
            "num_workers": None,
            "embeddings_cache": None,
            "query_instruction": "q: ",
            "text_instruction": "p: ",
            "pooling": "mean",
            "normalize": False,
            "max_length": 128,
            "device": "cpu",
            "use_fp16": None,
            "revision": "v2",
            "trust_remote_code": False,
            "max_batch_tokens": None,
            "cache_dir": None,
            "backend": "torch",
            "backend_precision": None,
            "backend_dir": None,
            "base_url": None,
            "class_name": "BGEEmbedding",
        }

    def test_unknown_keyword_is_refused_by_name(self, tiny_embedder_path: str) -> None:
        with pytest.raises(ValueError, match="query_instructions"):
            BGEEmbedding(tiny_embedder_path, query_instructions="typo")  # type: ignore[call-arg]

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"pooling": "max"}, "max"),
            ({"max_length": 0}, "max_length"),
            ({"batch_size": 0}, "embed_batch_size"),
            ({"model_name": " "}, "model_name must be"),
        ],
    )
    def test_bad_values_are_named(self, tiny_embedder_path: str, kwargs: dict[str, Any], match: str) -> None:
        params: dict[str, Any] = {"model_name": tiny_embedder_path, **kwargs}
        with pytest.raises(ValueError, match=match):
            BGEEmbedding(**params)

    def test_bad_text_is_named(self, embedding: BGEEmbedding) -> None:
        with pytest.raises(TypeError, match=r"texts\[1\] must be a string"):
            embedding.get_text_embedding_batch(["ok", None])  # type: ignore[list-item]

    def test_two_embeddings_with_different_instructions_share_the_model(self, tiny_embedder_path: str) -> None:
        BGEEmbedding(tiny_embedder_path, device="cpu").get_query_embedding(QUERY)
        BGEEmbedding(tiny_embedder_path, device="cpu", query_instruction="q: ").get_query_embedding(QUERY)
        assert REGISTRY.load_count == 1


def test_truncation_warning_points_at_the_callers_line(tiny_embedder_path: str) -> None:
    from bge_integrations import TruncationWarning

    embedding = BGEEmbedding(tiny_embedder_path, device="cpu", max_length=8)
    with pytest.warns(TruncationWarning) as record:
        embedding.get_text_embedding_batch(["word " * 30])
    assert record[0].filename == __file__


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"device": "gpu0"}, "got 'gpu0'"), ({"device": "cpu", "use_fp16": True}, "use_fp16=True needs")],
)
def test_machine_independent_settings_fail_at_construction(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BGEEmbedding("BAAI/bge-small-en-v1.5", **kwargs)  # type: ignore[arg-type]


class TestBackends:
    def test_backend_settings_reach_the_core_and_to_dict(self, tiny_embedder_path: str, tmp_path) -> None:
        embedding = BGEEmbedding(
            tiny_embedder_path, backend="openvino", backend_precision="bf16", backend_dir=str(tmp_path)
        )
        config = embedding.core.config
        assert (config.backend, config.backend_precision, config.backend_dir) == ("openvino", "bf16", str(tmp_path))
        saved = embedding.to_dict()
        assert (saved["backend"], saved["backend_precision"], saved["backend_dir"]) == (
            "openvino",
            "bf16",
            str(tmp_path),
        )

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"backend": "tensorrt"}, "tensorrt"),
            ({"backend": "openvino", "backend_precision": "int8"}, "backend_precision='int8' is not available"),
            ({"backend_precision": "fp32"}, "backend_precision='fp32' needs backend='onnx' or 'openvino'"),
        ],
    )
    def test_bad_backend_settings_are_named(self, tiny_embedder_path: str, kwargs: dict[str, Any], match: str) -> None:
        with pytest.raises(ValueError, match=match):
            BGEEmbedding(tiny_embedder_path, **kwargs)

    def test_onnx_backend_gives_the_torch_vectors(self, tiny_embedder_path: str, tmp_path) -> None:
        pytest.importorskip("onnx")
        pytest.importorskip("onnxruntime")
        ours = BGEEmbedding(tiny_embedder_path, backend="onnx", backend_dir=str(tmp_path), batch_size=2)
        torch_ = BGEEmbedding(tiny_embedder_path, device="cpu")
        np.testing.assert_allclose(
            ours.get_text_embedding_batch(PASSAGES), torch_.get_text_embedding_batch(PASSAGES), atol=1e-5
        )
        np.testing.assert_allclose(ours.get_query_embedding(QUERY), torch_.get_query_embedding(QUERY), atol=1e-5)
