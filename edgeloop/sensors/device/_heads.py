"""What the agent needs of an on-device head: a version, and a verdict per embedding.

The head's wire format and runtime live in ``edgeloop.sensors._head`` (``HeadSpec``); the
agent only loads bytes into a :class:`Head` with a :data:`HeadLoader` and asks it for
verdicts, so a device with another kind of head (or a test) passes its own loader. A
loader raises (``HeadError``, ``DecodeError``, ``ValueError``) for bytes it cannot run;
the agent then answers ``HeadAck(ok=False, error=...)`` and keeps its old head.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["Verdict", "Head", "HeadLoader", "NoHead"]


class Verdict(NamedTuple):
    """A head's answer for one embedding: the label, its score in [0, 1], and whether the
    embedding fits none of the head's classes (the novelty gate)."""

    label: str
    score: float
    novel: bool


class Head(Protocol):
    """A loaded head the device runs."""

    @property
    def version(self) -> int: ...

    def classify(self, embedding: npt.NDArray[np.int8]) -> Verdict: ...


HeadLoader = Callable[[bytes], Head]
"""Bytes of a ``HeadUpdate`` to a runnable head; raises for bytes it cannot run."""


class NoHead:
    """What a device runs before its first head arrives: every observation is reported
    as ``unknown`` with score 0 and flagged novel, so the node still sees everything."""

    version = 0

    def classify(self, embedding: npt.NDArray[np.int8]) -> Verdict:
        return Verdict("unknown", 0.0, True)
