"""The edgeloop CLI as a user runs it: real subprocesses, real signals."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.integration.procs import ROOT, Process

QUICKSTART = ROOT / "examples" / "quickstart"

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def own_runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's nodes put their control sockets in a directory of their own."""
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_node_start_stops_in_order_on_signal(signum: signal.Signals) -> None:
    """`edgeloop node start` runs the tree until SIGTERM/SIGINT, stops it right to left, exits 0."""
    proc = Process("node", "start", "app.toml", "--log-format", "json", cwd=QUICKSTART)
    started = proc.wait_for_event("node_started")
    assert started["node"] == "edge-a"
    proc.proc.send_signal(signum)
    proc.wait_for_event("node_stopped")
    code, _ = proc.finish()
    assert code == 0
    exits = [e["child"] for e in proc.events() if e["event"] == "child_exited"]
    assert exits == ["cam-02", "cam-01", "cameras", "counter"]
    control = Path(os.environ["XDG_RUNTIME_DIR"]) / "edgeloop"
    assert list(control.glob("*.ipc")) == []  # the control socket is cleaned up


def test_node_name_and_path_options(tmp_path: Path) -> None:
    """--name overrides the app's node name and --path adds the user's module directory."""
    app = tmp_path / "app.toml"
    app.write_text((QUICKSTART / "app.toml").read_text())
    proc = Process(
        "node", "start", str(app), "--name", "edge-z", "--path", str(QUICKSTART),
        "--log-format", "json", cwd=tmp_path,
    )  # fmt: skip
    assert proc.wait_for_event("node_started")["node"] == "edge-z"
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.finish()[0] == 0


def test_root_escalation_exits_non_zero(tmp_path: Path) -> None:
    """A tree whose root escalates stops the node with a clear message and exit code 1."""
    app = tmp_path / "app.toml"
    app.write_text(
        '[supervisor]\nintensity = 1\n[[supervisor.children]]\nid = "bad"\n'
        'start = "tests.supervisor.sample_actors:CrashSoon"\n'
    )
    proc = Process("node", "start", str(app), "--log-format", "json")
    code, _ = proc.finish()
    assert code == 1
    events = [e["event"] for e in proc.events()]
    assert "supervisor_escalated" in events
    assert "node_stopped" in events
    assert any("root supervisor escalated" in line for line in proc.seen)


def test_bad_app_file_exits_2_naming_the_key(tmp_path: Path) -> None:
    """An invalid app file is refused before anything starts, naming the key path."""
    app = tmp_path / "app.toml"
    app.write_text('[supervisor]\nstrategy = "one_for_some"\n')
    proc = Process("node", "start", str(app))
    code, _ = proc.finish()
    assert code == 2
    assert "supervisor.strategy" in "".join(proc.seen)


def test_version_and_demo() -> None:
    """--version prints the version; the demo runs, restarts something and stops in order."""
    version = Process("--version")
    code, out = version.finish()
    assert code == 0
    assert out.startswith("edgeloop ")
    demo = Process("demo", "supervision", "--seconds", "3", "--log-format", "json")
    code, out = demo.finish(60)
    assert code == 0
    events = [e["event"] for e in demo.events()]
    assert "child_restarted" in events
    assert events[-1] == "node_stopped"
    assert "what happened" in out


def test_keys_generate_writes_a_pair_and_refuses_to_overwrite(tmp_path: Path) -> None:
    """`edgeloop keys generate NAME` writes NAME.key and a 0600 NAME.key_secret, once."""
    first = Process("keys", "generate", "edge-a", "--dir", str(tmp_path))
    code, out = first.finish()
    assert code == 0
    assert "edge-a.key" in out
    assert (tmp_path / "edge-a.key").exists()
    assert (tmp_path / "edge-a.key_secret").stat().st_mode & 0o077 == 0
    again = Process("keys", "generate", "edge-a", "--dir", str(tmp_path))
    code, _ = again.finish()
    assert code == 2
    assert "already exists" in "".join(again.seen)


def test_node_status_shows_tree_peers_and_counters() -> None:
    """`edgeloop node status` finds a local node and shows its tree, peers and counters."""
    node = Process("node", "start", "app.toml", "--log-format", "json", cwd=QUICKSTART)
    node.wait_for_event("node_started")
    try:
        status = Process("node", "status", "--name", "edge-a", "--json")
        code, out = status.finish()
        assert code == 0, status.seen
        report = json.loads(out)
        assert report["node"] == "edge-a"
        paths = [a["path"] for a in report["actors"]]
        # /_trace: the node serves its device boundary to `edgeloop record` (outside the tree)
        assert paths == [
            "/",
            "/_trace",
            "/cameras",
            "/cameras/cam-01",
            "/cameras/cam-02",
            "/counter",
        ]
        assert all(a["restarts"] == 0 and a["queue_depth"] == 0 for a in report["actors"])
        assert [p["state"] for p in report["peers"]] == ["ready"]  # the status client itself
        assert report["rejected"] == {}
        table = Process("node", "status")  # the only node started here
        code, out = table.finish()
        assert code == 0
        assert "cam-01" in out
        assert "rejected input: none" in out
    finally:
        node.proc.send_signal(signal.SIGTERM)
        assert node.finish()[0] == 0


def test_node_status_without_a_node_says_so() -> None:
    """With nothing to connect to, `node status` exits non-zero and says what to pass."""
    status = Process("node", "status")
    code, _ = status.finish()
    assert code == 2
    assert "--connect" in "".join(status.seen)
    unreachable = Process("node", "status", "--name", "nobody", "--timeout", "0.5")
    code, _ = unreachable.finish()
    assert code == 1
    assert "no node answered" in "".join(unreachable.seen)


def test_bench_link_fuzz_reports_no_crashes() -> None:
    """`edgeloop bench link --fuzz N --json` tries N hostile messages and finds 0 crashes."""
    proc = Process("bench", "link", "--fuzz", "300", "--json")
    code, out = proc.finish(120)
    assert code == 0, proc.seen[-5:]
    report = json.loads(out)
    assert report["tried"] == 300
    assert report["crashes"] == 0
    assert report["unaccounted"] == 0
    assert report["rejected_total"] == 300


def test_a_second_node_of_the_same_name_is_refused() -> None:
    """A second `node start` with a running node's name exits 2 and leaves the first one
    (and its control socket) alone."""
    first = Process("node", "start", "app.toml", "--log-format", "json", cwd=QUICKSTART)
    first.wait_for_event("node_started")
    try:
        second = Process("node", "start", "app.toml", "--log-format", "json", cwd=QUICKSTART)
        code, _ = second.finish()
        assert code == 2
        assert "already running" in "".join(second.seen)
        status = Process("node", "status", "--name", "edge-a", "--json")
        code, out = status.finish()
        assert code == 0
        assert json.loads(out)["node"] == "edge-a"
    finally:
        first.proc.send_signal(signal.SIGTERM)
        assert first.finish()[0] == 0
