"""A device with its own Curve key pair and its node's public key: admitted and streaming
when the node allows its key; a device whose key the node does not list never links."""

from __future__ import annotations

from pathlib import Path

from edgeloop import ChildSpec, Node
from edgeloop.sensors.device import (
    CameraSettings,
    DeviceAgent,
    DeviceConfig,
    SourceConfig,
    SyntheticSource,
)
from edgeloop.transport import LinkConfig, SecurityConfig, generate_keypair
from tests.helpers import wait_for
from tests.sensors.device.conftest import FAST_LINK, node_address
from tests.sensors.device.twin import RECORDS, RecordingTwin


def test_only_a_device_with_an_allowed_key_links_over_curve(tmp_path: Path) -> None:
    RECORDS.clear()
    node_public, node_secret = generate_keypair(tmp_path, "edge")
    cam_public, cam_secret = generate_keypair(tmp_path, "cam-c")
    _, stranger_secret = generate_keypair(tmp_path, "cam-x")
    node = Node(
        "edge",
        children=[
            ChildSpec(f"twin-{d}", RecordingTwin, args={"device": d}) for d in ("cam-c", "cam-x")
        ],
        listen=["tcp://127.0.0.1:*"],
        link=LinkConfig("edge", **FAST_LINK),
        security=SecurityConfig(mode="on", secret_key=node_secret, allowed=(cam_public,)),
    )

    def camera(name: str, secret: Path) -> DeviceAgent:
        config = DeviceConfig(
            name=name,
            node=node_address(node),
            security_mode="on",
            secret_key=secret,
            node_key=str(node_public),
            reachable=("porch",),
            initial=CameraSettings(zones=("porch",), frame_rate=60.0),
            heartbeat_interval=0.1,
            liveness_timeout=1.0,
            source=SourceConfig(speed=2.0),
        )
        return DeviceAgent(config, source=SyntheticSource(seed=1, zones=("porch",), rate=20.0))

    with node, camera("cam-c", cam_secret) as allowed, camera("cam-x", stranger_secret) as other:
        wait_for(lambda: RECORDS["cam-c"].count() >= 10, what="events over CurveZMQ")
        assert allowed.statistics().connected
        assert not other.statistics().connected
        assert RECORDS["cam-x"].count() == 0
        assert other.statistics().outbox.depth > 0, "the refused device keeps its events"
