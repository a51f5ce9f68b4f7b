"""A user's own actor module, as in the README's tour."""

from __future__ import annotations

from typing import Any

import edgeloop


class Counter(edgeloop.Actor):
    """Counts what it is told; crashes on purpose when the count passes ``threshold``."""

    def __init__(self, threshold: int = 3) -> None:
        self.threshold = threshold
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        if message == "get":
            return self.count
        self.count += 1
        if self.count > self.threshold:
            msg = f"{self.path} counted past {self.threshold}"
            raise OverflowError(msg)
        return self.count
