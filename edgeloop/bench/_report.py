"""Benchmark results: one record per figure, a suite's JSON document, a rich table.

A :class:`Result` compares edgeloop with its *anchor* (the library or baseline it is
measured against in the same run). Its ``ratio`` is always ``edgeloop / anchor``, and its
``goal`` is a condition on that ratio, such as ``">= 0.8"`` for a throughput (higher is
better) or ``"<= 1.25"`` for a latency (lower is better); ``met`` says whether it holds.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["Result", "SuiteResult", "check_goal", "to_table", "print_table"]

_GOAL = re.compile(r"^\s*(>=|<=|>|<)\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*$")
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}


def check_goal(goal: str, ratio: float) -> bool:
    """Whether ``ratio`` meets ``goal`` (``">= 0.8"``, ``"<= 1.25"``, ``"> 1"``, ``"< 2"``).

    A ratio that is not a finite number meets no goal. Raises ValueError for a goal that
    is not one of those four forms.
    """
    match = _GOAL.match(goal) if isinstance(goal, str) else None
    if match is None:
        msg = f"invalid goal {goal!r}: write a comparison on the ratio such as '>= 0.8'"
        raise ValueError(msg)
    if not math.isfinite(ratio):
        return False
    return _OPERATORS[match.group(1)](ratio, float(match.group(2)))


def _ratio(edgeloop: float, anchor: float) -> float:
    if anchor == 0:
        return math.inf if edgeloop > 0 else math.nan
    return edgeloop / anchor


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    """One figure: edgeloop and its anchor measured in the same run, and their ratio.

    ``ratio`` (``edgeloop / anchor``) and ``met`` (whether ``ratio`` meets ``goal``) are
    computed from the other fields, so they can never disagree with them.
    """

    name: str
    unit: str
    edgeloop: float
    anchor: float
    anchor_name: str
    ratio: float = dataclasses.field(init=False)
    goal: str
    met: bool = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        ratio = _ratio(self.edgeloop, self.anchor)
        object.__setattr__(self, "ratio", ratio)
        object.__setattr__(self, "met", check_goal(self.goal, ratio))

    def to_json(self) -> dict[str, Any]:
        """The JSON object of this result; a ratio that is not finite becomes ``null``."""
        return {
            "name": self.name,
            "unit": self.unit,
            "edgeloop": self.edgeloop,
            "anchor": self.anchor,
            "anchor_name": self.anchor_name,
            "ratio": self.ratio if math.isfinite(self.ratio) else None,
            "goal": self.goal,
            "met": self.met,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class SuiteResult:
    """The results of one suite, plus (optionally) what machine and versions produced them."""

    suite: str
    results: tuple[Result, ...]
    environment: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "results", tuple(self.results))

    @property
    def all_met(self) -> bool:
        """Whether every result meets its goal."""
        return all(result.met for result in self.results)

    def result(self, name: str) -> Result:
        """The result called ``name``; KeyError if the suite has none."""
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        """The JSON document of the suite, as Python objects for ``json.dumps``::

            {"suite": "actors",
             "results": [{"name", "unit", "edgeloop", "anchor", "anchor_name",
                          "ratio", "goal", "met"}, ...],
             "environment": {...}}

        ``environment`` is the one extra top-level key: present only when the suite
        recorded it (Python, platform, CPU count, library versions, run sizes).
        """
        document: dict[str, Any] = {
            "suite": self.suite,
            "results": [result.to_json() for result in self.results],
        }
        if self.environment is not None:
            document["environment"] = dict(self.environment)
        return document


def _number(value: float, unit: str) -> str:
    if not math.isfinite(value):
        return str(value)
    if unit.endswith("/s"):
        return f"{value:,.0f}"
    return f"{value:,.3g}" if abs(value) < 10 else f"{value:,.1f}"


def to_table(suite: SuiteResult) -> Table:
    """A rich table of the suite: one row per result, the goal's verdict in colour."""
    table = Table(title=f"edgeloop bench {suite.suite}", title_justify="left")
    table.add_column("result", no_wrap=True)
    table.add_column("unit")
    table.add_column("edgeloop", justify="right")
    table.add_column("anchor", justify="right")
    table.add_column("anchor is", no_wrap=True)
    table.add_column("ratio", justify="right")
    table.add_column("goal", justify="right")
    table.add_column("met", justify="center")
    for result in suite.results:
        table.add_row(
            result.name,
            result.unit,
            _number(result.edgeloop, result.unit),
            _number(result.anchor, result.unit),
            result.anchor_name,
            f"{result.ratio:.3f}",
            result.goal,
            "[green]yes[/green]" if result.met else "[red]no[/red]",
        )
    return table


def print_table(suite: SuiteResult, console: Console | None = None) -> None:
    """Print the suite as a table (and its environment on one line) to ``console``."""
    console = console or Console()
    console.print(to_table(suite))
    if suite.environment:
        console.print(
            "  ".join(f"{key}={value}" for key, value in suite.environment.items()),
            style="dim",
            highlight=False,
        )
