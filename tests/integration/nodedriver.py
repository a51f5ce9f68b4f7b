"""A node that a test drives over stdin: ``python -m tests.integration.nodedriver APP.toml``.

It runs the app file's node (links, CurveZMQ and all) as ``edgeloop node start`` does, with
JSON log lines on stderr, and then reads one JSON command a line from stdin, answering each
with one JSON line on stdout. Tests use it where they cannot be a node themselves, such as
inside a network namespace (``ip netns exec NS python -m tests.integration.nodedriver``).

Commands (``{"op": ..., ...}``):

* ``tell`` ``to`` ``bodies``: a remote tell of each body, in order; answers ``{"ok": n}``.
* ``ask`` ``to`` ``bodies`` ``timeout``: an ask of each body, all sent before any is
  awaited; answers ``{"ok": [{"ok": reply} | {"error": type, "message": text}, ...]}``.
* ``watch`` ``to``: watch the actor there (its ``Down`` is kept for ``down``); ``{"ok": true}``.
* ``down`` ``timeout``: the next ``Down`` a watch got, as ``{"ok": {"address", "kind",
  "detail"}}``, waiting up to ``timeout`` seconds (an ``error`` if none came).
* ``peers``: ``{"ok": [ready peers]}``.
* ``quit``: stops the node and exits 0 (as does the end of stdin).
"""

from __future__ import annotations

import json
import queue
import sys
from pathlib import Path
from typing import Any

from edgeloop.actors import Down, monitor
from edgeloop.cli import LogFormat, configure_logging
from edgeloop.supervisor import Node

_downs: queue.Queue[Down] = queue.Queue()


def _outcome(future: Any) -> dict[str, Any]:
    try:
        return {"ok": future.get()}
    except Exception as error:  # noqa: BLE001 - every failure is reported to the test
        return {"error": type(error).__name__, "message": str(error)}


def _run(node: Node, command: dict[str, Any]) -> Any:
    op = command["op"]
    if op == "tell":
        ref = node.ref(command["to"])
        for body in command["bodies"]:
            ref.tell(body)
        return len(command["bodies"])
    if op == "ask":
        ref = node.ref(command["to"])
        futures = [ref.ask(body, timeout=command["timeout"]) for body in command["bodies"]]
        return [_outcome(future) for future in futures]
    if op == "watch":
        monitor(node.ref(command["to"]), _downs.put)
        return True
    if op == "down":
        down = _downs.get(timeout=command["timeout"])
        address = getattr(down.ref, "address", down.ref.path)
        return {"address": address, "kind": down.reason.kind, "detail": down.reason.detail}
    if op == "peers":
        return node.peers()
    msg = f"unknown op {op!r}"
    raise ValueError(msg)


def main(app: str) -> int:
    configure_logging(LogFormat.json)
    node = Node.from_app(Path(app)).start()
    try:
        for line in sys.stdin:
            command = json.loads(line)
            if command["op"] == "quit":
                break
            try:
                answer: dict[str, Any] = {"ok": _run(node, command)}
            except Exception as error:  # noqa: BLE001 - the test reads what went wrong
                answer = {"error": type(error).__name__, "message": str(error)}
            print(json.dumps(answer), flush=True)
    finally:
        node.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
