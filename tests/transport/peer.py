"""One end of a bulk lane in its own process, for tests that kill it (``python -m``).

Usage: ``python -m tests.transport.peer ROLE PROVIDER MODE [N]``. The handshake travels
as lines on stdin and stdout (``offer``/``accept``/``ready`` followed by the message's
MessagePack bytes in hex); then the peer prints one line per step the test waits for
and, when its work is done, blocks reading stdin until the test kills it.

- ``sender P stream N``: send N frames, print ``sent N``;
- ``sender P partial``: (shm) send one frame, copy half of the next into its slot with no
  completion, print ``partial`` and die by SIGKILL: a crash mid-write;
- ``sender P big``: send 2 frames, start a 16 MiB one and die by SIGKILL at once;
- ``receiver P hold N``: take N frames without releasing them, print ``held N``;
- ``receiver P unattached``: print ``ready`` and never wait for the sender.
"""

from __future__ import annotations

import os
import signal
import sys

import numpy as np
import structlog

from edgeloop import messages
from edgeloop.transport import bulk
from edgeloop.transport.bulk.conformance import frame_for

MiB = 1024 * 1024


def config(provider: str) -> bulk.BulkConfig:
    """The lane every peer test uses: 4 slots of 16 MiB."""
    return bulk.BulkConfig(provider=provider, slot_size=16 * MiB, slot_count=4)  # type: ignore[arg-type]


def say(*words: object) -> None:
    """One line to the test."""
    print(*words, flush=True)


def hear(expected: str) -> messages.BulkMessage:
    """The message on the next stdin line, which must start with ``expected``."""
    word, data = sys.stdin.readline().split()
    assert word == expected, (word, expected)
    return messages.decode_bulk(bytes.fromhex(data))


def block() -> None:
    """Wait for the test to kill this process (or close stdin)."""
    sys.stdin.read()


def run_sender(provider: str, mode: str, count: int) -> None:
    cfg = config(provider)
    offer = hear("offer")
    assert isinstance(offer, messages.BulkOffer)
    accept, setup = bulk.answer(offer, cfg)
    say("accept", messages.encode_bulk(accept).hex())
    ready = hear("ready")
    assert isinstance(ready, messages.BulkReady)
    sender = bulk.open_sender(offer, setup, ready, cfg)
    say("attached")
    if mode == "stream":
        for seq in range(count):
            sender.send(frame_for(seq), timeout=5.0).wait(5.0)
        say("sent", count)
    elif mode == "partial":
        sender.send(frame_for(0), timeout=5.0)
        assert sender.credits > 0, "credits for 4 slots arrived before the first frame"
        side = sender.side
        assert side.provider == "shm", side
        slot = sender._state._held[0]
        raw = frame_for(1).reshape(-1).view(np.uint8)
        start = sender.geometry.payload_offset(slot)
        side._ring[start : start + raw.nbytes // 2] = raw[: raw.nbytes // 2].data  # type: ignore[attr-defined]
        say("partial")
        os.kill(os.getpid(), signal.SIGKILL)
    elif mode == "big":
        for seq in range(2):
            sender.send(frame_for(seq), timeout=5.0).wait(5.0)
        sender.send(np.ones(16 * MiB, np.uint8), timeout=5.0)
        os.kill(os.getpid(), signal.SIGKILL)
    block()


def run_receiver(provider: str, mode: str, count: int) -> None:
    cfg = config(provider)
    offer = bulk.make_offer(1, cfg)
    say("offer", messages.encode_bulk(offer).hex())
    accept = hear("accept")
    assert isinstance(accept, messages.BulkAccept)
    receiver, ready = bulk.open_receiver(offer, accept, cfg)
    segment = receiver.side.name if provider == "shm" else "-"  # type: ignore[attr-defined]
    say("ready", messages.encode_bulk(ready).hex(), segment)
    if mode == "unattached":
        block()
        return
    assert receiver.wait_attached(5.0)
    say("attached")
    held = [receiver.recv(5.0) for _ in range(count)]
    say("held", len(held))
    block()


def main() -> None:
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    role, provider, mode, *rest = sys.argv[1:]
    count = int(rest[0]) if rest else 0
    (run_sender if role == "sender" else run_receiver)(provider, mode, count)


if __name__ == "__main__":
    main()
