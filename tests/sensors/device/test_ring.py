"""The frame ring: a byte budget, oldest out first, evictions counted, refs checkable."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from edgeloop.errors import ConfigError
from edgeloop.sensors.device import FrameRing


def frame(value: int) -> np.ndarray:
    return np.full((10, 10), value, dtype=np.uint8)


def test_the_oldest_frames_go_when_the_budget_is_reached() -> None:
    ring = FrameRing("cam-1", budget=350)
    evicted = [ring.put(i, frame(i))[1] for i in range(5)]
    assert evicted == [0, 0, 0, 1, 1]
    assert ring.get(0) is None
    assert ring.get(1) is None
    held = ring.get(4)
    assert held is not None
    ref, data = held
    assert ref.frame_id == 4
    assert ref.nbytes == 100
    assert ref.shape == (10, 10)
    assert ref.checksum == zlib.crc32(data.tobytes())
    stats = ring.statistics()
    assert (stats.held, stats.bytes, stats.evicted, stats.evicted_bytes) == (3, 300, 2, 200)
    assert ring.oldest() == 2


def test_a_kept_frame_is_a_read_only_copy() -> None:
    ring = FrameRing("cam-1", budget=1000)
    source = frame(7)
    ring.put(1, source)
    source[:] = 0
    held = ring.get(1)
    assert held is not None
    assert int(held[1][0, 0]) == 7
    assert not held[1].flags.writeable


def test_a_frame_over_the_budget_and_a_reused_id_are_refused() -> None:
    ring = FrameRing("cam-1", budget=50)
    with pytest.raises(ValueError, match="budget"):
        ring.put(1, frame(1))
    ring = FrameRing("cam-1", budget=500)
    ring.put(1, frame(1))
    with pytest.raises(ValueError, match="already"):
        ring.put(1, frame(2))
    with pytest.raises(ConfigError):
        FrameRing("cam-1", budget=0)
