from __future__ import annotations

import pytest
import torch

from bge_integrations.core.devices import resolve_device, resolve_fp16


def test_default_prefers_cuda_then_mps_then_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device() == "cpu"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device() == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert resolve_device() == "cuda:0"


def test_explicit_device_is_kept() -> None:
    assert resolve_device("cpu") == "cpu"


def test_bad_device_is_named() -> None:
    with pytest.raises(ValueError, match="got 'gpu0'"):
        resolve_device("gpu0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_missing_cuda_is_named() -> None:
    with pytest.raises(ValueError, match="device='cuda:1' asks for CUDA"):
        resolve_device("cuda:1")


def test_a_cuda_index_this_machine_lacks_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(
        ValueError, match=r"device='cuda:2' asks for CUDA device 2, but torch sees 2 \(cuda:0 to cuda:1\)"
    ):
        resolve_device("cuda:2")


def test_fp16_defaults() -> None:
    assert resolve_fp16(None, "cuda:0") is True
    assert resolve_fp16(None, "cpu") is False
    assert resolve_fp16(None, "mps") is False
    assert resolve_fp16(False, "cuda:0") is False
    assert resolve_fp16(True, "mps") is True
    with pytest.raises(ValueError, match="use_fp16=True needs a CUDA or MPS device"):
        resolve_fp16(True, "cpu")


def test_machine_independent_checks() -> None:
    from bge_integrations.core.devices import check_device_settings

    check_device_settings(None, True)
    check_device_settings("cuda:3", True)  # existence is checked at load time, not here
    with pytest.raises(ValueError, match="got 'gpu'"):
        check_device_settings("gpu", None)
    with pytest.raises(ValueError, match="use_fp16=True needs a CUDA or MPS device, got device='cpu'"):
        check_device_settings("cpu", True)
