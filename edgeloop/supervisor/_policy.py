"""Supervision policy as pure functions: what to do when a child exits.

Nothing here reads a clock, draws a random number or touches an actor: ``now`` and the
jitter draw ``u`` come in as arguments, so the rules are tested exhaustively with
hypothesis against a small model of OTP's ``supervisor.erl``. The Supervisor actor only
applies the :class:`Decision` it gets back.

The rules (OTP's, with Akka's backoff on top):

1. A ``temporary`` child is never restarted; its spec is removed when it exits.
   A ``transient`` child is restarted only after an abnormal exit; a ``permanent``
   child always. A child that is not restarted affects no sibling.
2. Each restart is recorded at ``now``; restarts older than ``period`` are forgotten.
   More than ``intensity`` recorded restarts means: escalate (stop every child, right
   to left, and exit abnormally).
3. The strategy picks the group: ``one_for_one`` the exited child, ``one_for_all`` every
   child, ``rest_for_one`` the exited child and every child started after it. Running
   members of the group are stopped right to left, then the group is started left to
   right; temporary members that were stopped for a sibling are removed, not restarted.
4. With a backoff, the group starts after ``min(max, min * 2**n) * (1 + u * factor)``
   seconds, where ``n`` counts the exited child's restarts since it last ran for
   ``reset_period`` seconds without exiting.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

from edgeloop.clock import exponential_backoff
from edgeloop.supervisor.spec import Backoff, Restart, Strategy

__all__ = [
    "ChildView",
    "Decision",
    "should_restart",
    "add_restart",
    "restart_group",
    "backoff_delay",
    "backoff_attempt",
    "decide",
]


@dataclasses.dataclass(frozen=True, slots=True)
class ChildView:
    """What the policy needs to know of one child, in start order."""

    id: str
    restart: Restart
    running: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    """What the supervisor does about one exit.

    ``action``: ``keep`` (leave the child terminated, spec kept), ``remove`` (delete a
    temporary child's spec), ``restart`` or ``escalate``. For ``restart``: ``stop`` lists
    running siblings to stop, right to left; ``remove`` the temporary ones among them to
    delete; ``start`` the children to start, left to right, after ``delay`` seconds.
    """

    action: Literal["keep", "remove", "restart", "escalate"]
    stop: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    start: tuple[str, ...] = ()
    delay: float = 0.0


def should_restart(restart: Restart, abnormal: bool) -> bool:
    """Rule 1: whether a child of this restart type is restarted after this exit."""
    if restart is Restart.PERMANENT:
        return True
    if restart is Restart.TRANSIENT:
        return abnormal
    return False


def add_restart(
    history: tuple[float, ...], now: float, intensity: int, period: float
) -> tuple[tuple[float, ...], bool]:
    """Rule 2: record a restart at ``now``; returns the new history and whether the
    supervisor is still within its intensity (``False`` means escalate).

    A restart exactly ``period`` seconds old still counts, as in OTP's ``add_restart``
    (which keeps restarts at or after ``now - period``).
    """
    threshold = now - period
    recent = (*(t for t in history if t >= threshold), now)
    return recent, len(recent) <= intensity


def restart_group(strategy: Strategy, order: Sequence[str], exited: str) -> tuple[str, ...]:
    """Rule 3: the children a strategy restarts, in start order."""
    if strategy is Strategy.ONE_FOR_ONE:
        return (exited,)
    if strategy is Strategy.ONE_FOR_ALL:
        return tuple(order)
    return tuple(order[list(order).index(exited) :])


def backoff_delay(backoff: Backoff, attempt: int, u: float) -> float:
    """Rule 4: seconds to wait before restart number ``attempt`` (0-based); ``u`` in [0, 1)."""
    return exponential_backoff(backoff.min, backoff.max, backoff.random_factor, attempt, u)


def backoff_attempt(previous: int, started_at: float, now: float, backoff: Backoff) -> int:
    """Rule 4: the attempt number for this restart: 0 after a stable run, else one more."""
    if now - started_at >= backoff.reset_period:
        return 0
    return previous + 1


def decide(
    strategy: Strategy,
    children: Sequence[ChildView],
    exited: str,
    abnormal: bool,
    history: tuple[float, ...],
    now: float,
    intensity: int,
    period: float,
    delay: float = 0.0,
) -> tuple[Decision, tuple[float, ...]]:
    """Apply rules 1 to 3 to the exit of ``exited``; returns the decision and new history.

    ``children`` lists every child in start order (``exited`` among them, not running);
    ``delay`` is the backoff already computed for this restart (rule 4).
    """
    by_id = {child.id: child for child in children}
    restart = by_id[exited].restart
    if not should_restart(restart, abnormal):
        action: Literal["keep", "remove"] = "remove" if restart is Restart.TEMPORARY else "keep"
        return Decision(action), history
    history, within = add_restart(history, now, intensity, period)
    if not within:
        return Decision("escalate"), history
    group = restart_group(strategy, [c.id for c in children], exited)
    siblings = [by_id[i] for i in group if i != exited]
    stop = tuple(c.id for c in reversed(siblings) if c.running)
    remove = tuple(c.id for c in siblings if c.restart is Restart.TEMPORARY)
    start = tuple(i for i in group if i not in remove)
    return Decision("restart", stop=stop, remove=remove, start=start, delay=delay), history
