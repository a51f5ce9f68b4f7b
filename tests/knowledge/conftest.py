"""The knowledge-cycle tests run JAX (loaded by the open-world core's package) on the CPU."""

from __future__ import annotations

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
