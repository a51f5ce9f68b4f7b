"""Why an actor stopped, and the ``Down`` message its watchers receive."""

from __future__ import annotations

import dataclasses
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from edgeloop.actors._monitor import ActorRefLike

__all__ = ["ExitReason", "Down"]

ExitKind = Literal["normal", "shutdown", "crash", "killed", "escalated", "noproc", "noconnection"]

_RUNTIME_FILE = str(Path("edgeloop") / "actors" / "_cell.py")

_ABNORMAL = frozenset({"crash", "killed", "escalated", "noconnection"})


@dataclasses.dataclass(frozen=True, slots=True)
class ExitReason:
    """Why an actor stopped.

    ``normal``: it stopped itself or was asked to; ``shutdown``: its supervisor stopped it;
    ``crash``: a handler raised (``error``, ``where``); ``killed``: it was abandoned
    without an orderly stop; ``escalated``: a supervisor gave up after too many restarts;
    ``noproc``: it was already gone when someone started watching it; ``noconnection``:
    it lives on another node and the link to that node was lost (so it may still run).
    ``crash``, ``killed``, ``escalated`` and ``noconnection`` are *abnormal*: transient
    children restart after them.
    """

    kind: ExitKind
    detail: str = ""
    error: BaseException | None = dataclasses.field(default=None, compare=False)
    where: str = ""

    @property
    def abnormal(self) -> bool:
        return self.kind in _ABNORMAL

    @classmethod
    def crash(cls, error: BaseException, where: str) -> ExitReason:
        return cls("crash", f"{type(error).__name__}: {error}", error, where)

    def traceback_summary(self, limit: int = 5) -> str:
        """The last ``limit`` frames of the error's traceback (the runtime's own loop left
        out: it is in every crash), or ``""``."""
        if self.error is None or self.error.__traceback__ is None:
            return ""
        frames = [
            frame
            for frame in traceback.extract_tb(self.error.__traceback__)
            if not frame.filename.endswith(_RUNTIME_FILE)
        ]
        return "".join(traceback.format_list(frames[-limit:])).rstrip()

    def __str__(self) -> str:
        if self.kind == "crash":
            return f"crash in {self.where}: {self.detail}"
        return f"{self.kind}: {self.detail}" if self.detail else self.kind


NORMAL = ExitReason("normal")
SHUTDOWN = ExitReason("shutdown")
NOPROC = ExitReason("noproc")


@dataclasses.dataclass(frozen=True, slots=True)
class Down:
    """Delivered to a watcher's ``on_receive`` once the watched actor has stopped.

    ``ref`` is the ref that was watched: an :class:`ActorRef`, or a remote ref when the
    actor lives on another node.
    """

    ref: ActorRefLike
    reason: ExitReason
