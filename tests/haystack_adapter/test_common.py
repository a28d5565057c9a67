"""Device translation shared by the Haystack components."""

from __future__ import annotations

import importlib
import sys

import pytest
from haystack.utils import ComponentDevice, Device, DeviceMap

from bge_integrations.haystack import BGEDocumentEmbedder, BGERanker, BGETextEmbedder
from bge_integrations.haystack._common import component_device, torch_device


@pytest.mark.parametrize(
    ("given", "torch_str"), [("cpu", "cpu"), ("cuda", "cuda"), ("cuda:1", "cuda:1"), ("mps", "mps")]
)
def test_strings_become_component_devices(given, torch_str):
    device = component_device(given)
    assert device == ComponentDevice.from_str(given)
    assert torch_device(device) == torch_str


def test_none_stays_none_so_the_core_picks_at_load_time():
    assert component_device(None) is None
    assert torch_device(None) is None
    assert BGETextEmbedder().embedder.device is None


def test_component_device_is_kept():
    device = ComponentDevice.from_single(Device.gpu(2))
    assert component_device(device) is device
    assert BGERanker(device=device).reranker.device == "cuda:2"


def test_unknown_device_string_is_named():
    with pytest.raises(ValueError, match=r"device must be a device string .* got 'gpu'"):
        BGETextEmbedder(device="gpu")


def test_wrong_device_type_is_named():
    with pytest.raises(TypeError, match="device must be a string, a ComponentDevice or None, got int: 0"):
        BGERanker(device=0)  # type: ignore[arg-type]


def test_device_maps_are_refused():
    device_map = ComponentDevice.from_multiple(DeviceMap({"layer0": Device.gpu(0), "layer1": Device.gpu(1)}))
    with pytest.raises(ValueError, match="one device, got a device map"):
        BGETextEmbedder(device=device_map)


@pytest.mark.parametrize("component", [BGETextEmbedder, BGEDocumentEmbedder, BGERanker])
@pytest.mark.parametrize("model", ["", "  ", None, 3])
def test_bad_model_is_named(component, model):
    with pytest.raises(ValueError, match=f"model must be a hub id or a local path, got {model!r}"):
        component(model=model)


def test_missing_haystack_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "haystack", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "bge_integrations.haystack")
    with pytest.raises(ImportError, match=r'pip install "bge-integrations\[haystack\]"'):
        importlib.import_module("bge_integrations.haystack")
