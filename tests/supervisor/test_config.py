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
start_timeout = 30
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
        assert worker.start_wait == 30.0
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
            "[[supervisor.children]]\nid = 'w'\nstart = 'm:A'\nstart_timeout = 'soon'",
            "supervisor.children[0].start_timeout",
            "seconds",
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


LINKED = """
[node]
name = "edge-a"
listen = ["tcp://127.0.0.1:5555", "ipc:///tmp/edge-a.sock", "tcp://127.0.0.1:*"]
peers = [
    "tcp://127.0.0.1:5556",
    { address = "tcp://10.0.0.2:5555", server_key = "keys/edge-b.key" },
]

[node.link]
heartbeat_interval = 0.5
liveness_timeout = 2.0
queue_limit = 50
backoff = { min = 0.2, max = 5.0 }

[node.security]
mode = "auto"
secret_key = "keys/edge-a.key_secret"
allowed = ["keys/edge-b.key"]
revoked = ["keys/cam-07.key"]

[supervisor]
"""


class TestLinks:
    def test_listen_peers_link_and_security_are_parsed(self, tmp_path: Path) -> None:
        """[node] listen, peers, [node.link] and [node.security] become the node's links."""
        node = load_app(write(tmp_path, LINKED)).node
        assert node.linked
        assert node.listen == (
            "tcp://127.0.0.1:5555",
            "ipc:///tmp/edge-a.sock",
            "tcp://127.0.0.1:*",
        )
        plain, keyed = node.peers
        assert (plain.address, plain.server_key) == ("tcp://127.0.0.1:5556", None)
        # Key paths are relative to the app file's folder, the peer's server_key too.
        server_key = str(tmp_path / "keys" / "edge-b.key")
        assert (keyed.address, keyed.server_key) == ("tcp://10.0.0.2:5555", server_key)
        assert node.link is not None
        assert node.link.id == "edge-a"
        assert (node.link.heartbeat_interval, node.link.liveness_timeout) == (0.5, 2.0)
        assert node.link.queue_limit == 50
        assert (node.link.backoff.min, node.link.backoff.max) == (0.2, 5.0)
        assert node.security is not None
        assert node.security.mode == "auto"
        assert node.security.secret_key == tmp_path / "keys" / "edge-a.key_secret"
        assert node.security.allowed == (tmp_path / "keys" / "edge-b.key",)

    def test_peer_server_key_file_is_found_next_to_the_app_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A relative server_key names a file in the app file's folder, whatever the current
        directory; a Z85 key and an absolute path are kept as they are."""
        from edgeloop.transport import keys_generate

        folder = tmp_path / "app"
        public, _ = keys_generate("edge-b", folder / "keys")
        z85 = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
        monkeypatch.chdir(tmp_path)  # not the app file's folder
        folder.joinpath("app.toml").write_text(
            textwrap.dedent(
                f"""
                [node]
                name = "edge-a"
                peers = [
                    {{ address = "tcp://10.0.0.2:5555", server_key = "keys/edge-b.key" }},
                    {{ address = "tcp://10.0.0.3:5555", server_key = "{z85}" }},
                    {{ address = "tcp://10.0.0.4:5555", server_key = "{public}" }},
                ]
                [supervisor]
                """
            )
        )
        relative, key, absolute = load_app(folder / "app.toml").node.peers
        assert relative.server_key == str(public)
        assert key.server_key == z85
        assert absolute.server_key == str(public)

    def test_a_node_without_links(self) -> None:
        """Without listen or peers a node has no links and needs no link settings."""
        node = parse_app({"node": {"name": "solo node"}, "supervisor": {}}).node
        assert not node.linked
        assert (node.listen, node.peers, node.link, node.security) == ((), (), None, None)

    @pytest.mark.parametrize(
        ("node", "key", "words"),
        [
            ({"listen": "tcp://127.0.0.1:1"}, "node.listen", "array"),
            ({"listen": ["udp://127.0.0.1:1"]}, "node.listen[0]", "tcp:// or ipc://"),
            ({"listen": ["tcp://127.0.0.1:1", 5]}, "node.listen[1]", "got 5"),
            ({"listen": ["tcp://127.0.0.1"]}, "node.listen[0]", "HOST:PORT"),
            ({"listen": ["tcp://127.0.0.1:70000"]}, "node.listen[0]", "1-65535"),
            ({"listen": ["ipc://"]}, "node.listen[0]", "no host or path"),
            (
                {"listen": ["ipc:///a", "ipc:///a"]},
                "node.listen[1]",
                "already node.listen[0]",
            ),
            ({"peers": ["tcp://127.0.0.1:*"]}, "node.peers[0]", "a port 1-65535"),
            ({"peers": [{"server_key": "k"}]}, "node.peers[0].address", "missing"),
            (
                {"peers": ["ipc:///a", {"address": "ipc:///b", "server_key": 7}]},
                "node.peers[1].server_key",
                "public key",
            ),
            (
                {"peers": [{"address": "ipc:///b", "serverkey": "k"}]},
                "node.peers[0].serverkey",
                "did you mean 'server_key'",
            ),
            ({"peers": "ipc:///b"}, "node.peers", "array"),
            (
                {"listen": ["ipc:///a"], "link": {"heartbeat_interval": 0}},
                "node.link.heartbeat_interval",
                "> 0",
            ),
            (
                {"listen": ["ipc:///a"], "link": {"heartbeat_interval": 2, "liveness_timeout": 1}},
                "node.link.liveness_timeout",
                "must exceed",
            ),
            (
                {"listen": ["ipc:///a"], "link": {"heartbeat": 1}},
                "node.link.heartbeat",
                "did you mean 'heartbeat_interval'",
            ),
            (
                {"listen": ["ipc:///a"], "link": {"backoff": {"min": -1}}},
                "node.link.backoff.min",
                "> 0",
            ),
            ({"listen": ["ipc:///a"], "link": {"overflow": "spill"}}, "node.link.overflow", "fail"),
            ({"name": "edge a", "listen": ["ipc:///a"]}, "node.name", "its id on its links"),
            ({"name": "edge:a", "peers": ["ipc:///a"]}, "node.name", "invalid id"),
            ({"security": {"mode": "maybe"}}, "node.security.mode", "'auto'"),
            ({"security": {"allowed": "k"}}, "node.security.allowed", "list"),
            ({"security": {"mod": "on"}}, "node.security.mod", "did you mean 'mode'"),
        ],
    )
    def test_link_errors_name_the_key(self, node: dict[str, object], key: str, words: str) -> None:
        """Each invalid link setting is reported under its key in the [node] table."""
        with pytest.raises(ConfigError) as info:
            parse_app({"node": {"name": "edge-a", **node}, "supervisor": {}})
        assert info.value.key == key
        assert words in str(info.value)

    def test_node_arguments_are_checked_like_the_app_file(self) -> None:
        """Node(listen=..., peers=...) refuses bad endpoints and names with the same keys."""
        from edgeloop import Node

        with pytest.raises(ConfigError) as info:
            Node("edge-a", listen=["ipc:///ok", "bogus"])
        assert info.value.key == "node.listen[1]"
        with pytest.raises(ConfigError) as info:
            Node("edge-a", peers=[{"address": "tcp://x"}])
        assert info.value.key == "node.peers[0]"
        with pytest.raises(ConfigError) as info:
            Node("no/slash", peers=["ipc:///b"])
        assert info.value.key == "node.name"
