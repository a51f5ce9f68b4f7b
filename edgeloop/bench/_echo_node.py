"""A node process with one actor that answers every ask with what it was asked.

``python -m edgeloop.bench._echo_node ADDRESS`` starts node ``bench-echo`` with the actor
at ``/echo``, links it to the node listening at ``ADDRESS`` and runs until its standard
input closes (so it never outlives the benchmark that started it). The ``link`` suite
asks it from another process, as a Ray driver calls an actor in a worker process.
"""

from __future__ import annotations

import sys
from typing import Any

from edgeloop.actors import Actor
from edgeloop.supervisor import ChildSpec, Node

__all__ = ["ECHO_NODE", "ECHO_PATH", "Echo", "main"]

ECHO_NODE = "bench-echo"
ECHO_PATH = "/echo"


class Echo(Actor):
    """Answers an ask with the message itself."""

    def on_receive(self, message: Any) -> Any:
        return message


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m edgeloop.bench._echo_node ADDRESS", file=sys.stderr)
        return 2
    node = Node(ECHO_NODE, children=[ChildSpec(ECHO_PATH.lstrip("/"), Echo)], peers=argv)
    node.start()
    try:
        sys.stdin.read()  # until the benchmark closes it (or dies)
    finally:
        node.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
