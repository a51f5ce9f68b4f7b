"""A device in its own process that writes frames to its node over a link-bound bulk lane.

Usage: ``python -m tests.transport.link_device NODE_ADDRESS PROVIDER N``. It connects a
device-role endpoint (``cam-1``) to the node, takes the node's bulk-lane offer, sends N
frames (``frame_for(seq)``, frame id ``100 + seq``), prints ``sent N`` and blocks reading
stdin until the test closes it or kills the process.
"""

from __future__ import annotations

import sys

import structlog

from edgeloop.transport import bulk
from edgeloop.transport.bulk.conformance import frame_for
from tests.transport.linked import WAIT, endpoint, wait_up


def main(address: str, provider: str, count: int) -> None:
    device, events = endpoint("cam-1", "device", peers=(address,))
    device.start()
    try:
        wait_up(events, "edge-a")
        config = bulk.BulkConfig(provider=provider, slot_size=1 << 20, slot_count=4)  # type: ignore[arg-type]
        with device.open_bulk_sender("edge-a", config, timeout=WAIT) as sender:
            for seq in range(count):
                sender.send(frame_for(seq), timeout=WAIT, frame_id=100 + seq)
            print("sent", count, flush=True)
            sys.stdin.read()
    finally:
        device.close()


if __name__ == "__main__":
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
