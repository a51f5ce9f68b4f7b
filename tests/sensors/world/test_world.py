"""The simulated yard: deterministic, physically consistent, and what a device would see."""

from __future__ import annotations

import numpy as np
import pytest

from edgeloop.errors import ConfigError
from edgeloop.sensors.world import (
    NIGHT_GAIN,
    Pacer,
    World,
    crop_to_digit,
    hour_of_day,
    thumbnail,
)
from edgeloop.sensors.world._motion import ABSENT


@pytest.fixture(scope="module")
def calm() -> World:
    return World("calm")


@pytest.fixture(scope="module")
def busy() -> World:
    return World("busy")


def _same(a, b) -> bool:
    """Two observations carry the same data (frames, detections and truth)."""
    if (a.camera, a.tick, a.dropped, a.in_view, a.zones) != (
        b.camera,
        b.tick,
        b.dropped,
        b.in_view,
        b.zones,
    ):
        return False
    if (a.frame is None) != (b.frame is None):
        return False
    if a.frame is not None and not np.array_equal(a.frame, b.frame):
        return False
    return [(d.zone, d.box, d.animal, d.embedding_bytes) for d in a.detections] == [
        (d.zone, d.box, d.animal, d.embedding_bytes) for d in b.detections
    ]


def test_the_same_scenario_and_seed_give_the_same_world(calm: World):
    again = World("calm")
    assert np.array_equal(again.trajectory.zones, calm.trajectory.zones)
    for tick in (0, 61, 333, 599):
        for ours, theirs in zip(calm.observe(tick), again.observe(tick), strict=True):
            assert _same(ours, theirs)


def test_a_world_says_what_it_holds(calm: World):
    assert repr(calm) == "World('calm', seed=1: 4 cameras, 3 animals, 600 ticks)"


def test_another_seed_gives_another_world(calm: World):
    other = World("calm", seed=calm.seed + 1)
    assert not np.array_equal(other.trajectory.zones, calm.trajectory.zones)


def test_observations_can_be_computed_in_any_order(calm: World):
    cam = calm.camera("cam-shed")
    forward = [cam.observe(k) for k in range(40, 50)]
    backward = [cam.observe(k) for k in reversed(range(40, 50))][::-1]
    assert all(_same(a, b) for a, b in zip(forward, backward, strict=True))


def test_animals_move_only_between_adjacent_zones_and_leave_through_exits(busy: World):
    scenario = busy.scenario
    zones = busy.trajectory.zones
    adjacent = {
        i: {scenario.zone_index(a) for a in z.adjacent} for i, z in enumerate(scenario.zones)
    }
    exits = {i for i, z in enumerate(scenario.zones) if z.exit}
    assert zones.shape == (scenario.ticks, len(busy.trajectory.animals))
    moves = 0
    for a, animal in enumerate(busy.trajectory.animals):
        path = zones[:, a]
        present = np.flatnonzero(path != ABSENT)
        assert len(present), f"{animal.id} never appears"
        assert np.all(np.diff(present) == 1), f"{animal.id} came back after leaving"
        if animal.visitor:
            assert path[present[0]] in exits, f"visitor {animal.id} did not enter at an exit"
        if present[-1] < scenario.ticks - 1:
            assert path[present[-1]] in exits, f"{animal.id} left from an inner zone"
        for before, after in zip(path[present[:-1]], path[present[1:]], strict=True):
            assert before == after or after in adjacent[before]
            moves += before != after
    assert moves > 50
    assert sum(a.visitor for a in busy.trajectory.animals) >= 3


def test_scripted_animals_enter_where_and_when_the_scenario_says(calm: World):
    scenario = calm.scenario
    for a, spec in enumerate(scenario.animals):
        path = calm.trajectory.zones[:, a]
        first = int(np.flatnonzero(path != ABSENT)[0])
        assert first == int(np.ceil(spec.enter / scenario.tick))
        assert scenario.zones[path[first]].id == spec.zone


def test_night_follows_the_clock_and_darkens_the_frames(calm: World):
    scenario = calm.scenario
    assert hour_of_day(scenario, 0.0) == pytest.approx(scenario.start_hour)
    nights = [calm.night(k) for k in range(calm.ticks)]
    assert 0 < sum(nights) < len(nights)
    assert calm.night(100)
    assert not calm.night(400)
    cam = calm.camera("cam-shed")

    def ink(tick: int) -> float:
        obs = cam.observe(tick, noise=0.0)
        top, left, h, w = obs.detections[0].box
        return float(obs.frame[top : top + h, left : left + w].max())

    night_tick = next(k for k in range(60, 300) if cam.observe(k).detections)
    day_tick = next(k for k in range(320, 600) if cam.observe(k).detections)
    assert ink(night_tick) < ink(day_tick) * (NIGHT_GAIN + 0.15)


def test_a_detection_is_the_embedding_of_its_crop_of_the_frame(calm: World):
    checked = 0
    for tick in range(0, calm.ticks, 7):
        for obs in calm.observe(tick):
            assert (obs.frame is None) == obs.dropped
            for det in obs.detections:
                top, left, h, w = det.box
                crop = obs.frame[top : top + h, left : left + w]
                again = calm.extractor.embed(crop_to_digit(crop)[None])[0]
                assert np.array_equal(again, det.embedding)
                assert det.embedding.dtype == np.int8
                assert len(det.embedding_bytes) == calm.scenario.embedding_dim
                checked += 1
    assert checked > 100


def test_detections_match_the_ground_truth(calm: World):
    scenario = calm.scenario
    for tick in range(0, calm.ticks, 5):
        truth = {s.animal: s for s in calm.truth(tick)}
        for obs in calm.observe(tick, render=False):
            assert obs.frame is None
            covered = set(obs.zones)
            assert set(obs.in_view) == {a for a, s in truth.items() if s.zone in covered}
            for det in obs.detections:
                assert det.animal in obs.in_view
                assert det.zone == truth[det.animal].zone
                assert det.species == truth[det.animal].species
    sightings = list(calm.sightings(0, 10))
    assert {s.tick for s in sightings} <= set(range(10))
    assert all(s.species == scenario.species_named(s.species).name for s in sightings)


def test_skipping_the_frame_changes_nothing_else(busy: World):
    cam = busy.camera("cam-lawn")
    for tick in range(100, 140):
        full, light = cam.observe(tick), cam.observe(tick, render=False)
        assert light.frame is None
        assert [d.embedding_bytes for d in full.detections] == [
            d.embedding_bytes for d in light.detections
        ]
        assert [d.box for d in full.detections] == [d.box for d in light.detections]


def test_two_cameras_see_the_same_look_of_one_animal(calm: World):
    """The sprite is the world's; the noise is each camera's (here switched off)."""
    found = 0
    for tick in range(calm.ticks):
        seen: dict[str, list[bytes]] = {}
        for cam in ("cam-gate", "cam-hedge"):
            for det in calm.camera(cam).observe(tick, noise=0.0, render=False).detections:
                seen.setdefault(det.animal, []).append(det.embedding_bytes)
        for views in seen.values():
            if len(views) == 2:
                assert views[0] == views[1]
                found += 1
    assert found > 10


def test_a_noisy_camera_drops_and_misses():
    noisy = World("noisy-cameras")
    cam = noisy.camera("cam-lawn")
    obs = [cam.observe(k, render=False) for k in range(noisy.ticks)]
    dropped = np.mean([o.dropped for o in obs])
    assert 0.05 < dropped < 0.15  # the scenario's dropout is 0.1
    kept = [o for o in obs if not o.dropped]
    missed = sum(len(o.in_view) - len(o.detections) for o in kept)
    assert 0.1 < missed / sum(len(o.in_view) for o in kept) < 0.3  # miss = 0.2


def test_a_pan_changes_what_the_camera_sees(calm: World):
    cam = calm.camera("cam-gate")
    for tick in range(0, calm.ticks, 10):
        obs = cam.observe(tick, zones=["shed"], render=False)
        assert obs.zones == ("shed",)
        assert set(obs.in_view) == {s.animal for s in calm.in_zone("shed", tick)}


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"zones": ["roof"]}, "zones[0]"),
        ({"zones": "gate"}, "zones"),
        ({"zones": ["gate", 3]}, "zones[1]"),
        ({"zones": []}, "zones"),
        ({"zones": ["gate", "gate"]}, "zones"),
        ({"zones": ["gate", "lawn", "porch", "deck", "shed", "hedge", "garden"]}, "zones"),
        ({"noise": 1.5}, "noise"),
        ({"noise": "loud"}, "noise"),
    ],
)
def test_settings_a_camera_cannot_take_are_refused_with_their_key(calm: World, settings, key):
    cam = calm.camera("cam-gate")
    with pytest.raises(ConfigError) as caught:
        cam.check_settings(**settings)
    assert caught.value.key == key
    with pytest.raises(ConfigError):
        cam.observe(3, **settings)
    assert cam.check_settings() == (("gate", "lawn"), pytest.approx(0.04))


def test_ticks_outside_the_scenario_are_refused(calm: World):
    with pytest.raises(ValueError, match="outside"):
        calm.camera("cam-gate").observe(calm.ticks)


def test_the_pacer_maps_simulated_to_wall_time():
    pacer = Pacer(start=100.0, tick=1.0, speed=10.0)
    assert pacer.due(0) == 100.0
    assert pacer.due(25) == pytest.approx(102.5)
    assert pacer.tick_at(102.5) == 25
    assert pacer.tick_at(102.49) == 24
    assert pacer.tick_at(99.0) < 0
    with pytest.raises(ValueError, match="speed"):
        Pacer(start=0.0, tick=1.0, speed=0.0)


def test_a_thumbnail_is_the_frame_in_small(calm: World):
    frame = calm.camera("cam-shed").observe(120).frame
    small = thumbnail(frame, 32)
    assert small.shape == (32, 32)
    assert small.dtype == np.uint8
    assert abs(float(small.mean()) - float(frame.mean())) < 1.0
    with pytest.raises(ValueError, match="cannot shrink"):
        thumbnail(frame, 100)
