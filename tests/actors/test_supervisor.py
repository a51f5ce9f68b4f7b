"""The Supervisor actor with real children: strategies, restart types, intensity, start and
stop failures, shutdown, backoff on a virtual clock, dynamic operations and its log events.

Children record ``start:<id>`` and ``stop:<id>`` in one shared list from ``on_start`` and
``on_stop``, so a test reads the order in which things happened across threads.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from structlog.testing import capture_logs

from edgeloop.actors import Actor, ActorRef, ActorSystem
from edgeloop.clock import VirtualClock
from edgeloop.errors import (
    ActorStartError,
    ChildExistsError,
    ChildNotFoundError,
    ChildRunningError,
    SupervisorError,
)
from edgeloop.supervisor import (
    Backoff,
    ChildInfo,
    ChildSpec,
    Restart,
    Strategy,
    Supervisor,
    SupervisorFlags,
    SupervisorRef,
)
from edgeloop.supervisor import _policy as policy
from tests.helpers import WAIT, wait_for

# -- test actors and helpers -----------------------------------------------------------


class StartFailures:
    """How many of the next starts of a child fail; shared by all its incarnations."""

    def __init__(self, count: int = 0) -> None:
        self.count = count

    def take(self) -> bool:
        if self.count == 0:
            return False
        self.count -= 1
        return True


class Recorder(Actor):
    """Records its start and stop in ``events``; crashes, exits or blocks when told to."""

    def __init__(
        self,
        name: str,
        events: list[str],
        *,
        fail_start: StartFailures | None = None,
        fail_stop: bool = False,
        stopping: threading.Event | None = None,
        release: threading.Event | None = None,
    ) -> None:
        self.name = name
        self.events = events
        self.fail_start = fail_start
        self.fail_stop = fail_stop
        self.stopping = stopping
        self.release = release

    def on_start(self) -> None:
        self.events.append(f"start:{self.name}")
        if self.fail_start is not None and self.fail_start.take():
            msg = f"{self.name} refuses to start"
            raise RuntimeError(msg)

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            msg = f"{self.name} asked to crash"
            raise RuntimeError(msg)
        if message == "exit":
            self.stop()
            return None
        if message == "ping":
            return "pong"
        return super().on_receive(message)

    def on_stop(self) -> None:
        self.events.append(f"stop:{self.name}")
        if self.stopping is not None:
            self.stopping.set()
        if self.release is not None:
            self.release.wait(WAIT * 2)
        if self.fail_stop:
            msg = f"{self.name} fails to stop"
            raise RuntimeError(msg)


_ACTOR_ARGS = ("fail_start", "fail_stop", "stopping", "release")


class Tree:
    """Builds supervisors for one test and stops those still running at its end."""

    def __init__(self, system: ActorSystem) -> None:
        self.system = system
        self.events: list[str] = []
        self._refs: list[ActorRef] = []

    def spec(self, child_id: str, **kwargs: Any) -> ChildSpec:
        """A Recorder child spec; actor options and ChildSpec fields in one call."""
        actor_args = {key: kwargs.pop(key) for key in _ACTOR_ARGS if key in kwargs}
        args = {"name": child_id, "events": self.events, **actor_args}
        return ChildSpec(child_id, Recorder, args=args, **kwargs)

    def start(
        self, children: Sequence[ChildSpec], path: str = "/sup", **flags: Any
    ) -> SupervisorRef:
        """Spawn a supervisor at ``path`` with ``SupervisorFlags(**flags)``."""
        ref = self.system.spawn(
            Supervisor, path, args={"flags": SupervisorFlags(**flags), "children": children}
        )
        self._refs.append(ref)
        return SupervisorRef(ref, timeout=WAIT)

    def close(self) -> None:
        # Stop supervisors before the system does: ActorSystem.stop_all stops the most
        # recently spawned actors (the children) first, which the supervisor would see as
        # exits to restart.
        for ref in reversed(self._refs):
            ref.stop()
            assert ref.wait_stopped(WAIT), f"{ref.path} did not stop"


@pytest.fixture
def tree(system: ActorSystem) -> Iterator[Tree]:
    """Supervisors on a real clock."""
    built = Tree(system)
    yield built
    built.close()


@pytest.fixture
def vtree(virtual_system: ActorSystem) -> Iterator[Tree]:
    """Supervisors on the VirtualClock of ``virtual_system``."""
    built = Tree(virtual_system)
    yield built
    built.close()


def child(sup: SupervisorRef, child_id: str) -> ChildInfo:
    """The ``which_children`` row of ``child_id``."""
    rows = [row for row in sup.which_children() if row.id == child_id]
    assert rows, f"{child_id!r} is not among the children"
    return rows[0]


def child_ref(sup: SupervisorRef, child_id: str) -> ActorRef:
    """The ref of a running child."""
    ref = child(sup, child_id).ref
    assert ref is not None, f"{child_id!r} is not running"
    return ref


def crash(sup: SupervisorRef, child_id: str) -> ActorRef:
    """Make a running child raise in ``on_receive``; returns the ref that crashes."""
    ref = child_ref(sup, child_id)
    ref.tell("crash")
    return ref


def wait_restarted(sup: SupervisorRef, child_id: str, old: ActorRef) -> ActorRef:
    """Wait until ``child_id`` runs again as a new incarnation; returns its ref."""

    def restarted() -> bool:
        row = child(sup, child_id)
        return row.state == "running" and row.ref is not old

    wait_for(restarted, what=f"{child_id} restarted")
    return child_ref(sup, child_id)


def wait_state(sup: SupervisorRef, child_id: str, state: str) -> None:
    """Wait until ``child_id`` is in ``state``."""
    wait_for(lambda: child(sup, child_id).state == state, what=f"{child_id} {state}")


def ids(sup: SupervisorRef) -> list[str]:
    return [row.id for row in sup.which_children()]


def events_named(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


# -- strategies --------------------------------------------------------------------------


def test_one_for_one_restarts_only_the_exited_child(tree: Tree) -> None:
    """one_for_one: the crashed child restarts and its siblings keep their incarnation."""
    sup = tree.start([tree.spec("a"), tree.spec("b"), tree.spec("c")])
    a, c = child_ref(sup, "a"), child_ref(sup, "c")
    old = crash(sup, "b")
    wait_restarted(sup, "b", old)
    assert tree.events[3:] == ["stop:b", "start:b"]
    assert child_ref(sup, "a") is a
    assert child_ref(sup, "c") is c


def test_one_for_all_stops_right_to_left_and_starts_left_to_right(tree: Tree) -> None:
    """one_for_all: every sibling stops right to left, then all start left to right."""
    sup = tree.start(
        [tree.spec("a"), tree.spec("b"), tree.spec("c")], strategy=Strategy.ONE_FOR_ALL
    )
    old = {row.id: row.ref for row in sup.which_children()}
    crash(sup, "b")
    wait_for(lambda: len(tree.events) == 9, what="the group restarted")
    assert tree.events[3:] == ["stop:b", "stop:c", "stop:a", "start:a", "start:b", "start:c"]
    for row in sup.which_children():
        assert row.state == "running"
        assert row.ref is not old[row.id]


def test_rest_for_one_restarts_the_child_and_those_after_it(tree: Tree) -> None:
    """rest_for_one: children started after the exited one restart with it; earlier stay."""
    sup = tree.start(
        [tree.spec("a"), tree.spec("b"), tree.spec("c"), tree.spec("d")],
        strategy="rest_for_one",
    )
    a = child_ref(sup, "a")
    crash(sup, "b")
    wait_for(lambda: len(tree.events) == 10, what="the rest restarted")
    assert tree.events[4:] == ["stop:b", "stop:d", "stop:c", "start:b", "start:c", "start:d"]
    assert child_ref(sup, "a") is a


def test_temporary_sibling_stopped_for_a_restart_is_removed(tree: Tree) -> None:
    """A temporary child stopped because a sibling restarts is deleted, not restarted."""
    sup = tree.start(
        [tree.spec("a"), tree.spec("t", restart="temporary"), tree.spec("c")],
        strategy=Strategy.ONE_FOR_ALL,
    )
    crash(sup, "a")
    wait_for(lambda: len(tree.events) == 8, what="the group restarted")
    assert tree.events[3:] == ["stop:a", "stop:c", "stop:t", "start:a", "start:c"]
    assert ids(sup) == ["a", "c"]


# -- restart types -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("restart", "how", "outcome"),
    [
        (Restart.PERMANENT, "exit", "restarted"),
        (Restart.PERMANENT, "crash", "restarted"),
        (Restart.TRANSIENT, "exit", "terminated"),
        (Restart.TRANSIENT, "crash", "restarted"),
        (Restart.TRANSIENT, "kill", "restarted"),
        (Restart.TEMPORARY, "exit", "removed"),
        (Restart.TEMPORARY, "crash", "removed"),
    ],
)
def test_restart_types(tree: Tree, restart: Restart, how: str, outcome: str) -> None:
    """Permanent always restarts, transient only after an abnormal exit, temporary never."""
    sup = tree.start([tree.spec("x", restart=restart), tree.spec("y")], intensity=3)
    y = child_ref(sup, "y")
    old = child_ref(sup, "x")
    if how == "kill":
        old.kill()
    else:
        old.tell(how)
    if outcome == "restarted":
        wait_restarted(sup, "x", old)
    elif outcome == "terminated":
        wait_state(sup, "x", "terminated")
        assert child(sup, "x").ref is None
    else:
        wait_for(lambda: ids(sup) == ["y"], what="x removed")
    assert child_ref(sup, "y") is y


# -- intensity and escalation ------------------------------------------------------------


def test_too_many_restarts_escalate(system: ActorSystem, tree: Tree) -> None:
    """Past its intensity the supervisor stops its children right to left and escalates."""
    sup = tree.start([tree.spec("a"), tree.spec("b"), tree.spec("c")], intensity=1, period=60)
    wait_restarted(sup, "a", crash(sup, "a"))
    with capture_logs() as logs:
        crash(sup, "a")
        assert sup.ref.wait_stopped(WAIT)
    reason = sup.ref.exit_reason
    assert reason is not None
    assert reason.kind == "escalated"
    assert reason.abnormal
    assert "more than 1 restart(s) in 60" in reason.detail
    assert tree.events[5:] == ["stop:a", "stop:c", "stop:b"]
    assert [ref.path for ref in system.actors()] == []
    (escalated,) = events_named(logs, "supervisor_escalated")
    assert escalated["supervisor"] == "/sup"
    assert escalated["child"] == "a"
    assert escalated["reason"] == "crash in on_receive: RuntimeError: a asked to crash"
    assert escalated["log_level"] == "error"


def test_restarts_outside_the_period_do_not_escalate(vtree: Tree, clock: VirtualClock) -> None:
    """Restarts more than ``period`` apart never add up to the intensity."""
    sup = vtree.start([vtree.spec("a")], intensity=1, period=5)
    for _ in range(3):
        wait_restarted(sup, "a", crash(sup, "a"))
        clock.advance(5.5)
    assert sup.ref.is_alive()
    assert child(sup, "a").restarts == 3


def test_restart_exactly_one_period_later_escalates(vtree: Tree, clock: VirtualClock) -> None:
    """A restart exactly ``period`` seconds after the last still counts, as in OTP."""
    sup = vtree.start([vtree.spec("a")], intensity=1, period=5)
    wait_restarted(sup, "a", crash(sup, "a"))
    clock.advance(5)
    crash(sup, "a")
    assert sup.ref.wait_stopped(WAIT)
    assert sup.ref.exit_reason is not None
    assert sup.ref.exit_reason.kind == "escalated"


def test_nested_supervisor_escalates_to_its_parent(tree: Tree) -> None:
    """An inner supervisor that gives up exits 'escalated' and its parent restarts it."""
    inner_spec = ChildSpec(
        "inner",
        Supervisor,
        args={"flags": SupervisorFlags(intensity=0), "children": [tree.spec("w")]},
        type="supervisor",
    )
    top = tree.start([tree.spec("a"), inner_spec], path="/top")
    a = child_ref(top, "a")
    old_inner = child_ref(top, "inner")
    with capture_logs() as logs:
        crash(SupervisorRef(old_inner, timeout=WAIT), "w")
        new_inner = wait_restarted(top, "inner", old_inner)
    assert old_inner.exit_reason is not None
    assert old_inner.exit_reason.kind == "escalated"
    assert child(SupervisorRef(new_inner, timeout=WAIT), "w").state == "running"
    assert child_ref(top, "a") is a
    assert child(top, "inner").restarts == 1
    assert tree.events == ["start:a", "start:w", "stop:w", "start:w"]
    (escalated,) = events_named(logs, "supervisor_escalated")
    assert (escalated["supervisor"], escalated["child"]) == ("/top/inner", "w")
    inner_exit = [e for e in events_named(logs, "child_exited") if e["supervisor"] == "/top"]
    assert [e["child"] for e in inner_exit] == ["inner"]
    assert inner_exit[0]["reason"].startswith("escalated: more than 0 restart(s)")
    restarted = events_named(logs, "child_restarted")
    assert [(e["supervisor"], e["child"], e["restarts"]) for e in restarted] == [
        ("/top", "inner", 1)
    ]


# -- start and stop failures -------------------------------------------------------------


def test_child_start_failure_fails_the_supervisor_start(system: ActorSystem, tree: Tree) -> None:
    """If a child's on_start raises, the children already started stop and spawn raises."""
    failing = tree.spec("b", fail_start=StartFailures(1))
    with pytest.raises(ActorStartError, match="could not start child 'b'") as caught:
        tree.start([tree.spec("a"), failing, tree.spec("c")])
    assert "b refuses to start" in str(caught.value)
    assert tree.events == ["start:a", "start:b", "stop:a"]
    wait_for(lambda: system.actors() == [], what="every path released")


class SlowStart(Actor):
    """An actor whose on_start waits until the test releases it."""

    def __init__(self, release: threading.Event) -> None:
        self.release = release

    def on_start(self) -> None:
        self.release.wait(WAIT)


def test_a_start_outlasting_its_start_timeout_fails(system: ActorSystem, tree: Tree) -> None:
    """A child's start_timeout bounds its on_start; outlasting it fails the start."""
    release = threading.Event()
    slow = ChildSpec("slow", SlowStart, args={"release": release}, start_timeout=0.05)
    try:
        with pytest.raises(ActorStartError, match=r"on_start did not finish within 0\.05 s"):
            tree.start([tree.spec("a"), slow])
    finally:
        release.set()
    assert tree.events == ["start:a", "stop:a"]
    wait_for(lambda: system.actors() == [], what="every path released")


def test_a_start_within_its_start_timeout_succeeds(tree: Tree) -> None:
    """A start slower than nothing but within its own start_timeout is a normal start."""
    release = threading.Event()
    release.set()
    sup = tree.start([ChildSpec("slow", SlowStart, args={"release": release}, start_timeout=WAIT)])
    assert ids(sup) == ["slow"]


def test_duplicate_child_ids_fail_the_supervisor_start(tree: Tree) -> None:
    """Two initial children with one id are refused before anything starts."""
    with pytest.raises(ActorStartError, match="two children have the id 'a'"):
        tree.start([tree.spec("a"), tree.spec("a")])
    assert tree.events == []


def test_start_by_module_name(tree: Tree) -> None:
    """A ``module:Name`` start is imported when the child starts; a bad one fails the start."""
    good = ChildSpec(
        "a",
        "tests.actors.test_supervisor:Recorder",
        args={"name": "a", "events": tree.events},
    )
    sup = tree.start([good])
    assert child_ref(sup, "a").ask("ping", timeout=WAIT).get() == "pong"
    bad = ChildSpec("b", "tests.actors.no_such_module:Recorder")
    with pytest.raises(SupervisorError, match=r"cannot import 'tests\.actors\.no_such_module'"):
        sup.start_child(bad)
    assert ids(sup) == ["a"]


def test_failed_restarts_are_retried_and_counted(tree: Tree) -> None:
    """A restart whose on_start raises is retried at once and counts as a restart."""
    failures = StartFailures()
    sup = tree.start([tree.spec("a", fail_start=failures)], intensity=3, period=60)
    failures.count = 1
    with capture_logs() as logs:
        wait_restarted(sup, "a", crash(sup, "a"))
    assert tree.events == ["start:a", "stop:a", "start:a", "start:a"]
    assert child(sup, "a").restarts == 2
    crashed, failed = (e["reason"] for e in events_named(logs, "child_exited"))
    assert crashed == "crash in on_receive: RuntimeError: a asked to crash"
    assert failed.startswith("crash in start: ActorStartError: /sup/a: on_start raised")
    assert failed.endswith("RuntimeError: a refuses to start")


def test_failing_restarts_escalate_at_the_intensity(tree: Tree) -> None:
    """A child that cannot start again uses up the intensity, then the supervisor escalates."""
    failures = StartFailures()
    sup = tree.start([tree.spec("a", fail_start=failures)], intensity=3, period=60)
    failures.count = 1000
    with capture_logs() as logs:
        crash(sup, "a")
        assert sup.ref.wait_stopped(WAIT)
    assert sup.ref.exit_reason is not None
    assert sup.ref.exit_reason.kind == "escalated"
    failed = [e for e in events_named(logs, "child_exited") if "in start" in e["reason"]]
    assert len(failed) == 3


def test_many_failing_restarts_do_not_exhaust_the_stack(tree: Tree) -> None:
    """Hundreds of failed restarts in a row end in an escalation, not a RecursionError."""
    failures = StartFailures()
    sup = tree.start([tree.spec("a", fail_start=failures)], intensity=400, period=600)
    failures.count = 10_000
    crash(sup, "a")
    assert sup.ref.wait_stopped(WAIT * 4)
    assert sup.ref.exit_reason is not None
    assert sup.ref.exit_reason.kind == "escalated", sup.ref.exit_reason


def test_crash_in_on_stop_reaches_the_supervisor(tree: Tree) -> None:
    """A child that stops itself but raises in on_stop exits abnormally and restarts."""
    sup = tree.start([tree.spec("t", restart="transient", fail_stop=True)])
    old = child_ref(sup, "t")
    with capture_logs() as logs:
        old.tell("exit")
        wait_restarted(sup, "t", old)
    assert old.exit_reason is not None
    assert (old.exit_reason.kind, old.exit_reason.where) == ("crash", "on_stop")
    (exited,) = events_named(logs, "child_exited")
    assert exited["reason"] == "crash in on_stop: RuntimeError: t fails to stop"
    assert exited["log_level"] == "error"


# -- shutdown ----------------------------------------------------------------------------


def test_stop_terminates_children_right_to_left(tree: Tree) -> None:
    """Stopping a supervisor stops its children in reverse start order, with 'shutdown'."""
    sup = tree.start([tree.spec("a"), tree.spec("b"), tree.spec("c")])
    with capture_logs() as logs:
        sup.ref.stop()
        assert sup.ref.wait_stopped(WAIT)
    assert tree.events == ["start:a", "start:b", "start:c", "stop:c", "stop:b", "stop:a"]
    exits = [(e["child"], e["reason"]) for e in events_named(logs, "child_exited")]
    assert exits == [("c", "shutdown"), ("b", "shutdown"), ("a", "shutdown")]
    assert sup.ref.exit_reason is not None
    assert sup.ref.exit_reason.kind == "normal"


def test_child_outliving_its_shutdown_is_abandoned(tree: Tree) -> None:
    """A child whose on_stop takes longer than its shutdown is killed and left behind."""
    stopping, release = threading.Event(), threading.Event()
    slow_spec = tree.spec("slow", shutdown=0.2, stopping=stopping, release=release)
    sup = tree.start([tree.spec("a"), slow_spec])
    slow = child_ref(sup, "slow")
    try:
        with capture_logs() as logs:
            sup.ref.stop()
            assert sup.ref.wait_stopped(WAIT)
        assert stopping.is_set()
        assert not slow.is_alive(), "abandoned: gone for everyone at once"
        assert not slow.wait_stopped(0), "its thread is still blocked in on_stop"
        assert tree.events[2:] == ["stop:slow", "stop:a"]
        (abandoned,) = events_named(logs, "child_abandoned")
        assert (abandoned["supervisor"], abandoned["child"]) == ("/sup", "slow")
        exits = {e["child"]: e["reason"] for e in events_named(logs, "child_exited")}
        assert exits == {
            "slow": "killed: did not stop within its shutdown of 0.2 s",
            "a": "shutdown",
        }
    finally:
        release.set()
    assert slow.wait_stopped(WAIT)


def test_brutal_kill_skips_on_stop(tree: Tree) -> None:
    """A brutal_kill child is killed without running on_stop."""
    sup = tree.start([tree.spec("a"), tree.spec("k", shutdown="brutal_kill")])
    k = child_ref(sup, "k")
    with capture_logs() as logs:
        sup.ref.stop()
        assert sup.ref.wait_stopped(WAIT)
    assert k.wait_stopped(WAIT)
    assert k.exit_reason is not None
    assert k.exit_reason.kind == "killed"
    assert tree.events == ["start:a", "start:k", "stop:a"]
    exits = [(e["child"], e["reason"]) for e in events_named(logs, "child_exited")]
    assert exits == [("k", "killed: brutal_kill"), ("a", "shutdown")]


def test_killing_a_sub_supervisor_takes_its_children_down(system: ActorSystem, tree: Tree) -> None:
    """A brutally killed sub-supervisor leaves no orphans, so its next incarnation starts."""
    inner = ChildSpec(
        "inner",
        Supervisor,
        args={"children": [tree.spec("w")]},
        type="supervisor",
        shutdown="brutal_kill",
    )
    top = tree.start([tree.spec("a"), inner], path="/top", strategy="one_for_all")
    old_inner = child_ref(top, "inner")
    old_w = child_ref(SupervisorRef(old_inner), "w")
    crash(top, "a")
    wait_for(lambda: len(tree.events) == 5, what="the group restarted")
    assert tree.events == ["start:a", "start:w", "stop:a", "start:a", "start:w"]
    assert old_w.wait_stopped(WAIT)
    assert old_w.exit_reason is not None
    assert old_w.exit_reason.kind == "killed"
    new_inner = child_ref(top, "inner")
    assert new_inner is not old_inner
    assert child(SupervisorRef(new_inner), "w").state == "running"
    assert top.ref.is_alive()


def test_infinity_waits_for_the_child(tree: Tree) -> None:
    """A child with shutdown 'infinity' is waited for however long its on_stop takes."""
    stopping, release = threading.Event(), threading.Event()
    sup = tree.start(
        [tree.spec("a", shutdown="infinity", stopping=stopping, release=release)],
    )
    a = child_ref(sup, "a")
    try:
        sup.ref.stop()
        assert stopping.wait(WAIT)
        assert not sup.ref.wait_stopped(0.3), "the supervisor must wait for its child"
    finally:
        release.set()
    assert sup.ref.wait_stopped(WAIT)
    assert a.exit_reason is not None
    assert a.exit_reason.kind == "shutdown"


# -- backoff on the virtual clock --------------------------------------------------------


def test_backoff_delays_restarts_on_the_virtual_clock(vtree: Tree, clock: VirtualClock) -> None:
    """Restarts wait min, 2 min, ... seconds, and the count resets after a stable run."""
    backoff = Backoff(min=1.0, max=8.0, random_factor=0.0)
    sup = vtree.start([vtree.spec("a"), vtree.spec("b")], intensity=10, period=100, backoff=backoff)
    b = child_ref(sup, "b")
    expected_due = [1.0, 3.0, 12.0]  # crash at 0 (1 s), at 1 (2 s), at 11 after a stable run
    for due in expected_due:
        old = crash(sup, "a")
        wait_state(sup, "a", "restarting")
        assert clock.next_due() == due
        clock.advance(due - clock.now() - 0.25)
        assert child(sup, "a").state == "restarting"
        clock.advance(0.25)
        wait_restarted(sup, "a", old)
        if due == 3.0:
            clock.advance(8.0)
    assert child_ref(sup, "b") is b
    assert child(sup, "a").restarts == 3


def test_backoff_jitter_comes_from_the_seeded_system_random(clock: VirtualClock) -> None:
    """The jitter is drawn from ActorSystem(seed=...), so a seeded run is reproducible."""
    system = ActorSystem("seeded", clock=clock, seed=7)
    tree = Tree(system)
    try:
        backoff = Backoff(min=1.0, max=8.0, random_factor=0.5)
        sup = tree.start([tree.spec("a")], backoff=backoff)
        crash(sup, "a")
        wait_state(sup, "a", "restarting")
        expected = policy.backoff_delay(backoff, 0, random.Random(7).random())
        assert 1.0 < expected < 1.5
        assert clock.next_due() == expected
    finally:
        tree.close()
        assert system.close() == []
    assert clock.pending() == 0


def test_restarting_child_refuses_restart_and_delete(vtree: Tree, clock: VirtualClock) -> None:
    """While a restart is pending the child counts as not terminated; stopping cancels it."""
    backoff = Backoff(min=1.0, random_factor=0.0)
    sup = vtree.start([vtree.spec("a")], backoff=backoff)
    crash(sup, "a")
    wait_state(sup, "a", "restarting")
    with pytest.raises(ChildRunningError, match="restarting"):
        sup.restart_child("a")
    with pytest.raises(ChildRunningError, match="restarting"):
        sup.delete_child("a")
    assert sup.count_children().active == 0
    sup.ref.stop()
    assert sup.ref.wait_stopped(WAIT)
    assert clock.pending() == 0


def test_terminating_one_child_of_a_delayed_group_restarts_the_rest(
    vtree: Tree, clock: VirtualClock
) -> None:
    """terminate_child on one member of a pending group restart leaves the others' restart."""
    backoff = Backoff(min=1.0, random_factor=0.0)
    sup = vtree.start(
        [vtree.spec("a"), vtree.spec("b"), vtree.spec("c")],
        strategy="one_for_all",
        intensity=5,
        backoff=backoff,
    )
    crash(sup, "a")
    wait_for(lambda: {r.state for r in sup.which_children()} == {"restarting"}, what="pending")
    sup.terminate_child("b")
    assert child(sup, "b").state == "terminated"
    clock.advance(1.0)
    wait_state(sup, "a", "running")
    wait_state(sup, "c", "running")
    assert child(sup, "b").state == "terminated"
    assert vtree.events[3:] == ["stop:a", "stop:c", "stop:b", "start:a", "start:c"]


def test_failed_restarts_keep_growing_the_backoff(vtree: Tree, clock: VirtualClock) -> None:
    """A restart whose start fails is not a stable run: the next delay doubles."""
    failures = StartFailures()
    backoff = Backoff(min=1.0, max=64.0, random_factor=0.0)
    sup = vtree.start([vtree.spec("a", fail_start=failures)], intensity=10, backoff=backoff)
    clock.advance(100.0)  # a long stable run: the first delay is min again
    failures.count = 2
    old = crash(sup, "a")
    wait_state(sup, "a", "restarting")
    for due in (101.0, 103.0, 107.0):
        wait_for(lambda due=due: clock.next_due() == due, what=f"a restart due at {due}")
        clock.advance(due - clock.now())
    wait_restarted(sup, "a", old)
    assert child(sup, "a").restarts == 3


# -- dynamic operations ------------------------------------------------------------------


def test_start_child_adds_it_last(tree: Tree) -> None:
    """start_child starts the new child at once and lists it after the others."""
    sup = tree.start([tree.spec("a")])
    ref = sup.start_child(tree.spec("b"))
    assert ref.path == "/sup/b"
    assert ref.ask("ping", timeout=WAIT).get() == "pong"
    assert ids(sup) == ["a", "b"]
    sup.ref.stop()
    assert sup.ref.wait_stopped(WAIT)
    assert tree.events[-2:] == ["stop:b", "stop:a"]


def test_terminate_restart_and_delete_child(tree: Tree) -> None:
    """terminate_child keeps the spec without restarting; restart_child and delete_child
    then act on the terminated child."""
    sup = tree.start([tree.spec("a"), tree.spec("b")])
    old = child_ref(sup, "a")
    sup.terminate_child("a")
    assert not old.is_alive()
    row = child(sup, "a")
    assert (row.state, row.ref) == ("terminated", None)
    assert child_ref(sup, "b").ask("ping", timeout=WAIT).get() == "pong"
    assert child(sup, "a").state == "terminated", "a terminated child is not restarted"
    new = sup.restart_child("a")
    assert new is not old
    assert new.ask("ping", timeout=WAIT).get() == "pong"
    assert child(sup, "a").restarts == 0, "a manual restart is not counted"
    sup.terminate_child("a")
    sup.delete_child("a")
    assert ids(sup) == ["b"]
    assert tree.events == ["start:a", "start:b", "stop:a", "start:a", "stop:a"]


def test_terminating_a_temporary_child_deletes_it(tree: Tree) -> None:
    """terminate_child on a temporary child removes its spec, as in OTP."""
    sup = tree.start([tree.spec("t", restart="temporary")])
    sup.terminate_child("t")
    assert sup.which_children() == []


def test_refusals_do_not_crash_the_supervisor(system: ActorSystem, tree: Tree) -> None:
    """Every refused operation raises its typed error in the caller; the tree goes on."""
    sup = tree.start([tree.spec("a"), tree.spec("b")])
    refs = [row.ref for row in sup.which_children()]
    with pytest.raises(ChildExistsError, match="already has a child 'a'"):
        sup.start_child(tree.spec("a"))
    for operation in (sup.terminate_child, sup.restart_child, sup.delete_child):
        with pytest.raises(ChildNotFoundError, match="has no child 'nope'"):
            operation("nope")
    with pytest.raises(KeyError):
        sup.terminate_child("nope")
    with pytest.raises(ChildRunningError, match="'a' is running"):
        sup.restart_child("a")
    with pytest.raises(ChildRunningError, match="'a' is running"):
        sup.delete_child("a")
    with pytest.raises(SupervisorError, match="could not start 'c'") as caught:
        sup.start_child(tree.spec("c", fail_start=StartFailures(1)))
    assert isinstance(caught.value.__cause__, ActorStartError)
    assert ids(sup) == ["a", "b"]
    assert [row.ref for row in sup.which_children()] == refs
    assert sup.ref.is_alive()
    assert sup.ref.statistics().failed == 0
    assert system.lookup("/sup/c") is None


def test_start_child_on_a_taken_path_is_refused(system: ActorSystem, tree: Tree) -> None:
    """A child path already held by another actor is a refusal, not a supervisor crash."""
    sup = tree.start([tree.spec("a")])
    squatter = system.spawn(Recorder, "/sup/x", args={"name": "squatter", "events": []})
    try:
        with pytest.raises(SupervisorError, match="already held"):
            sup.start_child(tree.spec("x"))
        assert sup.ref.is_alive()
        assert ids(sup) == ["a"]
    finally:
        squatter.stop()
        assert squatter.wait_stopped(WAIT)


def test_which_and_count_children(tree: Tree) -> None:
    """which_children lists every child in start order; count_children counts by kind."""
    inner = ChildSpec("inner", Supervisor, args={"children": [tree.spec("w")]}, type="supervisor")
    sup = tree.start([tree.spec("a"), inner, tree.spec("b")])
    sup.terminate_child("b")
    rows = sup.which_children()
    assert [(r.id, r.state, r.type.value) for r in rows] == [
        ("a", "running", "worker"),
        ("inner", "running", "supervisor"),
        ("b", "terminated", "worker"),
    ]
    counts = sup.count_children()
    assert (counts.specs, counts.active, counts.supervisors, counts.workers) == (3, 2, 1, 2)
    assert SupervisorRef(child_ref(sup, "inner")).count_children().active == 1


# -- statistics and logs -----------------------------------------------------------------


def test_statistics_count_restarts_across_incarnations(tree: Tree) -> None:
    """A child's statistics().restarts and failed span all its incarnations."""
    sup = tree.start([tree.spec("a")], intensity=5, period=60)
    for _ in range(3):
        wait_restarted(sup, "a", crash(sup, "a"))
    stats = child_ref(sup, "a").statistics()
    assert (stats.restarts, stats.failed, stats.alive) == (3, 3, True)
    assert stats.path == "/sup/a"
    assert child(sup, "a").restarts == 3


def test_log_events_carry_supervisor_child_and_reason(tree: Tree) -> None:
    """child_started, child_exited and child_restarted carry stable keys."""
    with capture_logs() as logs:
        sup = tree.start([tree.spec("a")])
        wait_restarted(sup, "a", crash(sup, "a"))
    started = events_named(logs, "child_started")
    assert [(e["supervisor"], e["child"], e["type"]) for e in started] == [
        ("/sup", "a", "worker"),
        ("/sup", "a", "worker"),
    ]
    (exited,) = events_named(logs, "child_exited")
    assert exited["supervisor"] == "/sup"
    assert exited["child"] == "a"
    assert exited["reason"] == "crash in on_receive: RuntimeError: a asked to crash"
    assert "raise RuntimeError(msg)" in exited["traceback"]
    assert exited["log_level"] == "error"
    (restarted,) = events_named(logs, "child_restarted")
    assert (restarted["supervisor"], restarted["child"], restarted["restarts"]) == ("/sup", "a", 1)
    assert restarted["log_level"] == "info"


def test_normal_exit_is_logged_at_info(tree: Tree) -> None:
    """A transient child's normal exit is an info event and nothing restarts."""
    sup = tree.start([tree.spec("t", restart="transient")])
    with capture_logs() as logs:
        child_ref(sup, "t").tell("exit")
        wait_state(sup, "t", "terminated")
    (exited,) = events_named(logs, "child_exited")
    assert (exited["child"], exited["reason"], exited["log_level"]) == ("t", "normal", "info")
    assert events_named(logs, "child_restarted") == []
