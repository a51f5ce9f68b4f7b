"""The conformance suite, run against every provider (verbs skipped where RDMA is absent)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from edgeloop.transport import bulk
from edgeloop.transport.bulk import conformance

PROVIDERS = ["fake", "shm", "zmq", "verbs"]


def factory_for(provider: str) -> conformance.PairFactory:
    """Lanes of ``provider``, 64 KiB slots unless a check asks otherwise."""
    if provider == "verbs":
        availability = bulk.probe_verbs()
        if not availability.available:
            pytest.skip(availability.reason)

    def factory(**overrides: Any) -> tuple[bulk.Sender, bulk.Receiver]:
        settings: dict[str, Any] = {"provider": provider, "slot_size": 64 * 1024, "slot_count": 4}
        settings.update(overrides)
        return bulk.connect_pair(bulk.BulkConfig(**settings))

    return factory


@pytest.mark.parametrize("check", conformance.CHECKS, ids=lambda check: check.__name__[6:])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_conformance(provider: str, check: Callable[[conformance.PairFactory], None]):
    """Each provider obeys each rule of the slot/credit protocol."""
    check(factory_for(provider))


@pytest.mark.parametrize("provider", ["shm", "zmq"])
def test_gpu_memory_kind_gives_a_registrable_ring(provider: str):
    """A receiver whose memory kind is gpu has a ring the consumer can page-lock, and its
    frames are views into it."""
    sender, receiver = factory_for(provider)(memory="gpu")
    with sender, receiver:
        ring = receiver.ring
        assert ring is not None
        assert ring.nbytes == receiver.geometry.ring_size
        sender.send(conformance.frame_for(1), timeout=conformance.WAIT)
        with receiver.recv(conformance.WAIT) as frame:
            ring_base = np.frombuffer(ring, np.uint8).ctypes.data
            offset = frame.array.ctypes.data - ring_base
            assert offset == receiver.geometry.payload_offset(frame.slot)
