"""The device agent: a :class:`DeviceCore` with a link, a clock and two threads.

::

    agent = DeviceAgent(load_device("cam-1.toml"), source=SyntheticSource(seed=1))
    agent.start()          # connects (and keeps reconnecting) to its node
    ...
    agent.stop()

The *agent thread* owns the core: it pulls observations from the source as their time
comes (source seconds, scaled by ``speed``), handles what the node sends, sends events
from the outbox while the link is up, and reports status. The endpoint's I/O thread only
puts link events and messages on the agent's inbox, so it never waits on the core. The
*frame thread* owns the bulk lane: it takes the node's lane offer
(``Endpoint.open_bulk_sender``), writes requested frames into the node's ring, and answers
each ``FrameRequest`` with ``FrameReady`` once the frame is written. Both threads stop
with :meth:`DeviceAgent.stop`.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from edgeloop.clock import Clock, MonotonicClock
from edgeloop.errors import EdgeloopError, LinkError
from edgeloop.messages import FrameReady, FrameRef, Message
from edgeloop.sensors.device._config import DeviceConfig
from edgeloop.sensors.device._core import DeviceCore, PushFrame, ServeFrame
from edgeloop.sensors.device._heads import HeadLoader
from edgeloop.sensors.device._journal import Journal
from edgeloop.sensors.device._outbox import OutboxStatistics
from edgeloop.sensors.device._ring import RingStatistics
from edgeloop.sensors.device._settings import CameraSettings
from edgeloop.sensors.device._source import Observation, ObservationSource, TrapView
from edgeloop.sensors.device._state import StateFile
from edgeloop.transport import (
    CurveSecurity,
    Endpoint,
    EndpointConfig,
    LinkConfig,
    PeerAddress,
    PeerDown,
    PeerUp,
    ReconnectBackoff,
    SecurityConfig,
    bulk,
    load_public,
)

__all__ = ["DeviceAgent", "AgentStatistics"]

_log = structlog.get_logger("edgeloop.sensors.device")

_IDLE = 0.5
"""Longest the agent thread waits without a reason to wake (a safety net, not a tick)."""

_FRAME_SEND_TIMEOUT = 2.0
"""Seconds the frame thread waits for a credit before it answers a request with an error."""

_LANE_WAIT = 1.0
"""Seconds the frame thread waits for the node's lane offer at a time."""

_LANE_CHECK = 0.25
"""How often an idle frame thread checks that its lane is still open."""

_IDLE_TURN = object()
"""What the frame thread takes when no job came in time."""


@dataclasses.dataclass(frozen=True, slots=True)
class AgentStatistics:
    """A snapshot of the agent: its link, outbox, ring and counters."""

    device: str
    boot: int
    connected: bool
    node: str | None
    source_done: bool
    head_version: int
    config_version: int
    state: str
    outbox: OutboxStatistics
    ring: RingStatistics
    counters: Mapping[str, int]
    frames_sent: int
    lane: str | None


class DeviceAgent:
    """One device's agent (see the module docstring)."""

    def __init__(
        self,
        config: DeviceConfig,
        *,
        source: ObservationSource | None = None,
        trap_view: TrapView | None = None,
        head_loader: HeadLoader | None = None,
        clock: Clock | None = None,
        start_at: float | None = None,
        initial_head: bytes | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self._source = source
        self._trap_view = trap_view
        self._head_loader = head_loader
        self._initial_head = initial_head
        self._clock = clock or MonotonicClock()
        self._own_clock = clock is None
        self._start_at = start_at
        self._speed = config.source.speed
        self._inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._peeked: tuple[str, Any] | None = None  # taken by a wait, handled next turn
        self._jobs: queue.SimpleQueue[ServeFrame | PushFrame | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._core: DeviceCore | None = None
        self._endpoint: Endpoint | None = None
        self._threads: list[threading.Thread] = []
        self._node: str | None = None
        self._connected = False
        self._source_done = source is None
        self._next: Observation | None = None
        self._t0 = 0.0
        self._origin = 0.0
        self._sender: bulk.Sender | None = None
        self._links = 0  # link-ups so far: a lane opened on an earlier link is stale
        self._lane_link = 0
        self._frames_sent = 0
        self.failure: BaseException | None = None
        """What stopped the agent thread, if it failed (a full disk, a bug)."""

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> DeviceAgent:
        """Recover the journal and state, connect, and start the threads (once: an agent
        that stopped is done; build a new one, which recovers the same journal)."""
        if self._core is not None:
            raise EdgeloopError(f"device {self.name!r} was started already")
        endpoint_config = self._endpoint_config()  # reads the key files: fail before the journal
        data = self.config.data_dir
        journal = None
        if data is not None:
            journal = Journal.open(data / "journal.bin", fsync=self.config.outbox.fsync)
        try:
            core = DeviceCore(
                self.config,
                head_loader=self._head_loader,
                journal=journal,
                state_file=StateFile(data / "state.msgpack" if data is not None else None),
                trap_view=self._trap_view,
                initial_head=self._initial_head,
                device_time=self.device_time,
                check_settings=self._source_check(),
            )
        except BaseException:
            if journal is not None:
                journal.close()
            raise
        self._core = core
        if self._source is not None:
            settings = core.settings
            self._source.configure(zones=settings.zones, exposure=settings.exposure)
        self._t0 = self._clock.now()
        if self._start_at is not None:
            # negative while start_at is ahead: the source waits for its second 0
            self._origin = (time.time() - self._start_at) * self._speed
        self._endpoint = Endpoint(
            endpoint_config,
            on_message=self._on_message,
            on_peer=self._on_peer,
        )
        try:
            self._endpoint.start()
        except BaseException:
            core.close()
            raise
        for target, name in ((self._run, "agent"), (self._serve_frames, "frames")):
            thread = threading.Thread(target=target, name=f"edgeloop-{name}:{self.name}")
            thread.daemon = True
            self._threads.append(thread)
            thread.start()
        _log.info("device_started", device=self.name, kind=self.config.kind, boot=core.boot)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the threads, say goodbye to the node, close the journal (idempotent)."""
        if self._stopping.is_set() and not self._threads:
            return
        self._stopping.set()
        self._inbox.put(("stop", None))
        self._jobs.put(None)
        deadline = time.monotonic() + timeout
        agent = self._threads[0] if self._threads else None
        if agent is not None:
            agent.join(max(0.0, deadline - time.monotonic()))
        if self._endpoint is not None:
            self._endpoint.close()
        for thread in self._threads[1:]:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()
        if self._sender is not None:
            self._sender.close()
            self._sender = None
        if self._core is not None:
            stats = self.statistics()
            _log.info(
                "device_stopped",
                device=self.name,
                events=stats.outbox.next_seq - 1,
                unacked=stats.outbox.depth,
                dropped=stats.outbox.dropped,
                resent=stats.outbox.resent,
                frames_evicted=stats.ring.evicted,
                frames_sent=stats.frames_sent,
            )
            self._core.close()
        if self._own_clock:
            self._clock.close()

    def __enter__(self) -> DeviceAgent:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def core(self) -> DeviceCore:
        """The agent's core (read it through :meth:`statistics` from other threads)."""
        if self._core is None:
            raise EdgeloopError(f"device {self.name!r} is not started; call start() first")
        return self._core

    def statistics(self) -> AgentStatistics:
        core = self.core
        with self._lock:
            sender = self._sender
            return AgentStatistics(
                device=self.name,
                boot=core.boot,
                connected=self._connected,
                node=self._node,
                source_done=self._source_done and self._next is None,
                head_version=core.head_version,
                config_version=core.config_version,
                state=core.trap.state if core.trap is not None else "ok",
                outbox=core.outbox.statistics(),
                ring=core.ring.statistics(),
                counters=dict(core.counters),
                frames_sent=self._frames_sent,
                lane=sender.provider if sender is not None else None,
            )

    def device_time(self) -> float:
        """Now, in source seconds (what events and status reports are stamped with)."""
        return self._origin + (self._clock.now() - self._t0) * self._speed

    # -- the endpoint's callbacks (its I/O thread: never block) ------------------------

    def _on_message(self, peer: str, message: Message) -> None:
        self._inbox.put(("msg", message))

    def _on_peer(self, event: PeerUp | PeerDown) -> None:
        if isinstance(event, PeerUp):
            self._inbox.put(("up", event.peer))
        else:
            self._inbox.put(("down", event.reason))

    def _source_check(self) -> Callable[[CameraSettings], object] | None:
        """The source's own check of new settings (a ConfigError for what the simulated
        camera cannot do, such as more zones than fit its frame), if it has one."""
        check = getattr(self._source, "check", None)
        if check is None:
            return None

        def run(settings: CameraSettings) -> object:
            return check(zones=settings.zones, exposure=settings.exposure)

        return run

    def _endpoint_config(self) -> EndpointConfig:
        config = self.config
        link = LinkConfig(
            id=config.name,
            role="device",
            accept_roles=frozenset({"node"}),
            heartbeat_interval=config.heartbeat_interval,
            liveness_timeout=config.liveness_timeout,
            backoff=ReconnectBackoff(min=0.05, max=2.0),
        )
        server_key = None
        if config.node_key is not None:
            server_key = load_public(config.node_key, key="device.security.node_key")
        security = None
        if config.secret_key is not None or config.security_mode == "on":
            security = CurveSecurity(
                SecurityConfig(mode=config.security_mode, secret_key=config.secret_key)
            )
        elif config.security_mode != "off":
            security = CurveSecurity(SecurityConfig(mode=config.security_mode))
        return EndpointConfig(
            link=link,
            peers=(PeerAddress(config.node, server_key=server_key),),
            security=security,
        )

    # -- the agent thread --------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as error:  # noqa: BLE001 (reported, and the agent stops)
            self.failure = error
            _log.critical("device_failed", device=self.name, exc_info=error)
            self._stopping.set()

    def _loop(self) -> None:
        core = self.core
        source = self._source
        if source is not None:
            self._next = source.next()
            if self._next is None:
                self._source_done = True
        while not self._stopping.is_set():
            now = self._clock.now()
            with self._lock:
                self._take_inbox(core, now)
                if self._stopping.is_set():
                    break
                self._observe_due(core, now, self.device_time())
                if self._connected:
                    self._send_all(core.pending_events(now))
                    self._send_all(core.tick(now))
            self._wait(core)

    def _take_inbox(self, core: DeviceCore, now: float) -> None:
        while True:
            if self._peeked is not None:
                (what, item), self._peeked = self._peeked, None
            else:
                try:
                    what, item = self._inbox.get_nowait()
                except queue.Empty:
                    return
            if what == "msg":
                before = core.settings
                try:
                    actions = core.receive(item, now)
                except EdgeloopError:
                    raise  # the journal or state file failed: the device cannot go on
                except Exception as error:  # noqa: BLE001 (one bad message must not stop it)
                    core.counters["handler_failed"] += 1
                    _log.error("device_message_failed", device=self.name, exc_info=error)
                    continue
                self._dispatch(actions)
                if core.settings != before and self._source is not None:
                    settings = core.settings
                    self._source.configure(zones=settings.zones, exposure=settings.exposure)
            elif what == "up":
                self._node, self._connected = item, True
                self._links += 1
                _log.info("device_linked", device=self.name, node=item)
                self._send_all(core.link_up(now))
            elif what == "down":
                self._connected = False
                core.link_down()
                _log.info("device_unlinked", device=self.name, reason=item)
            elif what == "stop":
                return

    def _observe_due(self, core: DeviceCore, now: float, t: float) -> None:
        source = self._source
        budget = 256  # then let messages in: a device far behind catches up in slices
        while self._next is not None and self._next.t <= t and budget:
            observation = self._next
            if observation.t >= self._origin or self._start_at is None:
                self._dispatch(core.observe(observation, now))
            assert source is not None
            self._next = source.next()
            budget -= 1
        if self._next is None and not self._source_done:
            self._source_done = True
            _log.info("source_done", device=self.name)

    def _dispatch(self, actions: list[Any]) -> None:
        for action in actions:
            if isinstance(action, ServeFrame | PushFrame):
                self._jobs.put(action)
            else:
                self._send(action)

    def _send_all(self, messages: list[Any]) -> None:
        for message in messages:
            self._send(message)

    def _send(self, message: Message) -> None:
        endpoint, node = self._endpoint, self._node
        if endpoint is None or node is None or not endpoint.send(node, message):
            self.core.counters["unsent"] += 1

    def _wait(self, core: DeviceCore) -> None:
        """Sleep on the inbox until a message, the next observation or a deadline."""
        now = self._clock.now()
        due = [now + _IDLE]
        if self._next is not None:
            due.append(now + (self._next.t - self.device_time()) / self._speed)
        deadline = core.next_deadline()
        if deadline is not None and self._connected:
            due.append(deadline)
        wait = max(0.0, min(due) - now)
        if wait <= 0 or self._peeked is not None:
            return
        try:
            self._peeked = self._inbox.get(timeout=wait)  # handled first by the next turn
        except queue.Empty:
            return

    # -- the frame thread --------------------------------------------------------------

    def _serve_frames(self) -> None:
        while not self._stopping.is_set():
            idle = _LANE_CHECK if self._sender is not None or not self._connected else 0.05
            job: object
            try:
                job = self._jobs.get(timeout=idle)
            except queue.Empty:
                job = _IDLE_TURN
            if job is None:
                break
            self._check_lane()
            if not isinstance(job, ServeFrame | PushFrame):
                if self._sender is None and self._connected:
                    self._open_lane(_LANE_WAIT)
                continue
            try:
                self._serve(job)
            except Exception as error:  # noqa: BLE001 (a failed frame must not end the thread)
                _log.error("frame_serve_failed", device=self.name, exc_info=error)

    def _check_lane(self) -> None:
        """Drop a lane the node closed or whose link went down since it opened, so the
        node's next offer is taken at once (it waits for our accept)."""
        sender = self._sender
        if sender is None:
            return
        stale = self._lane_link != self._links
        if not stale:
            try:
                sender.wait_credits(0, timeout=0.0)  # takes credits; raises for a lost lane
            except EdgeloopError:
                stale = True
        if stale:
            with self._lock:
                self._sender = None
            sender.close()
            _log.info("bulk_lane_closed", device=self.name)

    def _open_lane(self, timeout: float) -> bulk.Sender | None:
        endpoint, node = self._endpoint, self._node
        if endpoint is None or node is None:
            return None
        try:
            sender = endpoint.open_bulk_sender(
                node, bulk.BulkConfig(provider=self.config.bulk_provider), timeout=timeout
            )
        except (LinkError, EdgeloopError, OSError) as error:
            if "no bulk-lane offer" not in str(error) and not self._stopping.is_set():
                _log.warning("bulk_lane_failed", device=self.name, error=str(error)[:200])
            return None
        with self._lock:
            self._sender = sender
            self._lane_link = self._links
        _log.info("bulk_lane_open", device=self.name, provider=sender.provider)
        return sender

    def _reply(self, message: Message) -> None:
        with self._lock:
            self._send(message)

    def _count(self, name: str) -> None:
        with self._lock:
            self.core.counters[name] += 1

    def _serve(self, job: ServeFrame | PushFrame) -> None:
        held = self.core.ring.get(job.ref.frame_id)
        if held is None:
            if isinstance(job, ServeFrame):
                error = f"frame {job.ref.frame_id} was evicted before it could be sent"
                self._reply(FrameReady(id=job.request.id, error=error))
            return
        ref, frame = held
        if isinstance(job, PushFrame):  # a push never waits: no lane or no credit, skip it
            if self._sender is None or not self._write(self._sender, ref, frame, 0.0):
                self._count("frames_not_pushed")
            return
        error = (
            "no bulk lane is open: the node must offer one (BulkOffer) before it requests frames"
        )
        for _attempt in range(2):  # a lane lost since the last frame: once more on a new one
            sender = self._sender or self._open_lane(_FRAME_SEND_TIMEOUT)
            if sender is None:
                break
            try:
                if self._write(sender, ref, frame, _FRAME_SEND_TIMEOUT):
                    self._reply(FrameReady(id=job.request.id, ref=ref))
                    return
                error = f"no credit on the bulk lane within {_FRAME_SEND_TIMEOUT} s"
                break
            except EdgeloopError as lost:
                error = f"bulk lane lost: {lost}"
        self._reply(FrameReady(id=job.request.id, error=error))

    def _write(self, sender: bulk.Sender, ref: FrameRef, frame: Any, timeout: float) -> bool:
        """Write one frame; False when no credit came in time. A lost lane is forgotten
        (the next frame opens a new one) and its error raised."""
        try:
            bulk.send_frame(sender, ref, frame, timeout=timeout)
        except TimeoutError:
            return False
        except EdgeloopError as error:
            with self._lock:
                self._sender = None
            sender.close()
            _log.warning("bulk_lane_lost", device=self.name, error=str(error)[:200])
            raise
        with self._lock:
            self._frames_sent += 1
        return True
