"""Scenario files: the shipped ones load, and every kind of mistake names its key."""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from edgeloop.errors import ConfigError, ScenarioError
from edgeloop.sensors.world import SHIPPED, load_scenario, parse_scenario

MINIMAL: dict[str, Any] = {
    "zones": [
        {"id": "gate", "adjacent": ["lawn"], "exit": True},
        {"id": "lawn", "trap": True},
    ],
    "cameras": [{"id": "cam-1", "zones": ["gate", "lawn"]}],
    "species": [{"name": "skunk", "digit": 3}, {"name": "cat", "digit": 5}],
    "animals": [{"id": "skunk-1", "species": "skunk", "zone": "lawn"}],
}


def _with(path: str, value: Any) -> dict[str, Any]:
    """MINIMAL with the value at a dotted path (``cameras.0.noise``) replaced or added."""
    table = copy.deepcopy(MINIMAL)
    *parents, last = path.split(".")
    node: Any = table
    for part in parents:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    if value is _DELETE:
        del node[int(last) if last.isdigit() else last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return table


_DELETE = object()


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_scenario_loads_by_name(name):
    scenario = load_scenario(name)
    assert scenario.name == name
    assert scenario.description
    assert len(scenario.known) >= 2
    assert any(z.trap for z in scenario.zones)
    covered = [z for c in scenario.cameras for z in c.zones]
    assert len(covered) > len(set(covered)), "some zone is seen by two cameras"


def test_the_opossum_is_the_one_novel_species_and_arrives_later():
    scenario = load_scenario("opossum")
    assert [s.name for s in scenario.species if s.novel] == ["opossum"]
    opossum = next(a for a in scenario.animals if a.species == "opossum")
    assert opossum.enter > 0
    assert {s.name for s in scenario.known} >= {"skunk", "cat"}
    cats = [a for a in scenario.animals if a.species == "cat"]
    assert len(cats) == 2


def test_a_scenario_file_loads_by_path_and_takes_its_name_from_the_stem(tmp_path: Path):
    text = (resources.files("edgeloop.sensors") / "scenarios" / "calm.toml").read_text()
    path = tmp_path / "my-yard.toml"
    path.write_text(text.replace('name = "calm"\n', ""))
    assert load_scenario(path).name == "my-yard"
    assert load_scenario(str(path)) == load_scenario(path)


def test_adjacency_named_on_one_side_counts_both_ways():
    scenario = parse_scenario(MINIMAL)
    assert scenario.zone("lawn").adjacent == ("gate",)
    assert scenario.zone("gate").adjacent == ("lawn",)


def test_defaults_fill_what_a_file_leaves_out():
    scenario = parse_scenario(MINIMAL, default_name="tiny")
    assert scenario.name == "tiny"
    assert scenario.seed == 0
    assert scenario.ticks == 600
    assert scenario.cameras[0].noise == pytest.approx(0.04)
    assert scenario.embedding_dim == 20


@pytest.mark.parametrize(
    ("path", "value", "key", "words"),
    [
        ("seed", -1, "seed", "0 to"),
        ("seed", "seven", "seed", "integer"),
        ("tick", 0, "tick", "> 0"),
        ("duration", float("inf"), "duration", "finite"),
        ("embedding_dim", 100, "embedding_dim", "2 to 32"),
        ("sprite_size", 20, "sprite_size", "multiple of 8"),
        ("colour", "red", "colour", "unknown key"),
        ("zones.0.adjacent", ["lawm"], "zones[0].adjacent[0]", "did you mean 'lawn'"),
        ("zones.0.adjacent", ["gate"], "zones[0].adjacent[0]", "own neighbour"),
        ("zones.1.id", "gate", "zones[1].id", "twice"),
        ("zones.1.id", "la wn", "zones[1].id", "letters"),
        ("zones.0.exit", "yes", "zones[0].exit", "true or false"),
        ("zones.0.exits", True, "zones[0].exits", "did you mean 'exit'"),
        ("cameras.0.zones", ["gate", "porch"], "cameras[0].zones[1]", "no zone 'porch'"),
        ("cameras.0.zones", [], "cameras[0].zones", "at least one zone"),
        ("cameras.0.zones", ["gate", "gate"], "cameras[0].zones[1]", "twice"),
        ("cameras.0.noise", 2.0, "cameras[0].noise", "<= 1.0"),
        ("cameras.0.dropout", -0.1, "cameras[0].dropout", ">= 0.0"),
        ("cameras.0.id", _DELETE, "cameras[0].id", "missing"),
        ("species.0.digit", 10, "species[0].digit", "0 to 9"),
        ("species.1.digit", 3, "species[1].digit", "twice"),
        ("species.0.active", "dusk", "species[0].active", "day, night or any"),
        ("species.1.novel", True, "species", "two known species"),
        ("animals.0.species", "skunc", "animals[0].species", "did you mean 'skunk'"),
        ("animals.0.zone", "roof", "animals[0].zone", "no zone 'roof'"),
        ("animals.0.leave", -1.0, "animals[0].leave", ">= 0.0"),
        ("arrivals", [{"species": "cat"}], "arrivals[0].rate", "missing"),
        ("arrivals", [{"species": "dog", "rate": 0.1}], "arrivals[0].species", "no species"),
        ("arrivals", {"species": "cat"}, "arrivals", "array of tables"),
    ],
)
def test_a_bad_value_is_refused_with_its_key(path, value, key, words):
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(_with(path, value))
    assert caught.value.key == key
    assert words in str(caught.value)
    assert isinstance(caught.value, ConfigError)  # callers may catch the generic kind


def test_missing_tables_and_bad_toml_are_named():
    with pytest.raises(ScenarioError) as caught:
        parse_scenario({k: v for k, v in MINIMAL.items() if k != "cameras"})
    assert caught.value.key == "cameras"
    with pytest.raises(ScenarioError, match="not valid TOML"):
        parse_scenario("zones = [")


def test_a_camera_that_sees_too_many_zones_for_its_frame_is_refused():
    zones = [{"id": f"z{i}", "adjacent": [f"z{i + 1}"] if i < 9 else []} for i in range(10)]
    table = dict(MINIMAL, zones=zones, animals=[])
    table["cameras"] = [{"id": "wide", "zones": [z["id"] for z in zones]}]
    with pytest.raises(ScenarioError, match="too narrow") as caught:
        parse_scenario(table)
    assert caught.value.key == "cameras[0].zones"


def test_visitors_need_an_exit_zone():
    table = _with("zones.0.exit", False)
    table["arrivals"] = [{"species": "cat", "rate": 0.1}]
    with pytest.raises(ScenarioError, match="exit") as caught:
        parse_scenario(table)
    assert caught.value.key == "zones"


def test_unknown_names_and_unreadable_files_say_what_to_do(tmp_path: Path):
    with pytest.raises(ScenarioError, match="choose one of calm, busy"):
        load_scenario("quiet")
    with pytest.raises(ScenarioError, match="cannot read the scenario file"):
        load_scenario(tmp_path / "absent.toml")
    scenario = load_scenario("calm")
    with pytest.raises(ScenarioError, match="no camera 'cam-9'"):
        scenario.camera("cam-9")
