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
