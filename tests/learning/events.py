"""Building Events for the learner's tests: real messages, as twins deliver them."""

from __future__ import annotations

import numpy as np

from edgeloop.messages import Event


def embedding(values: list[int] | np.ndarray, dim: int = 8) -> bytes:
    """int8 bytes of ``values`` (padded with zeros to ``dim``)."""
    array = np.zeros(dim, dtype=np.int8)
    array[: len(values)] = np.asarray(values, dtype=np.int8)
    return array.tobytes()


def event(
    device: str,
    seq: int,
    ts: float,
    zone: str = "z0",
    *,
    label: str = "skunk",
    score: float = 0.9,
    emb: bytes | None = None,
) -> Event:
    """One report of ``device``."""
    return Event(
        device=device,
        seq=seq,
        ts=ts,
        zone=zone,
        label=label,
        score=score,
        embedding=emb if emb is not None else embedding([10, 20, 30]),
        head_version=1,
        config_version=1,
    )
