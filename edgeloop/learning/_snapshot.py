"""A learner snapshot as bytes: named numpy arrays plus a JSON header, in one ``.npz``.

No pickle (``allow_pickle=False`` both ways), so a snapshot read back from the store can
never run code; the header holds what is not an array (sequence ledgers, trap states,
counters, versions). A snapshot that cannot be read raises
:class:`~edgeloop.errors.LearningError` naming why, so a restart can start afresh.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from edgeloop.errors import LearningError

__all__ = ["SNAPSHOT_FORMAT", "encode_snapshot", "decode_snapshot"]

SNAPSHOT_FORMAT = 1
"""The layout :func:`encode_snapshot` writes."""

_HEADER = "__header__"


def encode_snapshot(header: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> bytes:
    """The bytes of a snapshot: ``arrays`` by name and a JSON-able ``header``."""
    text = json.dumps({"format": SNAPSHOT_FORMAT, **header}, sort_keys=True)
    buffer = io.BytesIO()
    payload = {_HEADER: np.frombuffer(text.encode(), dtype=np.uint8), **arrays}
    np.savez(buffer, allow_pickle=False, **payload)
    return buffer.getvalue()


def decode_snapshot(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The header and arrays of a snapshot, or LearningError if it is not one."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        header = json.loads(arrays.pop(_HEADER).tobytes().decode())
    except (
        OSError,
        EOFError,
        ValueError,
        KeyError,
        zipfile.BadZipFile,
        UnicodeDecodeError,
    ) as error:
        msg = f"not a learner snapshot ({type(error).__name__}: {error}); start from the prior"
        raise LearningError(msg) from error
    found = header.get("format") if isinstance(header, dict) else None
    if found != SNAPSHOT_FORMAT:
        msg = f"snapshot format {found!r} is not {SNAPSHOT_FORMAT}; start from the prior"
        raise LearningError(msg)
    return header, arrays
