"""App files: parsed into specs, and every mistake named by its key path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from edgeloop.errors import ConfigError
from edgeloop.supervisor import (
    Backoff,
    ChildType,
    Restart,
    Strategy,
    check_starts,
    load_app,
    parse_app,
)

GOOD = """
[node]
name = "edge-a"
seed = 3

[supervisor]
strategy = "one_for_all"
intensity = 3
period = 5.0
backoff = { min = 0.5, max = 4.0 }

[[supervisor.children]]
id = "worker"
start = "tests.supervisor.sample_actors:Echo"
args = { greeting = "hi" }
restart = "transient"
shutdown = 2.5
mailbox = { capacity = 10, overflow = "drop_newest" }

[[supervisor.children]]
id = "cameras"
type = "supervisor"
strategy = "rest_for_one"

[[supervisor.children.children]]
id = "cam-01"
start = "tests.supervisor.sample_actors:Echo"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "app.toml"
    path.write_text(textwrap.dedent(text))
    return path


def error_for(text: str) -> ConfigError:
    import tomllib

    with pytest.raises(ConfigError) as info:
        parse_app(tomllib.loads(textwrap.dedent(text)))
    return info.value


class TestParse:
    def test_good_file_becomes_specs(self, tmp_path: Path) -> None:
        """A valid app file yields the node, the root flags and the nested child specs."""
        app = load_app(write(tmp_path, GOOD))
        assert app.node.name == "edge-a"
        assert app.node.seed == 3
        assert app.flags.strategy is Strategy.ONE_FOR_ALL
        assert app.flags.intensity == 3
        assert app.flags.backoff == Backoff(min=0.5, max=4.0)
        worker, cameras = app.children
        assert worker.restart is Restart.TRANSIENT
        assert worker.shutdown == 2.5
        assert worker.args == {"greeting": "hi"}
        assert worker.mailbox.capacity == 10
        assert cameras.type is ChildType.SUPERVISOR
        assert cameras.shutdown == "infinity"
        assert cameras.args["flags"].strategy is Strategy.REST_FOR_ONE
        assert [c.id for c in cameras.args["children"]] == ["cam-01"]

    def test_defaults(self) -> None:
        """Missing tables and keys take OTP's defaults."""
        app = parse_app({"supervisor": {}})
        assert app.node.name == "edgeloop"
        assert app.flags.strategy is Strategy.ONE_FOR_ONE
        assert (app.flags.intensity, app.flags.period) == (1, 5.0)
        assert app.children == ()

    def test_check_starts_accepts_good_file(self, tmp_path: Path) -> None:
        """Every start of a valid file imports and its args bind."""
        check_starts(load_app(write(tmp_path, GOOD)).children)


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("[supervisor]\nstrategy = 'one_for_none'", "supervisor.strategy", "one_for_one"),
        ("[supervisor]\nintensity = -1", "supervisor.intensity", ">= 0"),
        ("[supervisor]\nperiod = 0", "supervisor.period", "> 0"),
        ("[supervisor]\nstrtegy = 'one_for_one'", "supervisor.strtegy", "did you mean 'strategy'"),
        ("[node]\nname = ''\n[supervisor]", "node.name", "non-empty"),
        ("[node]\nseed = 'x'\n[supervisor]", "node.seed", "integer"),
        ("[node]\nname = 'a'", "supervisor", "missing"),
        ("[supervisor]\nbackoff = { min = 2.0, max = 1.0 }", "supervisor.backoff.max", ">="),
        (
            "[[supervisor.children]]\nstart = 'm:A'",
            "supervisor.children[0].id",
            "missing",
        ),
        (
            "[[supervisor.children]]\nid = 'w'",
            "supervisor.children[0].start",
            "missing",
        ),
        (
            "[[supervisor.children]]\nid = 'w'\nstart = 'no_colon'",
            "supervisor.children[0].start",
            "module:Name",
        ),
        (
            "[[supervisor.children]]\nid = 'w'\nstart = 'm:A'\nrestart = 'sometimes'",
            "supervisor.children[0].restart",
            "permanent",
        ),
        (
            "[[supervisor.children]]\nid = 'w'\nstart = 'm:A'\nshutdown = -1",
            "supervisor.children[0].shutdown",
            "> 0",
        ),
        (
            "[[supervisor.children]]\nid = 'w'\nstart = 'm:A'\nmailbox = { capacity = 0 }",
            "supervisor.children[0].mailbox.capacity",
            ">= 1",
        ),
        (
            "[[supervisor.children]]\nid = 'w'\nstart = 'm:A'\n"
            "[[supervisor.children]]\nid = 'w'\nstart = 'm:B'",
            "supervisor.children[1].id",
            "already the id of supervisor.children[0]",
        ),
        (
            "[[supervisor.children]]\nid = 'a/b'\nstart = 'm:A'",
            "supervisor.children[0].id",
            "path segment",
        ),
        (
            "[[supervisor.children]]\nid = 'c'\ntype = 'supervisor'\n"
            "[[supervisor.children.children]]\nid = 'x'\nstart = 'm:A'\nrestart = 'never'",
            "supervisor.children[0].children[0].restart",
            "temporary",
        ),
        (
            "[[supervisor.children]]\nid = 'c'\ntype = 'supervisor'\nstart = 'm:A'",
            "supervisor.children[0].start",
            "drop start",
        ),
        (
            "[[supervisor.children]]\nid = 'w'\nstart = 'm:A'\nstrategy = 'one_for_all'",
            "supervisor.children[0].strategy",
            "unknown key",
        ),
    ],
)
def test_errors_name_the_key(text: str, key: str, words: str) -> None:
    """Each invalid value is reported with its dotted key path and what is wrong."""
    error = error_for(text)
    assert error.key == key
    assert words in str(error)
    assert str(error).startswith(key)


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    """A missing file and invalid TOML are both ConfigErrors that say which file."""
    with pytest.raises(ConfigError, match="cannot read"):
        load_app(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[supervisor\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_app(bad)


@pytest.mark.parametrize(
    ("start", "args", "key", "words"),
    [
        ("tests.supervisor.no_such_module:A", {}, "start", "cannot import"),
        ("tests.supervisor.sample_actors:Missing", {}, "start", "has no 'Missing'"),
        ("tests.supervisor.sample_actors:NotAnActor", {}, "start", "not an edgeloop.Actor"),
        ("tests.supervisor.sample_actors:Echo", {"greting": "x"}, "args", "greting"),
    ],
)
def test_check_starts_names_the_child(
    start: str, args: dict[str, str], key: str, words: str
) -> None:
    """Imports and argument names are checked up front, naming the child's key."""
    app = parse_app(
        {
            "supervisor": {
                "children": [{"id": "w", "start": "m:A"}, {"id": "x", "start": start, "args": args}]
            }
        }
    )
    with pytest.raises(ConfigError) as info:
        check_starts(app.children[1:], "supervisor.children")
    assert info.value.key == f"supervisor.children[0].{key}"
    assert words in str(info.value)
