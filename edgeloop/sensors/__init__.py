"""The device side of the loop: on-device heads and the simulated yard they run in.

``edgeloop.sensors.world`` is the simulated yard (pure: scenarios, motion, cameras,
frames, the frozen feature extractor); the head runtime below is what a device runs on
each detection's embedding.
"""

from __future__ import annotations

from edgeloop.sensors._head import (
    Head,
    HeadResult,
    check_head,
    compile_head,
    fit_head,
    load_head,
)

__all__ = [
    # the on-device head
    "Head",
    "HeadResult",
    "check_head",
    "load_head",
    "compile_head",
    "fit_head",
]
