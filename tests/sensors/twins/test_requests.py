"""Requests through a twin: commands, desired config and head, frame pulls, traps."""

from __future__ import annotations

import dataclasses
import zlib
from typing import Any

import msgspec
import numpy as np
import pytest

from edgeloop.actors import Future
from edgeloop.errors import (
    DeviceAwayError,
    DeviceError,
    DeviceRefusedError,
    DeviceTimeout,
    FrameError,
    InvalidRequestError,
)
from edgeloop.messages import (
    Command,
    CommandResult,
    ConfigDesired,
    ConfigReported,
    FrameReady,
    FrameRef,
    FrameRequest,
    HeadAck,
    HeadUpdate,
    Message,
)
from edgeloop.sensors import (
    Configure,
    GetState,
    LaneFrames,
    PullFrame,
    PushHead,
    RunCommand,
    TwinAnswer,
    TwinClient,
    TwinState,
)
from edgeloop.transport import bulk
from tests.helpers import wait_for
from tests.sensors.twins.conftest import Yard, event, make_yard, status


def state(yard: Yard, device: str) -> TwinState:
    result: TwinState = yard.twin(device).ask(GetState()).get()
    return result


def test_a_command_is_answered_with_its_result(yard: Yard) -> None:
    def device(name: str, message: Message) -> None:
        if isinstance(message, Command):
            result = CommandResult(id=message.id, ok=True, result={"pan": message.args["to"]})
            yard.port.inject(name, result)

    yard.wire.respond = device
    yard.up("cam-1")
    result = TwinClient(yard.twin("cam-1")).command("pan", {"to": 30}).get()
    assert result.ok
    assert result.result == {"pan": 30}
    assert state(yard, "cam-1").counters["commands_ok"] == 1


def test_a_refused_command_fails_typed_with_the_device_reason(yard: Yard) -> None:
    def device(name: str, message: Message) -> None:
        if isinstance(message, Command):
            yard.port.inject(name, CommandResult(id=message.id, ok=False, detail="no such zone"))

    yard.wire.respond = device
    yard.up("cam-1")
    with pytest.raises(DeviceRefusedError, match="no such zone") as caught:
        TwinClient(yard.twin("cam-1")).command("pan", {"to": "z9"}).get()
    assert caught.value.detail == "no such zone"
    assert caught.value.device == "cam-1"


def test_a_command_to_a_device_that_is_away_fails_at_once(yard: Yard) -> None:
    with pytest.raises(DeviceAwayError, match="no link"):
        TwinClient(yard.twin("cam-1")).command("pan").get()
    assert yard.wire.drain() == []


def test_an_unanswered_command_times_out_typed(yard: Yard) -> None:
    yard.up("cam-1")
    future = TwinClient(yard.twin("cam-1")).command("pan", timeout=2.0)
    yard.wire.next(Command)
    yard.clock.advance(2.0)
    with pytest.raises(DeviceTimeout, match="did not answer command 'pan'"):
        future.get()
    assert isinstance(future.exception(), TimeoutError)


def test_a_device_that_leaves_with_a_command_pending_is_reported_away(yard: Yard) -> None:
    yard.up("cam-1")
    future = TwinClient(yard.twin("cam-1")).command("pan", timeout=2.0)
    yard.wire.next(Command)
    yard.down("cam-1")
    state(yard, "cam-1")
    yard.clock.advance(2.0)
    with pytest.raises(DeviceAwayError, match="went away"):
        future.get()


def test_a_pending_command_is_resent_when_the_device_comes_back(yard: Yard) -> None:
    yard.up("cam-1")
    future = TwinClient(yard.twin("cam-1")).command("pan", timeout=5.0)
    first = yard.wire.next(Command)
    yard.down("cam-1")
    yard.up("cam-1")
    again = yard.wire.next(Command)
    assert again == first, "the same id: the device runs it once"
    yard.port.inject("cam-1", CommandResult(id=first.id, ok=True))
    assert future.get().ok
    yard.port.inject("cam-1", CommandResult(id=first.id, ok=True))  # a late duplicate
    assert state(yard, "cam-1").counters["late_answers"] == 1


def test_an_actor_can_have_the_answer_told(yard: Yard) -> None:
    def device(name: str, message: Message) -> None:
        if isinstance(message, Command):
            yard.port.inject(name, CommandResult(id=message.id, ok=True))

    yard.wire.respond = device
    yard.up("cam-1")
    sink = yard.node.lookup("/sink")
    assert sink is not None
    yard.twin("cam-1").tell(RunCommand("pan", reply_to=sink))
    answer = yard.seen.get(timeout=5)
    assert isinstance(answer, TwinAnswer)
    assert answer.error is None
    assert answer.result.ok
    assert answer.request.name == "pan"


def test_desired_config_is_pushed_on_connect_and_reported_back() -> None:
    with make_yard([{"name": "cam-1", "desired": {"report_threshold": 0.6}}]) as yard:
        reported: list[ConfigDesired] = []

        def device(name: str, message: Message) -> None:
            if isinstance(message, ConfigDesired):
                reported.append(message)
                yard.port.inject(
                    name,
                    ConfigReported(device=name, version=message.version, settings=message.settings),
                )

        yard.wire.respond = device
        assert not state(yard, "cam-1").in_sync
        yard.up("cam-1")
        yard.port.inject("cam-1", event(1))
        wait_for(lambda: state(yard, "cam-1").in_sync, what="the desired config reported")
        now = state(yard, "cam-1")
        assert [m.settings for m in reported] == [{"report_threshold": 0.6}]
        assert now.reported_config is not None
        assert now.reported_config.settings == {"report_threshold": 0.6}

        client = TwinClient(yard.twin("cam-1"))
        done = client.configure({"report_threshold": 0.8}).get()
        assert done.settings == {"report_threshold": 0.8}
        assert done.version == reported[0].version + 1


def test_a_refused_config_fails_typed_and_the_old_one_stays_reported(yard: Yard) -> None:
    def device(name: str, message: Message) -> None:
        if isinstance(message, ConfigDesired):
            bad = message.settings.get("report_mode") == "sideways"
            yard.port.inject(
                name,
                ConfigReported(
                    device=name,
                    version=1 if bad else message.version,
                    settings={"report_mode": "thumbnails"} if bad else message.settings,
                    error="report_mode must be thumbnails, full or off" if bad else None,
                ),
            )

    yard.wire.respond = device
    yard.up("cam-1")
    client = TwinClient(yard.twin("cam-1"))
    with pytest.raises(DeviceRefusedError, match="report_mode must be"):
        client.configure({"report_mode": "sideways"}).get()
    now = state(yard, "cam-1")
    assert not now.in_sync
    assert now.reported_config is not None
    assert now.reported_config.settings == {"report_mode": "thumbnails"}
    assert now.counters["configs_refused"] == 1
    yard.wire.drain()
    yard.down("cam-1")
    yard.up("cam-1")
    state(yard, "cam-1")
    assert not [m for m in yard.wire.drain() if isinstance(m, ConfigDesired)], (
        "a refused config is not pushed again"
    )
    assert client.configure({"report_mode": "full"}).get().settings == {"report_mode": "full"}


def test_a_config_told_without_a_reply_is_sent_when_the_device_connects(yard: Yard) -> None:
    yard.twin("cam-1").tell(ConfigDesired(device="cam-1", version=4, settings={"fps": 5}))
    state(yard, "cam-1")
    assert yard.wire.drain() == []
    yard.up("cam-1")
    sent = yard.wire.next(ConfigDesired)
    assert sent.settings == {"fps": 5}
    assert sent.version >= 4


def test_a_head_is_pushed_acked_or_refused(yard: Yard) -> None:
    def device(name: str, message: Message) -> None:
        if isinstance(message, HeadUpdate):
            ok = message.head != b"broken" and zlib.crc32(message.head) == message.checksum
            yard.port.inject(
                name,
                HeadAck(
                    device=name,
                    version=message.version,
                    ok=ok,
                    error=None if ok else "not a head: bad magic",
                ),
            )

    yard.wire.respond = device
    yard.up("cam-1")
    yard.port.inject("cam-1", event(1))  # reports head version 1
    client = TwinClient(yard.twin("cam-1"))
    ack = client.push_head(b"head-v2").get()
    assert ack.ok
    assert ack.version == 2
    with pytest.raises(DeviceRefusedError, match="bad magic"):
        client.push_head(b"broken").get()
    now = state(yard, "cam-1")
    assert now.reported_head == 2, "the device keeps running the old head"
    assert now.counters["heads_refused"] == 1


def versions(yard: Yard) -> tuple[int | None, int | None]:
    """The head and configuration versions cam-1's twin says the device runs."""
    now = state(yard, "cam-1")
    config = now.reported_config
    return now.reported_head, None if config is None else config.version


def test_an_older_event_arriving_late_does_not_take_the_reported_versions_back(
    yard: Yard,
) -> None:
    """Events carry the head and configuration the device ran when it made them. One
    resent from before the device's latest status, or made before a head was applied but
    arriving after its ack, says nothing about what the device runs now."""

    def device(name: str, message: Message) -> None:
        if isinstance(message, HeadUpdate):
            yard.port.inject(name, HeadAck(device=name, version=message.version, ok=True))

    yard.wire.respond = device
    yard.up("cam-1")
    yard.port.inject("cam-1", event(1))
    assert TwinClient(yard.twin("cam-1")).push_head(b"head-v2").get().version == 2
    yard.port.inject("cam-1", event(2))  # made before the head came, sent after its ack
    assert state(yard, "cam-1").reported_head == 2
    # The device restarts (SIGKILL) still running head 2 and configuration 3, with events
    # 3 and 4 unacknowledged in its journal: its status says so, then it resends them.
    yard.down("cam-1")
    yard.port.on_peer("cam-1", True)
    yard.port.inject("cam-1", status("cam-1", config_version=3, head_version=2, next_seq=5))
    for seq in (3, 4):
        yard.port.inject("cam-1", event(seq))  # stamped head 1, configuration 1
    yard.events(4)
    assert versions(yard) == (2, 3)
    yard.port.inject("cam-1", msgspec.structs.replace(event(5), head_version=2, config_version=3))
    yard.events(1)
    assert versions(yard) == (2, 3)


def test_a_head_pushed_at_a_version_keeps_it_and_a_retry_resends_it_unchanged(
    yard: Yard,
) -> None:
    """What the knowledge cycle relies on: every camera gets the same version, and
    pushing the same head again (a retry) does not make a new one."""
    sent: list[int] = []

    def device(name: str, message: Message) -> None:
        if isinstance(message, HeadUpdate):
            sent.append(message.version)
            if len(sent) > 1:  # the first one is lost on the way
                yard.port.inject(name, HeadAck(device=name, version=message.version, ok=True))

    yard.wire.respond = device
    yard.up("cam-1")
    yard.port.inject("cam-1", event(1))  # reports head version 1
    client = TwinClient(yard.twin("cam-1"))
    lost = client.push_head(b"head-v5", version=5, timeout=2.0)
    wait_for(lambda: sent, what="the first push sent")
    yard.clock.advance(2.0)
    with pytest.raises(DeviceTimeout):
        lost.get()
    ack = client.push_head(b"head-v5", version=5).get()
    assert (ack.version, sent) == (5, [5, 5])
    assert client.push_head(b"head-v6").get().version == 6  # other bytes: the next one


def test_a_trap_reports_its_position_and_refuses_to_move_in_fault(yard: Yard) -> None:
    jam: list[str] = []

    def trap(name: str, message: Message) -> None:
        """As the trap agent answers: a result {"state": ...}; in fault, moves refused."""
        if not isinstance(message, Command):
            return
        if message.name == "fault":
            jam[:] = [message.args.get("reason", "jammed")] if message.args.get("on") else []
            state, ok, detail = ("fault" if jam else "open"), True, ""
        elif jam:
            state, ok, detail = "fault", False, f"trap {name} is in fault ({jam[0]})"
        else:
            state, ok, detail = ("closed" if message.name == "close" else "open"), True, ""
        result = CommandResult(id=message.id, ok=ok, detail=detail, result={"state": state})
        yard.port.inject(name, result)

    yard.wire.respond = trap
    yard.up("trap-1")
    client = TwinClient(yard.twin("trap-1"))
    client.command("close").get()
    assert state(yard, "trap-1").extra == {"position": "closed", "fault": None}

    client.command("fault", {"on": True, "reason": "spring broken"}).get()
    assert state(yard, "trap-1").extra["fault"] == "fault"
    yard.wire.drain()
    with pytest.raises(DeviceRefusedError, match="reports a fault") as caught:
        client.command("open").get()
    assert isinstance(caught.value, DeviceError)
    assert not [m for m in yard.wire.drain() if isinstance(m, Command)], "refused at the twin"

    client.command("fault", {"on": False}).get()
    assert state(yard, "trap-1").extra == {"position": "open", "fault": None}
    client.command("close").get()

    yard.port.inject("trap-1", status("trap-1", state="fault", detail="jammed by a raccoon"))
    assert state(yard, "trap-1").extra["fault"] == "jammed by a raccoon"
    yard.port.inject("trap-1", status("trap-1", state="closed"))
    assert state(yard, "trap-1").extra == {"position": "closed", "fault": None}
    assert state(yard, "trap-1").counters["commands_refused"] == 1


def test_a_device_the_twin_thought_in_fault_can_still_refuse_itself(yard: Yard) -> None:
    def trap(name: str, message: Message) -> None:
        if isinstance(message, Command):
            yard.port.inject(
                name,
                CommandResult(
                    id=message.id, ok=False, detail="in fault (rust)", result={"state": "fault"}
                ),
            )

    yard.wire.respond = trap
    yard.up("trap-1")
    with pytest.raises(DeviceRefusedError, match="rust"):
        TwinClient(yard.twin("trap-1")).command("close").get()
    assert state(yard, "trap-1").extra["fault"] == "in fault (rust)"


FRAME = np.arange(64 * 48, dtype=np.uint8).reshape(64, 48)


def ref_of(frame: np.ndarray, frame_id: int = 7) -> FrameRef:
    return FrameRef(
        device="cam-1",
        frame_id=frame_id,
        shape=frame.shape,
        dtype=frame.dtype.str,
        nbytes=frame.nbytes,
        checksum=zlib.crc32(frame.tobytes()),
    )


def test_a_frame_is_pulled_by_ref_over_the_bulk_lane_and_checked() -> None:
    sender, receiver = bulk.connect_pair(bulk.BulkConfig(slot_size=1 << 16, slot_count=2))

    def frames(device: str, system: object) -> LaneFrames:
        return LaneFrames(receiver)

    with make_yard([{"name": "cam-1", "frames": frames}]) as yard:
        store = {7: FRAME, 8: FRAME[::-1].copy()}
        lie = ref_of(FRAME, 8)  # the ref says frame 8 is FRAME, but the device has another

        def device(name: str, message: Message) -> None:
            if isinstance(message, FrameRequest):
                data = store.get(message.frame_id)
                if data is None:
                    yard.port.inject(name, FrameReady(id=message.id, error="evicted"))
                    return
                ref = ref_of(data, message.frame_id)
                bulk.send_frame(sender, ref, data, timeout=5.0)
                yard.port.inject(name, FrameReady(id=message.id, ref=ref))

        yard.wire.respond = device
        yard.up("cam-1")
        client = TwinClient(yard.twin("cam-1"))
        with client.pull_frame(ref_of(FRAME)).get() as frame:
            assert np.array_equal(frame.array, FRAME)
        with pytest.raises(FrameError, match="evicted"):
            client.pull_frame(ref_of(FRAME, 9)).get()
        with pytest.raises(FrameError, match="checksum"):
            client.pull_frame(lie).get()
        counters = state(yard, "cam-1").counters
        assert counters["frames_pulled"] == 1
        assert counters["frames_failed"] == 2
    sender.close()


@pytest.mark.parametrize(
    ("request_", "problem"),
    [
        (RunCommand("", timeout=1.0), "name"),
        (RunCommand("pan", {"to": object()}), "RunCommand"),
        (RunCommand("pan", timeout=-1.0), "timeout must be a positive"),
        (Configure({"zones": {"nested": {"too": "deep"}}}), "settings"),
        (PushHead("not bytes"), "a head is bytes"),  # type: ignore[arg-type]
        (PushHead(b"head", version=-1), "version is an integer >= 0"),
        (PullFrame("frame 7"), "needs a FrameRef"),  # type: ignore[arg-type]
    ],
)
def test_a_malformed_request_fails_typed_and_nothing_is_sent(
    yard: Yard, request_: object, problem: str
) -> None:
    yard.up("cam-1")
    state(yard, "cam-1")
    yard.wire.drain()
    future: Future[Any] = Future(None, "test")
    yard.twin("cam-1").tell(dataclasses.replace(request_, reply_to=future))  # type: ignore[type-var]
    error = future.exception(5)
    assert isinstance(error, InvalidRequestError)
    assert isinstance(error, ValueError)
    assert problem in str(error)
    now = state(yard, "cam-1")
    assert now.counters["bad_request"] == 1
    assert yard.wire.drain() == [], "nothing went to the device"
    assert yard.twin("cam-1").statistics().restarts == 0
