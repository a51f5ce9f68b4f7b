"""The yard tree's strategies: fusion crashing mid-stream restarts the stages after it
(rest_for_one), and the restarted learner recovers from its snapshot and the twins'
buffers, so it ends with every event the twins delivered, each once."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from edgeloop.apps.yard_demo import yard_app
from edgeloop.learning import GetStatistics
from edgeloop.sensors import GetState
from edgeloop.sensors._runner import YardRunner
from edgeloop.supervisor import Node, parse_app
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

WAIT = 60.0


def test_a_fusion_crash_restarts_the_learner_which_misses_nothing(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        listen = f"tcp://127.0.0.1:{sock.getsockname()[1]}"
    node = Node.from_app(parse_app(yard_app("calm", listen, str(tmp_path / "learner.db"))))
    runner = YardRunner.from_scenario(
        "calm", connect=listen, mode="in-process", speed=30.0, run_dir=tmp_path
    )
    with node:
        learner = node.lookup("/pipeline/learner")
        assert learner is not None

        def learnt() -> int:
            ref = node.lookup("/pipeline/learner")
            return ref.ask(GetStatistics()).get(WAIT).events if ref is not None else 0

        with runner:
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
        restarted = node.lookup("/pipeline/learner")
        assert restarted is not None
        stats = restarted.ask(GetStatistics()).get(WAIT)
        assert stats.restored_version is not None  # it came back from its snapshot
        assert stats.replay_requests >= 4  # and asked every camera twin for what it lacked
        wait_for(lambda: learnt() == delivered, timeout=WAIT, what="every event, once")
