"""InjectFault: the chaos drill's crash. The actor crashes where the message stands in its
mailbox, as if its handler had raised there; its code never sees the message; the
supervisor restarts it; an ask of it fails with the typed InjectedFault."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from edgeloop.actors import Actor, ActorSystem, InjectFault
from edgeloop.errors import ActorError, InjectedFault
from edgeloop.supervisor import ChildSpec, Supervisor, SupervisorFlags, SupervisorRef
from tests.helpers import WAIT, wait_for


class Keeper(Actor):
    """Keeps what it receives in a list shared by its incarnations."""

    def __init__(self, seen: list[Any]) -> None:
        self.seen = seen

    def on_receive(self, message: Any) -> Any:
        self.seen.append(message)
        return len(self.seen)


@pytest.fixture
def tree(system: ActorSystem) -> Iterator[tuple[SupervisorRef, list[Any]]]:
    seen: list[Any] = []
    spec = ChildSpec("keeper", Keeper, args={"seen": seen})
    ref = system.spawn(
        Supervisor, "/sup", args={"flags": SupervisorFlags(intensity=5), "children": [spec]}
    )
    yield SupervisorRef(ref, timeout=WAIT), seen
    ref.stop()
    wait_for(lambda: not ref.is_alive(), what="the supervisor stopped")


def test_an_injected_fault_crashes_the_actor_which_its_supervisor_restarts(
    system: ActorSystem, tree: tuple[SupervisorRef, list[Any]]
) -> None:
    sup, seen = tree
    old = system.lookup("/sup/keeper")
    assert old is not None
    assert old.ask("before").get(WAIT) == 1
    with pytest.raises(InjectedFault, match="drill") as raised:
        old.ask(InjectFault("drill")).get(WAIT)
    assert isinstance(raised.value, ActorError)
    wait_for(lambda: system.lookup("/sup/keeper") not in (None, old), what="a new incarnation")
    new = system.lookup("/sup/keeper")
    assert new is not None
    assert new.ask("after").get(WAIT) == 2
    assert seen == ["before", "after"]  # the actor's code never saw the fault
    assert sup.which_children()[0].restarts == 1
    assert not old.is_alive()


def test_a_told_fault_crashes_only_when_reached_in_the_mailbox(
    system: ActorSystem, tree: tuple[SupervisorRef, list[Any]]
) -> None:
    _, seen = tree
    old = system.lookup("/sup/keeper")
    assert old is not None
    old.tell("first")
    old.tell(InjectFault())
    wait_for(lambda: system.lookup("/sup/keeper") not in (None, old), what="the restart")
    assert seen == ["first"]
    assert repr(InjectFault("x")) == "InjectFault('x')"
