"""The pure supervision policy against a small, independent model of OTP's supervisor.erl.

The model below is written from OTP's documentation and source (``do_restart``,
``add_restart``, ``restart/3`` per strategy, ``terminate_children``), not from
:mod:`edgeloop.supervisor._policy`. Times are whole seconds, as OTP's
``erlang:monotonic_time(second)``, so window boundaries compare exactly.
"""

from __future__ import annotations

import dataclasses
import math

import hypothesis.strategies as st
import pytest
from hypothesis import example, given, note
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from edgeloop.supervisor import Backoff, Restart, Strategy
from edgeloop.supervisor import _policy as policy

# -- the model -------------------------------------------------------------------------


@dataclasses.dataclass
class ModelChild:
    id: str
    restart: Restart
    running: bool = True


@dataclasses.dataclass
class Outcome:
    """What OTP does about one exit: the kind, and the effects in the order they happen."""

    kind: str  # "keep" | "remove" | "restart" | "escalate"
    stopped: list[str] = dataclasses.field(default_factory=list)
    deleted: set[str] = dataclasses.field(default_factory=set)
    started: list[str] = dataclasses.field(default_factory=list)


class OtpModel:
    """supervisor.erl, reduced to what the policy decides."""

    def __init__(self, strategy: Strategy, intensity: int, period: int) -> None:
        self.strategy = strategy
        self.intensity = intensity
        self.period = period
        self.children: list[ModelChild] = []
        self.restarts: list[int] = []  # newest first, as OTP keeps them
        self.alive = True

    def find(self, child_id: str) -> ModelChild:
        return next(c for c in self.children if c.id == child_id)

    def add_restart(self, now: int) -> bool:
        """OTP's add_restart: keep restarts at or after now - period, add now, compare."""
        threshold = now - self.period
        self.restarts = [now, *(r for r in self.restarts if r >= threshold)]
        return len(self.restarts) <= self.intensity

    def exit(self, child_id: str, reason: str, now: int) -> Outcome:
        """A running child exits with ``reason`` (normal, shutdown or an error) at ``now``."""
        child = self.find(child_id)
        child.running = False
        normal = reason in ("normal", "shutdown")
        # do_restart/4: permanent always restarts; a normal exit deletes the child
        # (temporary: spec gone, others: spec kept); transient restarts on the rest.
        if child.restart is Restart.TEMPORARY:
            self.children.remove(child)
            return Outcome("remove")
        if child.restart is Restart.TRANSIENT and normal:
            return Outcome("keep")
        if not self.add_restart(now):
            # terminate every child and stop with reason shutdown
            self.alive = False
            for other in self.children:
                other.running = False
            return Outcome("escalate")
        ids = [c.id for c in self.children]
        if self.strategy is Strategy.ONE_FOR_ONE:
            group = [child_id]
        elif self.strategy is Strategy.ONE_FOR_ALL:
            group = ids
        else:
            group = ids[ids.index(child_id) :]
        outcome = Outcome("restart")
        # terminate_children: right to left; temporary children are deleted, not kept
        for other_id in reversed(group):
            other = self.find(other_id)
            if other_id == child_id:
                continue
            if other.running:
                outcome.stopped.append(other_id)
                other.running = False
            if other.restart is Restart.TEMPORARY:
                outcome.deleted.add(other_id)
                self.children.remove(other)
        # start_children: left to right, every child that is left in the group
        for other_id in group:
            if other_id in outcome.deleted:
                continue
            self.find(other_id).running = True
            outcome.started.append(other_id)
        return outcome

    def terminate_child(self, child_id: str) -> None:
        """supervisor:terminate_child/2: stop it, keep its spec (a temporary's is deleted)."""
        child = self.find(child_id)
        child.running = False
        if child.restart is Restart.TEMPORARY:
            self.children.remove(child)

    def restart_child(self, child_id: str) -> None:
        """supervisor:restart_child/2 on a terminated child."""
        self.find(child_id).running = True

    def start_child(self, child_id: str, restart: Restart) -> None:
        """supervisor:start_child/2: the new child goes last."""
        self.children.append(ModelChild(child_id, restart))


# -- the system under test, driven only by the policy's decisions ----------------------


REASONS = st.sampled_from(["normal", "shutdown", "crash", "killed", "escalated"])
RESTARTS = st.sampled_from(list(Restart))


class PolicyAgainstOtp(RuleBasedStateMachine):
    """Children exit at increasing whole-second times; policy and model must agree."""

    def __init__(self) -> None:
        super().__init__()
        self.model: OtpModel
        self.children: list[ModelChild] = []
        self.history: tuple[float, ...] = ()
        self.now = 0
        self.alive = True
        self.next_id = 0

    @initialize(
        strategy=st.sampled_from(list(Strategy)),
        intensity=st.integers(0, 4),
        period=st.integers(1, 8),
        restarts=st.lists(RESTARTS, min_size=1, max_size=6),
    )
    def start(
        self, strategy: Strategy, intensity: int, period: int, restarts: list[Restart]
    ) -> None:
        self.strategy = strategy
        self.intensity = intensity
        self.period = period
        self.model = OtpModel(strategy, intensity, period)
        for restart in restarts:
            self._add(restart)

    def _add(self, restart: Restart) -> None:
        child_id = f"c{self.next_id}"
        self.next_id += 1
        self.children.append(ModelChild(child_id, restart))
        self.model.start_child(child_id, restart)

    def _running(self) -> list[str]:
        return [c.id for c in self.children if c.running]

    def _sut(self, child_id: str) -> ModelChild:
        return next(c for c in self.children if c.id == child_id)

    @precondition(lambda self: self.alive and any(c.running for c in self.children))
    @rule(data=st.data(), reason=REASONS, elapsed=st.integers(0, 4))
    def child_exits(self, data: st.DataObject, reason: str, elapsed: int) -> None:
        child_id = data.draw(st.sampled_from(self._running()), label="exited")
        self.now += elapsed
        self._sut(child_id).running = False
        views = [policy.ChildView(c.id, c.restart, c.running) for c in self.children]
        abnormal = reason not in ("normal", "shutdown")
        decision, self.history = policy.decide(
            self.strategy,
            views,
            child_id,
            abnormal,
            self.history,
            float(self.now),
            self.intensity,
            float(self.period),
        )
        expected = self.model.exit(child_id, reason, self.now)
        note(f"t={self.now} {child_id} {reason}: {decision} / model {expected}")

        assert decision.action == expected.kind
        assert decision.stop == tuple(expected.stopped)
        assert set(decision.remove) == expected.deleted
        assert decision.start == tuple(expected.started)
        assert sorted(self.history) == sorted(float(r) for r in self.model.restarts)
        self._apply(child_id, decision)

    def _apply(self, child_id: str, decision: policy.Decision) -> None:
        """What the Supervisor actor does with a decision, on plain data."""
        if decision.action == "remove":
            self.children.remove(self._sut(child_id))
        elif decision.action == "escalate":
            self.alive = False
            for child in self.children:
                child.running = False
        elif decision.action == "restart":
            for other in decision.stop:
                assert self._sut(other).running, "the policy stopped a child that was not running"
                self._sut(other).running = False
            self.children = [c for c in self.children if c.id not in decision.remove]
            for other in decision.start:
                self._sut(other).running = True

    @precondition(lambda self: self.alive and any(c.running for c in self.children))
    @rule(data=st.data())
    def terminate_child(self, data: st.DataObject) -> None:
        child_id = data.draw(st.sampled_from(self._running()), label="terminated")
        child = self._sut(child_id)
        child.running = False
        if child.restart is Restart.TEMPORARY:
            self.children.remove(child)
        self.model.terminate_child(child_id)

    @precondition(lambda self: self.alive and any(not c.running for c in self.children))
    @rule(data=st.data())
    def restart_child(self, data: st.DataObject) -> None:
        stopped = [c.id for c in self.children if not c.running]
        child_id = data.draw(st.sampled_from(stopped), label="restarted")
        self._sut(child_id).running = True
        self.model.restart_child(child_id)

    @precondition(lambda self: self.alive and len(self.children) < 8)
    @rule(restart=RESTARTS)
    def start_child(self, restart: Restart) -> None:
        self._add(restart)

    @precondition(lambda self: not self.alive)
    @rule(elapsed=st.integers(0, 4))
    def parent_restarts_supervisor(self, elapsed: int) -> None:
        """After an escalation the parent starts the supervisor again, history empty."""
        self.now += elapsed
        self.alive = self.model.alive = True
        self.history = ()
        self.model.restarts = []
        for child in (*self.children, *self.model.children):
            child.running = True

    @invariant()
    def same_children(self) -> None:
        assert [(c.id, c.restart, c.running) for c in self.children] == [
            (c.id, c.restart, c.running) for c in self.model.children
        ]
        assert self.alive == self.model.alive


TestPolicyAgainstOtp = PolicyAgainstOtp.TestCase
TestPolicyAgainstOtp.__doc__ = "Random exits, terminations and additions: policy equals model."


# -- rule 1 and 2 on their own ---------------------------------------------------------


@pytest.mark.parametrize(
    ("restart", "abnormal", "expected"),
    [
        (Restart.PERMANENT, False, True),
        (Restart.PERMANENT, True, True),
        (Restart.TRANSIENT, False, False),
        (Restart.TRANSIENT, True, True),
        (Restart.TEMPORARY, False, False),
        (Restart.TEMPORARY, True, False),
    ],
)
def test_should_restart_table(restart: Restart, abnormal: bool, expected: bool) -> None:
    """Permanent always, transient only when abnormal, temporary never."""
    assert policy.should_restart(restart, abnormal) is expected


@given(
    gaps=st.lists(st.integers(0, 5), min_size=1, max_size=30),
    intensity=st.integers(0, 5),
    period=st.integers(1, 10),
)
def test_add_restart_matches_otp(gaps: list[int], intensity: int, period: int) -> None:
    """Restart histories and escalation match OTP's add_restart at whole-second times."""
    model = OtpModel(Strategy.ONE_FOR_ONE, intensity, period)
    history: tuple[float, ...] = ()
    now = 0
    for gap in gaps:
        now += gap
        history, within = policy.add_restart(history, float(now), intensity, float(period))
        assert within == model.add_restart(now)
        assert sorted(history) == sorted(float(r) for r in model.restarts)


@given(
    times=st.lists(
        st.floats(0, 1e6, allow_nan=False, allow_infinity=False), min_size=1, max_size=20
    ),
    intensity=st.integers(0, 5),
    period=st.floats(1e-3, 1e4),
)
def test_add_restart_keeps_only_the_window(
    times: list[float], intensity: int, period: float
) -> None:
    """At any float times the history holds just the restarts within ``period`` of now."""
    history: tuple[float, ...] = ()
    for now in sorted(times):
        history, within = policy.add_restart(history, now, intensity, period)
        assert now in history
        assert all(now - t <= period * (1 + 1e-9) for t in history)
        assert within == (len(history) <= intensity)


def test_restart_exactly_one_period_ago_still_counts() -> None:
    """As in OTP, a restart exactly ``period`` seconds old is inside the window."""
    history, within = policy.add_restart((), 0.0, 1, 5.0)
    assert within
    history, within = policy.add_restart(history, 5.0, 1, 5.0)
    assert not within
    assert policy.add_restart((0.0,), 5.5, 1, 5.0) == ((5.5,), True)


@pytest.mark.parametrize(
    ("strategy", "exited", "group"),
    [
        (Strategy.ONE_FOR_ONE, "b", ("b",)),
        (Strategy.ONE_FOR_ALL, "b", ("a", "b", "c", "d")),
        (Strategy.REST_FOR_ONE, "b", ("b", "c", "d")),
        (Strategy.REST_FOR_ONE, "a", ("a", "b", "c", "d")),
        (Strategy.REST_FOR_ONE, "d", ("d",)),
    ],
)
def test_restart_group(strategy: Strategy, exited: str, group: tuple[str, ...]) -> None:
    """Each strategy picks its group in start order."""
    assert policy.restart_group(strategy, ["a", "b", "c", "d"], exited) == group


def test_decide_passes_the_backoff_delay_on() -> None:
    """A restart decision carries the delay computed for it; history is returned updated."""
    children = [
        policy.ChildView("a", Restart.PERMANENT, True),
        policy.ChildView("b", Restart.TEMPORARY, True),
        policy.ChildView("c", Restart.PERMANENT, False),
    ]
    decision, history = policy.decide(
        Strategy.ONE_FOR_ALL, children, "c", True, (), 3.0, 1, 5.0, delay=0.25
    )
    assert decision == policy.Decision(
        "restart", stop=("b", "a"), remove=("b",), start=("a", "c"), delay=0.25
    )
    assert history == (3.0,)


def test_not_restarting_leaves_history_alone() -> None:
    """An exit that restarts nothing records no restart, so it cannot escalate."""
    children = [policy.ChildView("a", Restart.TRANSIENT, False)]
    decision, history = policy.decide(
        Strategy.ONE_FOR_ALL, children, "a", False, (1.0, 2.0), 3.0, 0, 5.0
    )
    assert decision == policy.Decision("keep")
    assert history == (1.0, 2.0)


# -- rule 4: backoff -------------------------------------------------------------------


def backoffs() -> st.SearchStrategy[Backoff]:
    positive = st.floats(1e-6, 1e6, allow_nan=False, allow_infinity=False)

    @st.composite
    def build(draw: st.DrawFn) -> Backoff:
        low, high = sorted((draw(positive), draw(positive)))
        factor = draw(st.floats(0, 5, allow_nan=False))
        reset = draw(st.none() | positive)
        return Backoff(min=low, max=high, random_factor=factor, reset_after=reset)

    return build()


UNIT = st.floats(0, 1, exclude_max=True)


def expected_base(backoff: Backoff, attempt: int) -> float:
    """``min(max, min * 2**attempt)``, exactly, for any attempt."""
    try:
        grown = math.ldexp(backoff.min, attempt)
    except OverflowError:
        return backoff.max
    return min(backoff.max, grown)


@given(backoff=backoffs(), attempt=st.integers(0, 2000), u=UNIT)
@example(backoff=Backoff(min=1e-6, max=1e6, random_factor=0.0), attempt=30, u=0.0)
def test_backoff_delay_within_jitter_of_base(backoff: Backoff, attempt: int, u: float) -> None:
    """The delay lies in [base, base * (1 + random_factor)] for base = min(max, min*2**n)."""
    base = expected_base(backoff, attempt)
    delay = policy.backoff_delay(backoff, attempt, u)
    assert base <= delay <= base * (1 + backoff.random_factor)


@given(backoff=backoffs(), attempt=st.integers(0, 200), u=UNIT)
def test_backoff_delay_monotone_and_capped(backoff: Backoff, attempt: int, u: float) -> None:
    """For a fixed draw the delay never shrinks as attempts grow, and never passes the cap."""
    now = policy.backoff_delay(backoff, attempt, u)
    later = policy.backoff_delay(backoff, attempt + 1, u)
    assert now <= later <= backoff.max * (1 + backoff.random_factor)


@given(backoff=backoffs(), u=UNIT)
def test_backoff_delay_reaches_max_and_survives_huge_attempts(backoff: Backoff, u: float) -> None:
    """Far enough along the delay is max with jitter, with no overflow for any attempt."""
    cap = backoff.max * (1 + u * backoff.random_factor)
    assert policy.backoff_delay(backoff, 10**9, u) == cap
    assert policy.backoff_delay(backoff, 2000, u) == cap


def test_backoff_delay_without_jitter_doubles() -> None:
    """With random_factor 0 the delays are min, 2 min, 4 min, ... up to max."""
    backoff = Backoff(min=0.5, max=3.0, random_factor=0.0)
    assert [policy.backoff_delay(backoff, n, 0.9) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


@given(
    backoff=backoffs(),
    previous=st.integers(-1, 100),
    started_at=st.floats(0, 1e6),
    ran=st.floats(0, 2e6),
)
def test_backoff_attempt_resets_after_a_stable_run(
    backoff: Backoff, previous: int, started_at: float, ran: float
) -> None:
    """A run of at least reset_period starts the count over; a shorter one adds one."""
    now = started_at + ran
    attempt = policy.backoff_attempt(previous, started_at, now, backoff)
    if now - started_at >= backoff.reset_period:
        assert attempt == 0
    else:
        assert attempt == previous + 1


def test_backoff_reset_period_defaults_to_max() -> None:
    """Without reset_after the count resets after ``max`` seconds of running."""
    backoff = Backoff(min=1.0, max=8.0)
    assert backoff.reset_period == 8.0
    assert policy.backoff_attempt(3, 10.0, 17.9, backoff) == 4
    assert policy.backoff_attempt(3, 10.0, 18.0, backoff) == 0
    assert policy.backoff_attempt(3, 10.0, 11.0, Backoff(min=1.0, reset_after=1.0)) == 0
