"""The trace commands as a user runs them: info, export, replay --check, record --connect,
and node start --record in a real subprocess."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcap.writer import Writer
from typer.testing import CliRunner

from edgeloop.actors import Actor, ActorSystem
from edgeloop.cli import _start_tracing, app
from edgeloop.messages import EventAck, encode
from edgeloop.supervisor import Node
from edgeloop.trace import TRACE_PATH, Recorder, RecorderConfig, TraceSubscriber, open_trace
from edgeloop.transport import LinkConfig
from tests.helpers import wait_for
from tests.integration.endpoint_helpers import FAST, Peer
from tests.integration.procs import ROOT, Process
from tests.trace.trapapp import children, event, write_app

runner = CliRunner()


class Probe(Actor):
    """Stands in for a trace server: something alive to watch."""

    def on_receive(self, message: Any) -> Any:
        return None


@pytest.fixture(autouse=True)
def keep_test_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands configure structlog for a terminal, caching loggers on first use;
    in-process, those would outlive the runner's captured stderr. Keep the tests' setup."""
    monkeypatch.setattr("edgeloop.cli.configure_logging", lambda *args, **kwargs: None)


def test_trace_info_lists_channels_counts_and_duration(live_trace: Path) -> None:
    result = runner.invoke(app, ["trace", "info", str(live_trace)])
    assert result.exit_code == 0, result.output
    assert "/in/cam-1/event" in result.output
    assert "/out/cam-2/event_ack" in result.output
    assert "edgeloop.messages.Event" in result.output
    assert "dropped_total=0" in result.output

    as_json = runner.invoke(app, ["trace", "info", str(live_trace), "--json"])
    info = json.loads(as_json.stdout)
    assert info["messages"] == sum(c["count"] for c in info["channels"])
    assert info["duration"] > 0


def test_trace_info_on_another_encoding_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "ros.mcap"
    with path.open("wb") as stream:
        writer = Writer(stream)
        writer.start(profile="ros2", library="ros")
        schema = writer.register_schema("std_msgs/String", "ros2msg", b"string data")
        channel = writer.register_channel("/chatter", "cdr", schema)
        writer.add_message(channel, log_time=1, data=b"\x00\x01\x00\x00", publish_time=1)
        writer.finish()
    result = runner.invoke(app, ["trace", "info", str(path)])
    assert result.exit_code == 2
    assert "'/chatter' is encoded as 'cdr'" in result.output
    assert "'msgpack'" in result.output


def test_a_truncated_trace_names_the_offset_and_salvage_reads_the_rest(
    live_trace: Path, tmp_path: Path
) -> None:
    [path] = list(live_trace.glob("*.mcap"))
    data = path.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: len(data) - 200])
    result = runner.invoke(app, ["trace", "info", str(cut)])
    assert result.exit_code == 2
    assert "at byte" in result.output
    assert "--salvage" in result.output
    salvaged = runner.invoke(app, ["trace", "info", str(cut), "--salvage"])
    assert salvaged.exit_code == 0
    assert "damaged:" in salvaged.output


def test_trace_export_writes_json_lines(live_trace: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    result = runner.invoke(
        app, ["trace", "export", str(live_trace), "--jsonl", "--topics", "^/in/", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 40
    assert {line["kind"] for line in lines} == {"event"}
    assert runner.invoke(app, ["trace", "export", str(live_trace)]).exit_code == 2


def test_replay_check_passes_for_the_same_app_and_fails_for_a_changed_model(
    live_trace: Path, tmp_path: Path
) -> None:
    same = write_app(tmp_path / "same.toml", threshold=0.6)
    result = runner.invoke(
        app, ["replay", str(live_trace), "--app", str(same), "--fast", "--check"]
    )
    assert result.exit_code == 0, result.output
    assert "check passed" in result.output
    assert "replayed 40 messages" in result.output

    changed = write_app(tmp_path / "changed.toml", threshold=0.95)
    result = runner.invoke(
        app, ["replay", str(live_trace), "--app", str(changed), "--fast", "--check", "--quiet"]
    )
    assert result.exit_code == 1
    assert "check failed: first divergence at t=" in result.output
    assert "expected command" in result.output


def test_replay_refuses_bad_options_clearly(live_trace: Path, tmp_path: Path) -> None:
    same = write_app(tmp_path / "same.toml")
    bad_topics = runner.invoke(
        app, ["replay", str(live_trace), "--app", str(same), "--topics", "("]
    )
    assert bad_topics.exit_code == 2
    assert "not a regular expression" in bad_topics.output
    both = runner.invoke(
        app, ["replay", str(live_trace), "--app", str(same), "--loop", "--check", "--fast"]
    )
    assert both.exit_code == 2
    assert "--loop or --check" in both.output


@pytest.fixture
def served_node() -> Iterator[Node]:
    node = Node(
        "traps",
        children=children(),
        listen=["tcp://127.0.0.1:*"],
        link=LinkConfig("traps", **FAST),
    )
    with node:
        _start_tracing(node, None)
        yield node


def test_record_connect_records_a_running_node(served_node: Node, tmp_path: Path) -> None:
    address = served_node.endpoint.statistics().bound[0]  # type: ignore[union-attr]
    stop = threading.Event()

    def traffic() -> None:
        seq = 0
        while not stop.wait(0.005):
            seq += 1
            served_node.devices.inject("cam-1", event("cam-1", seq, "cat", 0.3))

    feeder = threading.Thread(target=traffic)
    feeder.start()
    try:
        result = runner.invoke(
            app, ["record", "--connect", address, "--out", str(tmp_path), "--duration", "1.0"]
        )
    finally:
        stop.set()
        feeder.join()
    assert result.exit_code == 0, result.output
    assert "dropped 0 here and 0 at the node" in result.output
    trace = open_trace(tmp_path)
    seqs = [r.message.seq for r in trace.records(direction="in")]
    assert len(seqs) > 5
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "contiguous: nothing lost"
    acks = [r.message.seq for r in trace.records(kinds=["event_ack"])]
    # the first ack may answer an event from before the subscription; the last events'
    # acks may come after it ended
    assert all(seq in seqs or seq == seqs[0] - 1 for seq in acks)
    assert set(seqs[:-2]) <= set(acks)
    assert trace.metadata["edgeloop.trace"]["node"] == "traps"


def test_record_connect_without_a_node_fails_clearly(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["record", "--connect", "tcp://127.0.0.1:9", "--out", str(tmp_path), "--timeout", "0.5"],
    )
    assert result.exit_code == 1
    assert "no node answered at tcp://127.0.0.1:9" in result.output


@pytest.mark.integration
def test_node_start_record_writes_what_a_device_sent(tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    app_file = write_app(tmp_path / "app.toml")
    out = tmp_path / "rec"
    proc = Process(
        "node", "start", str(app_file), "--record", str(out), "--log-format", "json",
        cwd=ROOT, env={"XDG_RUNTIME_DIR": str(runtime)},
    )  # fmt: skip
    proc.wait_for_event("trace_recording")
    control = runtime / "edgeloop" / "traps.ipc"
    wait_for(control.exists, what="the control socket")
    camera = Peer("cam-1", role="device", peers=(f"ipc://{control}",)).start()
    try:
        camera.event()
        for seq in (1, 2, 3):
            assert camera.endpoint.send("traps", event("cam-1", seq, "skunk", 0.9))
        seen = [camera.message()[1] for _ in range(4)]  # 3 acks and one close
        assert len(seen) == 4, seen
    finally:
        camera.endpoint.close()
    proc.proc.send_signal(signal.SIGINT)
    code, _ = proc.finish()
    assert code == 0, proc.seen
    trace = open_trace(out)
    kinds = [(r.direction, r.kind) for r in trace]
    assert kinds.count(("in", "event")) == 3
    assert ("out", "command") in kinds
    assert any("recorded 7 messages, dropped 0" in line for line in proc.seen)


def test_the_trace_server_answers_bad_requests_and_goes_on_serving(served_node: Node) -> None:
    server = served_node.lookup(TRACE_PATH)
    assert server is not None
    for bad in ("subscribe", {"op": "dance", "address": "x:/y"}, {"op": "subscribe"}):
        answer = server.ask(bad).get()
        assert "trace request" in answer["error"]
    answer = server.ask({"op": "subscribe", "address": "no address"}).get()
    assert "cannot reach subscriber 'no address'" in answer["error"]
    assert server.is_alive()
    assert server.ask({"op": "unsubscribe", "address": "x:/y"}).get()["error"] is None


def test_the_subscriber_counts_malformed_records_and_keeps_recording(tmp_path: Path) -> None:
    system = ActorSystem("sub")
    recorder = Recorder(RecorderConfig(tmp_path))
    report: dict[str, int] = {}
    system.spawn(Probe, "/server")
    ref = system.spawn(
        TraceSubscriber,
        "/sub",
        args={
            "recorder": recorder,
            "server": "/server",
            "done": threading.Event(),
            "report": report,
        },
    )
    good = ["out", "cam-1", 1.5, encode(EventAck(device="cam-1", seq=3)), 2]
    for bad in (
        "nonsense",
        ["sideways", "cam-1", 1.0, b"", 0],
        ["in", "cam-1", 1.0, b"\xc1", 0],
        good,
    ):
        ref.tell(bad)
    wait_for(lambda: report["remote_dropped"] == 2, what="the good record arrived")
    system.close()
    stats = recorder.close()
    assert report["malformed"] == 3
    assert stats.recorded == 1
    assert [r.message for r in open_trace(tmp_path)] == [EventAck(device="cam-1", seq=3)]
