"""Child specs, supervisor flags and backoff: defaults, and every mistake named by its key."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from edgeloop.actors import Actor, MailboxConfig
from edgeloop.errors import ConfigError
from edgeloop.supervisor import (
    DEFAULT_WORKER_SHUTDOWN,
    Backoff,
    ChildSpec,
    ChildType,
    Restart,
    Strategy,
    SupervisorFlags,
)


class Worker(Actor):
    """A do-nothing actor for specs to name."""


def config_error(key: str) -> Any:
    """``pytest.raises`` for a ConfigError whose ``key`` is ``key``."""
    return pytest.raises(ConfigError, match="^" + re.escape(key) + ": ")


# -- ChildSpec -------------------------------------------------------------------------


def test_child_spec_defaults() -> None:
    """A worker spec defaults to permanent, 5 s shutdown, no args and a default mailbox."""
    spec = ChildSpec("w", Worker)
    assert spec.restart is Restart.PERMANENT
    assert spec.type is ChildType.WORKER
    assert spec.shutdown == DEFAULT_WORKER_SHUTDOWN == 5.0
    assert spec.shutdown_timeout == 5.0
    assert spec.args == {}
    assert spec.mailbox == MailboxConfig()


def test_supervisor_child_defaults_to_infinity() -> None:
    """A supervisor child waits as long as its own children take to stop."""
    spec = ChildSpec("sub", Worker, type="supervisor")
    assert spec.type is ChildType.SUPERVISOR
    assert spec.shutdown == "infinity"
    assert spec.shutdown_timeout is None


def test_start_timeout_defaults_and_values() -> None:
    """Workers wait 5 s for on_start by default, supervisors for their whole subtree;
    a number or "infinity" overrides it, anything else is named."""
    assert ChildSpec("w", Worker).start_wait == 5.0
    assert ChildSpec("sub", Worker, type="supervisor").start_wait is None
    assert ChildSpec("w", Worker, start_timeout=120).start_wait == 120.0
    assert ChildSpec("w", Worker, start_timeout="infinity").start_wait is None
    for bad in (0, -1, math.inf, "forever", True):
        with config_error("start_timeout"):
            ChildSpec("w", Worker, start_timeout=bad)  # type: ignore[arg-type]


def test_strings_become_enums() -> None:
    """Restart and type given as strings (as in an app file) become the enums."""
    spec = ChildSpec("w", "tests.unit.test_spec:Worker", restart="transient", type="worker")
    assert spec.restart is Restart.TRANSIENT
    assert spec.type is ChildType.WORKER


@pytest.mark.parametrize(
    ("shutdown", "stored", "timeout"),
    [
        ("brutal_kill", "brutal_kill", 0.0),
        ("infinity", "infinity", None),
        (2, 2.0, 2.0),
        (0.25, 0.25, 0.25),
    ],
)
def test_shutdown_forms(shutdown: Any, stored: Any, timeout: float | None) -> None:
    """Shutdown takes brutal_kill, infinity or positive seconds (ints become floats)."""
    spec = ChildSpec("w", Worker, shutdown=shutdown)
    assert spec.shutdown == stored
    assert spec.shutdown_timeout == timeout
    if isinstance(stored, float):
        assert isinstance(spec.shutdown, float)


def test_explicit_shutdown_for_a_supervisor_is_kept() -> None:
    """An explicit shutdown overrides the supervisor default of infinity."""
    assert ChildSpec("sub", Worker, type="supervisor", shutdown=3.0).shutdown == 3.0


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"id": ""}, "id"),
        ({"id": "a/b"}, "id"),
        ({"id": "has space"}, "id"),
        ({"id": "trailing-newline\n"}, "id"),
        ({"id": 3}, "id"),
        ({"start": "no_colon"}, "start"),
        ({"start": ":Name"}, "start"),
        ({"start": "module:"}, "start"),
        ({"start": 42}, "start"),
        ({"args": ["not", "a", "table"]}, "args"),
        ({"restart": "sometimes"}, "restart"),
        ({"restart": 1}, "restart"),
        ({"type": "manager"}, "type"),
        ({"shutdown": 0}, "shutdown"),
        ({"shutdown": -1.0}, "shutdown"),
        ({"shutdown": math.inf}, "shutdown"),
        ({"shutdown": math.nan}, "shutdown"),
        ({"shutdown": True}, "shutdown"),
        ({"shutdown": "kill"}, "shutdown"),
        ({"mailbox": {"capacity": 3}}, "mailbox"),
    ],
)
def test_child_spec_errors_name_the_key(kwargs: dict[str, Any], key: str) -> None:
    """Each invalid field raises ConfigError whose key names that field."""
    fields: dict[str, Any] = {"id": "w", "start": Worker, **kwargs}
    with pytest.raises(ConfigError) as caught:
        ChildSpec(**fields)
    assert caught.value.key == key
    assert str(caught.value).startswith(f"{key}: ")


def test_child_spec_is_frozen() -> None:
    """Specs are values: they cannot change after validation."""
    spec = ChildSpec("w", Worker)
    with pytest.raises(AttributeError):
        spec.id = "other"  # type: ignore[misc]


# -- SupervisorFlags -------------------------------------------------------------------


def test_flags_defaults_are_otps() -> None:
    """one_for_one, at most 1 restart in 5 s, no backoff."""
    flags = SupervisorFlags()
    assert flags.strategy is Strategy.ONE_FOR_ONE
    assert flags.intensity == 1
    assert flags.period == 5.0
    assert flags.backoff is None


def test_flags_accept_strings_and_zero_intensity() -> None:
    """A strategy string becomes the enum; intensity 0 means never restart."""
    flags = SupervisorFlags(strategy="rest_for_one", intensity=0, period=1)  # type: ignore[arg-type]
    assert flags.strategy is Strategy.REST_FOR_ONE
    assert flags.intensity == 0


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"strategy": "simple_one_for_one"}, "strategy"),
        ({"strategy": None}, "strategy"),
        ({"intensity": -1}, "intensity"),
        ({"intensity": 1.5}, "intensity"),
        ({"intensity": True}, "intensity"),
        ({"period": 0}, "period"),
        ({"period": -5}, "period"),
        ({"period": "5"}, "period"),
        ({"period": math.inf}, "period"),
        ({"backoff": {"min": 1.0}}, "backoff"),
    ],
)
def test_flags_errors_name_the_key(kwargs: dict[str, Any], key: str) -> None:
    """Each invalid flag raises ConfigError whose key names that flag."""
    with pytest.raises(ConfigError) as caught:
        SupervisorFlags(**kwargs)
    assert caught.value.key == key


# -- Backoff ---------------------------------------------------------------------------


def test_backoff_defaults() -> None:
    """0.1 s doubling to 10 s, 20 % jitter, reset after max."""
    backoff = Backoff()
    assert (backoff.min, backoff.max, backoff.random_factor) == (0.1, 10.0, 0.2)
    assert backoff.reset_after is None
    assert backoff.reset_period == 10.0
    assert Backoff(reset_after=2.5).reset_period == 2.5


def test_backoff_allows_min_equal_max_and_no_jitter() -> None:
    """A constant delay (min == max, random_factor 0) is valid."""
    backoff = Backoff(min=1.0, max=1.0, random_factor=0)
    assert backoff.random_factor == 0


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"min": 0}, "backoff.min"),
        ({"min": -0.1}, "backoff.min"),
        ({"min": "fast"}, "backoff.min"),
        ({"max": math.nan}, "backoff.max"),
        ({"min": 2.0, "max": 1.0}, "backoff.max"),
        ({"random_factor": -0.5}, "backoff.random_factor"),
        ({"random_factor": math.inf}, "backoff.random_factor"),
        ({"reset_after": 0}, "backoff.reset_after"),
        ({"reset_after": False}, "backoff.reset_after"),
    ],
)
def test_backoff_errors_name_the_key(kwargs: dict[str, Any], key: str) -> None:
    """Each invalid backoff field raises ConfigError with its dotted key."""
    with config_error(key) as caught:
        Backoff(**kwargs)
    assert caught.value.key == key
