"""Fault injection: a message that makes the actor handling it crash, for chaos drills.

``system.tell(path, InjectFault("drill"))`` queues it like any message; when the actor
reaches it, its cell raises :class:`~edgeloop.errors.InjectedFault` in place of the
handler, so the actor crashes exactly as if its own code had raised there (what was
behind it in the mailbox dies with it) and its supervisor decides. The actor's code
never sees the message. ``edgeloop bench chaos`` is its one user.
"""

from __future__ import annotations

__all__ = ["InjectFault"]


class InjectFault:
    """Crash the actor that receives this, with ``reason`` in the InjectedFault."""

    __slots__ = ("reason",)

    def __init__(self, reason: str = "injected fault") -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"InjectFault({self.reason!r})"
