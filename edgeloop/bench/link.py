"""The ``link`` suite: edgeloop's endpoints against raw pyzmq, in the same run; and fuzz.

Results (the ratio is always ``edgeloop / anchor``):

``remote_tell_throughput_tcp``, ``remote_tell_throughput_ipc``
    ``messages.Tell`` per second from a device :class:`~edgeloop.transport.Endpoint`'s
    ``send`` to the node endpoint's ``on_message``, over ``tcp://127.0.0.1`` and
    ``ipc://``; the anchor is a raw pyzmq DEALER that encodes the same Tell with msgspec
    and sends it to a ROUTER whose thread decodes it (goal: ratio >= 0.5);
``remote_ask_latency_p50``, ``remote_ask_latency_p99``
    microseconds per ``Ask`` -> ``Reply`` round trip over tcp, the node answering from
    ``on_message``; the anchor is a raw DEALER/ROUTER round trip of the same messages,
    the ROUTER's thread decoding the Ask and encoding the Reply; each round's
    percentile, median over rounds (goal: ratio <= 1.5);
``vs_ray_ask_latency_p50``
    only where ``ray`` is importable: the same edgeloop ask against a call to a Ray actor
    (goal: ratio <= 0.2). Where it is not, the environment says so.
``vs_ray_actor_ask_latency_p50``
    with it: what a user's remote ask costs, ``node.ref("bench-echo:/echo").ask(...)``
    from this process to an actor in a node process (:mod:`edgeloop.bench._echo_node`),
    against the same Ray actor call (which also crosses processes; the row above has both
    endpoints in this one and no actor). The same goal: ratio <= 0.2.

With Ray, the environment also records ``pyzmq_vs_ray_ask_latency_p50``: the anchor's
bare pyzmq round trip against the same Ray call, the floor under both Ray rows on the
machine that ran them.

Both sides decode into the same typed :mod:`edgeloop.messages` Structs, so the figures
compare the transports (edgeloop's endpoint, link state machine and I/O thread against a
bare socket loop), not the schema. Each of the two anchor sockets has a ``zmq.Context``
of its own, as two peers in two processes would and as the two endpoints do; the
anchor's client sends and receives on the calling thread, and its server blocks in
``recv``, which is as light as ZeroMQ from Python gets. Rounds are interleaved as in the
``actors`` suite.

:func:`fuzz` (``edgeloop bench link --fuzz N``, through :func:`run_fuzz`) throws ``N``
hostile messages of every kind the endpoint must survive at a live node while a
well-behaved device keeps asking it, and reports what was tried, what was rejected by
reason, and crashes (an I/O thread that died or a control peer that stopped answering),
which must be 0.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import importlib
import importlib.metadata
import os
import platform
import queue
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import msgspec
import zmq

from edgeloop import messages
from edgeloop.bench._echo_node import ECHO_NODE, ECHO_PATH
from edgeloop.bench._measure import MESSAGE, interleave, median, percentile, timed_section
from edgeloop.bench._report import Result, SuiteResult
from edgeloop.errors import DecodeError
from edgeloop.supervisor import Node
from edgeloop.transport import Endpoint, EndpointConfig, LinkConfig, PeerAddress, PeerUp

__all__ = ["Sizes", "FULL", "QUICK", "run_link", "fuzz", "run_fuzz", "FUZZ_KINDS"]

NODE_ID = "bench-node"
DEVICE_ID = "bench-device"
TARGET = "/bench/sink"
BODY = messages.encode_body(MESSAGE)
TELL = messages.Tell(to=TARGET, body=BODY)
ASK_TIMEOUT = 5.0
WAIT = 30.0
"""Seconds any single wait may take before the run is declared stuck (never on a healthy run)."""

_HWM = 10_000
"""The anchor's ZeroMQ queues: the same bound the endpoint sets on its sockets."""


@dataclasses.dataclass(frozen=True, slots=True)
class Sizes:
    """How much each result measures: rounds per side, messages and asks per round."""

    rounds: int
    tell_messages: int
    asks: int


FULL = Sizes(rounds=6, tell_messages=20_000, asks=2_000)
"""The sizes whose figures are reported (well under a minute on a 2-core machine)."""
QUICK = Sizes(rounds=2, tell_messages=1_000, asks=100)
"""CI-sized (a second or two): proves the suite runs; its ratios are too noisy to judge by."""


class _Side(Protocol):
    name: str

    def tell_round(self, n: int) -> float: ...

    def ask_round(self, n: int) -> list[float]: ...

    def close(self) -> None: ...


class _Counter:
    """Counts delivered Tells on a receiving thread; ``expect`` arms it for one round."""

    def __init__(self) -> None:
        self.count = 0
        self.target = -1
        self.done = threading.Event()

    def expect(self, n: int) -> None:
        self.count = 0
        self.done.clear()
        self.target = n

    def hit(self) -> None:
        self.count += 1
        if self.count == self.target:
            self.done.set()

    def wait(self) -> None:
        if not self.done.wait(WAIT):
            msg = f"only {self.count} of {self.target} messages arrived within {WAIT} s"
            raise RuntimeError(msg)


def _tell_round(send: Callable[[messages.Tell], object], counter: _Counter, n: int) -> float:
    tell = TELL
    counter.expect(n)
    with timed_section():
        start = time.perf_counter()
        for _ in range(n):
            send(tell)
        counter.wait()
        elapsed = time.perf_counter() - start
    return n / elapsed


def _check_reply(reply: messages.Message, index: int) -> None:
    if type(reply) is not messages.Reply or reply.id != index:
        msg = f"ask {index} was answered with {reply!r}"
        raise RuntimeError(msg)


# -- edgeloop's side ---------------------------------------------------------------------


def _device_of(node: Endpoint, on_message: Callable[[str, messages.Message], None]) -> Endpoint:
    """A device endpoint linked to ``node`` and ready, or closed again and an error."""
    up = threading.Event()
    device = Endpoint(
        EndpointConfig(LinkConfig(DEVICE_ID, role="device"), peers=(PeerAddress(node.bound[0]),)),
        on_message=on_message,
        on_peer=lambda event: up.set() if isinstance(event, PeerUp) else None,
    )
    device.start()
    if not up.wait(WAIT):
        device.close()
        msg = f"the bench device did not reach the node at {node.bound[0]}"
        raise RuntimeError(msg)
    return device


class _EdgeloopSide:
    """A node endpoint listening on ``address`` and a device endpoint connected to it."""

    def __init__(self, address: str) -> None:
        self.name = "edgeloop"
        self.counter = _Counter()
        self.replies: queue.SimpleQueue[messages.Message] = queue.SimpleQueue()
        self.node = Endpoint(
            EndpointConfig(LinkConfig(NODE_ID), listen=(address,)),
            on_message=self._node_message,
        ).start()
        try:
            self.device = _device_of(self.node, lambda _peer, m: self.replies.put(m))
        except BaseException:
            self.node.close()
            raise

    def _node_message(self, peer: str, message: messages.Message) -> None:
        if type(message) is messages.Tell:
            self.counter.hit()
        elif type(message) is messages.Ask:
            self.node.send(peer, messages.Reply(id=message.id, body=message.body))

    def tell_round(self, n: int) -> float:
        send = self.device.send
        return _tell_round(lambda tell: send(NODE_ID, tell), self.counter, n)

    def ask_round(self, n: int) -> list[float]:
        send = self.device.send
        get = self.replies.get
        clock = time.perf_counter_ns
        samples = [0] * n
        with timed_section():
            for index in range(n):
                ask = messages.Ask(id=index, to=TARGET, body=BODY, timeout=ASK_TIMEOUT)
                start = clock()
                send(NODE_ID, ask)
                reply = get(timeout=WAIT)
                samples[index] = clock() - start
                _check_reply(reply, index)
        return [sample / 1e3 for sample in samples]

    def close(self) -> None:
        self.device.close()
        self.node.close()


# -- the anchor: a bare pyzmq loop -------------------------------------------------------


class _ZmqSide:
    """A ROUTER whose thread decodes (and answers Asks), and a DEALER on this thread.

    Each socket has its own ``zmq.Context`` (so its own ZeroMQ I/O thread), as two peers
    in two processes would, and as the two edgeloop endpoints measured against it have.
    """

    def __init__(self, address: str) -> None:
        self.name = "pyzmq+msgspec"
        self.counter = _Counter()
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder: msgspec.msgpack.Decoder[messages.Message] = msgspec.msgpack.Decoder(
            messages.Message
        )
        self._contexts: tuple[zmq.Context[Any], zmq.Context[Any]] = (zmq.Context(), zmq.Context())
        self._router = self._socket(self._contexts[0], zmq.ROUTER)
        self._router.bind(address)
        self._dealer = self._socket(self._contexts[1], zmq.DEALER)
        self._dealer.connect(self._router.getsockopt_string(zmq.LAST_ENDPOINT))
        self._thread = threading.Thread(target=self._serve, name="bench-zmq-router", daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        """Where the ROUTER is bound (``tcp://127.0.0.1:*`` resolved to its port)."""
        return str(self._router.getsockopt_string(zmq.LAST_ENDPOINT))

    @staticmethod
    def _socket(context: zmq.Context[Any], kind: int) -> zmq.Socket[Any]:
        socket: zmq.Socket[Any] = context.socket(kind)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.SNDHWM, _HWM)
        socket.setsockopt(zmq.RCVHWM, _HWM)
        return socket

    def _serve(self) -> None:
        router = self._router
        decode = self._decoder.decode
        encode = self._encoder.encode
        counter = self.counter
        while True:
            identity, payload = router.recv_multipart()
            if not payload:  # the stop sentinel
                return
            message = decode(payload)
            if type(message) is messages.Tell:
                counter.hit()
            elif type(message) is messages.Ask:
                reply = messages.Reply(id=message.id, body=message.body)
                router.send_multipart([identity, encode(reply)])

    def tell_round(self, n: int) -> float:
        send = self._dealer.send
        encode = self._encoder.encode
        return _tell_round(lambda tell: send(encode(tell)), self.counter, n)

    def ask_round(self, n: int) -> list[float]:
        dealer = self._dealer
        encode = self._encoder.encode
        decode = self._decoder.decode
        clock = time.perf_counter_ns
        samples = [0] * n
        with timed_section():
            for index in range(n):
                ask = messages.Ask(id=index, to=TARGET, body=BODY, timeout=ASK_TIMEOUT)
                start = clock()
                dealer.send(encode(ask))
                if not dealer.poll(int(WAIT * 1000)):
                    msg = f"the anchor's ROUTER did not answer ask {index} within {WAIT} s"
                    raise RuntimeError(msg)
                reply = decode(dealer.recv())
                samples[index] = clock() - start
                _check_reply(reply, index)
        return [sample / 1e3 for sample in samples]

    def close(self) -> None:
        self._dealer.send(b"")
        self._thread.join(WAIT)
        self._dealer.close(linger=0)
        self._router.close(linger=0)
        for context in self._contexts:
            context.term()


# -- an actor in another process ----------------------------------------------------------


def _timed_calls(n: int, once: Callable[[int], object]) -> list[float]:
    """Microseconds each of ``once(0)`` ... ``once(n - 1)`` took, in one timed section."""
    clock = time.perf_counter_ns
    samples = [0] * n
    with timed_section():
        for index in range(n):
            start = clock()
            once(index)
            samples[index] = clock() - start
    return [sample / 1e3 for sample in samples]


class _ActorSide:
    """``node.ref("bench-echo:/echo").ask(...)`` from this thread to an actor in a node
    process (:mod:`edgeloop.bench._echo_node`): the remote ask a user makes, actor to
    actor across processes, to set beside a Ray actor call, which crosses them too."""

    def __init__(self) -> None:
        self.name = "edgeloop actor"
        self._process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - the echo node's stderr, closed in close()
        try:
            self.node = Node("bench-probe", listen=("tcp://127.0.0.1:*",)).start()
        except BaseException:
            self._log.close()
            raise
        try:
            endpoint = self.node.endpoint
            assert isinstance(endpoint, Endpoint)
            self._process = subprocess.Popen(
                [sys.executable, "-m", "edgeloop.bench._echo_node", endpoint.bound[0]],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=self._log,
            )
            self._wait_linked()
            self.ref = self.node.ref(f"{ECHO_NODE}:{ECHO_PATH}")
        except BaseException:
            self.close()
            raise

    def _wait_linked(self) -> None:
        deadline = time.monotonic() + WAIT
        tick = threading.Event()  # never set: a timed wait between looks
        while ECHO_NODE not in self.node.peers():
            process = self._process
            if (process is not None and process.poll() is not None) or time.monotonic() > deadline:
                self._log.seek(0)
                tail = self._log.read()[-2000:].decode(errors="replace")
                msg = f"the bench's echo node did not link within {WAIT} s; its log:\n{tail}"
                raise RuntimeError(msg)
            tick.wait(0.01)

    def tell_round(self, n: int) -> float:  # pragma: no cover - only asks are compared
        raise NotImplementedError

    def ask_round(self, n: int) -> list[float]:
        ask = self.ref.ask

        def once(index: int) -> None:
            reply = ask(BODY, timeout=ASK_TIMEOUT).get(WAIT)
            if reply != BODY:
                msg = f"ask {index} to the echo actor was answered with {reply!r}"
                raise RuntimeError(msg)

        return _timed_calls(n, once)

    def close(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            try:
                assert process.stdin is not None
                process.stdin.close()  # the echo node stops when its input ends
                process.wait(WAIT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.node.stop()
        self._log.close()


# -- Ray, where it is installed ------------------------------------------------------------


def _ray() -> Any | None:
    try:
        return importlib.import_module("ray")
    except ImportError:
        return None


class _RaySide:
    """A Ray actor whose method returns the body it was given; asked from this thread."""

    def __init__(self, ray: Any) -> None:
        self.name = "ray"
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)

        class Echo:
            def echo(self, body: bytes) -> bytes:
                return body

        self._actor = ray.remote(Echo).remote()
        ray.get(self._actor.echo.remote(BODY))

    def tell_round(self, n: int) -> float:  # pragma: no cover - only asks are compared
        raise NotImplementedError

    def ask_round(self, n: int) -> list[float]:
        get = self._ray.get
        echo = self._actor.echo
        return _timed_calls(n, lambda _index: get(echo.remote(BODY)))

    def close(self) -> None:
        self._ray.kill(self._actor)
        if self._started:
            self._ray.shutdown()


# -- the suite -----------------------------------------------------------------------------


@contextlib.contextmanager
def _ipc_address() -> Iterator[str]:
    folder = tempfile.mkdtemp(prefix="edgeloop-bench-")
    try:
        yield f"ipc://{folder}/link.sock"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _tell(name: str, a: _Side, b: _Side, sizes: Sizes) -> Result:
    got_a, got_b = interleave(
        sizes.rounds,
        lambda: a.tell_round(sizes.tell_messages),
        lambda: b.tell_round(sizes.tell_messages),
    )
    return Result(name, "msg/s", median(got_a), median(got_b), b.name, ">= 0.5")


def _asks(a: _Side, b: _Side, sizes: Sizes) -> tuple[list[list[float]], list[list[float]]]:
    return interleave(
        sizes.rounds, lambda: a.ask_round(sizes.asks), lambda: b.ask_round(sizes.asks)
    )


def _percentile_of(rounds: list[list[float]], q: float) -> float:
    return median([percentile(samples, q) for samples in rounds])


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def environment(sizes: Sizes, *, quick: bool, ray: bool) -> dict[str, Any]:
    """What produced the figures: the actors suite's environment, plus the guest's halt
    polling, pyzmq, libzmq, msgspec and Ray (or why ``vs_ray_ask_latency_p50`` is
    missing)."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "switch_interval_s": sys.getswitchinterval(),
        "guest_halt_poll_ns": _halt_poll_ns(),
        "edgeloop": _version("edgeloop"),
        "pyzmq": zmq.pyzmq_version(),
        "libzmq": zmq.zmq_version(),
        "msgspec": _version("msgspec"),
        "ray": _version("ray")
        if ray
        else "not installed: vs_ray_ask_latency_p50 and vs_ray_actor_ask_latency_p50 omitted",
        "quick": quick,
        **dataclasses.asdict(sizes),
    }


HALT_POLL = "/sys/module/haltpoll/parameters/guest_halt_poll_ns"


def _halt_poll_ns(path: str = HALT_POLL) -> int | None:
    """How long an idle vCPU of this KVM guest polls before it halts (``None`` where the
    guest has no haltpoll driver). At 0 every hand-over to a sleeping thread waits for a
    halted vCPU, which sets the floor of every round trip here (``docs/link-protocol.md``)."""
    try:
        with open(path, encoding="ascii") as file:
            return int(file.read().strip())
    except (OSError, ValueError):
        return None


def run_link(quick: bool = False, *, sizes: Sizes | None = None) -> SuiteResult:
    """Run the ``link`` suite: :data:`QUICK` sizes for CI, :data:`FULL` otherwise."""
    sizes = sizes or (QUICK if quick else FULL)
    ray = _ray()
    env = environment(sizes, quick=quick, ray=ray is not None)
    results: list[Result] = []
    last: list[Result] = []  # the Ray comparison, where there is one, comes last
    for transport in ("tcp", "ipc"):
        with contextlib.ExitStack() as stack:
            edgeloop = _EdgeloopSide(_address(transport, stack))
            stack.callback(edgeloop.close)
            anchor = _ZmqSide(_address(transport, stack))
            stack.callback(anchor.close)
            results.append(_tell(f"remote_tell_throughput_{transport}", edgeloop, anchor, sizes))
            if transport != "tcp":
                continue
            got = _asks(edgeloop, anchor, sizes)
            for q in (50, 99):
                results.append(_latency(f"remote_ask_latency_p{q}", q, got, anchor, "<= 1.5"))
            if ray is not None:
                ray_side = _RaySide(ray)
                stack.callback(ray_side.close)
                got = _asks(edgeloop, ray_side, sizes)
                last.append(_latency("vs_ray_ask_latency_p50", 50, got, ray_side, "<= 0.2"))
                env["pyzmq_vs_ray_ask_latency_p50"] = _floor(anchor, ray_side, sizes)
                actor_side = _ActorSide()
                stack.callback(actor_side.close)
                got = _asks(actor_side, ray_side, sizes)
                last.append(_latency("vs_ray_actor_ask_latency_p50", 50, got, ray_side, "<= 0.2"))
    return SuiteResult("link", (*results, *last), env)


def _floor(anchor: _Side, ray_side: _Side, sizes: Sizes) -> float:
    """The anchor's bare pyzmq round trip against the Ray actor call, p50 ratio: what the
    Ray rows would be if edgeloop cost nothing over a socket. It goes in the environment,
    not the results: it measures the machine, not edgeloop (on an idle 2-core VM each
    hand-over wakes a halted core, and this ratio alone is above 0.2)."""
    got = _asks(anchor, ray_side, sizes)
    return round(_percentile_of(got[0], 50) / _percentile_of(got[1], 50), 3)


def _address(transport: str, stack: contextlib.ExitStack) -> str:
    if transport == "tcp":
        return "tcp://127.0.0.1:*"
    return stack.enter_context(_ipc_address())


def _latency(
    name: str, q: float, got: tuple[list[list[float]], list[list[float]]], anchor: _Side, goal: str
) -> Result:
    """A latency result: each round's ``q``-th percentile, median over rounds."""
    edgeloop, other = got
    return Result(
        name, "µs", _percentile_of(edgeloop, q), _percentile_of(other, q), anchor.name, goal
    )


# -- fuzz --------------------------------------------------------------------------------

FUZZ_KINDS = (
    "random_bytes",
    "truncated",
    "wrong_type",
    "unknown_kind",
    "bad_version",
    "extra_frames",
    "empty_frame",
    "oversized",
    "data_before_hello",
)
"""The hostile inputs :func:`fuzz` cycles through, one after the other."""

FUZZ_MAX_SIZE = 64 * 1024
"""The fuzzed node's ``max_message_size``: small, so oversized payloads are cheap."""

_FUZZERS = 16
"""Raw DEALERs the hostile messages are spread over (none of them ever shakes hands)."""

_CHECK_EVERY = 100
"""Hostile messages between two checks that the node is alive and its device served."""

_SAMPLES: tuple[messages.Message, ...] = (
    TELL,
    messages.Ask(id=1, to=TARGET, body=BODY, timeout=1.0),
    messages.Reply(id=1, body=BODY),
    messages.Heartbeat(seq=3),
    messages.Welcome(peer="x", protocol=1, heartbeat_interval=1.0, liveness_timeout=3.0),
    messages.ErrorReply(code="bad_state", message="who are you?"),
    messages.Event(
        device="cam-01",
        seq=1,
        ts=1.0,
        zone="gate",
        label="truck",
        score=0.9,
        embedding=bytes(64),
        head_version=1,
        config_version=1,
    ),
    messages.Command(id=2, device="cam-01", name="pan", args={"deg": 10}),
    messages.DownNotice(id=3, path="/yard/fusion", reason_kind="crash"),
)
"""Valid messages to cut short or to send before the handshake."""

_FIELDS = sorted({name for cls in messages.KINDS.values() for name in cls.__struct_fields__})


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(8 if depth < 2 else 6)
    if choice == 0:
        return None
    if choice == 1:
        return rng.random() < 0.5
    if choice == 2:
        return rng.randint(-(2**63), 2**64 - 1)
    if choice == 3:
        return rng.uniform(-1e12, 1e12)
    if choice == 4:
        return "".join(rng.choice("ab:/-_.é\x00z") for _ in range(rng.randrange(12)))
    if choice == 5:
        return rng.randbytes(rng.randrange(16))
    if choice == 6:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {str(rng.randrange(100)): _random_value(rng, depth + 1) for _ in range(rng.randrange(4))}


class _Hostile:
    """What one hostile message is: its frames, and the reason it must be counted under."""

    __slots__ = ("frames", "reason")

    def __init__(self, frames: list[bytes], reason: str) -> None:
        self.frames = frames
        self.reason = reason


def _rejection(payload: bytes) -> str | None:
    """The reason the node will give for a one-frame ``payload``, or ``None`` when it
    is not hostile (it decodes to a Hello or a Close, both legal first messages)."""
    try:
        message = messages.decode(payload, max_size=FUZZ_MAX_SIZE)
    except DecodeError as error:
        return error.reason
    if isinstance(message, messages.Hello | messages.Close):
        return None
    return "bad_state"  # any other message before the handshake


def _hostile(kind: str, rng: random.Random, serial: int) -> _Hostile | None:
    """One hostile message of ``kind``, or ``None`` if this draw happened to be valid."""
    encode = msgspec.msgpack.encode
    if kind == "extra_frames":
        first = messages.encode(rng.choice(_SAMPLES))
        return _Hostile(
            [first, *(rng.randbytes(8) for _ in range(rng.randint(1, 3)))], "bad_frames"
        )
    if kind == "oversized":
        return _Hostile(
            [bytes([rng.randrange(256)]) * (FUZZ_MAX_SIZE + rng.randint(1, 64))], "oversized"
        )
    if kind == "empty_frame":
        payload = b""
    elif kind == "random_bytes":
        payload = rng.randbytes(rng.randrange(300))
    elif kind == "truncated":
        wire = messages.encode(rng.choice(_SAMPLES))
        payload = wire[: rng.randrange(len(wire))]
    elif kind in ("wrong_type", "unknown_kind"):
        fields = {rng.choice(_FIELDS): _random_value(rng) for _ in range(rng.randint(1, 5))}
        tag = (
            rng.choice(sorted(messages.KINDS))
            if kind == "wrong_type"
            else f"x-{rng.randrange(10**6)}"
        )
        payload = encode({**fields, "kind": tag})
    elif kind == "bad_version":
        protocol: Any = 0 if rng.random() < 0.5 else rng.choice([-1, 2**64 - 1, "1", 1.5])
        wire_hello = {
            "kind": "hello",
            "peer": f"fuzz-{serial}",
            "role": "device",
            "protocol": protocol,
        }
        payload = encode(wire_hello)
    else:  # data_before_hello
        payload = messages.encode(rng.choice(_SAMPLES))
    reason = _rejection(payload)
    if kind == "bad_version" and reason is None:
        reason = "bad_version"  # a Hello that decodes here offers protocol 0
    return None if reason is None else _Hostile([payload], reason)


class _FuzzTarget:
    """The fuzzed node (echoing Tells to their sender), its well-behaved device, and the
    raw DEALERs that attack it."""

    def __init__(self) -> None:
        self.received: queue.SimpleQueue[messages.Message] = queue.SimpleQueue()
        self.node = Endpoint(
            EndpointConfig(
                LinkConfig(NODE_ID), listen=("tcp://127.0.0.1:*",), max_message_size=FUZZ_MAX_SIZE
            ),
            on_message=self._echo,
        ).start()
        try:
            self.device = _device_of(self.node, lambda _peer, m: self.received.put(m))
        except BaseException:
            self.node.close()
            raise
        self.context: zmq.Context[Any] = zmq.Context()
        self.fuzzers: list[zmq.Socket[Any]] = []
        try:
            for _ in range(_FUZZERS):
                socket: zmq.Socket[Any] = self.context.socket(zmq.DEALER)
                socket.setsockopt(zmq.LINGER, 0)
                socket.connect(self.node.bound[0])
                self.fuzzers.append(socket)
        except BaseException:
            self.close()
            raise
        self.serial = 0
        self.answers = 0

    def _echo(self, peer: str, message: messages.Message) -> None:
        self.node.send(peer, message)

    def healthy(self) -> bool:
        """Whether the node's thread runs and its device gets an echo back in time."""
        if not self.node.alive:
            return False
        self.serial += 1
        probe = messages.Tell(to=TARGET, body=messages.encode_body(self.serial))
        if not self.device.send(NODE_ID, probe):
            return False
        try:
            return self.received.get(timeout=5.0) == probe
        except queue.Empty:
            return False

    def drain(self) -> None:
        """Read what the node answered the fuzzers, so their queues never fill."""
        for socket in self.fuzzers:
            while socket.poll(0):
                socket.recv_multipart()
                self.answers += 1

    def close(self) -> None:
        for socket in self.fuzzers:
            socket.close(linger=0)
        self.context.term()
        self.device.close()
        self.node.close()


def fuzz(n: int, *, seed: int = 0) -> dict[str, Any]:
    """Throw ``n`` hostile messages (every kind of :data:`FUZZ_KINDS` in turn) at a live
    node while its device keeps exchanging Tells with it; report what was tried, what the
    node rejected by reason, and ``crashes``: checks (every 100 messages and at the end)
    that found the node's I/O thread dead or its device unanswered. It must be 0, and
    ``unaccounted`` (messages tried but not counted as rejected) too."""
    if n < 0:
        msg = f"n must be >= 0, got {n}"
        raise ValueError(msg)
    rng = random.Random(seed)
    target = _FuzzTarget()
    tried: dict[str, int] = dict.fromkeys(FUZZ_KINDS, 0)
    expected: collections.Counter[str] = collections.Counter()
    checks = crashes = 0
    start = time.perf_counter()
    try:
        before = collections.Counter(dict(target.node.statistics().rejected))
        sent = 0
        while sent < n:
            kind = FUZZ_KINDS[sent % len(FUZZ_KINDS)]
            hostile = _hostile(kind, rng, sent)
            if hostile is None:
                continue  # this draw was a valid message: draw again
            target.fuzzers[sent % _FUZZERS].send_multipart(hostile.frames)
            tried[kind] += 1
            expected[hostile.reason] += 1
            sent += 1
            target.drain()
            if sent % _CHECK_EVERY == 0:
                checks += 1
                crashes += not target.healthy()
        checks += 1
        crashes += not target.healthy()
        rejected = _settled(target, before, sum(expected.values()))
        target.drain()
    finally:
        target.close()
    return {
        "suite": "link",
        "mode": "fuzz",
        "seed": seed,
        "tried": sum(tried.values()),
        "tried_by_kind": tried,
        "rejected": dict(sorted(rejected.items())),
        "rejected_total": sum(rejected.values()),
        "expected": dict(sorted(expected.items())),
        "unaccounted": sum((expected - rejected).values()),
        "answers": target.answers,
        "checks": checks,
        "crashes": crashes,
        "elapsed_s": round(time.perf_counter() - start, 3),
        "environment": environment(QUICK, quick=True, ray=False)
        | {"max_message_size": FUZZ_MAX_SIZE},
    }


def _settled(
    target: _FuzzTarget, before: collections.Counter[str], total: int
) -> collections.Counter[str]:
    """The node's rejections since ``before``, once all ``total`` are counted (or WAIT)."""
    deadline = time.monotonic() + WAIT
    pause = threading.Event()
    while True:
        now = collections.Counter(dict(target.node.statistics().rejected))
        now.subtract(before)
        rejected = +now
        if sum(rejected.values()) >= total or time.monotonic() > deadline:
            return rejected
        target.drain()
        pause.wait(0.01)


def run_fuzz(n: int) -> dict[str, Any]:
    """``edgeloop bench link --fuzz N``: :func:`fuzz` with seed 0; a JSON-ready dict."""
    return fuzz(n)
