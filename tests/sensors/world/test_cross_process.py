"""Each device process simulates the world from (scenario, seed, camera id) alone and
keeps its camera's view; the views agree with one another and with a whole-world run."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import edgeloop
from edgeloop.sensors.world import World

TICKS = range(100, 220)
SEED = 11

# What a device process does: build the world from its three inputs, watch one camera.
_CHILD = """
import hashlib, json, sys
from edgeloop.sensors.world import World

scenario, seed, camera = sys.argv[1], int(sys.argv[2]), sys.argv[3]
view = World(scenario, seed=seed).camera(camera)
digest = hashlib.sha256()
seen = []
for tick in range({start}, {stop}):
    obs = view.observe(tick)
    digest.update(repr((obs.tick, obs.dropped, obs.in_view)).encode())
    if obs.frame is not None:
        digest.update(obs.frame.tobytes())
    for det in obs.detections:
        digest.update(repr((det.zone, det.box, det.animal)).encode() + det.embedding_bytes)
        seen.append([tick, det.animal, det.zone])
print(json.dumps({{"digest": digest.hexdigest(), "seen": seen}}))
"""


def _digest(world: World, camera: str) -> str:
    view = world.camera(camera)
    digest = hashlib.sha256()
    for tick in TICKS:
        obs = view.observe(tick)
        digest.update(repr((obs.tick, obs.dropped, obs.in_view)).encode())
        if obs.frame is not None:
            digest.update(obs.frame.tobytes())
        for det in obs.detections:
            digest.update(repr((det.zone, det.box, det.animal)).encode() + det.embedding_bytes)
    return digest.hexdigest()


def test_camera_processes_agree_with_each_other_and_with_the_whole_world():
    root = str(Path(edgeloop.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=root)
    script = _CHILD.format(start=TICKS.start, stop=TICKS.stop)
    cameras = ("cam-lawn", "cam-gate", "cam-hedge")
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script, "opossum", str(SEED), camera],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        for camera in cameras
    ]
    results = {}
    for camera, child in zip(cameras, children, strict=True):
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        results[camera] = json.loads(out)

    whole = World("opossum", seed=SEED)
    for tick in TICKS:  # this process watches every camera, in another order
        whole.observe(tick, render=False)
    for camera in cameras:
        assert results[camera]["digest"] == _digest(whole, camera), camera

    where = {}
    for camera in cameras:
        for tick, animal, zone in results[camera]["seen"]:
            assert where.setdefault((tick, animal), zone) == zone, "two cameras disagree"
    shared = {
        key
        for key in where
        if sum(1 for c in cameras for s in results[c]["seen"] if tuple(s[:2]) == key) > 1
    }
    assert shared, "the cameras' views overlap, so some animal is seen by two of them"
