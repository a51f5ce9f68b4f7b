"""The answer to an ``ask``: a one-shot future with a deadline.

``get()`` never waits past the ask's deadline; a callback added with
:meth:`Future.add_done_callback` runs exactly once, in the thread that completes the future
(or at once, if it is already done); a callback that raises is logged and skipped, so it
cannot break the thread that completes the future (often an actor's own). Use callbacks
inside actors: blocking on ``get()`` there can deadlock two actors that ask each other.

A future with callbacks fails with ``AskTimeout`` at its deadline (a timer on the node's
clock), so a callback always runs; an answer that comes after that is dropped. Without
callbacks nothing is scheduled, and only ``get()`` enforces the deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import structlog

from edgeloop.clock import Clock, Timer
from edgeloop.errors import AskTimeout

__all__ = ["Future"]

T = TypeVar("T")

_log = structlog.get_logger("edgeloop.actors")

_PENDING = object()


class Future(Generic[T]):
    """A reply that will arrive, fail, or time out."""

    __slots__ = (
        "_callbacks",
        "_clock",
        "_deadline",
        "_describe",
        "_error",
        "_signal",
        "_timer",
        "_value",
    )

    def __init__(
        self,
        deadline: float | None = None,
        describe: str = "the actor",
        *,
        clock: Clock | None = None,
    ) -> None:
        # A pre-acquired lock is the cheapest one-shot signal CPython offers: completing
        # releases it, and each waiter acquires and re-releases it to pass the signal on.
        self._signal = threading.Lock()
        self._signal.acquire()
        self._value: Any = _PENDING
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[Future[T]], None]] | None = None
        self._deadline = deadline
        self._describe = describe
        # With a clock, a future that has callbacks fails with AskTimeout at its deadline,
        # so a callback always runs; without callbacks, get() alone enforces the deadline.
        self._clock = clock
        self._timer: Timer | None = None

    def done(self) -> bool:
        """Whether a value or an error has been set."""
        return self._value is not _PENDING or self._error is not None

    def get(self, timeout: float | None = None) -> T:
        """Wait for the value and return it, or raise the error it failed with.

        Waits at most ``timeout`` seconds, and never past the ask's own deadline; raises
        :class:`~edgeloop.errors.AskTimeout` when time runs out.
        """
        if not self.done():
            wait = self._remaining(timeout)
            # Lock.acquire refuses timeouts beyond TIMEOUT_MAX (OverflowError).
            limit = -1 if wait is None else min(max(wait, 0.0), threading.TIMEOUT_MAX)
            if not self._signal.acquire(timeout=limit):
                raise AskTimeout(f"no answer from {self._describe} within {self._waited(timeout)}")
            self._signal.release()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[no-any-return]

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Wait like :meth:`get`, but return the error (or ``None``) instead of raising."""
        try:
            self.get(timeout)
        except AskTimeout as error:
            if self.done():
                return error  # the future itself failed with it (its deadline passed)
            raise  # only this wait ran out
        except BaseException as error:  # noqa: BLE001 - handing the failure back is the point
            return error
        return None

    def add_done_callback(self, callback: Callable[[Future[T]], None]) -> None:
        """Run ``callback(future)`` once the future is done (now, if it already is).

        An exception the callback raises is logged (``future_callback_failed``), not raised.
        """
        arm = False
        with _CALLBACK_LOCK:
            if not self.done():
                if self._callbacks is None:
                    self._callbacks = []
                    arm = self._clock is not None and self._deadline is not None
                self._callbacks.append(callback)
                if not arm:
                    return
        if not arm:
            self._run_callback(callback)
            return
        assert self._clock is not None
        assert self._deadline is not None
        timer = self._clock.call_later(max(0.0, self._deadline - time.monotonic()), self._expire)
        with _CALLBACK_LOCK:
            if self.done():
                timer.cancel()
            else:
                self._timer = timer

    def set_result(self, value: T) -> None:
        """Complete the future with a value. Completing twice is a bug and raises."""
        self._complete(value, None)

    def set_exception(self, error: BaseException) -> None:
        """Complete the future with an error. Completing twice is a bug and raises."""
        self._complete(_PENDING, error)

    def try_set_result(self, value: T) -> bool:
        """Complete the future with a value unless it is done already (it may have timed
        out); returns whether this call completed it."""
        return self._complete(value, None, strict=False)

    def try_set_exception(self, error: BaseException) -> bool:
        """Complete the future with an error unless it is done already."""
        return self._complete(_PENDING, error, strict=False)

    def _expire(self) -> None:
        self.try_set_exception(
            AskTimeout(f"no answer from {self._describe} within the ask's timeout")
        )

    def _complete(self, value: Any, error: BaseException | None, *, strict: bool = True) -> bool:
        with _CALLBACK_LOCK:
            if self.done():
                if not strict:
                    return False
                msg = f"the ask of {self._describe} was already answered"
                raise RuntimeError(msg)
            self._value = value
            self._error = error
            callbacks, self._callbacks = self._callbacks, None
            timer, self._timer = self._timer, None
        self._signal.release()
        if timer is not None:
            timer.cancel()
        if callbacks:
            for callback in callbacks:
                self._run_callback(callback)
        return True

    def _run_callback(self, callback: Callable[[Future[T]], None]) -> None:
        try:
            callback(self)
        except Exception as error:  # noqa: BLE001 - the completing thread must go on
            _log.error(
                "future_callback_failed",
                future=self._describe,
                callback=getattr(callback, "__qualname__", repr(callback)),
                exc_info=error,
            )

    def _remaining(self, timeout: float | None) -> float | None:
        if self._deadline is None:
            return timeout
        left = self._deadline - time.monotonic()
        return left if timeout is None else min(left, timeout)

    def _waited(self, timeout: float | None) -> str:
        return f"{timeout} s" if timeout is not None else "the ask's timeout"

    def __repr__(self) -> str:
        state = "pending" if not self.done() else ("failed" if self._error else "done")
        return f"<Future {state} for {self._describe}>"


# One lock for all futures' callback lists: completing and adding callbacks are rare and
# short, and a lock per future would double the cost of every ask.
_CALLBACK_LOCK = threading.Lock()
