"""The environment of the yard tests' subprocesses (the demo, a node): JAX on the CPU, and
JAX's persistent compilation cache under .pytest_cache (ignored by git; tests/conftest.py
makes it the whole run's), so that what one process compiled (the learner's window, the
repair's Gibbs run: 10-25 s each on a busy machine) is loaded by the next, in this run and
in later ones. A cache the environment chose already (or turned off: empty) is kept."""

from __future__ import annotations

import os

from tests.integration.procs import ROOT

__all__ = ["jax_env"]

CACHE = ROOT / ".pytest_cache" / "jax-compilation-cache"


def jax_env(**extra: str) -> dict[str, str]:
    """``os.environ`` with JAX on the CPU, the shared compilation cache, and ``extra``."""
    return {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "JAX_COMPILATION_CACHE_DIR": os.environ.get("JAX_COMPILATION_CACHE_DIR", str(CACHE)),
        **extra,
    }
