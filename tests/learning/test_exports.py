"""The learning package's public names, and that importing it does not load JAX."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import edgeloop.learning
import edgeloop.store


def test_every_exported_name_exists_once() -> None:
    for module in (edgeloop.learning, edgeloop.store):
        assert len(set(module.__all__)) == len(module.__all__)
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_importing_the_shells_does_not_load_jax() -> None:
    """JAX loads when a Learner starts, not when its package is imported."""
    code = "import sys, edgeloop.learning, edgeloop.store; print('jax' in sys.modules)"
    root = str(Path(edgeloop.learning.__file__).parents[2])
    env = {**os.environ, "PYTHONPATH": root}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "False"


def test_the_wire_messages_round_trip_as_tell_bodies() -> None:
    """EventsSince, FusedObservation and Decision cross a link as Tell bodies."""
    from edgeloop.learning import Decision, EventsSince, FusedObservation
    from edgeloop.messages import decode_body, encode_body
    from tests.learning.yard import sighting

    messages = [
        EventsSince(device="cam-a", after_seq=41, reply_to="/yard/learner"),
        FusedObservation(group=3, ts=10.0, reports=(sighting("cam-a", 1, 10.0, "cat", "lawn"),)),
        Decision(
            trap="trap-1",
            action="close",
            p_target=0.99,
            p_protected=0.001,
            expected_loss=0.01,
            ts=5.0,
            batch=7,
            seq={"cam-a": 41},
        ),
    ]
    for message in messages:
        assert decode_body(encode_body(message), type(message)) == message
