"""backend="auto": the exact OpenVINO graph on the CPU when installed, torch otherwise, with one notice."""

from __future__ import annotations

import subprocess
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest

from bge_integrations import BGEEmbedder
from bge_integrations.core import backends, embedding_model, notices
from bge_integrations.core import embedder as embedder_module
from bge_integrations.core.backends import check_backend, choose_backend

TEXTS = ["The giant panda is a bear species endemic to China.", "short", "", "Paris is in France. " * 20]


@pytest.fixture(autouse=True)
def _fresh_notices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notices, "_told", set())
    monkeypatch.setattr(embedder_module, "_AUTO_REFUSED", set())


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _without_openvino(monkeypatch: pytest.MonkeyPatch) -> None:
    installed = backends.runtime_installed
    monkeypatch.setattr(backends, "runtime_installed", lambda backend: backend != "openvino" and installed(backend))


def _namespace_only(folder: Path):
    import importlib.machinery

    def find_spec(name: str) -> importlib.machinery.ModuleSpec | None:
        spec = importlib.machinery.PathFinder.find_spec(name, [str(folder)])
        return spec if spec is not None else importlib.machinery.ModuleSpec(name, None, origin="/x/__init__.py")

    return find_spec


class TestChoice:
    def test_the_cpu_gets_openvino_when_installed(self) -> None:
        pytest.importorskip("openvino")
        pytest.importorskip("onnx")
        assert choose_backend("cpu", use_fp16=False) == ("openvino", None)

    @pytest.mark.parametrize(("device", "fp16"), [("cuda", False), ("cuda:1", True), ("mps", False), ("cpu", True)])
    def test_accelerators_and_half_precision_run_torch_silently(self, device: str, fp16: bool) -> None:
        assert choose_backend(device, use_fp16=fp16) == ("torch", None)

    def test_a_cpu_without_openvino_runs_torch_and_says_how_to_get_it(self, monkeypatch: pytest.MonkeyPatch) -> None:
        _without_openvino(monkeypatch)
        backend, reason = choose_backend("cpu", use_fp16=False)
        assert backend == "torch"
        assert reason is not None
        assert 'pip install "bge-integrations[openvino]"' in reason
        assert "backend='torch'" in reason

    def test_runtime_installed_looks_without_importing(self) -> None:
        pytest.importorskip("openvino")
        code = "from bge_integrations.core.backends import runtime_installed as r; import sys; "
        code += "print(r('openvino'), r('torch'), 'openvino' in sys.modules, 'onnx' in sys.modules)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        assert out.split() == ["True", "True", "False", "False"]

    def test_a_module_without_a_spec_or_a_folder_of_that_name_is_not_installed(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.setitem(sys.modules, "openvino", types.ModuleType("openvino"))  # __spec__ None: find_spec raises
        assert not backends.runtime_installed("openvino")
        monkeypatch.delitem(sys.modules, "openvino")
        (tmp_path / "onnxruntime").mkdir()  # a namespace package, not the runtime
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.setattr(backends.importlib.util, "find_spec", _namespace_only(tmp_path))
        assert not backends.runtime_installed("onnx")

    @pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
    def test_a_precision_needs_a_named_backend(self, precision: str) -> None:
        with pytest.raises(ValueError, match=f"backend_precision='{precision}' needs a named backend"):
            check_backend("auto", precision)
        with pytest.raises(ValueError, match="needs a named backend"):
            BGEEmbedder("x", backend="auto", backend_precision=precision)  # type: ignore[arg-type]

    def test_auto_is_allowed_with_any_device(self) -> None:
        assert check_backend("auto", None, device="cuda:0", use_fp16=True) is None


class TestEmbedder:
    def test_on_the_cpu_runs_the_openvino_graph_with_torch_vectors(
        self, tiny_st_embedder_path: str, tmp_path: Path
    ) -> None:
        pytest.importorskip("openvino")
        embedder = BGEEmbedder(tiny_st_embedder_path, backend="auto", device="cpu", backend_dir=tmp_path)
        config = embedder.config
        assert (config.backend, config.backend_precision, config.backend_fallback) == ("openvino", "fp32", True)
        reference = BGEEmbedder(tiny_st_embedder_path, device="cpu")
        for query in (False, True):
            ours = np.array(embedder.embed_queries(TEXTS) if query else embedder.embed_documents(TEXTS))
            want = np.array(reference.embed_queries(TEXTS) if query else reference.embed_documents(TEXTS))
            assert _cosines(ours, want).min() >= 0.999999
        assert embedder._loaded().runtime is not None
        assert any(tmp_path.rglob("model.onnx"))

    def test_is_not_shared_with_a_graph_asked_for_by_name(self, tiny_embedder_path: str, tmp_path: Path) -> None:
        pytest.importorskip("openvino")
        auto = BGEEmbedder(tiny_embedder_path, backend="auto", device="cpu", backend_dir=tmp_path)
        named = BGEEmbedder(tiny_embedder_path, backend="openvino", backend_dir=tmp_path)
        assert auto.config.backend == named.config.backend == "openvino"
        assert auto.load_key != named.load_key

    def test_without_openvino_runs_torch_and_tells_once(
        self, tiny_embedder_path: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        _without_openvino(monkeypatch)
        first = BGEEmbedder(tiny_embedder_path, backend="auto", device="cpu")
        with pytest.warns(UserWarning, match=r"backend='auto' runs torch on this CPU") as caught:
            config = first.config
        assert (config.backend, config.backend_precision, config.backend_fallback) == ("torch", None, False)
        assert caught[0].filename == __file__
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            second = BGEEmbedder(tiny_embedder_path, backend="auto", device="cpu")
            assert second.config.backend == "torch"
            vectors = second.embed_documents(TEXTS)
        # Exactly the plain torch embedder: the same loaded model, the same vectors.
        plain = BGEEmbedder(tiny_embedder_path, device="cpu")
        assert second.load_key == plain.load_key
        assert vectors == plain.embed_documents(TEXTS)

    def test_a_graph_that_fails_falls_back_to_torch_with_a_notice(
        self, tiny_embedder_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        pytest.importorskip("openvino")

        def refuse(loaded: object, config: object) -> None:
            raise RuntimeError("the exported graph does not reproduce it")

        monkeypatch.setattr(embedding_model, "_load_runtime", refuse)
        cache = tmp_path / "vectors"
        auto = BGEEmbedder(tiny_embedder_path, backend="auto", device="cpu", backend_dir=tmp_path, cache_dir=cache)
        assert auto.config.backend == "openvino"
        with pytest.warns(UserWarning, match=r"runs torch for .*: the openvino graph failed: the exported graph"):
            vectors = auto.embed_documents(TEXTS)
        # What ran is what every record says: the settings, the load key, the cache's key.
        plain = BGEEmbedder(tiny_embedder_path, device="cpu", cache_dir=cache)
        assert (auto.config.backend, auto.config.backend_fallback) == ("torch", False)
        assert auto.load_key == plain.load_key
        assert auto._loaded().runtime is None
        assert vectors == plain.embed_documents(TEXTS)
        assert auto._cache_settings("", auto._fingerprint(), query=False) == plain._cache_settings(
            "", plain._fingerprint(), query=False
        )
        # Other embedders of the model in this process run torch without trying again; by name it still fails.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert BGEEmbedder(tiny_embedder_path, backend="auto", backend_dir=tmp_path).config.backend == "torch"
        named = BGEEmbedder(tiny_embedder_path, backend="openvino", backend_dir=tmp_path)
        with pytest.raises(RuntimeError, match="does not reproduce it"):
            named.embed_documents(TEXTS)

    @pytest.mark.parametrize("error", [TypeError("bad trace"), KeyError("input_ids"), AssertionError("shape")])
    def test_any_export_failure_falls_back(
        self, tiny_embedder_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
    ) -> None:
        pytest.importorskip("openvino")

        def fail(loaded: object, config: object) -> None:
            raise error

        monkeypatch.setattr(embedding_model, "_load_runtime", fail)
        auto = BGEEmbedder(tiny_embedder_path, backend="auto", device="cpu", backend_dir=tmp_path)
        with pytest.warns(UserWarning, match="graph failed"):
            auto.warm_up()
        assert auto.config.backend == "torch"

    def test_what_the_graph_cannot_run_the_torch_pipeline_runs(
        self, tiny_st_embedder_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        pytest.importorskip("openvino")
        auto = BGEEmbedder(tiny_st_embedder_path, backend="auto", device="cpu", backend_dir=tmp_path)
        named = BGEEmbedder(tiny_st_embedder_path, backend="openvino", backend_dir=tmp_path)
        reference = BGEEmbedder(tiny_st_embedder_path, device="cpu").embed_documents(TEXTS)
        for embedder in (auto, named):
            embedder.warm_up()
            monkeypatch.setattr(embedder._loaded().features, "plan_for", lambda *args: None)
        with pytest.warns(UserWarning, match="graph cannot embed with prompt"):
            vectors = auto.embed_documents(TEXTS)
        np.testing.assert_allclose(vectors, reference, atol=1e-6)
        assert auto.config.backend == "torch"
        with pytest.raises(RuntimeError, match="cannot embed with prompt"):
            named.embed_documents(TEXTS)


class TestAdapters:
    def test_every_adapter_passes_auto_to_the_core(self, tiny_embedder_path: str, tmp_path: Path) -> None:
        pytest.importorskip("openvino")
        from bge_integrations.haystack import BGEDocumentEmbedder
        from bge_integrations.langchain import BGEEmbeddings
        from bge_integrations.llama_index import BGEEmbedding

        folder = str(tmp_path)
        cores = [
            BGEEmbeddings(model_name=tiny_embedder_path, backend="auto", device="cpu", backend_dir=folder).client,
            BGEEmbedding(tiny_embedder_path, backend="auto", device="cpu", backend_dir=folder).core,
            BGEDocumentEmbedder(model=tiny_embedder_path, backend="auto", backend_dir=folder).embedder,
        ]
        for core in cores:
            assert core.backend == "auto"
            assert (core.config.backend, core.config.backend_fallback) == ("openvino", True)
