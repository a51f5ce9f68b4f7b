"""Snapshot bytes (no pickle, typed refusal of anything else) and the GibbsRepair actor's
refusals of bad requests."""

from __future__ import annotations

import numpy as np
import pytest

from edgeloop.actors import ActorSystem
from edgeloop.errors import LearningError, ObservationError
from edgeloop.learning import GetStatistics, GibbsRepair, RepairRequest
from edgeloop.learning._snapshot import decode_snapshot, encode_snapshot
from tests.helpers import WAIT


def test_a_snapshot_round_trips_arrays_and_header() -> None:
    arrays = {"belief": np.arange(12, dtype=np.float32).reshape(3, 4), "seen": np.ones(3, bool)}
    header, back = decode_snapshot(encode_snapshot({"ledger": {"cam-a": [4, 6]}}, arrays))
    assert header["ledger"] == {"cam-a": [4, 6]}
    assert header["format"] == 1
    assert set(back) == set(arrays)
    for name, value in arrays.items():
        np.testing.assert_array_equal(back[name], value)


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", encode_snapshot({"format": 99}, {})],
)
def test_anything_else_is_refused_with_a_typed_error(data: bytes) -> None:
    with pytest.raises(LearningError, match="start"):
        decode_snapshot(data)


def test_a_pickled_array_is_never_loaded() -> None:
    """An object array would need pickle to load: refused, not executed."""
    import io

    buffer = io.BytesIO()
    np.savez(buffer, __header__=np.frombuffer(b'{"format": 1}', np.uint8), bad=np.array([object()]))
    with pytest.raises(LearningError):
        decode_snapshot(buffer.getvalue())


def test_the_repair_refuses_bad_requests_and_goes_on(system: ActorSystem) -> None:
    repair = system.spawn(GibbsRepair, "/yard/repair", args={"seed": 1, "sweeps": 2, "burn_in": 0})
    wrong = repair.ask("repair this").get(WAIT)
    assert isinstance(wrong, ObservationError)
    assert wrong.field == "message"
    junk = RepairRequest(version=0, base="no posterior", window=None, assign=[0], reply_to="/x")
    refused = repair.ask(junk, timeout=30).get()
    assert isinstance(refused, ObservationError)
    assert refused.field == "window"
    stats = repair.ask(GetStatistics()).get(WAIT)
    assert (stats.repairs, stats.rejected) == (0, {"message": 1, "window": 1})
    with pytest.raises(ValueError, match="burn_in"):
        GibbsRepair(sweeps=2, burn_in=2)
