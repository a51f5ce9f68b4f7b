"""The learner: a pure JAX core (:mod:`edgeloop.learning.core`) and its actor shells.

JAX and NumPyro are imported only inside this package, and only when a learning module is
imported; ``import edgeloop`` never loads them.
"""

from __future__ import annotations

__all__: list[str] = []
