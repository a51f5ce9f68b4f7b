"""Bulk lanes bound to a control link: the handshake and the credits travel on the link,
the frames on the lane's provider.

An :class:`~edgeloop.transport.Endpoint` owns one :class:`LaneTable`. Its I/O thread
routes every bulk message from a ready peer here (:meth:`LaneTable.route`) instead of
to ``on_message``; the lane's own threads wait on a per-lane inbox. The ring owner (the
side that receives frames) opens a lane with an offer; the other side takes the next
offer from that peer::

    # the node: it receives camera frames into its ring
    receiver = endpoint.open_bulk_receiver("cam-1", bulk.BulkConfig(slot_size=8 << 20))
    with receiver.recv(timeout=1.0) as frame:
        use(frame.array)  # releasing sends the slot's credit back over the link

    # the device: it answers the node's offer and writes frames
    sender = endpoint.open_bulk_sender("edge-a", bulk.BulkConfig(), timeout=5.0)
    bulk.send_frame(sender, ref, pixels)  # waits for a credit from the link

On the link: ``BulkOffer`` (receiver), ``BulkAccept`` (sender), ``BulkReady`` (receiver),
then ``BulkCredit`` per released slot, and ``BulkClose`` from whichever side closes or
gives up. A lane whose peer goes down (``PeerDown``) is lost: a sender waiting for credits
raises :class:`~edgeloop.errors.PeerLostError`. Open a new lane after the peer is back.

Bad bulk input (an unknown lane, a message the lane does not expect now, an offer flood)
is counted in the endpoint's ``rejected`` statistics by reason and answered with
``BulkClose`` where that helps the peer.
"""

from __future__ import annotations

import collections
import queue
import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import structlog

from edgeloop import messages
from edgeloop.errors import LinkError, PeerLostError, ProtocolError
from edgeloop.messages import BulkAccept, BulkClose, BulkCredit, BulkOffer, BulkReady

if TYPE_CHECKING:
    from edgeloop.transport.bulk import BulkConfig, Receiver, Sender
    from edgeloop.transport.bulk._provider import (
        Arrival,
        Params,
        ReceiveSide,
        SendHandle,
        SendSide,
    )

__all__ = ["BULK_LINK_KINDS", "LaneTable", "MAX_PENDING_OFFERS"]

_log = structlog.get_logger("edgeloop.transport.bulk")

BULK_LINK_KINDS: Final = frozenset({BulkOffer, BulkAccept, BulkReady, BulkCredit, BulkClose})
"""The message types the endpoint routes to its lanes rather than to ``on_message``."""

MAX_PENDING_OFFERS: Final = 16
"""Offers one peer may have waiting for this side's ``open_bulk_sender``; more are refused."""

_LIVENESS_SLICE = 0.05
"""While a sender starves for credits, how often it asks its provider whether the receiver
is still there (a killed receiver shows on the provider at once, on the link only after
the liveness timeout)."""


class _Lost:
    """Put in a lane's inbox when its link went down or the endpoint closed."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


_Item = BulkAccept | BulkReady | BulkCredit | BulkClose | _Lost


class _Box:
    """One lane's end on this side: who, which lane, and what the link delivered to it."""

    __slots__ = ("accepts", "closed_by_peer", "inbox", "lane", "peer", "receiving")

    def __init__(self, peer: str, lane: int, *, receiving: bool, accepts: frozenset[type]) -> None:
        self.peer = peer
        self.lane = lane
        self.receiving = receiving
        self.accepts = accepts  # what the I/O thread may put in the inbox now
        self.inbox: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self.closed_by_peer: str | None = None


class LaneTable:
    """The bulk lanes of one endpoint, keyed by peer and lane id.

    ``send(peer, message)`` is the endpoint's thread-safe send; ``reject(reason)`` counts
    bad input in the endpoint's statistics.
    """

    def __init__(
        self,
        send: Callable[[str, messages.Message], bool],
        reject: Callable[[str], None],
        rng: random.Random,
    ) -> None:
        self._send = send
        self._reject = reject
        self._rng = rng
        self._boxes: dict[tuple[str, int], _Box] = {}
        self._lock = threading.Lock()
        self._offers: dict[str, collections.deque[BulkOffer]] = {}
        self._offered = threading.Condition(self._lock)
        self._closed = False

    # -- the I/O thread ----------------------------------------------------------------

    def route(self, peer: str, message: messages.Message) -> None:
        """Hand a bulk message from ``peer`` to its lane (the endpoint's I/O thread)."""
        if isinstance(message, BulkOffer):
            self._offer(peer, message)
            return
        if not isinstance(message, BulkAccept | BulkReady | BulkCredit | BulkClose):
            return  # not a bulk message: the endpoint routes only those here
        box = self._boxes.get((peer, message.lane))
        if box is None:
            if isinstance(message, BulkClose):
                self._withdraw(peer, message.lane)  # an offer given up before it was taken
            else:
                self._reject("bulk_unknown_lane")
            return
        if type(message) in box.accepts:
            box.inbox.put(message)
        elif isinstance(message, BulkClose):
            box.closed_by_peer = message.reason  # an open lane: its provider tells the rest
        else:
            self._reject("bulk_bad_state")

    def peer_down(self, peer: str) -> None:
        """``peer``'s link went down: its lanes are lost and its offers void."""
        with self._lock:
            self._offers.pop(peer, None)
            boxes = [box for box in self._boxes.values() if box.peer == peer]
        for box in boxes:
            box.inbox.put(_Lost(f"the control link to {peer!r} went down"))

    def close(self) -> None:
        """The endpoint stopped: every lane is lost, every wait for an offer ends."""
        with self._lock:
            self._closed = True
            self._offers.clear()
            boxes = list(self._boxes.values())
            self._offered.notify_all()
        for box in boxes:
            box.inbox.put(_Lost("the endpoint closed"))

    def _offer(self, peer: str, offer: BulkOffer) -> None:
        with self._lock:
            pending = self._offers.setdefault(peer, collections.deque())
            if (peer, offer.lane) in self._boxes or any(o.lane == offer.lane for o in pending):
                refusal = "bulk_lane_in_use"
            elif len(pending) >= MAX_PENDING_OFFERS:
                refusal = "bulk_too_many_offers"
            else:
                pending.append(offer)
                self._offered.notify_all()
                return
        self._reject(refusal)
        self._send(peer, BulkClose(lane=offer.lane, reason=refusal))

    def _withdraw(self, peer: str, lane: int) -> None:
        with self._lock:
            pending = self._offers.get(peer)
            if pending:
                self._offers[peer] = collections.deque(o for o in pending if o.lane != lane)

    # -- the lane's threads ------------------------------------------------------------

    def open_receiver(self, peer: str, config: BulkConfig, timeout: float) -> Receiver:
        """Offer ``peer`` a lane into a ring of this side's; the receiver once ``peer``
        has accepted (see :meth:`Endpoint.open_bulk_receiver`)."""
        from edgeloop.transport import bulk  # numpy only where lanes are used

        deadline = time.monotonic() + timeout
        offer = bulk.make_offer(self._new_lane(peer), config)
        box = self._register(peer, offer.lane, receiving=True, accepts={BulkAccept, BulkClose})
        try:
            self._post(box, offer)
            accept = self._next(box, BulkAccept, deadline, timeout)
            assert isinstance(accept, BulkAccept)
            linked: list[_LinkedReceiveSide] = []

            def wrap(side: ReceiveSide) -> ReceiveSide:
                linked.append(_LinkedReceiveSide(side, box, self))
                return linked[0]

            receiver, ready = bulk.open_receiver(offer, accept, config, wrap=wrap)
            box.accepts = frozenset()  # from now on the peer's BulkClose is only noted
            try:
                self._post(box, ready)
                linked[0].activate()
            except BaseException:
                receiver.close()
                raise
        except BaseException as error:
            self._abandon(box, f"handshake failed: {error}")
            raise
        _log.info("bulk_lane_opened", peer=peer, lane=offer.lane, side="receiver")
        return receiver

    def open_sender(self, peer: str, config: BulkConfig, timeout: float) -> Sender:
        """Take ``peer``'s next offer and attach to its ring; the sender (see
        :meth:`Endpoint.open_bulk_sender`)."""
        from edgeloop.transport import bulk

        deadline = time.monotonic() + timeout
        offer = self._take_offer(peer, deadline, timeout)
        box = self._register(
            peer, offer.lane, receiving=False, accepts={BulkReady, BulkCredit, BulkClose}
        )
        try:
            accept, setup = bulk.answer(offer, config)
            try:
                self._post(box, accept)
                ready = self._next(box, BulkReady, deadline, timeout)
                assert isinstance(ready, BulkReady)
                sender = bulk.open_sender(
                    offer, setup, ready, config, wrap=lambda side: _LinkedSendSide(side, box, self)
                )
            except BaseException:
                setup.close()
                raise
        except BaseException as error:
            self._abandon(box, f"handshake failed: {error}")
            raise
        _log.info("bulk_lane_opened", peer=peer, lane=offer.lane, side="sender")
        return sender

    def _new_lane(self, peer: str) -> int:
        """A lane id for a new offer: random, so that two sides offering to each other
        practically never pick the same one (the peer refuses a clash: lane_in_use)."""
        while True:
            lane = self._rng.randrange(1, 2**31)
            if (peer, lane) not in self._boxes:
                return lane

    def _register(self, peer: str, lane: int, *, receiving: bool, accepts: set[type]) -> _Box:
        box = _Box(peer, lane, receiving=receiving, accepts=frozenset(accepts))
        with self._lock:
            if self._closed:
                raise LinkError("the endpoint is closed; start a new one to open bulk lanes")
            self._boxes[(peer, lane)] = box
        return box

    def forget(self, box: _Box) -> None:
        """The lane is closed on this side: its messages count as unknown from now on."""
        with self._lock:
            if self._boxes.get((box.peer, box.lane)) is box:
                del self._boxes[(box.peer, box.lane)]

    def post(self, box: _Box, message: messages.Message) -> bool:
        """Send ``message`` to the lane's peer; whether the link took it."""
        return self._send(box.peer, message)

    def _post(self, box: _Box, message: messages.Message) -> None:
        if not self._send(box.peer, message):
            raise PeerLostError(
                f"no control link to {box.peer!r}: connect to it before opening a bulk lane"
            )

    def _abandon(self, box: _Box, reason: str) -> None:
        self.forget(box)
        self._send(box.peer, BulkClose(lane=box.lane, reason=reason[:200]))

    def _take_offer(self, peer: str, deadline: float, timeout: float) -> BulkOffer:
        with self._offered:
            while True:
                if self._closed:
                    raise LinkError("the endpoint is closed; start a new one to open bulk lanes")
                pending = self._offers.get(peer)
                if pending:
                    return pending.popleft()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LinkError(
                        f"no bulk-lane offer from {peer!r} within {timeout} s: the receiving "
                        "side must call open_bulk_receiver for this peer"
                    )
                self._offered.wait(remaining)

    def _next(self, box: _Box, expected: type, deadline: float, timeout: float) -> _Item:
        """The next handshake message for ``box``: ``expected``, or a typed error."""
        try:
            item = box.inbox.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise LinkError(
                f"no {expected.__name__} from {box.peer!r} for bulk lane {box.lane} within "
                f"{timeout} s: the other side must open its end (open_bulk_sender or "
                "open_bulk_receiver) in time"
            ) from None
        if type(item) is expected:
            return item
        if isinstance(item, BulkClose):
            raise LinkError(f"{box.peer!r} refused bulk lane {box.lane}: {item.reason}")
        if isinstance(item, _Lost):
            raise PeerLostError(item.reason)
        raise ProtocolError(
            f"{box.peer!r} sent {type(item).__name__} on bulk lane {box.lane} before "
            f"{expected.__name__}",
            reason="bad_state",
        )


class _LinkedReceiveSide:
    """A provider's receive side whose credits go out on the control link."""

    def __init__(self, inner: ReceiveSide, box: _Box, table: LaneTable) -> None:
        self.inner = inner
        self.provider = inner.provider
        self._box = box
        self._table = table
        self._held_back: list[BulkCredit] | None = []  # until the peer has BulkReady
        self._closed = False

    def activate(self) -> None:
        """BulkReady is on its way: the credits granted so far may follow it."""
        held, self._held_back = self._held_back or [], None
        for credit in held:
            self.grant(credit)

    @property
    def ring(self) -> memoryview | None:
        return self.inner.ring

    def ready_params(self) -> Params:
        return self.inner.ready_params()

    def establish(self, timeout: float | None) -> bool:
        return self.inner.establish(timeout)

    def grant(self, credit: BulkCredit) -> None:
        if self._held_back is not None:
            self._held_back.append(credit)
        elif not self._table.post(self._box, credit):
            raise PeerLostError(f"no control link to {self._box.peer!r} to return credits on")

    def poll(self, timeout: float | None) -> Arrival | None:
        return self.inner.poll(timeout)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._table.forget(self._box)
            if self._box.closed_by_peer is None:
                self._table.post(self._box, BulkClose(lane=self._box.lane, reason="closed"))
            self.inner.close()


class _LinkedSendSide:
    """A provider's send side whose credits come from the control link."""

    def __init__(self, inner: SendSide, box: _Box, table: LaneTable) -> None:
        self.inner = inner
        self.provider = inner.provider
        self._box = box
        self._table = table
        self._closed = False

    def poll_credit(self, timeout: float | None) -> BulkCredit | None:
        inbox = self._box.inbox
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = _LIVENESS_SLICE if deadline is None else deadline - time.monotonic()
            try:
                item = inbox.get(timeout=max(0.0, min(remaining, _LIVENESS_SLICE)))
            except queue.Empty:
                if remaining <= 0:
                    return None
                # Starving: is the receiver still there? (Its provider knows first.)
                credit = self.inner.poll_credit(0.001)
                if credit is not None:
                    return credit
                continue
            if type(item) is BulkCredit:
                return item
            if isinstance(item, BulkClose):
                raise PeerLostError(f"the receiver closed the lane: {item.reason}")
            if isinstance(item, _Lost):
                raise PeerLostError(item.reason)
            raise ProtocolError(
                f"expected a bulk_credit, got {type(item).__name__}", reason="bad_state"
            )

    def write(self, slot: int, header: bytes, payload: memoryview, imm: int) -> SendHandle:
        return self.inner.write(slot, header, payload, imm)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._table.forget(self._box)
            self._table.post(self._box, BulkClose(lane=self._box.lane, reason="closed"))
            self.inner.close()
