"""Camera discovery on a real driver: what ``titaniumctl cameras`` lists and what
``device: auto`` picks."""

from __future__ import annotations

from tests.hw.conftest import DEVICE
from titanium.common.config import parse_config
from titanium.common.discover import find_first_camera, list_cameras


def test_vivid_is_listed_and_picked_for_device_auto() -> None:
    cameras = list_cameras()
    assert [(c["node"], c["driver"]) for c in cameras] == [(DEVICE, "vivid")]
    assert find_first_camera() == DEVICE
    config = parse_config({"titanium": {"cameras": [{}]}}, find_camera=find_first_camera)
    assert config.cameras[0].device == DEVICE
