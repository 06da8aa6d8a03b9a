"""--trt-devices parsing and one-GPU-per-xdist-worker pinning."""

from __future__ import annotations

import pytest

from pytest_trt.devices import (
    DeviceAssignmentError,
    cpu_worker_warning,
    parse_devices,
    pick_device,
    worker_index,
)


def test_parse_devices_keeps_order() -> None:
    assert parse_devices("0,1,2,3") == (0, 1, 2, 3)
    assert parse_devices(" 3, 1 ") == (3, 1)
    assert parse_devices("5") == (5,)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "comma-separated list of GPU indices"),
        ("0,,1", "comma-separated list of GPU indices"),
        ("0,a", "'a' is not a GPU index"),
        ("-1", "'-1' is not a GPU index"),
        ("cuda:0", "'cuda:0' is not a GPU index"),
        ("0,1,0", "GPU 0 listed more than once"),
    ],
)
def test_parse_devices_rejects_bad_input_naming_the_option(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        parse_devices(text)
    assert "--trt-devices" in str(info.value)


def test_worker_index() -> None:
    assert worker_index("gw0") == 0
    assert worker_index("gw13") == 13
    assert worker_index(None) is None
    assert worker_index("master") is None
    with pytest.raises(ValueError, match="worker id 'gwx'"):
        worker_index("gwx")


def test_pick_device_maps_workers_to_listed_devices() -> None:
    devices = (2, 3, 0)
    assert [pick_device(f"gw{k}", devices, visible=4) for k in range(3)] == [2, 3, 0]
    assert pick_device(None, devices, visible=4) == 2  # no xdist: the first listed GPU
    assert pick_device("master", None, visible=4) == 0


def test_pick_device_without_a_list_uses_the_worker_index() -> None:
    assert [pick_device(f"gw{k}", None, visible=4) for k in range(4)] == [0, 1, 2, 3]


def test_more_workers_than_gpus_is_an_error_never_a_shared_gpu() -> None:
    with pytest.raises(
        DeviceAssignmentError, match="3 pytest-xdist workers need 3 GPUs but --trt-devices lists 2"
    ):
        pick_device("gw2", (0, 1), visible=4)
    with pytest.raises(DeviceAssignmentError, match="5 pytest-xdist workers need 5 GPUs but 4 are visible"):
        pick_device("gw4", None, visible=4)
    # With the worker count known, worker 0 fails too, so the whole run stops alike.
    with pytest.raises(DeviceAssignmentError, match="run with -n 2 or fewer"):
        pick_device("gw0", (0, 1), visible=4, n_workers=3)
    assert pick_device("gw1", (0, 1), visible=4, n_workers=2) == 1


def test_pick_device_rejects_invisible_or_repeated_gpus() -> None:
    with pytest.raises(DeviceAssignmentError, match="lists GPU 4 but only 2 GPU"):
        pick_device("gw0", (0, 4), visible=2)
    with pytest.raises(DeviceAssignmentError, match="more than once"):
        pick_device("gw0", (1, 1), visible=2)
    with pytest.raises(DeviceAssignmentError, match="no CUDA GPU is visible"):
        pick_device("gw0", None, visible=0)
    with pytest.raises(DeviceAssignmentError, match="is empty"):
        pick_device("gw0", (), visible=2)


def test_cpu_worker_warning() -> None:
    assert cpu_worker_warning(0) is None
    assert cpu_worker_warning(1) is None
    message = cpu_worker_warning(4)
    assert message is not None and "4 pytest-xdist workers" in message and "-n 0" in message
