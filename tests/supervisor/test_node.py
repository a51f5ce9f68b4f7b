"""The supervisor node: builds its tree from an app, stops it in order, fails loudly."""

from __future__ import annotations

import pytest
import structlog

from edgeloop import ChildSpec, Node, SupervisorFlags
from edgeloop.errors import NodeError, NodeFailedError
from edgeloop.supervisor import parse_app
from tests.integration.procs import run_script
from tests.supervisor.sample_actors import CrashSoon, Echo, FailStart

APP = {
    "node": {"name": "edge-t"},
    "supervisor": {
        "strategy": "one_for_one",
        "intensity": 2,
        "children": [
            {"id": "echo", "start": "tests.supervisor.sample_actors:Echo"},
            {
                "id": "cameras",
                "type": "supervisor",
                "children": [
                    {
                        "id": "cam-01",
                        "start": "tests.supervisor.sample_actors:Echo",
                        "args": {"greeting": "cam"},
                    }
                ],
            },
        ],
    },
}


def test_tree_paths_and_lookup() -> None:
    """Children live at /<id> and nested ones at /<supervisor>/<id>, found by path."""
    with Node.from_app(parse_app(APP)) as node:
        assert node.name == "edge-t"
        assert {r.path for r in node.system.actors()} == {
            "/",
            "/echo",
            "/cameras",
            "/cameras/cam-01",
        }
        cam = node.lookup("/cameras/cam-01")
        assert cam is not None
        assert cam.ask("hi").get() == "cam hi"
        assert [c.id for c in node.supervisor("/cameras").which_children()] == ["cam-01"]
        assert [c.id for c in node.root.which_children()] == ["echo", "cameras"]


def test_orderly_stop_logs_right_to_left() -> None:
    """stop() terminates the tree right to left and logs node_started/node_stopped."""
    with structlog.testing.capture_logs() as logs:
        node = Node.from_app(parse_app(APP)).start()
        reason = node.stop()
    assert reason.kind == "shutdown"
    exits = [e["child"] for e in logs if e["event"] == "child_exited"]
    assert exits == ["cam-01", "cameras", "echo"]
    events = [e["event"] for e in logs]
    assert events.index("node_started") < events.index("node_stopped")
    assert node.stop().kind == "shutdown"  # idempotent


def test_restart_is_visible_through_lookup() -> None:
    """After a crash the path resolves to the new incarnation, with restarts counted."""
    with Node("n", SupervisorFlags(intensity=5), [ChildSpec("echo", Echo)]) as node:
        first = node.lookup("/echo")
        assert first is not None
        assert isinstance(first.ask("crash").exception(), RuntimeError)
        assert first.wait_stopped(5)
        assert node.wait(0.0) is None  # the node itself keeps running
        second = node.root.which_children()[0].ref
        assert second is not None
        assert second is not first
        assert second.ask("again").get() == "hello again"
        assert second.statistics().restarts == 1


def test_root_escalation_stops_the_node() -> None:
    """When the root supervisor gives up, the node stops and reports why."""
    node = Node("n", SupervisorFlags(intensity=1, period=60), [ChildSpec("bad", CrashSoon)])
    with structlog.testing.capture_logs() as logs:
        node.start()
        reason = node.wait(10)
        assert reason is not None
        assert reason.kind == "escalated"
        with pytest.raises(NodeFailedError, match="escalated"):
            node.raise_if_failed()
        assert node.stop().kind == "escalated"
    assert any(e["event"] == "supervisor_escalated" and e["supervisor"] == "/" for e in logs)
    stopped = [e for e in logs if e["event"] == "node_stopped"]
    assert stopped
    assert stopped[0]["log_level"] == "error"


def test_start_failure_is_a_node_error() -> None:
    """A child that cannot start makes Node.start raise, leaving nothing running."""
    node = Node("n", children=[ChildSpec("ok", Echo), ChildSpec("cam", FailStart)])
    with pytest.raises(NodeError, match="no camera attached"):
        node.start()
    with pytest.raises(NodeError, match="not running"):
        _ = node.system


def test_not_started_operations_say_so() -> None:
    """Using a node before start() raises NodeError that says it is not started."""
    node = Node("n")
    with pytest.raises(NodeError, match="not started"):
        node.stop()
    with pytest.raises(NodeError, match="not started"):
        node.wait(0)
    node.start()
    with pytest.raises(NodeError, match="already started"):
        node.start()
    with pytest.raises(NodeError, match="no supervisor"):
        node.supervisor("/nothing")
    node.stop()


EXIT_WITHOUT_STOP = """
from edgeloop import ChildSpec, Node
from tests.supervisor.sample_actors import SlowStop

node = Node("forgetful", children=[ChildSpec("slow", SlowStop, shutdown=30.0)])
node.start()
print("returning without stop()", flush=True)
"""


def test_a_program_that_returns_without_stop_still_stops_its_tree() -> None:
    """The atexit hook: the actors' threads are daemons; without the hook the interpreter
    would finalise with them running (inside XLA, an abort)."""
    run = run_script(EXIT_WITHOUT_STOP, timeout=60)
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stdout.splitlines() if not line.startswith("20")]  # logs
    assert lines == ["returning without stop()", "/slow stopped"]
    assert "node_stopped_at_exit" in run.stdout + run.stderr


def test_a_stopped_node_leaves_no_exit_hook() -> None:
    node = Node("n", children=[ChildSpec("echo", Echo)])
    with node:
        pass
    assert node._system is None
    node._stop_at_exit()  # what atexit would call: nothing left to stop, no error
