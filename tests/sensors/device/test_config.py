"""Device files: every key checked, errors naming it; a runner's file reads back."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeloop.errors import ConfigError
from edgeloop.sensors._runner import device_toml, yard_devices
from edgeloop.sensors.device import CameraSettings, build_agent, load_device
from tests.integration.procs import Process

GOOD = """
[device]
name = "cam-1"
node = "tcp://127.0.0.1:5555"
data_dir = "state"
[device.outbox]
limit = 50
overflow = "drop_oldest"
[device.camera]
reachable = ["porch", "yard"]
zones = ["yard"]
threshold = 0.4
[device.source]
kind = "synthetic"
seed = 3
"""


def test_a_device_file_is_read_with_paths_relative_to_it(tmp_path: Path) -> None:
    path = tmp_path / "cam.toml"
    path.write_text(GOOD)
    config = load_device(path)
    assert config.data_dir == tmp_path / "state"
    assert config.outbox.limit == 50
    assert config.outbox.overflow == "drop_oldest"
    assert config.settings == CameraSettings(zones=("yard",), threshold=0.4)
    assert config.source.seed == 3


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (("limit = 50", "limit = -1"), "device.outbox.limit"),
        (('zones = ["yard"]', 'zones = ["moon"]'), "device.camera.zones[0]"),
        (("threshold = 0.4", "threshold = 2"), "device.camera.threshold"),
        (("threshold = 0.4", "treshold = 0.4"), "device.camera.treshold"),
        (('name = "cam-1"', 'name = "cam 1"'), "device.name"),
        (('kind = "synthetic"', 'kind = "radio"'), "device.source.kind"),
        (('overflow = "drop_oldest"', 'overflow = "drop_all"'), "device.outbox.overflow"),
    ],
)
def test_a_bad_value_is_refused_naming_its_key(
    tmp_path: Path, change: tuple[str, str], key: str
) -> None:
    path = tmp_path / "cam.toml"
    path.write_text(GOOD.replace(*change))
    with pytest.raises(ConfigError) as error:
        load_device(path)
    assert error.value.key == key


def test_a_node_off_this_host_needs_curve_keys(tmp_path: Path) -> None:
    path = tmp_path / "cam.toml"
    path.write_text(GOOD.replace("tcp://127.0.0.1:5555", "tcp://10.1.2.3:5555"))
    with pytest.raises(ConfigError) as error:
        load_device(path)
    assert error.value.key == "device.security.secret_key"
    path.write_text(GOOD.replace("tcp://127.0.0.1:5555", "tcp://10.1.2.3:5555") + OFF)
    with pytest.raises(ConfigError, match="only allowed on loopback"):
        load_device(path)


OFF = """
[device.security]
mode = "off"
"""


def test_a_missing_or_broken_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no device file"):
        load_device(tmp_path / "none.toml")
    path = tmp_path / "bad.toml"
    path.write_text("[device\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_device(path)


def test_the_runner_writes_device_files_that_read_back(tmp_path: Path) -> None:
    configs = yard_devices(
        "calm",
        connect="tcp://127.0.0.1:5555",
        run_dir=tmp_path,
        speed=5.0,
        keys=tmp_path / "keys",
        node_key="edge.key",
    )
    names = [c.name for c in configs]
    assert names == ["cam-gate", "cam-shed", "cam-garden", "cam-hedge", "trap-shed", "trap-garden"]
    for config in configs:
        path = tmp_path / f"{config.name}.toml"
        path.write_text(device_toml(config))
        again = load_device(path)
        assert again.name == config.name
        assert again.kind == config.kind
        assert again.source == config.source
        assert again.data_dir == config.data_dir
        assert again.trap == config.trap
        assert again.secret_key == tmp_path / "keys" / f"{config.name}.key_secret"
        assert again.node_key == "edge.key"


def test_device_run_refuses_a_bad_file_with_exit_code_2(tmp_path: Path) -> None:
    path = tmp_path / "cam.toml"
    path.write_text(GOOD.replace("limit = 50", "limit = -1"))
    device = Process("device", "run", str(path))
    code, _ = device.finish(timeout=30)
    assert code == 2
    assert any("device.outbox.limit" in line for line in device.seen)


def test_a_yard_device_must_be_one_of_the_scenario_s(tmp_path: Path) -> None:
    yard = GOOD.replace('kind = "synthetic"', 'kind = "yard"\nscenario = "calm"')
    path = tmp_path / "cam.toml"
    path.write_text(yard)
    with pytest.raises(ConfigError) as error:
        build_agent(load_device(path))
    assert error.value.key == "device.name"
    assert "cam-shed" in str(error.value)
    trap = (
        yard.replace("[device]\n", '[device]\nkind = "trap"\n') + '[device.trap]\nzone = "porch"\n'
    )
    path.write_text(trap)
    with pytest.raises(ConfigError) as error:
        build_agent(load_device(path))
    assert error.value.key == "device.trap.zone"
