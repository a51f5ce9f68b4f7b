"""The knowledge cycle from outside its node: ``edgeloop knowledge ...`` and the
``knowledge`` section of ``edgeloop node status``.

A client joins the node as a short-lived peer (as ``node status`` does) and asks the
cycle actor with a plain table, which the cycle turns into its typed requests.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from rich.table import Table

from edgeloop.errors import KnowledgeError, NodeError

__all__ = ["CYCLE_PATH", "ask_cycle", "name_class", "knowledge_table"]

CYCLE_PATH = "/knowledge"
"""Where the yard app runs its knowledge cycle."""


def ask_cycle(
    address: str,
    body: dict[str, Any],
    *,
    path: str = CYCLE_PATH,
    server_key: str | None = None,
    secret_key: Path | None = None,
    timeout: float = 5.0,
) -> dict[str, Any]:
    """The cycle's answer to ``body`` (``{"op": "cycles"}`` or ``{"op": "name", ...}``)
    from the node at ``address``; KnowledgeError if the cycle refused it."""
    from edgeloop.supervisor import Node
    from edgeloop.transport import PeerAddress, SecurityConfig

    security = SecurityConfig(secret_key=secret_key) if secret_key is not None else None
    probe = Node(
        f"knowledge-{os.getpid()}", peers=[PeerAddress(address, server_key)], security=security
    ).start()
    try:
        deadline = time.monotonic() + timeout
        tick = threading.Event()
        while not probe.peers():
            if time.monotonic() >= deadline:
                msg = f"no node answered at {address} within {timeout} s; is it running?"
                raise NodeError(msg)
            tick.wait(0.02)
        target = probe.peers()[0]
        left = max(0.1, deadline - time.monotonic())
        answer: dict[str, Any] = probe.ref(f"{target}:{path}").ask(body, timeout=left).get()
    finally:
        probe.stop()
    if isinstance(answer, dict) and "refused" in answer:
        raise KnowledgeError(str(answer["refused"]), field=str(answer.get("field", "")))
    return answer


def name_class(address: str, old: str, new: str, **options: Any) -> dict[str, Any]:
    """Rename learnt class ``old`` to ``new`` on the node at ``address``; the record of
    the rename's push (a new head version with the new name)."""
    return ask_cycle(address, {"op": "name", "old": old, "new": new}, **options)


def knowledge_table(section: dict[str, Any]) -> Table:
    """The cycle's status section as a table: one row per cycle, stages in ms."""
    labels = ", ".join(section.get("labels", []))
    table = Table(title=f"knowledge cycle: {labels} (head v{section.get('head_version')})")
    for column in ("cycle", "name", "state", "notice", "query", "learn", "recompile", "push"):
        table.add_column(column)
    table.add_column("latency ms")
    table.add_column("acked")
    for record in section.get("cycles", []):
        stages = record.get("stage_ms", {})
        table.add_row(
            str(record["cycle"]),
            record["name"] + (f" (was {record['renamed_from']})" if record["renamed_from"] else ""),
            record["state"],
            *(
                f"{stages[k]:.1f}" if k in stages else "-"
                for k in ("notice", "query", "learn", "recompile", "push")
            ),
            str(record.get("cycle_latency_ms")),
            str(len(record.get("cameras_acked", []))),
        )
    return table
