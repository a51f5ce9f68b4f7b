"""Actors that the multi-node tests' app files name by ``tests.integration.multinode_actors:Name``.

They run inside ``edgeloop node start`` subprocesses, so everything they take and answer is
plain data (TOML args in, MessagePack out).
"""

from __future__ import annotations

from typing import Any

from edgeloop import Actor


class Echo(Actor):
    """Answers an ask with ``[node, message]``; ``"crash"`` raises ValueError, ``"stop"``
    stops the actor (answering ``"stopping"`` first)."""

    def __init__(self, node: str) -> None:
        self.node = node

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            msg = f"{self.node} was asked to crash"
            raise ValueError(msg)
        if message == "stop":
            self.stop()
            return "stopping"
        return [self.node, message]


class Collector(Actor):
    """Records numbered messages in arrival order.

    A tell of an int records it; an ask of ``["ack", n]`` records ``n`` and answers ``n``
    (the acknowledgement); an ask of ``"report"`` answers everything recorded so far.
    """

    def __init__(self) -> None:
        self.received: list[int] = []

    def on_receive(self, message: Any) -> Any:
        match message:
            case int(number):
                self.received.append(number)
                return None
            case ["ack", int(number)]:
                self.received.append(number)
                return number
            case "report":
                return list(self.received)
        msg = f"unexpected message {message!r}"
        raise ValueError(msg)
