"""Actor lifecycle: start, receive, stop, crash, kill, and what spawn promises."""

from __future__ import annotations

import queue
import threading
from typing import Any

import pytest
from structlog.testing import capture_logs

from edgeloop.actors import NORMAL, SHUTDOWN, Actor, ActorSystem, ExitReason
from edgeloop.errors import ActorStartError
from tests.actors.helpers import WAIT, Probe, get


class Recording(Actor):
    """Appends every hook call to a shared list."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def on_start(self) -> None:
        self.log.append("on_start")

    def on_receive(self, message: Any) -> Any:
        self.log.append(f"receive:{message}")
        if message == "crash":
            raise RuntimeError("boom")
        return message

    def on_stop(self) -> None:
        self.log.append("on_stop")


def test_on_start_runs_before_messages_sent_while_it_runs(system: ActorSystem) -> None:
    """A message sent while on_start still runs is handled only after on_start finished."""
    log: list[str] = []
    in_start = threading.Event()
    sent = threading.Event()

    class SlowStart(Recording):
        def on_start(self) -> None:
            in_start.set()
            assert sent.wait(WAIT)
            self.log.append("on_start")

    def send_during_start() -> None:
        assert in_start.wait(WAIT)
        ref = system.lookup("/slow")
        assert ref is not None
        ref.tell("early")
        sent.set()

    sender = threading.Thread(target=send_during_start)
    sender.start()
    ref = system.spawn(SlowStart, "/slow", args={"log": log})
    sender.join(WAIT)
    sync_future = ref.ask("late", timeout=WAIT)
    assert sync_future.get() == "late"
    assert log == ["on_start", "receive:early", "receive:late"]


def test_spawn_returns_after_on_start_finished(system: ActorSystem) -> None:
    """spawn() returns only once on_start has run to its end."""
    log: list[str] = []
    system.spawn(Recording, "/r", args={"log": log})
    assert log == ["on_start"]


def test_on_receive_return_value_answers_ask(system: ActorSystem) -> None:
    """The value on_receive returns is the reply to an ask."""
    ref = system.spawn(Probe, "/p")
    assert ref.ask(("echo", 42), timeout=WAIT).get() == 42


def test_on_stop_runs_once_after_normal_stop(system: ActorSystem) -> None:
    """A normal stop runs on_stop exactly once and records the reason normal."""
    log: list[str] = []
    ref = system.spawn(Recording, "/r", args={"log": log})
    ref.tell("a")
    ref.stop()
    ref.stop()
    assert ref.wait_stopped(WAIT)
    assert log.count("on_stop") == 1
    assert log[-1] == "on_stop"
    assert ref.exit_reason == NORMAL
    assert not ref.is_alive()


def test_stop_with_reason_is_recorded(system: ActorSystem) -> None:
    """stop(reason) ends the actor with that reason."""
    ref = system.spawn(Probe, "/p")
    ref.stop(SHUTDOWN)
    assert ref.wait_stopped(WAIT)
    assert ref.exit_reason == SHUTDOWN
    assert not ref.exit_reason.abnormal


def test_actor_can_stop_itself(system: ActorSystem) -> None:
    """Actor.stop() inside a handler ends the actor after that message, normally."""
    log: list[str] = []
    ref = system.spawn(Probe, "/p", args={"log": log})
    assert ref.ask("stop", timeout=WAIT).get() == "stopping"
    assert ref.wait_stopped(WAIT)
    assert ref.exit_reason == NORMAL
    assert log == ["on_start", "on_stop"]


def test_on_stop_runs_once_after_crash_in_on_receive(system: ActorSystem) -> None:
    """A crash in on_receive still runs on_stop once, and the reason says where it crashed."""
    log: list[str] = []
    ref = system.spawn(Recording, "/r", args={"log": log})
    ref.tell("crash")
    assert ref.wait_stopped(WAIT)
    assert log == ["on_start", "receive:crash", "on_stop"]
    reason = ref.exit_reason
    assert reason is not None
    assert reason.kind == "crash"
    assert reason.where == "on_receive"
    assert isinstance(reason.error, RuntimeError)
    assert reason.abnormal
    assert "RuntimeError: boom" in str(reason)
    assert "on_receive" in reason.traceback_summary()


def test_on_stop_not_run_after_failed_on_start(system: ActorSystem) -> None:
    """An actor whose on_start raised never runs on_stop."""
    log: list[str] = []

    class BadStart(Recording):
        def on_start(self) -> None:
            self.log.append("on_start")
            raise ValueError("no camera")

    with pytest.raises(ActorStartError):
        system.spawn(BadStart, "/bad", args={"log": log})
    assert log == ["on_start"]


def test_on_stop_not_run_after_kill(system: ActorSystem) -> None:
    """kill() ends an idle actor without on_stop, with reason killed."""
    log: list[str] = []
    ref = system.spawn(Recording, "/r", args={"log": log})
    ref.kill()
    assert ref.wait_stopped(WAIT)
    assert log == ["on_start"]
    assert ref.exit_reason is not None
    assert ref.exit_reason.kind == "killed"
    assert ref.exit_reason.abnormal


def test_kill_lets_running_handler_finish_then_skips_on_stop(
    system: ActorSystem, gate: threading.Event
) -> None:
    """A handler running when the actor is killed runs to its end; on_stop never runs."""
    log: list[str] = []
    entered = threading.Event()
    ref = system.spawn(Probe, "/p", args={"gate": gate, "entered": entered, "log": log})
    future = ref.ask("block", timeout=WAIT)
    assert entered.wait(WAIT)
    ref.kill()
    assert system.lookup("/p") is None
    assert not ref.is_alive()  # gone for everyone at the kill, though its handler runs on
    gate.set()
    assert future.get() == "unblocked"
    assert ref.wait_stopped(WAIT)
    assert log == ["on_start"]
    assert ref.exit_reason is not None
    assert ref.exit_reason.kind == "killed"


def test_kill_then_handler_raises_still_skips_on_stop(
    system: ActorSystem, gate: threading.Event
) -> None:
    """A handler that raises after its actor was killed does not bring on_stop back."""

    class RaiseAfterGate(Probe):
        def on_receive(self, message: object) -> object:
            self.entered.set()
            assert self.gate.wait(WAIT * 2)
            raise RuntimeError("too late")

    log: list[str] = []
    entered = threading.Event()
    ref = system.spawn(RaiseAfterGate, "/p", args={"gate": gate, "entered": entered, "log": log})
    future = ref.ask("go", timeout=WAIT)
    assert entered.wait(WAIT)
    ref.kill()
    gate.set()
    assert isinstance(future.exception(), RuntimeError)
    assert ref.wait_stopped(WAIT)
    assert log == ["on_start"]
    assert ref.exit_reason is not None
    assert ref.exit_reason.kind == "killed"


def test_on_stop_failure_after_normal_stop_is_a_crash(system: ActorSystem) -> None:
    """on_stop raising after a normal stop turns the exit reason into a crash in on_stop."""

    class BadStop(Probe):
        def on_stop(self) -> None:
            raise OSError("disk gone")

    ref = system.spawn(BadStop, "/p")
    ref.stop()
    assert ref.wait_stopped(WAIT)
    reason = ref.exit_reason
    assert reason is not None
    assert reason.kind == "crash"
    assert reason.where == "on_stop"
    assert isinstance(reason.error, OSError)
    assert ref.statistics().failed == 1


def test_on_stop_failure_after_crash_keeps_the_first_crash(system: ActorSystem) -> None:
    """on_stop raising after a crash keeps the original crash as the reason and logs it."""

    class BadStop(Probe):
        def on_stop(self) -> None:
            raise OSError("disk gone")

    ref = system.spawn(BadStop, "/p")
    with capture_logs() as logs:
        ref.tell(("raise", KeyError("k")))
        assert ref.wait_stopped(WAIT)
    reason = ref.exit_reason
    assert reason is not None
    assert reason.where == "on_receive"
    assert isinstance(reason.error, KeyError)
    assert any(e["event"] == "on_stop_failed_after_crash" for e in logs)
    assert ref.statistics().failed == 2


def test_unsupervised_crash_is_logged(system: ActorSystem) -> None:
    """An actor without a parent that crashes logs actor_crashed with its path."""
    ref = system.spawn(Probe, "/p")
    with capture_logs() as logs:
        ref.tell(("raise", RuntimeError("boom")))
        assert ref.wait_stopped(WAIT)
    crashed = [e for e in logs if e["event"] == "actor_crashed"]
    assert len(crashed) == 1
    assert crashed[0]["path"] == "/p"
    assert crashed[0]["log_level"] == "error"


def test_default_on_receive_logs_unhandled_and_answers_none(system: ActorSystem) -> None:
    """The base on_receive logs unhandled_message and answers None without crashing."""

    class Bare(Actor):
        pass

    ref = system.spawn(Bare, "/bare")
    with capture_logs() as logs:
        assert ref.ask(3.5, timeout=WAIT).get() is None
    assert logs[0]["event"] == "unhandled_message"
    assert logs[0]["message_type"] == "float"
    assert ref.is_alive()


@pytest.mark.parametrize("attribute", ["ref", "path", "system", "parent"])
def test_runtime_attributes_raise_clear_error_in_init(system: ActorSystem, attribute: str) -> None:
    """Touching ref/path/system/parent in __init__ raises a RuntimeError pointing at on_start."""
    caught: list[RuntimeError] = []

    class Early(Actor):
        def __init__(self) -> None:
            try:
                getattr(self, attribute)
            except RuntimeError as error:
                caught.append(error)

    system.spawn(Early, "/early")
    assert len(caught) == 1
    assert "Early is not running yet" in str(caught[0])
    assert "on_start" in str(caught[0])


def test_runtime_attribute_error_in_init_fails_the_spawn(system: ActorSystem) -> None:
    """A constructor that uses self.ref fails spawn with ActorStartError caused by it."""

    class Early(Actor):
        def __init__(self) -> None:
            self.me = self.ref

    with pytest.raises(ActorStartError) as info:
        system.spawn(Early, "/early")
    assert isinstance(info.value.__cause__, RuntimeError)
    assert system.lookup("/early") is None


def test_runtime_attributes_available_from_on_start(system: ActorSystem) -> None:
    """From on_start on, ref, path, system and parent describe the running actor."""
    seen: queue.Queue[Any] = queue.Queue()

    class Curious(Actor):
        def on_start(self) -> None:
            seen.put((self.ref, self.path, self.system, self.parent))

    ref = system.spawn(Curious, "/yard/cam-01")
    assert get(seen) == (ref, "/yard/cam-01", system, None)
    assert ref.name == "cam-01"


def test_constructor_failure_raises_actor_start_error(system: ActorSystem) -> None:
    """A constructor that raises makes spawn raise ActorStartError with it as __cause__."""

    class Broken(Actor):
        def __init__(self, level: int) -> None:
            raise ValueError(f"bad level {level}")

    with pytest.raises(ActorStartError, match="/broken") as info:
        system.spawn(Broken, "/broken", args={"level": 7})
    assert isinstance(info.value.__cause__, ValueError)
    assert system.lookup("/broken") is None


def test_on_start_failure_raises_actor_start_error(system: ActorSystem) -> None:
    """on_start raising makes spawn raise ActorStartError with that error as __cause__."""
    error = ConnectionError("no sensor")

    class BadStart(Actor):
        def on_start(self) -> None:
            raise error

    with pytest.raises(ActorStartError, match="ConnectionError") as info:
        system.spawn(BadStart, "/bad")
    assert info.value.__cause__ is error


@pytest.mark.usefixtures("fast_switching")
def test_path_is_free_as_soon_as_a_failed_start_is_reported(system: ActorSystem) -> None:
    """After ActorStartError from on_start, the path can be spawned again at once."""
    failures = 500
    attempts = 0

    class FailsAWhile(Probe):
        def on_start(self) -> None:
            nonlocal attempts
            attempts += 1
            if attempts <= failures:
                raise RuntimeError(f"attempt {attempts}")

    for _ in range(failures):
        with pytest.raises(ActorStartError):
            system.spawn(FailsAWhile, "/flaky")
        assert system.lookup("/flaky") is None
    ref = system.spawn(FailsAWhile, "/flaky")
    assert system.lookup("/flaky") is ref


def test_on_start_timeout_raises_and_frees_the_path(system: ActorSystem) -> None:
    """on_start running past start_timeout fails spawn; the path is free and on_stop never runs."""
    release = threading.Event()
    log: list[str] = []

    class Stuck(Recording):
        def on_start(self) -> None:
            self.log.append("on_start")
            assert release.wait(WAIT)

    try:
        with pytest.raises(ActorStartError, match=r"within 0\.05 s"):
            system.spawn(Stuck, "/stuck", args={"log": log}, start_timeout=0.05)
        assert system.lookup("/stuck") is None
        replacement = system.spawn(Probe, "/stuck")
        assert system.lookup("/stuck") is replacement
    finally:
        release.set()
    assert log == ["on_start"]


def test_spawn_rejects_a_factory_that_is_not_an_actor(system: ActorSystem) -> None:
    """A factory returning something other than an Actor fails spawn with ActorStartError."""
    with pytest.raises(ActorStartError, match=r"not an edgeloop\.Actor"):
        system.spawn(dict, "/dict")
    assert system.lookup("/dict") is None


def test_stopped_actor_reports_not_alive_and_repr(system: ActorSystem) -> None:
    """A ref says alive or stopped in is_alive(), statistics() and repr()."""
    ref = system.spawn(Probe, "/p")
    assert repr(ref) == "<ActorRef /p alive>"
    assert ref.exit_reason is None
    ref.stop()
    assert ref.wait_stopped(WAIT)
    assert repr(ref) == "<ActorRef /p stopped>"
    assert not ref.statistics().alive


def test_wait_stopped_times_out_on_a_running_actor(system: ActorSystem) -> None:
    """wait_stopped returns False when the actor is still running after the timeout."""
    ref = system.spawn(Probe, "/p")
    assert ref.wait_stopped(0.01) is False


def test_exit_reason_strings() -> None:
    """ExitReason renders crash with where and detail, and other kinds with their detail."""
    crash = ExitReason.crash(ValueError("x"), "on_receive")
    assert str(crash) == "crash in on_receive: ValueError: x"
    assert str(ExitReason("killed", "brutal_kill")) == "killed: brutal_kill"
    assert str(NORMAL) == "normal"
    assert not NORMAL.abnormal
    assert ExitReason("escalated").abnormal
    assert crash.traceback_summary() == ""


def test_handlers_run_in_the_actor_thread_one_at_a_time(system: ActorSystem) -> None:
    """Every hook runs in one thread named after the actor's path."""
    names: list[str] = []

    class Named(Actor):
        def on_start(self) -> None:
            names.append(threading.current_thread().name)

        def on_receive(self, message: Any) -> Any:
            names.append(threading.current_thread().name)

        def on_stop(self) -> None:
            names.append(threading.current_thread().name)

    ref = system.spawn(Named, "/named")
    assert ref.ask(1, timeout=WAIT).get() is None
    ref.stop()
    assert ref.wait_stopped(WAIT)
    assert names == ["edgeloop:/named"] * 3


def test_runtime_bug_still_tears_the_actor_down(
    system: ActorSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected error inside the runtime loop is logged, and the actor still stops,
    frees its path and reports a crash."""
    from edgeloop.actors._cell import Cell

    def broken_stop_hook(self: Cell, actor: Actor, reason: ExitReason) -> ExitReason:
        raise AssertionError("runtime bug")

    monkeypatch.setattr(Cell, "_stop_hook", broken_stop_hook)
    ref = system.spawn(Probe, "/p")
    with capture_logs() as logs:
        ref.stop()
        assert ref.wait_stopped(WAIT)
    assert system.lookup("/p") is None
    reason = ref.exit_reason
    assert reason is not None
    assert (reason.kind, reason.where) == ("crash", "runtime")
    assert any(e["event"] == "actor_runtime_failed" for e in logs)
