"""What a provider is: the data plane of a lane, shaped like RDMA so verbs is a thin mapping.

A provider moves bytes one way, sender to receiver, and credits the other way:

- the receiver *listens*: it registers its ring (``ReceiveSide.ring``) and says in
  ``ready_params`` what a sender needs to write into it;
- the sender *attaches* with those params, waits for credits (``poll_credit``) and
  ``write``\\s a slot's header and payload in one one-sided write completed by a 32-bit
  immediate value;
- the receiver ``poll``\\s for completed writes (:class:`Arrival`) and ``grant``\\s slots.

Every blocking call takes a timeout in seconds (``None``: wait for ever) and returns
``None`` when it runs out; a peer that goes away turns into
:class:`~edgeloop.errors.PeerLostError`. A side is used by one thread at a time.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Protocol, TypeAlias

from edgeloop.messages import BulkCredit
from edgeloop.transport.bulk._protocol import Geometry

__all__ = [
    "Params",
    "Availability",
    "Arrival",
    "SendHandle",
    "DONE",
    "ReceiveSide",
    "SendSide",
    "SenderSetup",
    "Provider",
]

Params: TypeAlias = dict[str, bool | int | str]
"""Provider-specific connection details, as they travel in BulkAccept and BulkReady."""


@dataclasses.dataclass(frozen=True, slots=True)
class Availability:
    """Whether a provider can run here, and why (or why not) in one line."""

    available: bool
    reason: str


class Arrival(NamedTuple):  # a tuple: built once per frame, a frozen dataclass costs more
    """One completed write, as the receiver's transport reports it.

    ``header`` is the slot's header bytes, ``payload`` the frame's bytes (at least as
    many as the descriptor says), ``byte_len`` the payload bytes the transport says were
    written (``None`` if it does not say), ``owner`` whatever keeps ``payload``'s memory
    alive (a ZeroMQ frame) until the consumer releases the frame.
    """

    imm: int
    header: memoryview | bytes
    payload: memoryview
    byte_len: int | None = None
    owner: object | None = None


class SendHandle(Protocol):
    """The sender's completion of one write: the payload buffer may be reused once done."""

    def done(self) -> bool:
        """Whether the transport no longer needs the payload buffer."""
        ...

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until :meth:`done`; whether it was within ``timeout`` seconds."""
        ...


class _Done:
    """A write whose bytes were copied before ``write`` returned (shm, fake, verbs)."""

    __slots__ = ()

    def done(self) -> bool:
        return True

    def wait(self, timeout: float | None = None) -> bool:
        return True

    def __repr__(self) -> str:
        return "DONE"


DONE: SendHandle = _Done()
"""The handle of a write that is already complete."""


class ReceiveSide(Protocol):
    """The receiver's end of a provider connection: the registered ring and its completions."""

    provider: str

    @property
    def ring(self) -> memoryview | None:
        """The ring's memory, writable (``None`` where frames stay in the transport's
        own buffers, as ZeroMQ's do for host memory)."""
        ...

    def ready_params(self) -> Params:
        """What a sender needs to attach (goes into BulkReady)."""
        ...

    def establish(self, timeout: float | None) -> bool:
        """Wait until the sender has attached; whether it did within ``timeout``."""
        ...

    def grant(self, credit: BulkCredit) -> None:
        """Hand the sender these slots (sent once the sender has attached)."""
        ...

    def poll(self, timeout: float | None) -> Arrival | None:
        """The next completed write, ``None`` after ``timeout``; PeerLostError if the
        sender went away."""
        ...

    def close(self) -> None:
        """Release the ring and the connection (idempotent)."""
        ...


class SendSide(Protocol):
    """The sender's end of a provider connection."""

    provider: str

    def poll_credit(self, timeout: float | None) -> BulkCredit | None:
        """The next credit the receiver granted, ``None`` after ``timeout``; PeerLostError
        if the receiver went away."""
        ...

    def write(self, slot: int, header: bytes, payload: memoryview, imm: int) -> SendHandle:
        """Write ``header`` and ``payload`` into ``slot`` and complete it with ``imm``.

        The transport checks what an RDMA NIC would (slot in range, the region's key);
        it does not check credits: the receiver does.
        """
        ...

    def close(self) -> None:
        """Release the connection (idempotent)."""
        ...


class SenderSetup(Protocol):
    """A sender's provider state between BulkAccept and BulkReady (a verbs queue pair)."""

    @property
    def params(self) -> Params:
        """What the receiver needs to connect back (goes into BulkAccept)."""
        ...

    def attach(self, ready: Params) -> SendSide:
        """Attach to the receiver's ring described by BulkReady's params."""
        ...

    def close(self) -> None:
        """Give up without attaching (idempotent)."""
        ...


class Provider(Protocol):
    """One way of moving frames: ``shm``, ``zmq``, ``verbs`` or ``fake``."""

    name: str

    def probe(self) -> Availability:
        """Whether this provider can run on this machine."""
        ...

    def listen(self, lane: int, geometry: Geometry, memory: str, accept: Params) -> ReceiveSide:
        """Register a ring for ``lane`` and wait for a sender (``accept``: its params)."""
        ...

    def prepare(self, lane: int, geometry: Geometry) -> SenderSetup:
        """Get ready to send on ``lane`` (before the receiver's BulkReady)."""
        ...
