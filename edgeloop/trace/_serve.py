"""Recording a running node from elsewhere: the node streams its boundary to subscribers.

A node started by ``edgeloop node start`` runs a :class:`TraceServer` at
:data:`TRACE_PATH` (outside its supervision tree). ``edgeloop record --connect ADDR``
connects as a short-lived peer, runs a :class:`TraceSubscriber` that feeds a local
:class:`~edgeloop.trace.Recorder`, and asks the server to subscribe it::

    CLI probe node                          recorded node
    /_trace_sub  ◀── tell [dir, device, ts, msgpack, dropped] ──  /_trace ◀── DevicePort tap
                 ── ask {"op": "subscribe", "address": ...} ──▶

The server's tap only queues into the server's own mailbox (``block=False``): when it is
full the record is dropped and counted, and the count travels with every record, so the
subscriber reports what the node dropped as well as what it dropped itself. The server
watches each subscriber and forgets it when it stops or its link is lost; the subscriber
watches the server and ends the recording when the node goes away.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import structlog

from edgeloop.actors import Actor, ActorRef, ActorRefLike, ActorSystem, Down
from edgeloop.errors import DecodeError, EdgeloopError, MailboxFull
from edgeloop.messages import decode, encode
from edgeloop.trace._format import TraceRecord
from edgeloop.trace._recorder import Recorder, TapLike, TappablePort

__all__ = ["TRACE_PATH", "SUBSCRIBER_PATH", "TraceServer", "TraceSubscriber", "serve_trace"]

TRACE_PATH = "/_trace"
"""Where a node started by ``edgeloop node start`` serves its boundary to recorders."""
SUBSCRIBER_PATH = "/_trace_sub"
"""Where ``edgeloop record`` receives it."""

_log = structlog.get_logger("edgeloop.trace")


class _Tapped:
    __slots__ = ("record",)

    def __init__(self, record: TapLike) -> None:
        self.record = record


class TraceServer(Actor):
    """Streams every boundary record of ``port`` to the subscribed remote actors."""

    def __init__(self, port: TappablePort) -> None:
        super().__init__()
        self.port = port
        self.subscribers: dict[str, ActorRefLike] = {}
        self.dropped = 0
        self.rejected = 0
        self._lock = threading.Lock()
        self._remove: Callable[[], None] | None = None

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Tapped):
            record = message.record
            wire = [
                record.direction,
                record.device,
                record.ts,
                encode(record.message),
                self.dropped,
            ]
            for subscriber in list(self.subscribers.values()):
                subscriber.tell(wire)
            return None
        if isinstance(message, Down):
            for address, ref in list(self.subscribers.items()):
                if ref == message.ref:
                    self._forget(address)
            return None
        if isinstance(message, dict):
            return self._request(message)
        return self._reject(f"a trace request is a map, not {type(message).__name__}")

    def on_stop(self) -> None:
        if self._remove is not None:
            self._remove()

    def _request(self, request: dict[str, Any]) -> dict[str, Any]:
        op, address = request.get("op"), request.get("address")
        if not isinstance(address, str) or op not in ("subscribe", "unsubscribe"):
            return self._reject(
                "a trace request is {'op': 'subscribe' | 'unsubscribe', 'address': "
                f"'NODE:/path'}}, not {request!r:.200}"
            )
        if op == "subscribe":
            try:
                ref = self.system.ref(address)
            except (ValueError, EdgeloopError) as error:
                return self._reject(f"cannot reach subscriber {address!r:.200}: {error}")
            self.subscribers[address] = ref
            self.watch(ref)
            if self._remove is None:
                self._remove = self.port.add_tap(self._tap)
            _log.info("trace_subscribed", subscriber=address)
        else:
            self._forget(address)
        return {"node": self.system.name, "clock": self.system.clock.now(), "error": None}

    def _reject(self, problem: str) -> dict[str, Any]:
        """Bad input is answered and counted; the server goes on serving."""
        self.rejected += 1
        if self.rejected <= 10 or self.rejected % 1000 == 0:
            _log.warning("trace_request_rejected", problem=problem, rejected=self.rejected)
        return {"error": problem}

    def _forget(self, address: str) -> None:
        ref = self.subscribers.pop(address, None)
        if ref is not None:
            self.unwatch(ref)
            _log.info("trace_unsubscribed", subscriber=address)
        if not self.subscribers and self._remove is not None:
            self._remove()
            self._remove = None

    def _tap(self, record: TapLike) -> None:
        try:
            self.ref.tell(_Tapped(record), block=False)
        except MailboxFull:
            with self._lock:
                self.dropped += 1


class TraceSubscriber(Actor):
    """Feeds what a :class:`TraceServer` streams into ``recorder``; sets ``done`` when
    the server goes away (its node stopped or the link was lost). ``report`` receives
    ``remote_dropped`` (what the node's server dropped) and ``malformed`` records."""

    def __init__(
        self,
        recorder: Recorder,
        server: str,
        done: threading.Event,
        report: dict[str, int] | None = None,
    ) -> None:
        super().__init__()
        self.recorder = recorder
        self.server = server
        self.done = done
        self.report = report if report is not None else {}
        self.report.update(remote_dropped=0, malformed=0)

    def on_start(self) -> None:
        self.watch(self.system.ref(self.server))

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Down):
            self.done.set()
            return None
        try:
            direction, device, ts, data, dropped = message
            if direction not in ("in", "out") or not isinstance(device, str):
                raise ValueError(f"not a boundary record: {direction!r}, {device!r}")
            record = TraceRecord(direction, device, decode(data), float(ts))
        except (TypeError, ValueError, DecodeError) as error:
            self.report["malformed"] += 1
            if self.report["malformed"] <= 10:
                _log.warning("trace_record_malformed", error=str(error))
            return None
        self.report["remote_dropped"] = max(self.report["remote_dropped"], int(dropped))
        self.recorder.tap(record)
        return None


def serve_trace(system: ActorSystem, port: TappablePort) -> ActorRef:
    """Let ``edgeloop record --connect`` record this node: a :class:`TraceServer` at
    :data:`TRACE_PATH` (``edgeloop node start`` does it for every node with links)::

        serve_trace(node.system, node.devices)
    """
    return system.spawn(TraceServer, TRACE_PATH, args={"port": port})
