"""The motion model is the documented one: stay, rest and bait probabilities, Poisson
arrivals and exponential stays, measured on long seeded runs (loose bounds: the runs are
deterministic, the bounds only say the chain is the right one)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeloop.sensors.world import parse_scenario, simulate
from edgeloop.sensors.world._motion import ABSENT


def _yard(**species: object) -> dict[str, object]:
    return {
        "duration": 20_000.0,
        "day_length": 1e9,  # noon for the whole run: night never falls
        "start_hour": 12.0,
        "zones": [
            {"id": "hub", "adjacent": ["a", "b", "trap"], "exit": True},
            {"id": "a"},
            {"id": "b"},
            {"id": "trap", "trap": True},
        ],
        "cameras": [{"id": "cam", "zones": ["hub"]}],
        "species": [
            {"name": "skunk", "digit": 3, **species},
            {"name": "cat", "digit": 5},
        ],
        "animals": [{"id": "skunk-1", "species": "skunk", "zone": "hub"}],
    }


def test_an_active_animal_stays_with_its_stay_probability_and_likes_the_bait():
    scenario = parse_scenario(_yard(stay=0.6, bait=2.0, active="any"))
    path = simulate(scenario).zones[:, 0]
    stays = np.mean(path[1:] == path[:-1])
    assert stays == pytest.approx(0.6, abs=0.02)
    hub = scenario.zone_index("hub")
    leaving_hub = path[1:][(path[:-1] == hub) & (path[1:] != hub)]
    trap = np.mean(leaving_hub == scenario.zone_index("trap"))
    assert trap == pytest.approx(3.0 / 5.0, abs=0.04)  # weights 1, 1 and 1 + bait


def test_a_resting_animal_stays_with_its_rest_probability():
    scenario = parse_scenario(_yard(stay=0.5, rest=0.9, active="night"))  # it is day
    path = simulate(scenario).zones[:, 0]
    assert np.mean(path[1:] == path[:-1]) == pytest.approx(0.9, abs=0.02)


def test_visitors_arrive_at_their_rate_and_stay_about_their_dwell():
    table = _yard()
    table["arrivals"] = [{"species": "cat", "rate": 0.01, "dwell": 100.0}]
    scenario = parse_scenario(table)
    trajectory = simulate(scenario)
    visitors = [a for a in trajectory.animals if a.visitor]
    assert len(visitors) == pytest.approx(0.01 * 20_000, rel=0.15)
    assert all(a.id.startswith("cat-v") for a in visitors)
    lengths = [np.sum(trajectory.zones[:, a.index] != ABSENT) for a in visitors]
    # the stay, plus the walk back to the exit zone once it is over
    assert np.mean(lengths) == pytest.approx(100.0, rel=0.3)
