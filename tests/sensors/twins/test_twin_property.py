"""Exactly once, in order, at the twin, whatever an at-least-once device does.

A simulated device (acks from the wire, an outbox of what is unacknowledged) streams,
resends, reconnects, overflows its outbox and reports its status in an order hypothesis
chooses, while the twin may be killed and restarted by its supervisor: the subscriber
sees every event the device did not drop, each once, in order, and what it dropped before
delivery is counted lost.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from edgeloop.messages import Event, EventAck
from edgeloop.sensors import GetState
from tests.helpers import wait_for
from tests.sensors.twins.conftest import Yard, event, make_yard, status

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers(1, 40)),
        st.tuples(st.just("resend"), st.integers(0, 3)),
        st.tuples(st.just("reconnect"), st.just(0)),
        st.tuples(st.just("status"), st.just(0)),
        st.tuples(st.just("kill"), st.just(0)),
        st.tuples(st.just("overflow"), st.integers(1, 10)),
    ),
    min_size=1,
    max_size=12,
)


class Device:
    """Numbers events, keeps the unacknowledged ones, resends them as told."""

    def __init__(self, yard: Yard) -> None:
        self.yard = yard
        self.next = 1
        self.acked = 0
        self.oldest = 1  # the oldest event still in the outbox (older ones: acked or dropped)
        self.dropped: set[int] = set()

    @property
    def first_held(self) -> int:
        return max(self.acked + 1, self.oldest)

    def overflow(self, n: int) -> None:
        """The outbox overflowed: its ``n`` oldest unacknowledged events are gone."""
        self.take_acks()
        first = self.first_held
        gone = range(first, min(self.next, first + n))
        self.dropped.update(gone)
        self.oldest = first + len(gone)

    def take_acks(self) -> None:
        for message in self.yard.wire.drain():
            if isinstance(message, EventAck):
                self.acked = max(self.acked, message.seq)

    def send(self, n: int) -> None:
        for _ in range(n):
            self.yard.port.inject("cam-1", event(self.next))
            self.next += 1

    def resend(self, drop_tail: int = 0) -> None:
        """Go back N: everything unacknowledged again (maybe not the newest yet)."""
        self.take_acks()
        for seq in range(self.first_held, max(self.first_held, self.next - drop_tail)):
            self.yard.port.inject("cam-1", event(seq))

    def status(self) -> None:
        self.take_acks()
        self.yard.port.inject(
            "cam-1",
            status(
                "cam-1",
                next_seq=self.next,
                oldest_seq=self.first_held,
                outbox_dropped=len(self.dropped),
            ),
        )


def sync(yard: Yard) -> Any:
    return yard.twin("cam-1").ask(GetState()).get()


@settings(max_examples=60, deadline=None)
@given(ops=OPS)
def test_every_event_reaches_the_subscriber_once_in_order(ops: list[tuple[str, int]]) -> None:
    with make_yard([{"name": "cam-1"}]) as yard:
        device = Device(yard)
        yard.up("cam-1")
        for op, arg in ops:
            if op == "send":
                device.send(arg)
            elif op == "resend":
                device.resend(arg)
            elif op == "reconnect":
                yard.down("cam-1")
                yard.port.on_peer("cam-1", True)
                device.status()
                device.resend()
            elif op == "status":
                device.status()
            elif op == "overflow":
                device.overflow(arg)
            elif op == "kill":
                old = yard.twin("cam-1")
                old.kill()
                wait_for(
                    lambda old=old: yard.port.route("cam-1") not in (None, old),  # type: ignore[misc]
                    what="the supervisor restarted the twin",
                )
        # The device's last word: its status, then everything still unacknowledged.
        sync(yard)
        device.status()
        device.resend()
        yard.clock.advance(10.0)  # any wait for a status or a gap is over
        sync(yard)
        sink = yard.node.lookup("/sink")
        assert sink is not None
        sink.ask("flush").get()  # the subscriber has taken in all the twin told it
        got = []
        while not yard.seen.empty():
            item = yard.seen.get_nowait()
            if isinstance(item, Event):
                got.append(item.seq)
        assert got == sorted(set(got)), "in order, each once"
        every = set(range(1, device.next))
        assert every - device.dropped <= set(got) <= every, "nothing the device kept is lost"
        counters = sync(yard).counters
        assert counters["lost"] <= len(every - set(got))
        assert counters.get("device_outbox_dropped", 0) == len(device.dropped), (
            "what the device dropped is reported at the twin"
        )
