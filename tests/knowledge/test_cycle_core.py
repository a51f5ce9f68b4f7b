"""The cycle's pure parts: the notice rule, the push tracker, the timeline, and the
checks on what a remote client or an app file hands the cycle."""

from __future__ import annotations

import numpy as np
import pytest

from edgeloop.errors import ConfigError, KnowledgeError
from edgeloop.learning import CycleConfig, GetCycles, NameClass
from edgeloop.learning.cycle_core import (
    STAGES,
    CycleRecord,
    NoticeWindow,
    PushTracker,
    Sighting,
    backoff,
    max_p_new,
)
from edgeloop.learning.cycle_messages import remote_request


def sighting(device: str, ts: float, *, cloud: bool = False, gate: bool = False) -> Sighting:
    return Sighting(
        device=device,
        seq=int(ts * 10),
        ts=ts,
        embedding=np.zeros(20, np.int8),
        frame=None,
        device_novel=gate,
        cloud_novel=cloud,
        head_version=1,
        arrived=ts,
    )


def test_notice_needs_k_cloud_novel_sightings_within_the_window() -> None:
    window = NoticeWindow(window=10.0, shots=3, gate_cameras=2)
    assert window.offer(sighting("cam-a", 0.0)) is None  # neither judge: not kept
    assert window.sightings == type(window.sightings)()
    assert window.offer(sighting("cam-a", 1.0, cloud=True)) is None
    assert window.offer(sighting("cam-a", 20.0, cloud=True)) is None  # the first fell out
    assert window.offer(sighting("cam-a", 21.0, cloud=True)) is None
    assert window.offer(sighting("cam-a", 22.0, cloud=True)) == "cloud"
    assert [s.ts for s in window.suspects()] == [20.0, 21.0, 22.0]
    window.clear()
    assert window.suspects() == []


def test_notice_when_the_gates_of_several_cameras_fire_and_the_cloud_agrees() -> None:
    window = NoticeWindow(window=10.0, shots=5, gate_cameras=2, gate_cloud=1)
    assert window.offer(sighting("cam-a", 1.0, gate=True)) is None
    assert window.offer(sighting("cam-a", 2.0, gate=True)) is None  # the same camera again
    assert window.offer(sighting("cam-b", 3.0, gate=True)) is None  # no cloud-novel one yet
    assert len(window.suspects()) == 3  # no cloud-novel one: every gate sighting
    assert window.offer(sighting("cam-c", 4.0, cloud=True)) == "gates"
    assert [s.device for s in window.suspects()] == ["cam-c"]


def test_backoff_doubles_up_to_its_ceiling() -> None:
    assert [backoff(n, 0.1, 0.5) for n in (1, 2, 3, 4, 5)] == [0.1, 0.2, 0.4, 0.5, 0.5]


def test_a_push_is_done_once_every_camera_acked_or_refused() -> None:
    push = PushTracker(3, ("cam-a", "cam-b", "cam-c"), attempts=3, low=0.1, high=1.0)
    assert push.acked("cam-a", 3, now=1.0)
    assert not push.acked("cam-a", 3, now=2.0)  # news once
    assert not push.acked("cam-b", 2, now=2.0)  # an older head is no ack
    assert not push.acked("cam-x", 3, now=2.0)  # not one of the push's cameras
    push.refused("cam-b", "malformed", now=2.5)
    assert not push.done
    assert push.failed("cam-c", "timeout") == 0.1
    assert push.failed("cam-c", "timeout") == 0.2
    assert push.failed("cam-c", "timeout") is None  # three tries: away, waits for reconnect
    assert push.names("away") == ["cam-c"]
    assert push.acked("cam-c", 4, now=3.0)  # an event scored with a newer head counts
    assert push.done
    assert push.names("acked") == ["cam-a", "cam-c"]
    assert push.names("refused") == ["cam-b"]
    assert push.last_ack() == 3.0
    assert push.failed("cam-a", "late") is None  # an acked camera is never retried


def test_a_record_times_each_stage_from_the_first_sighting() -> None:
    record = CycleRecord(cycle=1, reason="cloud", first_seen=10.0, noticed=10.5)
    record.end("notice", 10.5)
    record.end("query", 10.52)
    assert record.stage_ms() == {"notice": 500.0, "query": pytest.approx(20.0)}
    assert record.latency_ms() is None  # still running
    record.end("learn", 10.521)
    record.end("recompile", 10.522)
    record.push = PushTracker(2, ("cam-a",), attempts=1, low=0.1, high=0.1)
    record.push.acked("cam-a", 2, now=10.6)
    record.end("push", 10.6)
    record.state = "done"
    out = record.to_json()
    assert list(out["stage_ms"]) == list(STAGES)
    assert out["cycle_latency_ms"] == pytest.approx(100.0)
    assert out["wait_for_examples_ms"] == 500.0
    assert out["cameras_acked"] == ["cam-a"]


def test_remote_requests_are_checked_field_by_field() -> None:
    assert remote_request({"op": "cycles"}) == GetCycles()
    assert remote_request({"op": "name", "old": "species-4", "new": "opossum"}) == NameClass(
        "species-4", "opossum"
    )
    for body, field in (
        (["name"], "op"),
        ({"op": "forget"}, "op"),
        ({"op": "name", "old": "species-4"}, "new"),
        ({"op": "name", "old": 4, "new": "opossum"}, "old"),
        ({"op": "name", "old": "species-4", "new": "x" * 65}, "new"),
    ):
        with pytest.raises(KnowledgeError) as caught:
            remote_request(body)
        assert caught.value.field == field


def test_a_config_names_its_bad_field() -> None:
    good = {"cameras": ("cam-a",), "knowledge": "m:k", "fleet": "m:f"}
    CycleConfig(**good)  # type: ignore[arg-type]
    for bad, field in (
        ({"cameras": ()}, "cameras"),
        ({"shots": 0}, "shots"),
        ({"window": -1.0}, "window"),
        ({"retry_min": 1.0, "retry_max": 0.5}, "retry_max"),
    ):
        with pytest.raises(ConfigError) as caught:
            CycleConfig(**{**good, **bad})  # type: ignore[arg-type]
        assert field in str(caught.value)


def test_the_largest_p_new_of_a_live_track() -> None:
    belief = np.zeros((3, 3, 2))  # 3 track slots, 2 known classes + NEW, 2 zones
    belief[0, 0, 0] = 1.0  # a cat, surely
    belief[1, 2, :] = [0.5, 0.3]  # NEW with 0.8 of 1.0
    belief[1, 1, 1] = 0.2
    belief[2, 2, 0] = 1.0  # NEW, but not live
    assert max_p_new(belief, [True, True, False]) == pytest.approx(0.8)
    assert max_p_new(belief, [False, False, False]) == 0.0
    with pytest.raises(ValueError, match="expected beliefs"):
        max_p_new(belief[0], [True])


def test_node_status_shows_the_cycles_as_a_table() -> None:
    from rich.console import Console

    from edgeloop.cli import render_status

    record = CycleRecord(cycle=1, reason="cloud", first_seen=0.0, noticed=0.5)
    for at, stage in enumerate(STAGES):
        record.end(stage, 0.5 + at / 1000)
    record.name, record.state = "species-4", "done"
    status = {
        "node": "yard",
        "uptime_s": 1.0,
        "dead_letters": 0,
        "actors": [],
        "peers": [],
        "knowledge": {
            "labels": ["cat", "species-4"],
            "head_version": 2,
            "cycles": [record.to_json()],
        },
    }
    console = Console(width=160, record=True)
    render_status(status, console)
    text = console.export_text()
    assert "knowledge cycle: cat, species-4 (head v2)" in text
    assert "species-4" in text.split("head v2)")[1]
    assert "500.0" in text  # the notice stage: the wait for the examples, in ms
