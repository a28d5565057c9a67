from __future__ import annotations

import threading
import time

from bge_integrations.core.loading import LoadKey, ModelRegistry, clear_model_cache, loaded_models


def key(model: str = "m", **kwargs: object) -> LoadKey:
    return LoadKey(kind="embedder", model=model, device="cpu", fp16=False, **kwargs)  # type: ignore[arg-type]


def test_loads_once_per_key() -> None:
    registry = ModelRegistry()
    first = registry.get(key(), object)
    assert registry.get(key(), object) is first
    assert registry.get(key("other"), object) is not first
    assert registry.load_count == 2


def test_every_load_setting_is_part_of_the_key() -> None:
    registry = ModelRegistry()
    variants = [key(), key(revision="v2"), key(trust_remote_code=True), key(options=(("max_length", 64),))]
    variants.append(LoadKey(kind="embedder", model="m", device="cuda:0", fp16=False))
    variants.append(LoadKey(kind="embedder", model="m", device="cpu", fp16=True))
    variants.append(LoadKey(kind="reranker", model="m", device="cpu", fp16=False))
    assert len({id(registry.get(k, object)) for k in variants}) == len(variants)


def test_concurrent_gets_load_once() -> None:
    registry = ModelRegistry()
    calls: list[int] = []

    def slow_load() -> object:
        calls.append(1)
        time.sleep(0.1)
        return object()

    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(registry.get(key(), slow_load))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert all(r is results[0] for r in results)


def test_different_keys_load_concurrently() -> None:
    registry = ModelRegistry()
    started = threading.Barrier(2, timeout=5)

    def load() -> object:
        started.wait()  # both loads must be running at once, or this times out
        return object()

    threads = [threading.Thread(target=registry.get, args=(key(name), load)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert registry.load_count == 2


def test_release_and_clear() -> None:
    registry = ModelRegistry()
    first = registry.get(key(), object)
    registry.get(key("b"), object)
    assert registry.peek(key()) is first
    assert registry.release(key()) is True
    assert registry.peek(key()) is None
    assert registry.release(key()) is False
    assert registry.loaded_keys() == [key("b")]
    assert registry.get(key(), object) is not first
    assert registry.clear() == 2
    assert registry.loaded_keys() == []


def test_process_wide_helpers() -> None:
    clear_model_cache()
    assert loaded_models() == []
