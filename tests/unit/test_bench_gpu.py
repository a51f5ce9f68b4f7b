"""The GPU scripts run anywhere: on the CPU the learner's script is its own smoke test,
and the bulk script says why it skipped where there is no CuPy or GPU.

Speed is never asserted: only the shape of the rows, that verdicts follow from the
figures, and that the on-device exactness row holds (it is a correctness check).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from edgeloop.bench import gpu_learner

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_learner_rows_on_the_cpu():
    """Tiny sizes on whatever JAX has: three rows, verdicts from their ratios."""
    rows = gpu_learner.measure(tracks=256, repeats=1)
    assert [r["name"] for r in rows] == [
        "filter_update_throughput",
        "step_throughput",
        "filter_exactness_on_device",
    ]
    for row in rows[:2]:
        assert row["unit"] == "track-updates/s"
        assert row["edgeloop"] > 0
        assert row["anchor"] > 0
        assert math.isclose(row["ratio"], row["edgeloop"] / row["anchor"])
        assert row["met"] is (row["ratio"] >= 0.5)
    exact = rows[2]
    assert exact["edgeloop"] <= 1e-5
    assert exact["met"] is True


def test_gpu_bulk_script_skips_with_a_reason_without_cupy():
    """Run as a file (no edgeloop import): JSON with ``skipped`` naming what is missing."""
    script = ROOT / "edgeloop" / "bench" / "gpu_bulk.py"
    done = subprocess.run(
        [sys.executable, str(script), "--json", "--repeats", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    document = json.loads(done.stdout.splitlines()[0])
    assert document["suite"] == "gpu_bulk"
    if document["results"]:  # a machine with CuPy and a GPU: the bytes were checked
        assert all(r["edgeloop"] > 0 for r in document["results"])
    else:
        assert document.get("skipped")
