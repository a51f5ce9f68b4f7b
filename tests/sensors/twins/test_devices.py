"""Devices: one twin per device of the app file; bad tables are refused by key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from edgeloop import Node
from edgeloop.errors import ConfigError, NodeError
from edgeloop.sensors import ActuatorTwin, SensorTwin, twin_specs

APP = """
[node]
name = "yard"

[[supervisor.children]]
id = "devices"
start = "edgeloop.sensors:Devices"
shutdown = "infinity"
args.subscribers = ["/devices"]
args.ack_every = 8
args.devices = [
    { name = "cam-1", desired = { report_threshold = 0.6 } },
    { name = "cam-2", buffer_events = 100 },
    { name = "trap-1", kind = "trap" },
]
"""


def test_an_app_file_starts_one_twin_per_device(tmp_path: Path) -> None:
    app = tmp_path / "yard.toml"
    app.write_text(textwrap.dedent(APP))
    with Node.from_app(app) as node:
        assert node.devices.devices() == ["cam-1", "cam-2", "trap-1"]
        children = {info.id: info for info in node.supervisor("/devices").which_children()}
        assert sorted(children) == ["cam-1", "cam-2", "trap-1"]
        assert node.lookup("/devices/trap-1") is not None
        assert node.devices.route("cam-2") is node.lookup("/devices/cam-2")


@pytest.mark.parametrize(
    ("devices", "key", "problem"),
    [
        ("cam-1", "devices", "list of device tables"),
        ([{"kind": "camera"}], "devices[0].name", "missing"),
        ([{"name": "cam 1"}], "devices[0].device", "device name"),
        ([{"name": "cam-1"}, {"name": "cam-1"}], "devices[1].name", r"already devices\[0\]"),
        ([{"name": "cam-1", "kind": "drone"}], "devices[0].kind", "camera, trap"),
        ([{"name": "cam-1", "buffer": 5}], "devices[0].buffer", "did you mean 'buffer_events'"),
        ([{"name": "cam-1", "ack_every": 0}], "devices[0].ack_every", "> 0"),
        ([{"name": "cam-1", "gap_timeout": "soon"}], "devices[0].gap_timeout", "seconds"),
        ([{"name": "cam-1", "subscribers": ["fusion"]}], "devices[0].subscribers[0]", "path"),
        ([{"name": "cam-1", "restart": "never"}], "devices[0].restart", "permanent"),
        ([{"name": "cam-1", "desired": 3}], "devices[0].desired", "table of settings"),
        ([{"name": "cam-1", "frames": 3}], "devices[0].frames", "module:factory"),
    ],
)
def test_bad_device_tables_are_refused_by_key(devices: object, key: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        twin_specs(devices)  # type: ignore[arg-type]
    assert caught.value.key == key


def test_twin_kinds_and_shared_defaults() -> None:
    specs = twin_specs(
        [{"name": "cam-1"}, {"name": "trap-1", "kind": "trap", "ack_every": 2}],
        ["/fusion"],
        ack_every=16,
    )
    assert [s.start for s in specs] == [SensorTwin, ActuatorTwin]
    assert specs[0].args["ack_every"] == 16
    assert specs[1].args["ack_every"] == 2
    assert specs[0].args["subscribers"] == ["/fusion"]
    with pytest.raises(ConfigError, match="unknown key"):
        twin_specs([{"name": "cam-1"}], bogus=1)


def test_a_node_whose_device_table_is_bad_does_not_start(tmp_path: Path) -> None:
    app = tmp_path / "bad.toml"
    app.write_text(textwrap.dedent(APP).replace('kind = "trap"', 'kind = "drone"'))
    with pytest.raises(NodeError, match=r"devices\[2\]\.kind"):
        Node.from_app(app).start()


def test_a_device_is_added_and_removed_at_run_time(tmp_path: Path) -> None:
    app = tmp_path / "yard.toml"
    app.write_text(textwrap.dedent(APP))
    with Node.from_app(app) as node:
        devices = node.supervisor("/devices")
        (spec,) = twin_specs([{"name": "cam-9", "kind": "camera"}], ["/devices"])
        devices.start_child(spec)
        assert "cam-9" in node.devices.devices()
        devices.terminate_child("cam-9")
        devices.delete_child("cam-9")
        assert "cam-9" not in node.devices.devices(), "a stopped twin unregisters"
