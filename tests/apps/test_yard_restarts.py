"""The yard tree's strategies, on one running yard: the learner learns on its schedule and
adopts Gibbs-repaired windows; the repair crashing restarts the repair alone (the learner
is not disturbed and learns on); fusion crashing mid-stream restarts the stages after it
(rest_for_one), and the restarted learner recovers from its snapshot and the twins'
buffers, so it ends with every event the twins delivered, each once."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from edgeloop.actors import InjectFault
from edgeloop.apps.yard_demo import yard_app
from edgeloop.learning import GetStatistics
from edgeloop.sensors import GetState
from edgeloop.sensors._runner import YardRunner
from edgeloop.supervisor import Node, parse_app
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

WAIT = 60.0
COMPILE = 180.0  # the repair compiles its window shape after its start: 10-50 s under load


def test_repair_and_fusion_crashes_restart_what_they_should_and_lose_nothing(
    tmp_path: Path,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        listen = f"tcp://127.0.0.1:{sock.getsockname()[1]}"
    node = Node.from_app(parse_app(yard_app("calm", listen, str(tmp_path / "learner.db"))))
    runner = YardRunner.from_scenario(
        "calm", connect=listen, mode="in-process", speed=20.0, run_dir=tmp_path
    )
    with node:
        order = [child.id for child in node.root.which_children()]
        assert order.index("repair") < order.index("pipeline")  # starts first, stops last
        learner, repair = node.lookup("/pipeline/learner"), node.lookup("/repair")
        assert learner is not None
        assert repair is not None

        def stats():
            ref = node.lookup("/pipeline/learner")
            return ref.ask(GetStatistics(), timeout=WAIT).get() if ref is not None else None

        def learnt() -> int:
            now = stats()
            return now.events if now is not None else 0

        warmed = repair.ask(GetStatistics(), timeout=COMPILE).get()  # answered after it
        assert warmed.warm_s is not None
        with runner:
            # learning on a schedule, with repaired windows adopted, in the running app
            wait_for(lambda: stats().repairs >= 1, WAIT, "a repaired window adopted")
            ran = repair.ask(GetStatistics(), timeout=WAIT).get()
            assert ran.repairs >= 1
            assert 0 <= ran.changed_total <= ran.tracks
            # a repair crash: the repair alone restarts, the learner learns on
            repair.tell(InjectFault("test"))
            wait_for(lambda: node.lookup("/repair") not in (None, repair), WAIT, "a new repair")
            adopted = stats().repairs
            wait_for(lambda: stats().repairs > adopted, WAIT, "a repair by the new one")
            assert node.lookup("/pipeline/learner") is learner
            pipeline = {c.id: c.restarts for c in node.supervisor("/pipeline").which_children()}
            assert pipeline == {"functions": 0, "fusion": 0, "learner": 0}
            assert stats().repairs_lost <= 1  # at most the request the crash took with it

            wait_for(lambda: learnt() >= 100, timeout=WAIT, what="events reach the learner")
            fusion = node.lookup("/pipeline/fusion")
            assert fusion is not None
            fusion.kill()  # what sat in its window and mailbox is gone with it
            wait_for(
                lambda: node.lookup("/pipeline/learner") not in (None, learner),
                timeout=WAIT,
                what="the learner restarted after fusion",
            )
            before = learnt()
            wait_for(lambda: learnt() >= before + 100, timeout=WAIT, what="the stream goes on")
        # the devices have stopped: every delivered event has reached the learner once
        delivered = 0
        for camera in ("cam-gate", "cam-shed", "cam-garden", "cam-hedge"):
            twin = node.lookup(f"/devices/{camera}")
            assert twin is not None
            state = twin.ask(GetState()).get(WAIT)
            assert state.counters.get("lost", 0) == 0
            delivered += state.delivered_seq or 0
        restarted = stats()
        assert restarted is not None
        assert restarted.restored_version is not None  # it came back from its snapshot
        assert restarted.replay_requests >= 4  # and asked every camera twin for what it lacked
        wait_for(lambda: learnt() == delivered, timeout=WAIT, what="every event, once")
        assert {c.id: c.restarts for c in node.root.which_children()}["repair"] == 1
