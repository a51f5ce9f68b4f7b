"""The learning tests run JAX on the CPU (set before JAX is first imported)."""

from __future__ import annotations

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
