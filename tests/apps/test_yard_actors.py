"""The yard app's own actors: the TrapRelay's interlock (no close goes to the twin while a
camera has seen a cat in or next to the trap within ``hold`` seconds of source time; it
goes once clear), the EventStage (event functions, each isolated) and the YardLearner's
replays through the same functions."""

from __future__ import annotations

import tomllib
from typing import Any

from edgeloop.actors import Actor, ActorSystem
from edgeloop.apps.yard import APP_FILE, EventStage, GetLog, TrapRelay, YardLearner
from edgeloop.learning import GetStatistics
from edgeloop.messages import Command, Event
from tests.helpers import WAIT


class Twin(Actor):
    """Stands where the trap's twin would be: keeps the commands it is told."""

    def __init__(self) -> None:
        self.told: list[str] = []

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Command):
            self.told.append(message.name)
            return None
        return list(self.told)


def seen(seq: int, ts: float, label: str, zone: str) -> Event:
    return Event(
        device="cam-garden",
        seq=seq,
        ts=ts,
        zone=zone,
        label=label,
        score=0.9,
        embedding=bytes(20),
        head_version=1,
        config_version=1,
    )


def close(n: int) -> Command:
    return Command(id=f"c{n}", device="trap-garden", name="close")


def test_a_close_waits_while_a_cat_is_next_door_and_goes_once_clear(
    system: ActorSystem,
) -> None:
    twin = system.spawn(Twin, "/devices/trap-garden")
    relay = system.spawn(
        TrapRelay,
        "/traps/trap-garden",
        args={"twin": "/devices/trap-garden", "scenario": "calm", "zone": "trap-garden"},
    )
    relay.tell(seen(1, 10.0, "cat", "garden"))  # garden is next to trap-garden
    relay.tell(seen(2, 10.0, "cat", "porch"))  # porch is not: ignored
    relay.tell(close(1))
    relay.tell(seen(3, 12.0, "skunk", "trap-garden"))  # 2 s after the cat: still held
    assert relay.ask(GetLog()).get(WAIT)["held"] == 1  # the relay has handled all of it
    assert twin.ask("told").get(WAIT) == []
    relay.tell(seen(4, 13.5, "skunk", "trap-garden"))  # 3.5 s: clear, the close goes
    log = relay.ask(GetLog()).get(WAIT)
    assert log["held"] == 1
    assert [name for _, name in log["commands"]] == ["close"]
    assert twin.ask("told").get(WAIT) == ["close"]


def test_an_open_cancels_a_held_close_and_always_goes(system: ActorSystem) -> None:
    twin = system.spawn(Twin, "/devices/trap-garden")
    relay = system.spawn(
        TrapRelay,
        "/traps/trap-garden",
        args={"twin": "/devices/trap-garden", "scenario": "calm", "zone": "trap-garden"},
    )
    relay.tell(seen(1, 10.0, "cat", "trap-garden"))
    relay.tell(close(1))
    relay.tell(Command(id="o1", device="trap-garden", name="open"))
    relay.tell(seen(2, 20.0, "skunk", "trap-garden"))  # clear now, but the learner let go
    relay.ask(GetLog()).get(WAIT)
    assert twin.ask("told").get(WAIT) == ["open"]


class Inbox(Actor):
    """Stands where fusion would be: keeps the events it is told."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Event):
            self.events.append(message)
            return None
        return list(self.events)


def test_the_event_stage_runs_the_app_functions_and_survives_a_faulty_one(
    system: ActorSystem,
) -> None:
    fusion = system.spawn(Inbox, "/pipeline/fusion")
    stage = system.spawn(
        EventStage,
        "/pipeline/functions",
        args={
            "downstream": "/pipeline/fusion",
            "functions": [
                {"call": "tests.apps.test_yard_functions:explode"},
                {"call": "edgeloop.apps.yard_functions:drop_low_score"},
                {"call": "edgeloop.apps.yard_functions:tag_night", "on": ["cat"]},
            ],
        },
    )
    for seq, (label, score) in enumerate([("cat", 0.9), ("skunk", 0.1), ("skunk", 0.8)], 1):
        stage.tell(Event(**{**_fields(seen(seq, 100.0, label, "lawn")), "score": score}))
    log = stage.ask(GetLog()).get(WAIT)
    assert log["failures"] == {"explode": 3}
    assert log["dropped"] == {"drop_low_score": 1}
    assert log["passed"] == 2
    assert [a[2] for a in log["arrivals"]] == [1, 2, 3]
    events = fusion.ask("events").get(WAIT)
    assert [(e.seq, e.extra) for e in events] == [(1, {"night": True}), (3, {})]


def _fields(event: Event) -> dict[str, Any]:
    return {f: getattr(event, f) for f in event.__struct_fields__}


def test_the_learner_runs_the_event_functions_on_what_the_twins_replay(
    system: ActorSystem,
) -> None:
    """A replay skips the functions stage (twins answer the learner straight from their
    buffers): what the stage would drop must not reach the filter after a restart."""
    learner = system.spawn(
        YardLearner,
        "/pipeline/learner",
        args={
            "scenario": "calm",
            "replay_functions": [
                {"call": "edgeloop.apps.yard_functions:drop_low_score", "args": {"min_score": 0.2}},
            ],
        },
        start_timeout=120.0,
    )
    for seq, score in enumerate([0.9, 0.1, 0.8], 1):
        learner.tell(Event(**{**_fields(seen(seq, 100.0 + seq, "skunk", "lawn")), "score": score}))
    statistics = learner.ask(GetStatistics()).get(WAIT)
    assert statistics.events == 2
    assert learner.ask(GetLog()).get(WAIT) == {
        "replays_dropped": {"drop_low_score": 1},
        "failures": {},
    }


def test_the_app_file_replays_through_the_functions_stages_own_list() -> None:
    """yard.toml names the functions twice (the stage, the learner's replays): alike."""
    with APP_FILE.open("rb") as handle:
        app = tomllib.load(handle)
    pipeline = next(c for c in app["supervisor"]["children"] if c["id"] == "pipeline")
    args = {c["id"]: c.get("args", {}) for c in pipeline["children"]}
    assert args["functions"]["functions"]
    assert args["learner"]["replay_functions"] == args["functions"]["functions"]
