"""A ZeroMQ endpoint in a process of its own, for the endpoint's integration tests.

    python -m tests.integration.peers.endpoint_peer --id node-a --role node \
        --listen tcp://127.0.0.1:* [--peer ADDRESS ...] [--heartbeat S] [--liveness S]

It prints one JSON line to stdout once its endpoint has started::

    {"event": "ready", "bound": ["tcp://127.0.0.1:40123"]}

then one line per peer event (``{"event": "peer_up", "peer": ..., "reconnected": ...}``,
``{"event": "peer_down", "peer": ..., "reason": ...}``), and echoes every data message
back to the peer that sent it. It closes its endpoint and exits when stdin closes; logs
go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading

import structlog

from edgeloop import messages
from edgeloop.transport import (
    Endpoint,
    EndpointConfig,
    LinkConfig,
    PeerAddress,
    PeerDown,
    PeerUp,
    ReconnectBackoff,
)

_print_lock = threading.Lock()


def _say(**fields: object) -> None:
    line = json.dumps(fields)
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--id", required=True)
    parser.add_argument("--role", default="node", choices=["node", "device"])
    parser.add_argument("--listen", action="append", default=[])
    parser.add_argument("--peer", action="append", default=[])
    parser.add_argument("--heartbeat", type=float, default=0.1)
    parser.add_argument("--liveness", type=float, default=1.0)
    args = parser.parse_args(argv)
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    config = EndpointConfig(
        LinkConfig(
            args.id,
            role=args.role,
            heartbeat_interval=args.heartbeat,
            liveness_timeout=args.liveness,
            handshake_timeout=1.0,
            backoff=ReconnectBackoff(min=0.05, max=0.2),
        ),
        listen=tuple(args.listen),
        peers=tuple(PeerAddress(address) for address in args.peer),
    )
    endpoint: Endpoint | None = None

    def echo(peer: str, message: messages.Message) -> None:
        assert endpoint is not None
        endpoint.send(peer, message)

    def on_peer(event: PeerUp | PeerDown) -> None:
        if isinstance(event, PeerUp):
            _say(event="peer_up", peer=event.peer, reconnected=event.reconnected)
        else:
            _say(event="peer_down", peer=event.peer, reason=event.reason)

    endpoint = Endpoint(config, on_message=echo, on_peer=on_peer)
    endpoint.start()
    _say(event="ready", bound=list(endpoint.bound))
    try:
        sys.stdin.read()  # until the test closes our stdin (or kills us)
    finally:
        endpoint.close()


if __name__ == "__main__":
    main()
