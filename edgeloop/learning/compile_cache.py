"""JAX's persistent compilation cache for processes that run a node.

A node's Learner and GibbsRepair compile their steps when they start (10 to 25 s on a busy
2-core machine); loaded from JAX's on-disk cache, the same programs take 1 to 2 s. The
cache is keyed by the program, JAX's version and the machine's backend, so a stale entry
is never used, only left unused.

JAX reads ``JAX_COMPILATION_CACHE_DIR`` when it is first imported, so the console script
calls :func:`default_compile_cache` before any command runs (JAX is not imported by then).
The cache is trusted code (a writer to it can run code in the process), so it lives in
the user's own cache directory, created private. Set ``JAX_COMPILATION_CACHE_DIR`` to a
path to move it, or to an empty string to turn it off.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

__all__ = ["CACHE_VARIABLE", "default_compile_cache"]

CACHE_VARIABLE = "JAX_COMPILATION_CACHE_DIR"


def default_compile_cache(environ: MutableMapping[str, str] | None = None) -> str | None:
    """Point JAX's compilation cache at ``$XDG_CACHE_HOME/edgeloop/jax`` (else
    ``~/.cache/edgeloop/jax``) unless ``environ`` (default ``os.environ``) already names
    one; return the directory in use, or ``None`` when the cache is off or the directory
    cannot be made (a read-only home runs without the cache, as JAX would)."""
    env = os.environ if environ is None else environ
    if CACHE_VARIABLE in env:
        return env[CACHE_VARIABLE] or None
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    directory = Path(base) / "edgeloop" / "jax"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return None
    env[CACHE_VARIABLE] = str(directory)
    return str(directory)
