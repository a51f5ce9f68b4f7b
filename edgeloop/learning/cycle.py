"""KnowledgeCycle: notice a new species, query the cameras, learn it, recompile and push
the cameras' heads (paper section 2; docs/knowledge-cycle.md).

A thin actor shell over pure parts: :mod:`~edgeloop.learning.cycle_core` (the notice
rule, the push tracker, the timeline) and the open-world core (``openworld``,
``head_compiler``). It subscribes to the camera twins' events; everything it waits for
(the twins' event buffers, frame pulls, head acks) is a future whose callback signals the
actor, and every deadline and retry is a timer on the node's clock, so it never blocks.

Each stage is timed on the node's clock and logged (``cycle_noticed``, ``cycle_queried``,
``cycle_learned``, ``cycle_recompiled``, ``cycle_pushed``); the records are answered to
:class:`GetCycles` and shown by ``edgeloop node status`` (service ``status:knowledge``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import structlog

from edgeloop.actors import Actor, Future, send_signal
from edgeloop.errors import ConfigError, KnowledgeError, MailboxFull
from edgeloop.learning._messages import GetBelief
from edgeloop.learning.cycle_config import CycleConfig, Knowledge, resolve
from edgeloop.learning.cycle_core import (
    CycleRecord,
    NoticeWindow,
    PushTracker,
    Sighting,
    max_p_new,
)
from edgeloop.learning.cycle_messages import (
    Batch,
    Beliefs,
    Due,
    Fleet,
    GetCycles,
    NameClass,
    Pulled,
    Pushed,
    remote_request,
)
from edgeloop.learning.cycle_push import CyclePush
from edgeloop.learning.cycle_snapshot import decode_knowledge, encode_knowledge
from edgeloop.messages import Event, EventsBatch, EventsSince, encode_head

if TYPE_CHECKING:  # the open-world core loads JAX (its package does): only on start
    from edgeloop.learning.core.openworld import OpenWorld
    from edgeloop.store import Store

__all__ = ["KnowledgeCycle", "STATUS_SERVICE"]

_log = structlog.get_logger("edgeloop.learning.cycle")

STATUS_SERVICE = "status:knowledge"
"""Where the cycle offers ``node status`` its section (a callable)."""


class KnowledgeCycle(CyclePush, Actor):
    """The open-world knowledge cycle over the cameras of ``config`` (module docstring).

    Subclasses may override :meth:`before_push` (a hook that runs as the push starts).
    """

    def __init__(self, config: CycleConfig) -> None:
        self.config = config
        self.counters: Counter[str] = Counter()
        self.records: list[CycleRecord] = []
        self.window = NoticeWindow(
            config.window, config.shots, config.gate_cameras, config.min_examples
        )
        self.heads: dict[str, int] = {}
        """The head version each camera's latest event was scored with."""
        self._knowledge: Knowledge | None = None
        self._fleet: Fleet | None = None
        self._model: OpenWorld | None = None
        self._current: CycleRecord | None = None
        self._waiting: set[str] = set()
        self._examples: dict[tuple[str, int], np.ndarray] = {}
        self._head: bytes = b""
        self._snapshot: dict[str, Any] = {}
        self._ow: Any = None
        self._learnt: set[str] = set()
        self._p_new: float | None = None
        self._store: Store | None = None
        self._restored_head = 0
        self._compiler: Any = None

    # -- lifecycle ---------------------------------------------------------------------

    def on_start(self) -> None:
        # The model is built by the first message, not here: fitting and calibrating
        # (and loading JAX, through the core's package) must not hold up the tree's start.
        self._fleet = resolve(self.config.fleet)(self.system)
        self._publish()
        self.system.services[STATUS_SERVICE] = self.status
        send_signal(self.ref, Due("init", 0))

    def _init(self) -> None:
        from edgeloop.learning.core import head_compiler, openworld

        self._ow, self._compiler = openworld, head_compiler
        knowledge: Knowledge = resolve(self.config.knowledge)()
        if not np.isfinite(knowledge.model.threshold):
            raise ConfigError("knowledge", "the model's novelty threshold is not calibrated")
        self._knowledge, self._model = knowledge, knowledge.model
        if self.config.store is not None:
            from edgeloop.store import Store

            self._store = Store(self.config.store)
            self._restore()
        if self.config.learner is not None:
            self._after(self.config.learner_every, Due("poll", 0))
        _log.info(
            "cycle_ready",
            labels=list(knowledge.model.labels),
            threshold=round(knowledge.model.threshold, 3),
            head_version=knowledge.head_version,
        )
        self._publish()

    def _restore(self) -> None:
        """Take up the model the store holds (what this cycle learnt before a restart)."""
        knowledge, store = self._knowledge, self._store
        assert knowledge is not None
        assert store is not None
        record = store.get(self.config.key)
        if record is None:
            return
        try:
            model, head = decode_knowledge(record.value, knowledge.model, knowledge.extractor)
        except KnowledgeError as error:
            self.counters["snapshot_refused"] += 1
            _log.warning("cycle_snapshot_refused", error=str(error), field=error.field)
            return
        self._model, self._restored_head = model, head
        self._learnt |= set(model.labels) - set(knowledge.model.labels)
        self.counters["restored"] += 1
        _log.info("cycle_restored", labels=list(model.labels), head_version=head)

    def _save(self, head_version: int) -> None:
        knowledge, store, model = self._knowledge, self._store, self._model
        if store is None or knowledge is None or model is None:
            return
        data = encode_knowledge(model, head_version, knowledge.extractor)
        store.put(self.config.key, data, self._now())

    def on_stop(self) -> None:
        if self._store is not None:
            self._store.close()
        if self.system.services.get(STATUS_SERVICE) == self.status:
            del self.system.services[STATUS_SERVICE]

    # -- messages ----------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        cls = message.__class__
        if cls is Event:
            self._on_event(message)
        elif cls is Batch:
            self._on_batch(message)
        elif cls is Pulled:
            self._on_pulled(message)
        elif cls is Pushed:
            self._on_pushed(message)
        elif cls is Due:
            self._on_due(message)
        elif cls is Beliefs:
            self._on_beliefs(message)
        elif cls is GetCycles:
            return self.status()
        elif cls is NameClass or isinstance(message, dict):  # dict: a remote client's table
            try:
                request = message if cls is NameClass else remote_request(message)
                if isinstance(request, GetCycles):
                    return self.status()
                return self._name(request.old, request.new)
            except KnowledgeError as error:  # answered and counted; the cycle goes on
                self.counters["bad_requests"] += 1
                _log.warning("cycle_bad_request", error=str(error), field=error.field)
                return {"refused": str(error), "field": error.field}
        else:
            self.counters["unknown_message"] += 1
            _log.warning("cycle_unknown_message", kind=type(message).__name__)
        return None

    def status(self) -> dict[str, Any]:
        """The cycle's status table (safe to call from any thread: a snapshot, with the
        counters as they are now)."""
        for _ in range(3):
            try:
                counters = dict(self.counters)
            except RuntimeError:  # a counter was added meanwhile (another thread): again
                continue
            return {**self._snapshot, "counters": counters, "learner_p_new_max": self._p_new}
        return self._snapshot

    def _publish(self) -> None:
        model = self._model
        self._snapshot = {
            "labels": list(model.labels) if model is not None else [],
            "model_version": model.version if model is not None else 0,
            "threshold": round(model.threshold, 4) if model is not None else None,
            "head_version": self._head_version(),
            "running": self._current is not None,
            "counters": dict(self.counters),
            "cycles": [r.to_json() for r in self.records],
        }

    def _now(self) -> float:
        return float(self.system.clock.now())

    # -- 1. notice ---------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        model = self._model
        if model is None or event.device not in self.config.cameras:
            self.counters["events_ignored" if model is not None else "events_before_ready"] += 1
            return
        now = self._now()
        self.heads[event.device] = event.head_version
        if event.label in self._learnt:
            self.counters["events_of_learnt_classes"] += 1  # the cameras know it now
        current = self._current
        if current is not None and current.push is not None:
            if current.push.acked(event.device, event.head_version, now):
                self._acked(current, event.device, "event")
            return
        if current is not None:
            return  # a cycle is running: its examples come from the query
        embedding = np.frombuffer(event.embedding, dtype=np.int8)
        if embedding.size != model.dim:
            self.counters["bad_embedding"] += 1
            if self.counters["bad_embedding"] <= 10:
                _log.warning(
                    "cycle_bad_embedding",
                    device=event.device,
                    seq=event.seq,
                    size=embedding.size,
                    expected=model.dim,
                )
            return
        self.counters["events_scored"] += 1
        score = float(self._ow.novelty_scores(model, embedding[None, :].astype(np.float64))[0])
        sighting = Sighting(
            device=event.device,
            seq=event.seq,
            ts=event.ts,
            embedding=embedding,
            frame=event.frame,
            device_novel=bool(event.extra.get("novel", False)),
            cloud_novel=score > model.threshold,
            head_version=event.head_version,
            arrived=now,
        )
        reason = self.window.offer(sighting)
        if reason is None:
            return
        suspects = self.window.suspects()
        rows = np.stack([s.embedding for s in suspects]).astype(np.float64)
        odds = float(self._ow.track_novelty(model, rows))
        if odds <= self.config.track_threshold:
            self.counters["notices_unconfirmed"] += 1
            self.window.clear()
            return
        self._notice(reason, suspects, odds, now)

    def _poll(self) -> None:
        """Ask the learner for its tracks' beliefs (answered as a signal, never waited)."""
        assert self.config.learner is not None
        ref = self.system.lookup(self.config.learner)
        if ref is None or self._current is not None:
            self._after(self.config.learner_every, Due("poll", 0))
            return
        me = self.ref

        def answered(future: Future[Any]) -> None:
            try:
                belief, live = future.get(0)
            except Exception as error:  # noqa: BLE001 (counted; the next poll tries again)
                send_signal(me, Beliefs(None, None, error))
            else:
                send_signal(me, Beliefs(belief, live, None))

        try:
            ref.ask(GetBelief(), timeout=4 * self.config.learner_every).add_done_callback(answered)
        except MailboxFull as error:
            send_signal(me, Beliefs(None, None, error))

    def _on_beliefs(self, answer: Beliefs) -> None:
        """The learner's beliefs: notice if a live track is NEW with P >= ``p_new``."""
        self._after(self.config.learner_every, Due("poll", 0))
        if answer.error is not None:
            self.counters["learner_poll_failed"] += 1
            return
        try:
            p_new = max_p_new(answer.belief, answer.live)
        except (ValueError, TypeError) as error:
            self.counters["learner_bad_beliefs"] += 1
            _log.warning("cycle_bad_beliefs", error=str(error))
            return
        self._p_new = p_new
        model = self._model
        if p_new < self.config.p_new or self._current is not None or model is None:
            return
        suspects = self.window.suspects()
        if len(suspects) < self.config.min_examples:
            self.counters["learner_new_without_sightings"] += 1
            return
        rows = np.stack([s.embedding for s in suspects]).astype(np.float64)
        odds = float(self._ow.track_novelty(model, rows))
        if odds > 0.0:
            self._notice("learner", suspects, odds, self._now())

    def _notice(self, reason: str, suspects: list[Sighting], odds: float, now: float) -> None:
        record = CycleRecord(
            cycle=len(self.records) + 1,
            reason=reason,
            first_seen=min(s.arrived for s in suspects),
            noticed=now,
            track_log_odds=odds,
        )
        record.end("notice", now)
        self._add(record)
        self.window.clear()
        self._examples = {(s.device, s.seq): s.embedding for s in suspects}
        _log.info(
            "cycle_noticed",
            cycle=record.cycle,
            reason=reason,
            sightings=len(suspects),
            track_log_odds=round(odds, 2),
            wait_for_examples_ms=round((now - record.first_seen) * 1000.0, 1),
        )
        self._query(record, suspects)

    def _add(self, record: CycleRecord) -> None:
        self._current = record
        self.records.append(record)
        del self.records[: -self.config.keep]
        self.counters["cycles"] += 1
        self._publish()

    # -- 2. query ----------------------------------------------------------------------

    def _query(self, record: CycleRecord, suspects: list[Sighting]) -> None:
        cameras = sorted({s.device for s in suspects})
        record.cameras_queried = tuple(cameras)
        since = max(s.ts for s in suspects) - self.config.query_window
        cycle, me = record.cycle, self.ref
        self._waiting = set()
        for camera in cameras:
            ref = self.system.lookup(f"{self.config.devices_at}/{camera}")
            if ref is None:
                self.counters["query_no_twin"] += 1
                continue
            key = f"events:{camera}"
            self._waiting.add(key)
            request = EventsSince(device=camera, since_ts=max(0.0, since), limit=10_000)
            try:
                future: Future[Any] = ref.ask(request, timeout=self.config.query_timeout)
            except MailboxFull as error:
                send_signal(me, Batch(cycle, camera, None, error))
                continue

            def answered(f: Future[Any], camera: str = camera) -> None:
                try:
                    batch, error = f.get(0), None
                except Exception as failure:  # noqa: BLE001 (a typed failure, signalled)
                    batch, error = None, failure
                send_signal(me, Batch(cycle, camera, batch, error))

            future.add_done_callback(answered)
        fleet = self._fleet
        assert fleet is not None
        # The frames go to the record (what a person naming the class looks at); learning
        # does not wait for them: a bulk lane that is slow to open must not hold the cycle.
        framed = [s for s in suspects if s.frame is not None][-self.config.max_frames :]
        for sighting in framed:

            def pulled(nbytes: int, error: BaseException | None) -> None:
                send_signal(me, Pulled(cycle, "", nbytes, error))

            assert sighting.frame is not None
            fleet.pull_frame(sighting.frame, self.config.query_timeout, pulled)
        if not self._waiting:
            self._learn(record)
            return
        self._after(self.config.query_timeout + 0.5, Due("query", cycle))

    def _on_batch(self, answer: Batch) -> None:
        record = self._current
        key = f"events:{answer.device}"
        if record is None or record.cycle != answer.cycle or key not in self._waiting:
            return
        self._waiting.discard(key)
        if answer.error is not None or not isinstance(answer.batch, EventsBatch):
            self.counters["query_failed"] += 1
            _log.warning("cycle_query_failed", device=answer.device, error=str(answer.error))
        else:
            self._take_examples(answer.batch)
        if not self._waiting:
            self._learn(record)

    def _take_examples(self, batch: EventsBatch) -> None:
        """Add the buffered events the model finds novel (of this camera, in the query
        window) to the examples, by (device, seq): the ones already held count once."""
        model = self._model
        assert model is not None
        rows = [
            (e.seq, np.frombuffer(e.embedding, dtype=np.int8))
            for e in batch.events
            if len(e.embedding) == model.dim
        ]
        if not rows:
            return
        x = np.stack([r for _, r in rows]).astype(np.float64)
        novel = self._ow.novelty_scores(model, x) > model.threshold
        for (seq, row), flag in zip(rows, novel, strict=True):
            if flag:
                self._examples.setdefault((batch.device, seq), row)

    def _on_pulled(self, answer: Pulled) -> None:
        record = next((r for r in self.records if r.cycle == answer.cycle), None)
        if answer.error is not None:
            self.counters["frames_failed"] += 1
            _log.warning("cycle_frame_failed", cycle=answer.cycle, error=str(answer.error))
        elif record is not None:
            record.frames_pulled += 1
            record.frame_bytes += answer.nbytes
            self._publish()

    # -- 3. learn, 4. recompile --------------------------------------------------------

    def _learn(self, record: CycleRecord) -> None:
        now = self._now()
        record.end("query", now)
        self._waiting = set()
        examples = list(self._examples.values())[-self.config.max_examples :]
        record.examples = len(examples)
        _log.info(
            "cycle_queried",
            cycle=record.cycle,
            cameras=list(record.cameras_queried),
            examples=len(examples),
            ms=record.stage_ms()["query"],
        )
        model = self._model
        assert model is not None
        if len(examples) < self.config.min_examples:
            self._fail(record, f"learn: {len(examples)} examples, fewer than min_examples")
            return
        try:
            grown, name = self._ow.learn_class(model, np.stack(examples).astype(np.float64))
        except KnowledgeError as error:
            self._fail(record, f"learn: {error}")
            return
        self._model = grown
        self._learnt.add(name)
        record.name, record.model_version = name, grown.version
        record.end("learn", self._now())
        _log.info("cycle_learned", cycle=record.cycle, name=name, version=grown.version)
        self._recompile_and_push(record)

    def _head_version(self) -> int:
        knowledge = self._knowledge
        floor = knowledge.head_version if knowledge is not None else 0
        pushed = max((r.head_version for r in self.records), default=0)
        return max([floor, pushed, self._restored_head, *self.heads.values()])

    def _recompile_and_push(self, record: CycleRecord) -> None:
        knowledge, model = self._knowledge, self._model
        assert knowledge is not None
        assert model is not None
        version = self._head_version() + 1
        try:
            head = self._compiler.compile_openworld_head(
                model, knowledge.held_out, extractor=knowledge.extractor, version=version
            )
        except KnowledgeError as error:
            self._fail(record, f"recompile: {error}")
            return
        self._head = encode_head(head)
        record.head_version, record.head_bytes = version, len(self._head)
        self._save(version)
        record.end("recompile", self._now())
        _log.info(
            "cycle_recompiled",
            cycle=record.cycle,
            head_version=version,
            head_bytes=record.head_bytes,
            labels=list(head.labels),
        )
        cameras = self.config.cameras
        record.push = PushTracker(
            version,
            cameras,
            attempts=self.config.attempts,
            low=self.config.retry_min,
            high=self.config.retry_max,
        )
        self._publish()
        self.before_push(record)
        for camera in cameras:
            self._push_one(record, camera)

    def before_push(self, record: CycleRecord) -> None:
        """A hook for subclasses and fault-injection tests: the push is about to start."""

    def _on_due(self, due: Due) -> None:
        if due.what == "init":
            self._init()
            return
        if due.what == "poll":
            self._poll()
            return
        record = self._current
        if record is None or record.cycle != due.cycle:
            return
        if due.what == "query" and "query" not in record.ends:
            self.counters["query_timed_out"] += 1
            _log.warning("cycle_query_timeout", waiting=sorted(self._waiting))
            self._learn(record)
        elif (
            due.what == "retry"
            and record.push is not None
            and record.push.cameras[due.device].state == "sent"
        ):
            self._push_one(record, due.device)

    def _fail(self, record: CycleRecord, why: str) -> None:
        record.state, record.error = "failed", why
        self.counters["cycles_failed"] += 1
        _log.warning("cycle_failed", cycle=record.cycle, error=why)
        self._current = None
        self._publish()

    def _after(self, delay: float, due: Due) -> None:
        me = self.ref

        def fire() -> None:
            send_signal(me, due)

        self.system.clock.call_later(delay, fire)

    # -- naming ------------------------------------------------------------------------

    def _name(self, old: str, new: str) -> dict[str, Any]:
        model = self._model
        if model is None:
            raise KnowledgeError("the cycle is still building its model; ask again", field="old")
        if self._current is not None and self._current.push is None:
            msg = f"cycle {self._current.cycle} is still learning; name {old!r} once it pushes"
            raise KnowledgeError(msg, field="old")
        renamed = self._ow.name_class(model, old, new)
        superseded = self._current
        if superseded is not None:  # a rename supersedes a push still waiting for cameras
            superseded.state, superseded.error = "partial", "superseded by a rename"
            self._current = None
        self._model = renamed
        self._learnt.add(new)
        now = self._now()
        record = CycleRecord(
            cycle=len(self.records) + 1, reason="named", first_seen=now, noticed=now
        )
        record.name, record.renamed_from, record.model_version = new, old, renamed.version
        for stage in ("notice", "query", "learn"):
            record.end(stage, now)
        self._add(record)
        _log.info("cycle_named", old=old, new=new, version=renamed.version)
        self._recompile_and_push(record)
        return record.to_json()

    def names(self) -> Sequence[str]:
        """The model's class names now."""
        return tuple(self._model.labels) if self._model is not None else ()
