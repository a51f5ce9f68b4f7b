"""Learning and Gibbs repair in the yard app: the prior says what the fixed model says;
a node stopped while the repair is inside a compile waits for it and exits cleanly (an
actor abandoned inside XLA aborted the process at exit). The running yard's learning,
repairs and a repair crash are in test_yard_restarts.py (one node for both)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edgeloop.apps.yard import yard_model, yard_prior
from edgeloop.learning import core
from edgeloop.sensors.world import World
from tests.integration.procs import ROOT


def test_the_prior_starts_the_filter_where_the_fixed_model_runs() -> None:
    """yard_prior's posterior means are yard_model's parameters, row for row."""
    world = World("opossum", 1)
    _, spec = yard_model(world)
    fixed = core.params(spec)
    learnt = core.params(core.spec_of(yard_prior(world, strength=50.0), "mean"))
    for name in fixed._fields:
        np.testing.assert_allclose(
            np.asarray(getattr(learnt, name), float),
            np.asarray(getattr(fixed, name), float),
            rtol=1e-5,
            atol=1e-6,
            err_msg=name,
        )
    strong = yard_prior(world, strength=400.0)
    assert float(np.sum(strong.trans_conc[0, 0, 0])) == pytest.approx(400.0, rel=1e-5)


STOP_MID_COMPILE = textwrap.dedent(
    """
    import threading
    import time

    from edgeloop.supervisor import Node, parse_app

    app = {
        "node": {"name": "stop-mid-repair"},
        "supervisor": {
            "children": [
                {
                    "id": "repair",
                    "start": "edgeloop.apps.yard:YardRepair",
                    "shutdown": 120.0,
                    "start_timeout": 60,
                    "args": {"scenario": "calm", "sweeps": 2, "burn_in": 0, "tracks": 1, "rows": 1},
                }
            ]
        },
    }
    node = Node.from_app(parse_app(app))
    node.start()
    repair, pause = node.lookup("/repair"), threading.Event()
    while repair.is_idle():  # until it is inside its first message: the warm-up compile
        pause.wait(0.005)
    began = time.perf_counter()
    node.stop()  # the stop waits for the compile in hand
    print(f"stopped after {time.perf_counter() - began:.1f} s", flush=True)
    """
)


@pytest.mark.integration
def test_a_node_stopped_while_the_repair_compiles_exits_cleanly() -> None:
    run = subprocess.run(
        [sys.executable, "-c", STOP_MID_COMPILE],
        cwd=ROOT,
        env={**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "terminate called" not in run.stderr
    assert "child_abandoned" not in run.stderr
    waited = float(run.stdout.split("stopped after")[1].split()[0])
    assert waited > 0.5  # it did stop in the middle of the compile, and waited for it
