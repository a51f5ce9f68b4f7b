"""Fixtures of the trace tests: a trace recorded from a live node over real device links."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeloop.messages import Command, EventAck
from edgeloop.supervisor import Node
from edgeloop.trace import Recorder, RecorderConfig
from edgeloop.transport import LinkConfig
from tests.integration.endpoint_helpers import FAST, Peer
from tests.trace.trapapp import DEVICES, LIVE_HOLD, children, scenario

LIVE_EVENTS = 40


def record_live(out: Path, count: int = LIVE_EVENTS) -> Path:
    """Run the trap app on a real clock with two cameras on real device links, each event
    sent after the previous one was acknowledged, and record its boundary into ``out``.

    The trap stays closed for an hour, so no timer fires during the run: timers are the
    virtual-clock tests' business, where their time is exact.
    """
    node = Node(
        "traps",
        children=children(threshold=0.6, hold=LIVE_HOLD),
        listen=["tcp://127.0.0.1:*"],
        link=LinkConfig("traps", **FAST),
        seed=1,
    )
    with node:
        recorder = Recorder(RecorderConfig(out), clock=node.system.clock, node="traps")
        recorder.attach(node.devices)
        address = node.endpoint.statistics().bound[0]  # type: ignore[union-attr]
        cameras = {d: Peer(d, role="device", peers=(address,)).start() for d in DEVICES}
        try:
            for camera in cameras.values():
                camera.event()  # the link is up
            for _, event in scenario(count):
                camera = cameras[event.device]
                assert camera.endpoint.send("traps", event)
                while True:  # commands may come first; the ack closes this event
                    _, reply = camera.message()
                    assert isinstance(reply, EventAck | Command), reply
                    if isinstance(reply, EventAck):
                        assert reply.seq == event.seq
                        break
        finally:
            for camera in cameras.values():
                camera.endpoint.close()
            stats = recorder.close()
    assert stats.dropped == 0
    return out


@pytest.fixture(scope="module")
def live_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record_live(tmp_path_factory.mktemp("live"))
