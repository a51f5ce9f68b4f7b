"""The cycle's knowledge round-trips through bytes, and a snapshot that does not fit the
yard is refused with the field that differs."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from edgeloop.errors import KnowledgeError
from edgeloop.learning.core import openworld
from edgeloop.learning.cycle_snapshot import decode_knowledge, encode_knowledge


def known() -> openworld.OpenWorld:
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(c, 1.0, (40, 4)) for c in (0.0, 4.0, -4.0)])
    labels = ["skunk"] * 40 + ["cat"] * 40 + ["raccoon"] * 40
    model = openworld.fit_known(x, labels)
    return openworld.calibrate_threshold(model, x, fpr=0.01)


def test_a_learnt_and_named_class_round_trips() -> None:
    base = known()
    grown, name = openworld.learn_class(base, np.full((5, 4), 9.0))
    named = openworld.name_class(grown, name, "opossum")
    model, head = decode_knowledge(encode_knowledge(named, 3, "ext-1"), base, "ext-1")
    assert (model.labels, model.version, head) == (named.labels, named.version, 3)
    assert model.threshold == named.threshold
    for field in ("counts", "kappa", "nu", "means", "psi"):
        np.testing.assert_array_equal(getattr(model, field), getattr(named, field))
    assert openworld.classify(model, np.full((1, 4), 9.0))[0] == 3


@pytest.mark.parametrize(
    ("damage", "field"),
    [
        (lambda raw: {**raw, "extractor": "other"}, "extractor"),
        (lambda raw: {**raw, "means": raw["means"][:-1]}, "means"),
        (lambda raw: {**raw, "labels": ["cat"], "counts": [1.0]}, "labels"),
        (lambda raw: {k: v for k, v in raw.items() if k != "psi"}, "snapshot"),
    ],
)
def test_a_snapshot_that_does_not_fit_is_refused(damage: object, field: str) -> None:
    base = known()
    grown, _ = openworld.learn_class(base, np.full((5, 4), 9.0))
    raw = msgspec.msgpack.decode(encode_knowledge(grown, 2, "ext-1"))
    with pytest.raises(KnowledgeError) as caught:
        decode_knowledge(msgspec.msgpack.encode(damage(raw)), base, "ext-1")  # type: ignore[operator]
    assert caught.value.field == field
    with pytest.raises(KnowledgeError):
        decode_knowledge(b"\xc1 not msgpack", base, "ext-1")
