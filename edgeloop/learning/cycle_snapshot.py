"""The cycle's knowledge as bytes for the store, and back: a restarted cycle keeps the
species it learnt and the names people gave them.

MessagePack of plain lists (the model is a few small float64 arrays); decoding checks
every shape against the model the cycle starts from, so a snapshot of another yard (other
embeddings, another extractor) is refused with a KnowledgeError naming what differs.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from edgeloop.errors import KnowledgeError

if TYPE_CHECKING:
    from edgeloop.learning.core.openworld import OpenWorld

__all__ = ["encode_knowledge", "decode_knowledge"]

_FIELDS = ("counts", "kappa", "nu", "means", "psi")


def encode_knowledge(model: OpenWorld, head_version: int, extractor: str) -> bytes:
    """``model`` (its classes; the prior is rebuilt from the known species) as bytes."""
    return msgspec.msgpack.encode(
        {
            "extractor": extractor,
            "head_version": head_version,
            "labels": list(model.labels),
            "threshold": model.threshold,
            "version": model.version,
            **{name: np.asarray(getattr(model, name)).tolist() for name in _FIELDS},
        }
    )


def decode_knowledge(data: bytes, base: OpenWorld, extractor: str) -> tuple[OpenWorld, int]:
    """The model in ``data`` on ``base``'s prior, and the head version it was pushed as."""
    try:
        raw: dict[str, Any] = msgspec.msgpack.decode(data)
        if raw["extractor"] != extractor:
            msg = f"snapshot is for extractor {raw['extractor']!r}, this yard's is {extractor!r}"
            raise KnowledgeError(msg, field="extractor")
        labels = tuple(str(label) for label in raw["labels"])
        k, d = len(labels), base.dim
        arrays = {name: np.asarray(raw[name], dtype=np.float64) for name in _FIELDS}
        shapes = {"counts": (k,), "kappa": (k,), "nu": (k,), "means": (k, d), "psi": (k, d, d)}
        if k < len(base.labels) or len(set(labels)) != k:
            msg = f"snapshot's classes {list(labels)} are not the known ones and more"
            raise KnowledgeError(msg, field="labels")
        for name, shape in shapes.items():
            if arrays[name].shape != shape:
                msg = f"snapshot's {name} has shape {arrays[name].shape}, expected {shape}"
                raise KnowledgeError(msg, field=name)
        model = dataclasses.replace(
            base,
            labels=labels,
            threshold=float(raw["threshold"]),
            version=int(raw["version"]),
            counts=arrays["counts"],
            kappa=arrays["kappa"],
            nu=arrays["nu"],
            means=arrays["means"],
            psi=arrays["psi"],
        )
        return model, int(raw["head_version"])
    except KnowledgeError:
        raise
    except (msgspec.DecodeError, KeyError, TypeError, ValueError) as error:
        raise KnowledgeError(f"snapshot is not readable: {error}", field="snapshot") from None
