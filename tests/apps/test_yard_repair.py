"""Learning and Gibbs repair in the yard app: the prior says what the fixed model says;
a node stopped while the repair is inside a compile waits for it and exits cleanly (an
actor abandoned inside XLA aborted the process at exit). The running yard's learning,
repairs and a repair crash are in test_yard_restarts.py (one node for both)."""

from __future__ import annotations

import os
import textwrap

import numpy as np
import pytest

from edgeloop.apps.yard import yard_model, yard_prior
from edgeloop.learning import core
from edgeloop.sensors.world import World
from tests.integration.procs import run_script


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

    import numpy as np

    from edgeloop.apps.yard import yard_model, yard_prior
    from edgeloop.learning import RepairRequest, core
    from edgeloop.sensors.world import World
    from edgeloop.supervisor import Node, parse_app

    world = World("calm", 0)
    dims, _ = yard_model(world)
    m, t, c = 2, 3, dims.cameras
    present = np.zeros((m, t, c), bool)
    present[:, :, 0] = True
    window = core.make_obs_seq(
        dims,
        start=np.eye(m, t, dtype=bool),
        steps=np.ones((m, t), np.int32),
        tod=np.zeros((m, t), np.int32),
        present=present,
        zone=np.zeros((m, t, c), np.int32),
        label=np.zeros((m, t, c), np.int32),
        score=np.full((m, t, c), 0.9, np.float32),
        embedding=np.zeros((m, t, c, dims.dim), np.float32),
    )
    request = RepairRequest(
        version=0,
        base=yard_prior(world),
        window=window,
        assign=np.zeros(m, np.int32),
        reply_to="/nobody",
    )
    app = {
        "node": {"name": "stop-mid-repair"},
        "supervisor": {
            "children": [
                {
                    "id": "repair",
                    "start": "edgeloop.learning:GibbsRepair",
                    "shutdown": 120.0,
                    "args": {"seed": 1, "sweeps": 4, "burn_in": 1},
                }
            ]
        },
    }
    node = Node.from_app(parse_app(app))
    node.start()
    repair, pause = node.lookup("/repair"), threading.Event()
    repair.tell(request)  # a new window shape: gibbs_run compiles (seconds) in its thread
    while repair.is_idle() or repair.statistics().queue_depth:
        pause.wait(0.005)  # until the request is in hand
    began = time.perf_counter()
    node.stop()  # waits for the compile and run in hand
    print(f"stopped after {time.perf_counter() - began:.1f} s", flush=True)
    """
)


@pytest.mark.integration
def test_a_node_stopped_while_the_repair_compiles_exits_cleanly() -> None:
    """Without a compilation cache (it must compile): the stop waits, no abort."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    run = run_script(STOP_MID_COMPILE, {**env, "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert "terminate called" not in run.stderr
    assert "child_abandoned" not in run.stderr
    waited = float(run.stdout.split("stopped after")[1].split()[0])
    assert waited > 0.5  # the stop came during the compile and waited for it
