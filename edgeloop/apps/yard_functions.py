"""Event functions: the lightweight tier of stateless functions that run before fusion.

A function takes an :class:`~edgeloop.messages.Event` and returns it (perhaps changed:
events are frozen, so a new one) or ``None`` to drop it. An app file registers each on
event kinds (on-device labels; ``"*"`` for all) with keyword arguments::

    functions = [
        { call = "edgeloop.apps.yard_functions:drop_low_score", args = { min_score = 0.3 } },
        { call = "edgeloop.apps.yard_functions:tag_night", on = ["skunk", "cat"] },
    ]

:class:`FunctionChain` runs them in order, each isolated: one that raises (or returns
something that is not an Event) is counted under its name and skipped for that event, and
the event goes on as it was; the stream never stops for a faulty function.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec
import structlog

from edgeloop.errors import ConfigError, EdgeloopError
from edgeloop.messages import Event
from edgeloop.supervisor import resolve_start

__all__ = ["EventFunction", "FunctionChain", "drop_low_score", "tag_night", "build_chain"]

_log = structlog.get_logger("edgeloop.apps.yard")

EventFunction = Callable[[Event], Event | None]
Registration = tuple[str, EventFunction, Sequence[str] | None]


def drop_low_score(event: Event, *, min_score: float = 0.3) -> Event | None:
    """Drop a report its own camera barely believes (thumbnails of leaves and shadows)."""
    return event if event.score >= min_score else None


def tag_night(event: Event, *, start_hour: float = 18.0, day_length: float = 600.0) -> Event | None:
    """Tag ``extra["night"]`` (20:00-06:00 on the yard's clock: source time ``ts`` 0 is
    ``start_hour``, a whole day lasts ``day_length`` seconds), so later stages need not know
    the yard's clock."""
    hour = (start_hour + 24.0 * event.ts / day_length) % 24.0
    night = hour >= 20.0 or hour < 6.0
    return msgspec.structs.replace(event, extra={**event.extra, "night": night})


@dataclasses.dataclass(frozen=True, slots=True)
class _Registered:
    name: str
    call: EventFunction
    on: frozenset[str] | None  # None: every kind


class FunctionChain:
    """Registered event functions in order, each isolated (see the module docstring)."""

    def __init__(
        self, functions: Sequence[tuple[str, EventFunction, Sequence[str] | None]]
    ) -> None:
        self._functions = [
            _Registered(name, call, None if on is None else frozenset(on))
            for name, call, on in functions
        ]
        self.failures: collections.Counter[str] = collections.Counter()
        self.dropped: collections.Counter[str] = collections.Counter()

    @property
    def names(self) -> list[str]:
        return [f.name for f in self._functions]

    def __call__(self, event: Event) -> Event | None:
        """The event after every function that applies to its kind; ``None`` if dropped."""
        for registered in self._functions:
            if registered.on is not None and event.label not in registered.on:
                continue
            try:
                result: object = registered.call(event)
                if result is not None and not isinstance(result, Event):
                    msg = f"returned {type(result).__name__}, not an Event or None"
                    raise TypeError(msg)
            except Exception as error:  # noqa: BLE001 (isolated: counted, the event goes on)
                self.failures[registered.name] += 1
                _log.warning(
                    "event_function_failed",
                    function=registered.name,
                    device=event.device,
                    seq=event.seq,
                    error=repr(error),
                )
                continue
            if result is None:
                self.dropped[registered.name] += 1
                return None
            event = result
        return event


def build_chain(tables: Sequence[Mapping[str, Any]], key: str = "functions") -> FunctionChain:
    """A chain from app-file tables ``{ call = "module:function", args = {...}, on = [...] }``;
    a bad table raises :class:`ConfigError` naming ``functions[i].key``."""
    if isinstance(tables, str | Mapping) or not isinstance(tables, Sequence):
        raise ConfigError(key, f"expected a list of function tables, got {tables!r}")
    functions: list[Registration] = []
    for i, table in enumerate(tables):
        where = f"{key}[{i}]"
        if not isinstance(table, Mapping):
            raise ConfigError(
                where, f"expected a table such as {{ call = 'mod:fn' }}, got {table!r}"
            )
        unknown = set(table) - {"call", "args", "on"}
        if unknown:
            raise ConfigError(f"{where}.{sorted(unknown)[0]}", "unknown key; known: call, args, on")
        call = table.get("call")
        if not isinstance(call, str) or ":" not in call:
            raise ConfigError(f"{where}.call", f"expected 'module:function', got {call!r}")
        try:
            target = resolve_start(call)
        except EdgeloopError as error:
            raise ConfigError(f"{where}.call", str(error)) from None
        args = table.get("args", {})
        if not isinstance(args, Mapping):
            raise ConfigError(f"{where}.args", f"expected a table, got {args!r}")
        on = table.get("on")
        if on is not None and (isinstance(on, str) or not all(isinstance(x, str) for x in on)):
            raise ConfigError(f"{where}.on", f"expected a list of event labels, got {on!r}")
        if on is not None and "*" in on:
            on = None
        functions.append((call.rsplit(":", 1)[1], functools.partial(target, **args), on))
    return FunctionChain(functions)
