"""Child specs and supervisor flags: OTP's words, seconds instead of milliseconds.

These are frozen values, validated when built (as OTP's ``check_childspecs`` does up
front), so a supervisor never discovers a bad spec halfway through a restart.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any, Literal, TypeAlias

from edgeloop.actors import DEFAULT_START_TIMEOUT, MailboxConfig
from edgeloop.errors import ConfigError

__all__ = [
    "Restart",
    "Strategy",
    "ChildType",
    "Shutdown",
    "Backoff",
    "SupervisorFlags",
    "ChildSpec",
    "DEFAULT_WORKER_SHUTDOWN",
]


class Restart(StrEnum):
    """When a child that exited is restarted."""

    PERMANENT = "permanent"  # always
    TRANSIENT = "transient"  # only after an abnormal exit (a crash, a kill, an escalation)
    TEMPORARY = "temporary"  # never; its spec is removed when it exits


class Strategy(StrEnum):
    """Which children a supervisor restarts when one of them must be restarted."""

    ONE_FOR_ONE = "one_for_one"  # only the child that exited
    ONE_FOR_ALL = "one_for_all"  # every child
    REST_FOR_ONE = "rest_for_one"  # the child that exited and the ones started after it


class ChildType(StrEnum):
    """A worker does the work; a supervisor supervises more children."""

    WORKER = "worker"
    SUPERVISOR = "supervisor"


Shutdown: TypeAlias = float | Literal["brutal_kill", "infinity"]
"""Seconds an orderly stop may take, ``"brutal_kill"`` (no wait) or ``"infinity"``."""

DEFAULT_WORKER_SHUTDOWN = 5.0
"""OTP's default for workers (5000 ms); supervisors default to ``"infinity"``."""

# fullmatch, not ``^...$``: ``$`` also matches before a trailing newline.
_ID = re.compile(r"[A-Za-z0-9_.@:-]+")


def _check_positive(key: str, value: object, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(key, f"expected a number of seconds, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(key, f"expected a finite number {bound}, got {value!r}")
    return number


def _enum(kind: type[StrEnum], key: str, value: object) -> Any:
    choices = ", ".join(repr(m.value) for m in kind)
    if not isinstance(value, str):
        raise ConfigError(key, f"expected one of {choices}, got {value!r}")
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(key, f"expected one of {choices}, got {value!r}") from None


@dataclasses.dataclass(frozen=True, slots=True)
class Backoff:
    """Akka's exponential backoff between restarts of a child.

    The n-th consecutive restart waits ``min(max, min * 2**n)`` seconds, stretched by a
    random factor in ``[1, 1 + random_factor)``. The count resets once the child has run
    for ``reset_after`` seconds without exiting (default: ``max``).
    """

    min: float = 0.1
    max: float = 10.0
    random_factor: float = 0.2
    reset_after: float | None = None

    def __post_init__(self) -> None:
        _check_positive("backoff.min", self.min)
        _check_positive("backoff.max", self.max)
        _check_positive("backoff.random_factor", self.random_factor, allow_zero=True)
        if self.max < self.min:
            raise ConfigError("backoff.max", f"must be >= backoff.min ({self.min}), got {self.max}")
        if self.reset_after is not None:
            _check_positive("backoff.reset_after", self.reset_after)

    @property
    def reset_period(self) -> float:
        """Seconds of stable running after which the backoff count starts over."""
        return self.max if self.reset_after is None else self.reset_after


@dataclasses.dataclass(frozen=True, slots=True)
class SupervisorFlags:
    """How a supervisor restarts its children, and how often before it gives up.

    More than ``intensity`` restarts within ``period`` seconds and the supervisor stops
    its children, right to left, and exits abnormally: its own parent decides next.
    """

    strategy: Strategy = Strategy.ONE_FOR_ONE
    intensity: int = 1
    period: float = 5.0
    backoff: Backoff | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "strategy", _enum(Strategy, "strategy", self.strategy))
        if isinstance(self.intensity, bool) or not isinstance(self.intensity, int):
            raise ConfigError("intensity", f"expected an integer, got {self.intensity!r}")
        if self.intensity < 0:
            raise ConfigError("intensity", f"expected an integer >= 0, got {self.intensity}")
        _check_positive("period", self.period)
        if self.backoff is not None and not isinstance(self.backoff, Backoff):
            raise ConfigError("backoff", f"expected a Backoff or None, got {self.backoff!r}")


@dataclasses.dataclass(frozen=True, slots=True)
class ChildSpec:
    """What a supervisor needs to start, stop and restart one child.

    ``start`` is an actor class or factory (called as ``start(**args)``) or a
    ``"package.module:Name"`` string, imported when the child first starts.
    ``shutdown`` defaults to 5 seconds for workers and ``"infinity"`` for supervisors.
    ``start_timeout`` bounds ``on_start`` (seconds, or ``"infinity"``): 5 seconds for
    workers by default, long enough for most; raise it for a child that compiles in its
    start (a JAX learner on a loaded machine). A supervisor always waits for its subtree.
    """

    id: str
    start: Callable[..., Any] | str
    args: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    restart: Restart = Restart.PERMANENT
    shutdown: Shutdown | None = None
    type: ChildType = ChildType.WORKER
    mailbox: MailboxConfig = dataclasses.field(default_factory=MailboxConfig)
    start_timeout: float | Literal["infinity"] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID.fullmatch(self.id):
            raise ConfigError(
                "id",
                f"expected a non-empty name of letters, digits and _.@:- (it becomes a path "
                f"segment), got {self.id!r}",
            )
        if isinstance(self.start, str):
            module, _, attr = self.start.partition(":")
            if not module or not attr:
                raise ConfigError("start", f"expected 'package.module:Name', got {self.start!r}")
        elif not callable(self.start):
            raise ConfigError("start", f"expected a callable or 'module:Name', got {self.start!r}")
        if not isinstance(self.args, Mapping):
            raise ConfigError("args", f"expected a table of keyword arguments, got {self.args!r}")
        object.__setattr__(self, "restart", _enum(Restart, "restart", self.restart))
        object.__setattr__(self, "type", _enum(ChildType, "type", self.type))
        shutdown = self.shutdown
        if shutdown is None:
            shutdown = "infinity" if self.type is ChildType.SUPERVISOR else DEFAULT_WORKER_SHUTDOWN
        elif shutdown not in ("brutal_kill", "infinity"):
            shutdown = _check_positive("shutdown", shutdown)
        object.__setattr__(self, "shutdown", shutdown)
        start_timeout = self.start_timeout
        if start_timeout is None:
            worker = self.type is ChildType.WORKER
            start_timeout = DEFAULT_START_TIMEOUT if worker else "infinity"
        elif start_timeout != "infinity":
            start_timeout = _check_positive("start_timeout", start_timeout)
        object.__setattr__(self, "start_timeout", start_timeout)
        if not isinstance(self.mailbox, MailboxConfig):
            raise ConfigError("mailbox", f"expected a MailboxConfig, got {self.mailbox!r}")

    @property
    def start_wait(self) -> float | None:
        """Seconds to wait for ``on_start``; None for infinity (supervisors)."""
        if self.type is ChildType.SUPERVISOR or self.start_timeout == "infinity":
            return None
        assert isinstance(self.start_timeout, float)
        return self.start_timeout

    @property
    def shutdown_timeout(self) -> float | None:
        """Seconds to wait for an orderly stop: 0 for brutal_kill, None for infinity."""
        if self.shutdown == "brutal_kill":
            return 0.0
        if self.shutdown == "infinity":
            return None
        assert isinstance(self.shutdown, float)
        return self.shutdown
