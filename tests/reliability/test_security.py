"""Security, end to end: remote code stays off unless code asks, saved settings cannot switch it on,
Haystack keeps its deserialization allowlist, tokens never reach saved output or logs, cache files
are owner-only and written all or nothing.

Tests marked ``needs patch`` wait for changes outside ``core/loading.py``, ``core/cache.py`` and
``haystack/_common.py`` (the ``token`` parameter, the ``from_dict`` checks): they pass once those
are applied, and fail (strict xfail) until then.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import sqlite3
import stat
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from haystack import DeserializationError, Pipeline
from haystack.core import serialization_security
from haystack.utils import Secret

from bge_integrations import BGEEmbedder, BGEReranker
from bge_integrations.core import cache as cache_module
from bge_integrations.core.cache import FILE_NAME, CacheWarning, EmbeddingCache, shared_cache
from bge_integrations.core.loading import ModelUnavailableError, allow_remote_code, check_serialized_remote_code
from bge_integrations.haystack import BGEDocumentEmbedder, BGERanker, BGETextEmbedder
from bge_integrations.langchain import BGECrossEncoder, BGEEmbeddings, BGERerank
from bge_integrations.llama_index import BGEEmbedding
from bge_integrations.llama_index import BGERerank as LlamaBGERerank

PACKAGE = Path(__file__).resolve().parents[2] / "bge_integrations"
TOKEN = "hf_SeCrEt0123456789abcdefTOKENvalue"
HAYSTACK = [BGETextEmbedder, BGEDocumentEmbedder, BGERanker]


def _is_reranker(cls: type) -> bool:
    return cls in (BGERanker, BGEReranker, BGERerank, BGECrossEncoder, LlamaBGERerank)


# trust_remote_code: off by default, on only when code says so


DEFAULTS: dict[str, Callable[[], Any]] = {
    "core-embedder": lambda: BGEEmbedder(),
    "core-reranker": lambda: BGEReranker(),
    "langchain-embeddings": lambda: BGEEmbeddings(),
    "langchain-rerank": lambda: BGERerank(),
    "langchain-cross-encoder": lambda: BGECrossEncoder(),
    "llama-index-embedding": lambda: BGEEmbedding(),
    "llama-index-rerank": lambda: LlamaBGERerank(),
    "haystack-text-embedder": lambda: BGETextEmbedder(),
    "haystack-document-embedder": lambda: BGEDocumentEmbedder(),
    "haystack-ranker": lambda: BGERanker(),
}


def _core(obj: Any) -> BGEEmbedder | BGEReranker:
    if isinstance(obj, (BGEEmbedder, BGEReranker)):
        return obj
    for name in ("client", "core", "embedder", "reranker"):
        core = getattr(obj, name, None)
        if isinstance(core, (BGEEmbedder, BGEReranker)):
            return core
    raise AssertionError(type(obj))


@pytest.mark.parametrize("build", DEFAULTS.values(), ids=DEFAULTS.keys())
def test_trust_remote_code_is_off_by_default_in_every_class(build: Callable[[], Any]) -> None:
    obj = build()
    assert obj.trust_remote_code is False
    core = _core(obj)
    assert core.trust_remote_code is False
    assert core.load_key.trust_remote_code is False  # what reaches transformers


def test_flag_compat_classes_default_to_no_remote_code() -> None:
    import inspect

    from bge_integrations.compat import FlagModel, FlagReranker

    for cls in (FlagModel, FlagReranker):
        assert inspect.signature(cls).parameters["trust_remote_code"].default is False


@pytest.mark.parametrize("value", ["false", "no", 0, 1, "True"])
def test_a_non_bool_trust_remote_code_never_reaches_transformers(value: object) -> None:
    with pytest.raises(TypeError, match="trust_remote_code must be True or False"):
        BGEEmbedder("BAAI/bge-small-en-v1.5", device="cpu", trust_remote_code=value).load_key  # type: ignore[arg-type]  # noqa: B018


@pytest.mark.parametrize(
    "settings",
    [
        {"trust_remote_code": True},
        {"trust_remote_code": "false"},  # a non-empty string is true to transformers
        {"model_kwargs": {"trust_remote_code": True}},
        {"tokenizer_kwargs": {"trust_remote_code": True}},
        {"config_kwargs": {"trust_remote_code": 1}},
        {"pipelines": [{"init_parameters": {"trust_remote_code": True}}]},
    ],
)
def test_serialized_settings_cannot_switch_remote_code_on(settings: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"serialized settings ask for .*trust_remote_code"):
        check_serialized_remote_code("Owner", settings)
    with allow_remote_code():
        if all(value is True for value in _flags(settings)):
            check_serialized_remote_code("Owner", settings)  # an explicit opt-in, in code
        else:
            with pytest.raises(ValueError, match="trust_remote_code"):  # a non-bool stays refused
                check_serialized_remote_code("Owner", settings)
    check_serialized_remote_code("Owner", {"trust_remote_code": False, "model_kwargs": {"trust_remote_code": None}})


def _flags(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [v for k, v in value.items() if k == "trust_remote_code"] + [
            f for v in value.values() for f in _flags(v)
        ]
    if isinstance(value, list):
        return [f for v in value for f in _flags(v)]
    return []


@pytest.mark.parametrize("cls", HAYSTACK)
@pytest.mark.parametrize("where", ["top", "model_kwargs", "tokenizer_kwargs", "config_kwargs"])
def test_haystack_from_dict_refuses_remote_code_without_an_opt_in(cls: type, where: str) -> None:
    data = cls(device="cpu").to_dict()
    if where == "top":
        data["init_parameters"]["trust_remote_code"] = True
    else:
        data["init_parameters"][where] = {"trust_remote_code": True}
    with pytest.raises(ValueError, match=f"{cls.__name__}: serialized settings ask for .*trust_remote_code=True"):
        cls.from_dict(data)
    if where == "top":
        with allow_remote_code():
            component = cls.from_dict(data)
        assert component.trust_remote_code is True
        assert _core(component).load_key.trust_remote_code is True


@pytest.mark.parametrize("cls", HAYSTACK)
def test_haystack_string_flags_from_a_file_never_become_true(cls: type) -> None:
    data = cls(device="cpu").to_dict()
    data["init_parameters"]["trust_remote_code"] = "false"
    with pytest.raises((TypeError, ValueError), match="trust_remote_code"):
        _core(cls.from_dict(data)).load_key  # refused when read (patched) or at the latest when loading  # noqa: B018


@pytest.fixture
def haystack_default_allowlist(monkeypatch: pytest.MonkeyPatch) -> None:
    """Haystack's default allowlist only, whatever other tests in this process allowlisted."""
    monkeypatch.delenv("HAYSTACK_DESERIALIZATION_ALLOWLIST", raising=False)
    monkeypatch.setattr(serialization_security, "_extra_allowed_modules", [])
    monkeypatch.setattr(serialization_security, "_unsafe_env_snapshot", False)


def _pipeline_yaml(component: Any) -> str:
    pipeline = Pipeline()
    pipeline.add_component("bge", component)
    return pipeline.dumps()


@pytest.mark.usefixtures("haystack_default_allowlist")
def test_a_hand_edited_pipeline_yaml_cannot_switch_remote_code_on() -> None:
    text = _pipeline_yaml(BGETextEmbedder(device="cpu"))
    assert "trust_remote_code: false" in text
    edited = text.replace("trust_remote_code: false", "trust_remote_code: true")
    with pytest.raises(DeserializationError, match="serialized settings ask for trust_remote_code=True"):
        Pipeline.loads(edited, allowed_modules=["bge_integrations.*"])
    with allow_remote_code():
        loaded = Pipeline.loads(edited, allowed_modules=["bge_integrations.*"])
    assert loaded.get_component("bge").trust_remote_code is True
    assert Pipeline.loads(text, allowed_modules=["bge_integrations.*"]).get_component("bge").trust_remote_code is False


@pytest.mark.usefixtures("haystack_default_allowlist")
def test_haystack_loading_keeps_its_allowlist() -> None:
    text = _pipeline_yaml(BGERanker(device="cpu"))
    with pytest.raises(DeserializationError, match=r"bge_integrations\.haystack"):
        Pipeline.loads(text)  # importing bge_integrations.haystack allowlisted nothing
    assert serialization_security._extra_allowed_modules == []
    Pipeline.loads(text, allowed_modules=["bge_integrations.*"])


def test_no_code_in_the_package_bypasses_haystacks_deserialization_checks() -> None:
    offending = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        for needle in ("unsafe=True", "unsafe = True", "allow_deserialization_module", "DESERIALIZATION_ALLOWLIST"):
            if needle in source:
                offending.append(f"{path.relative_to(PACKAGE)}: {needle}")
    assert offending == []


@pytest.mark.parametrize("cls", [BGEEmbedding, LlamaBGERerank])
@pytest.mark.parametrize("form", ["dict", "json"])
def test_llama_index_from_dict_refuses_remote_code_unless_asked_in_code(cls: type, form: str) -> None:
    data = cls(device="cpu").to_dict()
    assert data["trust_remote_code"] is False
    data["trust_remote_code"] = True
    import json

    def load(**kwargs: Any) -> Any:
        return cls.from_dict(data, **kwargs) if form == "dict" else cls.from_json(json.dumps(data), **kwargs)

    with pytest.raises(ValueError, match="serialized settings ask for trust_remote_code=True"):
        load()
    assert load(trust_remote_code=True).trust_remote_code is True  # a keyword argument is code
    with allow_remote_code():
        assert load().trust_remote_code is True
    data["trust_remote_code"] = False
    assert load().trust_remote_code is False


PICKLED: dict[str, Callable[[bool], Any]] = {
    "core": lambda flag: BGEEmbedder("m", device="cpu", trust_remote_code=flag),
    "langchain-embeddings": lambda flag: BGEEmbeddings(model_name="m", device="cpu", trust_remote_code=flag),
    "langchain-rerank": lambda flag: BGERerank(model_name="m", device="cpu", trust_remote_code=flag),
    "llama-index-embedding": lambda flag: BGEEmbedding("m", device="cpu", trust_remote_code=flag),
    "llama-index-rerank": lambda flag: LlamaBGERerank(model="m", device="cpu", trust_remote_code=flag),
    "haystack-text-embedder": lambda flag: BGETextEmbedder(model="m", device="cpu", trust_remote_code=flag),
    "haystack-ranker": lambda flag: BGERanker(model="m", device="cpu", trust_remote_code=flag),
}


@pytest.mark.parametrize("build", PICKLED.values(), ids=PICKLED.keys())
def test_a_pickle_keeps_trust_remote_code_as_code_set_it(build: Callable[[bool], Any]) -> None:
    # A pickle is the object itself moved between processes (Ray, multiprocessing); loading an
    # untrusted pickle runs code anyway, so only trusted pickles may be loaded (documented).
    for flag in (False, True):
        copy = pickle.loads(pickle.dumps(build(flag)))
        assert copy.trust_remote_code is flag
        assert _core(copy).load_key.trust_remote_code is flag


@pytest.mark.parametrize("which", ["embedder", "reranker"])
def test_pickles_never_hold_the_model(which: str, tiny_embedder_path: str, tiny_reranker_path: str) -> None:
    if which == "embedder":
        objects: list[Any] = [
            BGEEmbedding(tiny_embedder_path, device="cpu"),
            BGEEmbeddings(model_name=tiny_embedder_path),
        ]
        objects.append(BGETextEmbedder(model=tiny_embedder_path, device="cpu"))
    else:
        objects = [BGERerank(model_name=tiny_reranker_path, device="cpu"), BGERanker(model=tiny_reranker_path)]
    for obj in objects:
        _core(obj).warm_up()
        data = pickle.dumps(obj)
        assert b"_rebuild_tensor" not in data
        assert b"safetensors" not in data
        assert len(data) < 20_000


# Tokens: secrets, never in saved output, repr or logs


@contextlib.contextmanager
def _all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Capture DEBUG records of every library involved, including loggers that do not propagate."""
    import transformers

    names = ["", "bge_integrations", "transformers", "sentence_transformers", "huggingface_hub", "haystack"]
    loggers = [logging.getLogger(name) for name in names]
    saved = [(logger.level, logger.handlers[:]) for logger in loggers]
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_debug()
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        if caplog.handler not in logger.handlers:
            logger.addHandler(caplog.handler)
    try:
        yield
    finally:
        transformers.logging.set_verbosity(verbosity)
        for logger, (level, handlers) in zip(loggers, saved, strict=True):
            logger.setLevel(level)
            logger.handlers[:] = handlers


def _assert_nowhere(*outputs: object) -> None:
    for output in outputs:
        assert TOKEN not in str(output)


@pytest.mark.parametrize("cls", [BGEEmbedder, BGEReranker])
def test_a_core_token_reaches_the_loader_and_nothing_else(
    cls: type, tiny_embedder_path: str, tiny_reranker_path: str, caplog: pytest.LogCaptureFixture, capfd: Any
) -> None:
    path = tiny_reranker_path if _is_reranker(cls) else tiny_embedder_path
    handle = cls(path, device="cpu", token=TOKEN)
    with _all_logs(caplog), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        handle.warm_up()
        result = handle.embed_query("hi") if cls is BGEEmbedder else handle.rank("hi", ["a", "b"])
    assert result
    assert handle.token == TOKEN
    out, err = capfd.readouterr()
    _assert_nowhere(repr(handle), handle.config.to_dict(), handle.load_key, caplog.text, out, err)
    _assert_nowhere(*(str(w.message) for w in caught))
    assert caplog.records  # DEBUG logs were captured, and none holds the token
    with pytest.raises(ModelUnavailableError) as failed:
        cls(str(Path(path).parent / "missing"), device="cpu", token=TOKEN).warm_up()
    _assert_nowhere(failed.value, "".join(traceback.format_exception(failed.value)))


def test_a_core_token_is_checked_without_showing_it() -> None:
    with pytest.raises(TypeError, match="token must be a string or None, got bytes") as caught:
        BGEEmbedder("m", token=TOKEN.encode())  # type: ignore[arg-type]
    _assert_nowhere(caught.value)


@pytest.mark.parametrize("cls", HAYSTACK)
def test_haystack_tokens_are_secrets_saved_by_name_only(
    cls: type, monkeypatch: pytest.MonkeyPatch, tiny_embedder_path: str, tiny_reranker_path: str
) -> None:
    monkeypatch.delenv("HF_API_TOKEN", raising=False)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    model = tiny_reranker_path if _is_reranker(cls) else tiny_embedder_path
    component = cls(model=model, device="cpu")
    saved = component.to_dict()
    assert saved["init_parameters"]["token"] == {
        "type": "env_var",
        "env_vars": ["HF_API_TOKEN", "HF_TOKEN"],
        "strict": False,
    }
    assert _core(component).token == TOKEN  # resolved from the environment when the core is built
    text = _pipeline_yaml(component)
    _assert_nowhere(saved, text, repr(component))
    reloaded = cls.from_dict(saved)
    assert _core(reloaded).token == TOKEN
    with pytest.raises(ValueError, match="Cannot serialize token-based secret"):
        cls(model=model, token=Secret.from_token(TOKEN)).to_dict()  # Haystack's own refusal
    with pytest.raises(TypeError, match="token must be a haystack Secret") as caught:
        cls(model=model, token=TOKEN)
    _assert_nowhere(caught.value)
    monkeypatch.delenv("HF_TOKEN")
    assert _core(component).token is None  # read again on use: no variable, no token


@pytest.mark.parametrize(
    "build",
    [
        lambda path: BGEEmbeddings(model_name=path, device="cpu", token=TOKEN),
        lambda path: BGEEmbedding(path, device="cpu", token=TOKEN),
    ],
    ids=["langchain", "llama-index"],
)
def test_plain_string_tokens_stay_out_of_dumps_and_repr(build: Callable[[str], Any], tiny_embedder_path: str) -> None:
    obj = build(tiny_embedder_path)
    assert _core(obj).token == TOKEN
    dumps: list[object] = [repr(obj), str(obj), obj.model_dump(), obj.model_dump_json()]
    if hasattr(obj, "to_dict"):
        dumps += [obj.to_dict(), obj.to_json()]
    else:
        from langchain_core.load import dumpd
        from langchain_core.load import dumps as lc_dumps

        dumps += [dumpd(obj), lc_dumps(obj)]
    _assert_nowhere(*dumps)
    copy = pickle.loads(pickle.dumps(obj))
    assert _core(copy).token == TOKEN


def test_a_token_in_the_environment_is_never_copied_into_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    for build in DEFAULTS.values():
        obj = build()
        outputs: list[object] = [repr(obj), _core(obj).config.to_dict()]
        if hasattr(obj, "to_dict"):
            outputs.append(obj.to_dict())
        if hasattr(obj, "model_dump"):
            outputs.append(obj.model_dump())
        _assert_nowhere(*outputs)


# Cache files: owner-only, all or nothing


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most permissive umask: what the cache creates is owner-only because it says so."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("open_umask")
def test_cache_files_and_folders_are_owner_only_whatever_the_umask(tiny_embedder_path: str, tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b" / "cache"
    BGEEmbedder(tiny_embedder_path, device="cpu", cache_dir=folder).embed_documents(["pandas", "bears"])
    created = [tmp_path / "a", tmp_path / "a" / "b", folder]
    assert {str(path): _mode(path) for path in created} == {str(path): 0o700 for path in created}
    files = [folder / FILE_NAME, Path(f"{folder / FILE_NAME}-wal"), Path(f"{folder / FILE_NAME}-shm")]
    assert {str(path): _mode(path) for path in files} == {str(path): 0o600 for path in files}


def test_a_cache_file_others_may_write_is_made_owner_only(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    namespace = cache.namespace({"model": "m"})
    cache.put(namespace, ["a"], np.ones((1, 4), dtype=np.float32))
    cache.close()
    (tmp_path / FILE_NAME).chmod(0o666)
    again = EmbeddingCache(tmp_path)
    assert again.get(namespace, ["a"])[0] is not None
    assert _mode(tmp_path / FILE_NAME) == 0o600


def test_a_cache_file_of_another_user_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    EmbeddingCache(tmp_path).put(b"n", ["a"], np.ones((1, 4), dtype=np.float32))
    monkeypatch.setattr(os, "getuid", lambda: os.stat(tmp_path).st_uid + 1)
    cache = EmbeddingCache(tmp_path)
    with pytest.warns(CacheWarning, match="belongs to another user"):
        assert cache.get(b"n", ["a"]) == [None]
    assert not cache.enabled


def test_an_interrupted_write_leaves_nothing_half_written(tmp_path: Path) -> None:
    # SQLite stops the statement mid-way (as a crash would); the transaction is rolled back.
    # A process killed mid-write: tests/reliability/test_faults.py::test_a_writer_killed_mid_transaction_...
    cache = shared_cache(tmp_path)
    namespace = cache.namespace({"model": "m"})
    cache.put(namespace, ["kept"], np.full((1, 4), 1.0, dtype=np.float32))
    connection = cache._connect()
    assert connection is not None
    steps: list[int] = []
    connection.set_progress_handler(lambda: steps.append(1) or len(steps) > 20, 50)
    texts = [f"text {i}" for i in range(2000)]
    with pytest.warns(CacheWarning, match="interrupted"):
        cache.put(namespace, ["kept", *texts], np.full((2001, 4), 9.0, dtype=np.float32))
    cache.close()
    cache_module._SHARED.clear()
    with sqlite3.connect(tmp_path / FILE_NAME) as check:
        assert check.execute("SELECT count(*) FROM vectors").fetchone() == (1,)
    stored = shared_cache(tmp_path).get(namespace, ["kept", "text 0"])
    assert stored[1] is None
    assert stored[0] is not None
    assert stored[0].tolist() == [1.0] * 4  # the old vector, not the half-written new one
