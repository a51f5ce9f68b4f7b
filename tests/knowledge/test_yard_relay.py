"""A trap relay told what the knowledge cycle learnt protects that species: its interlock
holds a close while a camera reports it in or next to the trap, and, until every camera
runs the head that knows it, while one still scoring with an older head reports a novel
animal there (the event's head version says which head scored it)."""

from __future__ import annotations

from typing import Any

from edgeloop.actors import ActorSystem
from edgeloop.apps.yard import GetLog, TrapRelay
from edgeloop.learning import ClassLearned
from edgeloop.messages import Command, Event
from tests.apps.test_yard_actors import Twin
from tests.helpers import WAIT


def seen(seq: int, ts: float, label: str, head: int, **extra: Any) -> Event:
    return Event(
        device="cam-garden",
        seq=seq,
        ts=ts,
        zone="garden",
        label=label,
        score=0.9,
        embedding=bytes(20),
        head_version=head,
        config_version=1,
        extra=extra,
    )


def close(n: int) -> Command:
    return Command(id=n, device="trap-garden", name="close")


def relay(system: ActorSystem) -> Any:
    system.spawn(Twin, "/devices/trap-garden")
    return system.spawn(
        TrapRelay,
        "/traps/trap-garden",
        args={"twin": "/devices/trap-garden", "scenario": "opossum", "zone": "trap-garden"},
    )


def test_before_the_cycle_an_unknown_animal_does_not_hold_a_close(system: ActorSystem) -> None:
    trap = relay(system)
    trap.tell(seen(1, 10.0, "unknown", 1, novel=True))
    trap.tell(close(1))
    assert trap.ask(GetLog()).get(WAIT)["held"] == 0


def test_a_learnt_species_is_protected_like_a_cat(system: ActorSystem) -> None:
    trap = relay(system)
    trap.tell(ClassLearned(name="species-4", head_version=2, labels=("skunk", "species-4")))
    trap.tell(seen(1, 10.0, "species-4", 2))
    trap.tell(close(1))
    assert trap.ask(GetLog()).get(WAIT)["held"] == 1
    trap.tell(seen(2, 20.0, "skunk", 2))  # well past the hold: the close goes
    assert [c for _, c in trap.ask(GetLog()).get(WAIT)["commands"]] == ["close"]


def test_a_novel_report_from_an_old_head_or_near_the_new_class_is_protected(
    system: ActorSystem,
) -> None:
    trap = relay(system)
    trap.tell(ClassLearned(name="opossum", head_version=3, labels=("opossum",), previous="x"))
    trap.tell(seen(1, 10.0, "unknown", 2, novel=True))  # scored by head 2: may be one
    trap.tell(close(1))
    assert trap.ask(GetLog()).get(WAIT)["held"] == 1
    trap.tell(seen(2, 20.0, "unknown", 3, novel=True, nearest="opossum"))
    trap.tell(close(2))
    assert trap.ask(GetLog()).get(WAIT)["held"] == 2
    trap.tell(seen(3, 30.0, "unknown", 3, novel=True, nearest="skunk"))  # head 3 knows it
    trap.tell(close(3))
    assert trap.ask(GetLog()).get(WAIT)["held"] == 2
