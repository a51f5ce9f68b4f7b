"""Learning on the Learner's schedule, with real actors: streaming VB windows, camera
quality by SVI, and a GibbsRepair whose answer replaces the last window's update."""

from __future__ import annotations

import numpy as np
import pytest

from edgeloop.actors import ActorSystem
from edgeloop.clock import VirtualClock
from edgeloop.errors import ConfigError
from edgeloop.learning import GetStatistics, GibbsRepair, Learner, core
from tests.helpers import wait_for
from tests.learning.twins import Inbox
from tests.learning.yard import DIMS, config, sighting, warm

SLOW = 60.0  # the first window, fit and repair compile the smoother, SVI and Gibbs


@pytest.fixture(scope="module", autouse=True)
def compiled() -> None:
    warm(config())


def yard_prior() -> core.Posterior:
    nu = DIMS.dim + 3.0
    return core.prior(
        DIMS, active=2, niw_nu=nu, niw_psi=np.eye(DIMS.dim) * 100.0 * (nu - DIMS.dim - 1)
    )


@pytest.mark.slow  # compiles the smoother, SVI and Gibbs once each: ~20 s on 2 busy cores
def test_windows_svi_and_a_repair_update_the_filter(
    virtual_system: ActorSystem, clock: VirtualClock
) -> None:
    """t=5 a window; t=7 its repair (no window while it is out); t=9 a quality fit;
    t=10 a second window. Each adopts new parameters without stopping the filter."""
    virtual_system.spawn(Inbox, "/yard/trap-1")
    repair = virtual_system.spawn(
        GibbsRepair, "/yard/repair", args={"seed": 3, "sweeps": 4, "burn_in": 1}
    )
    cfg = config(
        prior=yard_prior(),
        learn_every=5.0,
        svi_every=9.0,
        repair="/yard/repair",
        repair_every=7.0,
    )
    learner = virtual_system.spawn(
        Learner, "/yard/learner", args={"config": cfg}, start_timeout=SLOW
    )

    def stats():
        return learner.ask(GetStatistics(), timeout=SLOW).get()

    def stream(first: int) -> None:
        for seq in range(first, first + 20):
            learner.tell(sighting("cam-a", seq, float(seq), "skunk", "lawn", jitter=seq % 3))
            learner.tell(sighting("cam-b", seq, seq + 0.5, "cat", "porch", jitter=-(seq % 3)))

    stream(1)
    assert stats().events == 40
    clock.advance(5.0)
    wait_for(lambda: stats().windows == 1, SLOW, "a streaming VB window")
    assert stats().params_version == 1
    clock.advance(2.0)
    wait_for(lambda: stats().repairs == 1, SLOW, "a repair adopted")
    assert repair.ask(GetStatistics(), timeout=SLOW).get().repairs == 1
    stream(21)
    clock.advance(2.0)
    wait_for(lambda: stats().svi_fits == 1, SLOW, "a camera-quality fit")
    clock.advance(1.0)
    wait_for(lambda: stats().windows == 2, SLOW, "a second window")
    final = stats()
    assert final.params_version == 4  # window, repair, fit, window
    assert final.stale_repairs == 0
    assert final.events == 80


def test_learning_without_a_prior_is_a_config_error() -> None:
    """Scheduling learning on a learner with a fixed model is refused, naming the key."""
    with pytest.raises(ConfigError) as caught:
        config(learn_every=5.0)
    assert caught.value.key == "prior"


@pytest.mark.parametrize("shape", [(0, 16), (16,), ("16", 16), (True, 16), 16])
def test_a_bad_window_shape_is_a_config_error(shape: object) -> None:
    with pytest.raises(ConfigError) as caught:
        config(prior=yard_prior(), window_shape=shape)
    assert caught.value.key == "window_shape"


def test_a_bad_repaired_posterior_is_refused_and_the_filter_goes_on(system: ActorSystem) -> None:
    """A ParamsUpdate that is not a posterior of this model: counted, dropped, harmless."""
    from edgeloop.learning import ParamsUpdate

    system.spawn(Inbox, "/yard/trap-1")
    cfg = config(prior=yard_prior())
    learner = system.spawn(Learner, "/yard/learner", args={"config": cfg}, start_timeout=SLOW)
    learner.tell(ParamsUpdate(base_version=0, posterior="not a posterior"))
    wrong_shape = yard_prior()._replace(crp=np.ones(7))
    learner.tell(ParamsUpdate(base_version=0, posterior=wrong_shape))
    learner.tell(sighting("cam-a", 1, 1.0, "skunk", "lawn"))
    stats = learner.ask(GetStatistics(), timeout=SLOW).get()
    assert stats.rejected == {"posterior": 2}
    assert (stats.events, stats.params_version, stats.repairs) == (1, 0, 0)


def test_a_repair_that_comes_to_nothing_is_counted_and_learning_goes_on(
    virtual_system: ActorSystem, clock: VirtualClock
) -> None:
    """No repair actor at the path (crashed, not yet restarted): the request is lost,
    counted, and the next window is learnt (windows wait only for a request that is out)."""
    virtual_system.spawn(Inbox, "/yard/trap-1")
    cfg = config(prior=yard_prior(), learn_every=5.0, repair="/yard/repair", repair_every=7.0)
    learner = virtual_system.spawn(
        Learner, "/yard/learner", args={"config": cfg}, start_timeout=SLOW
    )

    def stats():
        return learner.ask(GetStatistics(), timeout=SLOW).get()

    for seq in range(1, 21):
        learner.tell(sighting("cam-a", seq, float(seq), "skunk", "lawn", jitter=seq % 3))
    clock.advance(5.0)
    wait_for(lambda: stats().windows == 1, SLOW, "a streaming VB window")
    clock.advance(2.0)
    wait_for(lambda: stats().repairs_lost == 1, SLOW, "the request counted as lost")
    for seq in range(21, 41):
        learner.tell(sighting("cam-a", seq, float(seq), "skunk", "lawn", jitter=seq % 3))
    clock.advance(3.0)
    wait_for(lambda: stats().windows == 2, SLOW, "the next window, not held back")
    final = stats()
    assert (final.repairs, final.undelivered, final.events) == (0, 1, 40)
