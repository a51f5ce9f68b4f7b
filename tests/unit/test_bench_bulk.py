"""The bulk suite runs (quick) and reports every figure in the suite's shape.

Speed is never asserted here: only the shape of the results and that ratios and verdicts
follow from the figures.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import types

import numpy as np
import pytest

from edgeloop import bench
from edgeloop.bench import SuiteResult, bulk, check_goal
from edgeloop.bench.bulk import QUICK, Sizes

HAS_RAY = importlib.util.find_spec("ray") is not None

EXPECTED = {
    **{f"shm_throughput_{mib}MiB": ("numpy memcpy", ">= 0.5") for mib in (1, 4, 16)},
    **{f"zmq_throughput_{mib}MiB": ("pyzmq copy=False", ">= 0.9") for mib in (1, 4, 16)},
    "shm_checked_throughput_4MiB": ("numpy memcpy + 2x zlib.crc32", ">= 0.9"),
    **{
        f"link_credits_{provider}_4MiB": (f"{provider} lane, credits on its own channel", ">= 0.9")
        for provider in ("shm", "zmq")
    },
}


@pytest.fixture(scope="module")
def bulk_quick() -> SuiteResult:
    return bench.run("bulk", quick=True)


def test_bulk_suite_is_registered():
    """``edgeloop bench bulk`` finds the suite."""
    assert "bulk" in bench.SUITES


def test_quick_run_reports_every_figure(bulk_quick: SuiteResult):
    """Every figure is present, in GB/s, against its named anchor and goal."""
    assert bulk_quick.suite == "bulk"
    names = [r.name for r in bulk_quick.results]
    assert names == [*EXPECTED, *(["vs_ray_16MiB"] if HAS_RAY else [])]
    for result in bulk_quick.results[: len(EXPECTED)]:
        assert (result.anchor_name, result.goal) == EXPECTED[result.name]
        assert result.unit == "GB/s"
        assert result.edgeloop > 0
        assert result.anchor > 0


def test_quick_run_document(bulk_quick: SuiteResult):
    """The JSON document records the run and its ratios follow from the figures."""
    document = json.loads(json.dumps(bulk_quick.to_json(), allow_nan=False))
    environment = document["environment"]
    assert environment["quick"] is True
    assert environment["rounds"] == QUICK.rounds
    assert ("vs_ray_16MiB skipped" in environment["ray"]) is not HAS_RAY
    for entry in document["results"]:
        assert entry["ratio"] == pytest.approx(entry["edgeloop"] / entry["anchor"], rel=1e-12)
        assert entry["met"] is check_goal(entry["goal"], entry["ratio"])


def test_vs_ray_result_appears_when_ray_imports(monkeypatch: pytest.MonkeyPatch):
    """With a ``ray`` module importable the suite adds vs_ray_16MiB (the shm lane against
    ``ray.put`` + ``ray.get`` of the same 16 MiB array, goal >= 3) and shuts down the Ray
    it started (a stand-in module here, whether or not ray is installed)."""
    state = {"initialized": False, "puts": 0}

    def put(data: np.ndarray) -> np.ndarray:
        state["puts"] += 1
        return data.copy()  # the object store's copy

    ray = types.SimpleNamespace(
        init=lambda **kwargs: state.update(initialized=True),
        shutdown=lambda: state.update(initialized=False),
        put=put,
        get=lambda ref: ref,
    )
    monkeypatch.setitem(sys.modules, "ray", ray)
    sizes = Sizes(rounds=1, bytes_per_round=QUICK.bytes_per_round)
    vs_ray = bulk._ray(sizes, np.random.default_rng(0))
    assert vs_ray is not None
    assert vs_ray.name == "vs_ray_16MiB"
    assert (vs_ray.unit, vs_ray.anchor_name, vs_ray.goal) == ("GB/s", "ray.put + ray.get", ">= 3")
    assert vs_ray.edgeloop > 0
    assert vs_ray.anchor > 0
    assert state["puts"] > 0
    assert state["initialized"] is False
