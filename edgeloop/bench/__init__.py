"""``edgeloop bench SUITE``: edgeloop and its anchors measured in the same run.

Absolute times on small shared machines are noise; the figures that matter are the
ratios ``edgeloop / anchor``, each checked against a goal. Every suite is a callable
``suite(quick) -> SuiteResult``; ``quick=True`` runs CI-sized (a few seconds)::

    from edgeloop import bench

    result = bench.run("actors", quick=True)
    bench.print_table(result)     # a rich table
    result.to_json()              # {"suite": ..., "results": [...], "environment": {...}}
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Mapping
from types import MappingProxyType

from edgeloop.bench._report import Result, SuiteResult, check_goal, print_table, to_table
from edgeloop.bench.actors import run_actors
from edgeloop.bench.bulk import run_bulk
from edgeloop.bench.chaos import run_chaos
from edgeloop.bench.device import run_device
from edgeloop.bench.e2e import run_e2e
from edgeloop.bench.knowledge import run_knowledge
from edgeloop.bench.learner import run_learner
from edgeloop.bench.link import run_link
from edgeloop.bench.sensors import run_sensors
from edgeloop.bench.trace import run_trace
from edgeloop.bench.world import run_world

__all__ = [
    "SUITES",
    "run",
    "main_json",
    "Result",
    "SuiteResult",
    "check_goal",
    "print_table",
    "to_table",
    "UnknownSuiteError",
]

SUITES: Mapping[str, Callable[[bool], SuiteResult]] = MappingProxyType(
    {
        "actors": run_actors,
        "bulk": run_bulk,
        "device": run_device,
        "link": run_link,
        "sensors": run_sensors,
        "world": run_world,
        "learner": run_learner,
        "trace": run_trace,
        "knowledge": run_knowledge,
        "e2e": run_e2e,
        "chaos": run_chaos,
    }
)
"""Every suite by name: ``SUITES[name](quick)`` runs it."""


class UnknownSuiteError(KeyError):
    """No suite has that name; the message lists the ones there are."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


def run(name: str, quick: bool = False) -> SuiteResult:
    """Run the suite called ``name`` (CI-sized when ``quick``) and return its results."""
    try:
        suite = SUITES[name]
    except KeyError:
        available = ", ".join(sorted(SUITES))
        msg = f"no benchmark suite called {name!r}; available suites: {available}"
        raise UnknownSuiteError(msg) from None
    # The suites collect garbage before each timed section. What the process held before
    # the suite (a test session's or a notebook's objects) is left out of those
    # collections: in a process of millions of objects each took up to a second, and a
    # quick bulk run took 52 s instead of 2. Objects the suite makes are collected as ever.
    gc.freeze()
    try:
        return suite(quick)
    finally:
        gc.unfreeze()


def main_json(name: str, quick: bool = False) -> str:
    """Run the suite called ``name`` and return its results as JSON text."""
    return json.dumps(run(name, quick).to_json(), allow_nan=False)
