"""What the agent needs of an on-device head: a version, and a verdict per embedding.

The head's wire format and runtime live in ``edgeloop.sensors._head`` (``HeadSpec``,
``load_head``); the agent only loads bytes into a :class:`Head` with a :data:`HeadLoader`
and asks it to score embeddings, so a device with another kind of head passes its own
loader. A loader raises (``HeadError``, ``DecodeError``, ``ValueError``) for bytes it
cannot run; the agent then answers ``HeadAck(ok=False, error=...)`` and keeps its old
head. :func:`yard_head_loader` is the loader of a camera in the simulated yard.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["Verdict", "Scored", "Head", "HeadLoader", "NoHead", "yard_head_loader"]


class Scored(Protocol):
    """A head's answer for one embedding: the label, its score in [0, 1], and whether the
    embedding fits none of the head's classes (the novelty gate)."""

    @property
    def label(self) -> str: ...

    @property
    def score(self) -> float: ...

    @property
    def novel(self) -> bool: ...


class Verdict(NamedTuple):
    """A :class:`Scored` of the device's own making (before it has a head)."""

    label: str
    score: float
    novel: bool


class Head(Protocol):
    """A loaded head the device runs (``edgeloop.sensors.Head`` is one)."""

    @property
    def version(self) -> int: ...

    def score(self, embedding: npt.NDArray[np.int8]) -> Scored: ...


HeadLoader = Callable[[bytes], Head]
"""Bytes of a ``HeadUpdate`` to a runnable head; raises for bytes it cannot run."""


class NoHead:
    """What a device runs before its first head arrives: every observation is reported
    as ``unknown`` with score 0 and flagged novel, so the node still sees everything."""

    version = 0

    def score(self, embedding: npt.NDArray[np.int8]) -> Verdict:
        return Verdict("unknown", 0.0, True)


def yard_head_loader(extractor: str, dim: int) -> HeadLoader:
    """A loader that runs heads built for ``extractor``'s ``dim``-value embeddings and
    refuses any other with a HeadError naming the mismatch."""
    from edgeloop.sensors._head import load_head

    def load(data: bytes) -> Head:
        return load_head(data, extractor=extractor, dim=dim)

    return load
