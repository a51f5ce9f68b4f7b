"""Paths and the per-system registry."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeloop.actors import ActorSystem, check_path
from edgeloop.clock import VirtualClock
from edgeloop.errors import ActorError, PathTakenError
from tests.actors.helpers import WAIT, Probe, get

SEGMENT_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.@:-"


def test_lookup_finds_a_live_actor_and_nothing_elsewhere(system: ActorSystem) -> None:
    """lookup(path) returns the live actor's ref, and None for a path nobody holds."""
    ref = system.spawn(Probe, "/yard/cam-01")
    assert system.lookup("/yard/cam-01") is ref
    assert system.lookup("/yard") is None
    assert system.lookup("/yard/cam-02") is None


def test_live_path_cannot_be_taken_twice(system: ActorSystem) -> None:
    """Spawning at a path a live actor holds raises PathTakenError and leaves it in place."""
    ref = system.spawn(Probe, "/p")
    with pytest.raises(PathTakenError, match="/p is already held") as info:
        system.spawn(Probe, "/p")
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, ActorError)
    assert system.lookup("/p") is ref
    assert ref.is_alive()


def test_path_is_freed_after_stop(system: ActorSystem) -> None:
    """Once an actor has stopped, its path is free and a new actor can take it."""
    first = system.spawn(Probe, "/p")
    first.stop()
    assert first.wait_stopped(WAIT)
    assert system.lookup("/p") is None
    second = system.spawn(Probe, "/p")
    assert second is not first
    assert system.lookup("/p") is second
    assert not first.is_alive()


def test_path_is_freed_after_crash(system: ActorSystem) -> None:
    """A crashed actor's path is free once it has stopped."""
    ref = system.spawn(Probe, "/p")
    ref.tell(("raise", RuntimeError("boom")))
    assert ref.wait_stopped(WAIT)
    assert system.lookup("/p") is None


def test_path_is_freed_at_once_by_kill(system: ActorSystem, gate: threading.Event) -> None:
    """kill() frees the path at once, even while the old handler still runs."""
    entered = threading.Event()
    old = system.spawn(Probe, "/p", args={"gate": gate, "entered": entered})
    old.tell("block")
    assert entered.wait(WAIT)
    old.kill()
    new = system.spawn(Probe, "/p")
    assert system.lookup("/p") is new
    gate.set()
    assert old.wait_stopped(WAIT)
    assert system.lookup("/p") is new, "the old incarnation must not unregister the new one"


def test_two_systems_do_not_see_each_other(system: ActorSystem) -> None:
    """Registries are per system: the same path lives in both, and neither sees the other's."""
    other = ActorSystem("other")
    try:
        mine = system.spawn(Probe, "/same")
        theirs = other.spawn(Probe, "/same")
        assert system.lookup("/same") is mine
        assert other.lookup("/same") is theirs
        other.spawn(Probe, "/only-there")
        assert system.lookup("/only-there") is None
        assert [r.path for r in system.actors()] == ["/same"]
    finally:
        assert other.close() == []


@pytest.mark.parametrize(
    "path",
    [
        "",
        "a",
        "a/b",
        "/a/",
        "//a",
        "/a//b",
        "/a b",
        "/a\n",
        "/a\nb",
        "/caf\u00e9",
        "/a/b?c",
        "/a*",
        " /a",
        "/a\\b",
    ],
)
def test_invalid_paths_are_rejected(system: ActorSystem, path: str) -> None:
    """A malformed path fails check_path and spawn with a ValueError that names it."""
    with pytest.raises(ValueError, match="invalid actor path"):
        check_path(path)
    built: list[str] = []

    def factory() -> Probe:
        built.append(path)
        return Probe()

    with pytest.raises(ValueError, match="invalid actor path"):
        system.spawn(factory, path)
    assert built == [], "the actor must not be constructed for an invalid path"


@pytest.mark.parametrize("path", [None, b"/a", 1, ["/a"]])
def test_non_string_paths_are_rejected(path: object) -> None:
    """A path that is not a string fails check_path with a ValueError."""
    with pytest.raises(ValueError, match="invalid actor path"):
        check_path(path)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "path", ["/", "/a", "/yard/cameras/cam-01", "/a_b.c@d:e/F-9", "/0/1/2/3/4/5/6/7/8/9"]
)
def test_valid_paths_are_accepted(path: str) -> None:
    """Well-formed paths pass check_path unchanged."""
    assert check_path(path) == path


@given(st.lists(st.text(SEGMENT_CHARS, min_size=1, max_size=8), min_size=1, max_size=6))
def test_any_path_of_valid_segments_is_accepted(segments: list[str]) -> None:
    """Any '/'-joined list of non-empty segments from the allowed alphabet is a valid path."""
    path = "/" + "/".join(segments)
    assert check_path(path) == path


@given(
    st.text(SEGMENT_CHARS, min_size=1, max_size=8),
    st.characters(exclude_characters=SEGMENT_CHARS + "/"),
    st.text(SEGMENT_CHARS, max_size=8),
)
def test_any_character_outside_the_alphabet_is_rejected(before: str, bad: str, after: str) -> None:
    """A segment holding any character outside letters, digits and _.@:- is rejected."""
    with pytest.raises(ValueError, match="invalid actor path"):
        check_path(f"/ok/{before}{bad}{after}")


def test_tell_by_path_delivers_to_the_live_actor(system: ActorSystem) -> None:
    """ActorSystem.tell(path, m) delivers m to the actor holding path."""
    ref = system.spawn(Probe, "/p")
    probe = ref._cell.actor
    assert isinstance(probe, Probe)
    system.tell("/p", "hello")
    assert get(probe.out) == "hello"


def test_tell_to_an_unknown_path_is_a_dead_letter(system: ActorSystem) -> None:
    """ActorSystem.tell to a path nobody holds records a dead letter naming the path."""
    system.tell("/nobody", "hello")
    assert system.dead_letters.count == 1
    letter = system.dead_letters.recent()[0]
    assert letter.recipient == "/nobody"
    assert letter.message == "hello"
    assert letter.reason == "no actor at this path"


def test_actors_lists_refs_in_spawn_order(system: ActorSystem) -> None:
    """actors() lists the registered refs in the order they were spawned."""
    refs = [system.spawn(Probe, f"/p{i}") for i in range(5)]
    assert system.actors() == refs
    assert "actors=5" in repr(system)


def test_stop_all_stops_the_most_recent_first(system: ActorSystem) -> None:
    """stop_all() stops actors in reverse spawn order and waits for each."""
    log: list[str] = []

    class Named(Probe):
        def on_stop(self) -> None:
            log.append(self.path)

    refs = [system.spawn(Named, f"/n{i}") for i in range(4)]
    assert system.stop_all() == []
    assert log == ["/n3", "/n2", "/n1", "/n0"]
    assert not any(r.is_alive() for r in refs)
    assert system.actors() == []


def test_stop_all_abandons_an_actor_that_does_not_stop(system: ActorSystem) -> None:
    """An actor stuck in a handler past the timeout is killed and reported by stop_all()."""
    gate = threading.Event()
    entered = threading.Event()
    stuck = system.spawn(Probe, "/stuck", args={"gate": gate, "entered": entered})
    fine = system.spawn(Probe, "/fine")
    stuck.tell("block")
    assert entered.wait(WAIT)
    try:
        assert system.stop_all(timeout=0.05) == ["/stuck"]
        assert not fine.is_alive()
        assert system.lookup("/stuck") is None
    finally:
        gate.set()
    assert stuck.wait_stopped(WAIT)
    assert stuck.exit_reason is not None
    assert stuck.exit_reason.kind == "killed"


def test_close_stops_the_clock_the_system_made() -> None:
    """close() stops every actor and the MonotonicClock the system created itself."""
    own = ActorSystem("own")
    fired = threading.Event()
    own.clock.call_later(0.0, fired.set)
    assert fired.wait(WAIT)
    ref = own.spawn(Probe, "/p")
    assert own.close() == []
    assert not ref.is_alive()
    assert not any(t.name == "edgeloop-clock" and t.is_alive() for t in threading.enumerate())


def test_close_leaves_an_injected_clock_alone(
    virtual_system: ActorSystem, clock: VirtualClock
) -> None:
    """A system given a clock does not close it: its pending callbacks survive close()."""
    ran: list[int] = []
    assert virtual_system.clock is clock
    clock.call_later(1.0, lambda: ran.append(1))
    virtual_system.close()
    clock.advance(1.0)
    assert ran == [1]


def test_seeded_systems_draw_the_same_numbers() -> None:
    """Two systems with the same seed give the same random sequence."""
    first = ActorSystem("a", seed=7)
    second = ActorSystem("b", seed=7)
    try:
        assert [first.random.random() for _ in range(3)] == [
            second.random.random() for _ in range(3)
        ]
    finally:
        first.close()
        second.close()
