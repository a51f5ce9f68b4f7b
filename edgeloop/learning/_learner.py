"""The Learner actor: micro-batches events through the jitted filter, decides, steers the
cameras, snapshots itself, and recovers from its snapshot after a restart.

Micro-batching: the first event after a batch queues a flush signal behind whatever is in
the mailbox; every event handled before that signal joins the batch. So a quiet learner
answers each event alone, and a busy one takes everything pending in one dispatch (one
at a time is the slow path). Events are checked as they arrive; a bad one is counted
under the field that was wrong, logged and dropped, and nothing else is disturbed.

Durability (DESIGN.md §5): a snapshot is taken right after a flush, so the events its
ledger lists are exactly the events in its filter state. After a restart the learner
loads the newest snapshot and asks every twin for the events after the ledger's floor
(:class:`EventsSince`); what it already has is dropped, so nothing is lost or counted twice.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import math
import operator
from typing import TYPE_CHECKING, Any

import numpy as np
import structlog

from edgeloop.actors import Actor, send_signal
from edgeloop.clock import Timer
from edgeloop.errors import EdgeloopError, LearningError, ObservationError
from edgeloop.learning._config import LearnerConfig
from edgeloop.learning._messages import (
    Action,
    Decision,
    EventsSince,
    FusedObservation,
    GetBelief,
    GetStatistics,
    ParamsUpdate,
    RepairRequest,
)
from edgeloop.learning._reconfigure import most_uncertain
from edgeloop.learning._seqs import SeqLedger
from edgeloop.learning._snapshot import decode_snapshot, encode_snapshot
from edgeloop.learning._tracks import TrackTable, layout
from edgeloop.messages import Command, ConfigDesired, Event

if TYPE_CHECKING:
    from edgeloop.learning._kernel import Kernel, Rows
    from edgeloop.learning._learn import Trainer
    from edgeloop.store import Store

__all__ = ["Learner", "LearnerStatistics"]

_log = structlog.get_logger("edgeloop.learning")

_DAY = 86_400.0
_FIELDS = operator.attrgetter("device", "zone", "label", "score", "ts", "embedding")


class _Flush:
    """Signal: apply the pending micro-batch."""


class _RepairLost:
    """Signal: repair request ``number`` got no ParamsUpdate (refused, the repair actor
    crashed or stopped, or ``repair_timeout`` passed); ``why`` says which."""

    __slots__ = ("number", "why")

    def __init__(self, number: int, why: str) -> None:
        self.number = number
        self.why = why


class _Due:
    """Signal: a scheduled job is due (``snapshot``, ``repair``, ``reconfigure``)."""

    __slots__ = ("job",)

    def __init__(self, job: str) -> None:
        self.job = job


_FLUSH = _Flush()


@dataclasses.dataclass(frozen=True, slots=True)
class LearnerStatistics:
    """What a learner has done since it was first started (counters live in snapshots)."""

    events: int
    observations: int
    batches: int
    duplicates: int
    rejected: dict[str, int]
    snapshots: int
    restored_version: int | None
    replay_requests: int
    commands: int
    reconfigurations: int
    params_version: int
    windows: int
    svi_fits: int
    repairs: int
    stale_repairs: int
    repairs_lost: int
    repairs_skipped: int
    undelivered: int
    tracks_started: int
    seq: dict[str, int]


class Learner(Actor):
    """Keeps the yard's posterior current event by event; see the module docstring.

    Takes :class:`~edgeloop.messages.Event` (one camera's report) and
    :class:`FusedObservation` (several cameras' reports of one occurrence); answers
    :class:`GetStatistics`; adopts :class:`ParamsUpdate` from a GibbsRepair actor.
    """

    def __init__(self, config: LearnerConfig) -> None:
        self.config = config
        self._camera = {name: i for i, name in enumerate(config.cameras)}
        self._zone = {name: i for i, name in enumerate(config.zones)}
        self._label = {name: i for i, name in enumerate(config.labels)}
        self._unknown = config.dims.classes
        self._dim = config.dims.dim
        # the pending micro-batch: every report, flat, and where fused groups start
        # and end ((first, past_last) for groups of more than one report; rare)
        self._pending: list[Event] = []
        self._groups: list[tuple[int, int]] = []
        self._pending_rows = 0
        self._flush_queued = False
        self._ledger = SeqLedger()
        self._tracks = TrackTable(
            config.tracks,
            config.dims.dim,
            config.adjacent(),
            gate=config.gate,
            tick=config.tick,
            same_sigma=config.same_sigma,
            diff_sigma=config.diff_sigma,
        )
        self._kernel: Kernel | None = None
        self._store: Store | None = None
        self._timers: dict[str, Timer] = {}
        self._actions: dict[str, int] = {}
        self._trainer: Trainer | None = None
        self._repair_out = False
        self._repair_number = 0  # of the request out, to match its outcome
        # False while a batch is half applied: a crash then must not be snapshotted, or
        # the ledger would list events the filter never took in (the restart replays them)
        self._consistent = True
        self._pointed: dict[str, str] = {}
        self._latest = -math.inf
        self._counts: collections.Counter[str] = collections.Counter()
        self._rejected: collections.Counter[str] = collections.Counter()
        self._restored: int | None = None
        self._params_version = 0
        self._command_id = 0
        self._config_version = 0

    # -- lifecycle -------------------------------------------------------------------

    def on_start(self) -> None:
        """Build the filter, load the newest snapshot, compile, ask the twins for what
        the snapshot lacks, and schedule the periodic jobs (all before the first event)."""
        from edgeloop.learning import core  # JAX loads here, off the event path
        from edgeloop.learning._kernel import Kernel, TrapLoss

        config = self.config
        traps = [
            TrapLoss(
                zone=self._zone[t.zone],
                targets=tuple(self._label[s] for s in t.targets),
                protected=tuple(self._label[s] for s in t.protected),
            )
            for t in config.traps
        ]
        if config.prior is not None:
            from edgeloop.learning._learn import Trainer

            self._trainer = Trainer(
                config.dims,
                config.prior,
                seed=config.seed,
                sweeps=config.sweeps,
                shape=config.window_shape or (1, 1),
            )
            params = self._trainer.params()
        else:
            spec = config.spec
            params = spec if isinstance(spec, core.Params) else core.params(spec)
        self._kernel = Kernel(config.dims, params, config.tracks, traps)
        if config.store is not None:
            from edgeloop.store import Store

            self._store = Store(config.store)
            self._restore()
        self._kernel.warm(config.warm_shapes)
        if self._trainer is not None and config.window_shape is not None:
            self._trainer.warm()
        for device, twin in config.sources.items():
            request = EventsSince(
                device=device, after_seq=self._ledger.floor(device), reply_to=self.path
            )
            self._send(twin, request)
            self._counts["replay_requests"] += 1
        for job, every in (
            ("snapshot", config.snapshot_every if self._store is not None else None),
            ("learn", config.learn_every),
            ("svi", config.svi_every),
            ("repair", config.repair_every if config.repair is not None else None),
            ("reconfigure", config.reconfigure_every if config.steerable else None),
        ):
            if every is not None:
                self._schedule(job, every)

    def on_stop(self) -> None:
        """Apply what is pending, take a last snapshot, close the store (after a crash
        in the middle of a batch: only close the store; the last snapshot stands)."""
        for timer in self._timers.values():
            timer.cancel()
        try:
            if self._consistent and self._kernel is not None and self._pending:
                self._flush()
            if self._consistent and self._store is not None and self._kernel is not None:
                self._snapshot()
        finally:
            if self._store is not None:
                self._store.close()

    # -- messages --------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        kind = message.__class__
        if kind is Event:
            return self._take_one(message)
        if kind is _Flush:
            self._flush_queued = False
            self._flush()
        elif kind is FusedObservation:
            return self._take(message.reports)
        elif kind is _Due:
            self._due(message.job)
        elif kind is ParamsUpdate:
            self._adopt(message)
        elif kind is _RepairLost:
            self._repair_lost(message)
        elif kind is GetStatistics:
            self._flush()  # so the answer counts every event handled before the ask
            return self.statistics()
        elif kind is GetBelief:
            self._flush()
            assert self._kernel is not None
            return self._kernel.belief(), self._tracks.live(self._latest)
        else:
            return self._reject(
                "message", f"a Learner takes Event or FusedObservation, not {kind.__name__}"
            )
        return None

    def _take_one(self, event: Event) -> LearningError | None:
        """One camera's report: the common case, kept short (it runs per event): the
        checks of :meth:`_problem` inline, which is asked only to name what was wrong."""
        if not (
            event.device in self._camera
            and event.zone in self._zone
            and len(event.embedding) == self._dim
            and 0.0 <= event.score <= 1.0
            and math.isfinite(event.ts)
        ):
            problem = self._problem(event)
            assert problem is not None
            return self._reject(*problem)
        if not self._ledger.take(event.device, event.seq):
            self._counts["duplicates"] += 1
            return None
        self._pending.append(event)
        self._pending_rows += 1
        if self._pending_rows >= self.config.max_batch:
            self._flush()
        elif not self._flush_queued:
            self._flush_queued = True
            send_signal(self.ref, _FLUSH)
        return None

    def _take(self, reports: tuple[Event, ...]) -> LearningError | None:
        """The reports of one fused observation: all checked, the new ones kept."""
        seen: set[str] = set()
        for report in reports:
            problem = self._problem(report)
            if problem is None and report.device in seen:
                problem = ("device", f"{report.device!r} reports twice in one group")
            if problem is not None:
                return self._reject(*problem)
            seen.add(report.device)
        fresh = tuple(r for r in reports if self._ledger.take(r.device, r.seq))
        if len(fresh) < len(reports):
            self._counts["duplicates"] += len(reports) - len(fresh)
            if not fresh:
                return None
        if len(fresh) > 1:
            self._groups.append((len(self._pending), len(self._pending) + len(fresh)))
        self._pending.extend(fresh)
        self._pending_rows += 1
        self._schedule_flush()
        return None

    def _schedule_flush(self) -> None:
        if self._pending_rows >= self.config.max_batch:
            self._flush()
        elif not self._flush_queued:
            self._flush_queued = True
            send_signal(self.ref, _FLUSH)

    def _problem(self, report: Event) -> tuple[str, str] | None:
        """The field of ``report`` that is wrong and why, or None (cheap: per event)."""
        if report.__class__ is not Event:
            return "reports", f"expected Events, got {type(report).__name__}"
        if report.device not in self._camera:
            return "device", f"{report.device!r} is not one of my cameras"
        if report.zone not in self._zone:
            return "zone", f"{report.zone!r} is not a zone of the yard"
        if len(report.embedding) != self._dim:
            return "embedding", f"{len(report.embedding)} bytes, expected {self._dim}"
        if not 0.0 <= report.score <= 1.0:
            return "score", f"{report.score!r} is not in [0, 1]"
        if not math.isfinite(report.ts):
            return "ts", f"{report.ts!r} is not a finite time"
        return None

    def _reject(self, field: str, problem: str) -> LearningError:
        self._rejected[field] += 1
        _log.warning("learner_rejected", path=self.path, field=field, problem=problem)
        return ObservationError(field, problem)

    # -- the batch -------------------------------------------------------------------

    def _flush(self) -> None:
        if not self._pending:
            return
        assert self._kernel is not None
        reports, groups = self._pending, self._groups
        self._pending, self._groups, self._pending_rows = [], [], 0
        self._consistent = False
        rows, ts, zone, emb = self._rows(reports, groups)
        assignment = self._tracks.assign(ts, zone, emb)
        rows.track, rows.start, rows.steps = (
            assignment.track,
            assignment.start,
            assignment.steps,
        )
        self._latest = max(self._latest, float(ts.max()))
        live = self._tracks.live(self._latest)
        grid = layout(assignment, ts)
        actions, risks, p_target, p_protected = self._kernel.run(rows, grid, live)
        self._counts["batches"] += 1
        self._counts["observations"] += len(ts)
        self._counts["events"] += len(reports)
        if self._trainer is not None:
            self._trainer.keep(rows, ts)
        self._consistent = True
        self._decide(actions, risks, p_target, p_protected, reports)

    def _rows(
        self, reports: list[Event], groups: list[tuple[int, int]]
    ) -> tuple[Rows, np.ndarray, np.ndarray, np.ndarray]:
        """The batch as arrays, in one pass over the reports (per-event Python is the
        cost that matters here): rows (one per observation) and their reports, with
        each row's time, first zone and mean embedding code for track association."""
        from edgeloop.learning._kernel import Rows

        m, d = len(reports), self._dim
        devices, zones, labels, scores, stamps, codes = zip(*map(_FIELDS, reports), strict=True)
        camera = np.fromiter(map(self._camera.__getitem__, devices), np.int32, m)
        zone = np.fromiter(map(self._zone.__getitem__, zones), np.int32, m)
        label = np.fromiter(
            map(self._label.get, labels, itertools.repeat(self._unknown, m)), np.int32, m
        )
        code = np.frombuffer(b"".join(codes), np.int8).reshape(m, d).astype(np.float32)
        stamp = np.array(stamps, np.float64)
        if not groups:  # one report per row: no grouping to do
            row = np.arange(m)
            ts, first_zone, mean = stamp, zone, code
        else:
            first = np.ones(m, bool)
            for lo, hi in groups:
                first[lo + 1 : hi] = False
            row = np.cumsum(first) - 1
            starts = np.flatnonzero(first)
            ts = np.minimum.reduceat(stamp, starts)
            first_zone = zone[starts]
            mean = np.add.reduceat(code, starts) / np.diff(np.r_[starts, m])[:, None]
        b = len(ts)
        tod = (np.mod(ts, _DAY) / _DAY * self.config.dims.tod_bins).astype(np.int32)
        tod = np.minimum(tod, self.config.dims.tod_bins - 1)
        rows = Rows(
            track=np.zeros(b, np.int64),
            start=np.zeros(b, bool),
            steps=np.zeros(b, np.int32),
            tod=tod,
            row=row,
            camera=camera,
            report_zone=zone,
            report_label=label,
            report_score=np.array(scores, np.float32),
            report_embedding=code * np.float32(self.config.embedding_scale),
            cameras=self.config.dims.cameras,
        )
        return rows, ts, first_zone, mean

    def _decide(
        self,
        actions: np.ndarray,
        risks: np.ndarray,
        p_target: np.ndarray,
        p_protected: np.ndarray,
        reports: list[Event],
    ) -> None:
        now = self.system.clock.now()
        batch = self._counts["batches"]
        last: dict[str, int] = {}
        if self.config.decisions_to:
            for report in reports:
                if report.seq > last.get(report.device, 0):
                    last[report.device] = report.seq
        for i, trap in enumerate(self.config.traps):
            action = int(actions[i])
            name: Action = "close" if action == 1 else "open"
            if self._actions.get(trap.device, 0) != action:
                self._actions[trap.device] = action
                self._command_id += 1
                self._send(trap.twin, Command(id=self._command_id, device=trap.device, name=name))
                self._counts["commands"] += 1
                _log.info("trap_command", trap=trap.device, action=name, p=float(p_target[i]))
            if self.config.decisions_to:
                decision = Decision(
                    trap=trap.device,
                    action=name,
                    p_target=float(p_target[i]),
                    p_protected=float(p_protected[i]),
                    expected_loss=float(risks[i][action]),
                    ts=now,
                    batch=batch,
                    seq=last,
                )
                for address in self.config.decisions_to:
                    self._send(address, decision)

    # -- scheduled jobs --------------------------------------------------------------

    def _schedule(self, job: str, every: float) -> None:
        ref = self.ref

        def due() -> None:
            send_signal(ref, _Due(job))

        self._timers[job] = self.system.clock.call_later(every, due)

    def _due(self, job: str) -> None:
        if job == "snapshot":
            self._flush()
            self._snapshot()
            self._schedule(job, self.config.snapshot_every or 1.0)
        elif job == "learn":
            self._learn()
            self._schedule(job, self.config.learn_every or 1.0)
        elif job == "svi":
            self._fit_quality()
            self._schedule(job, self.config.svi_every or 1.0)
        elif job == "repair":
            self._request_repair()
            self._schedule(job, self.config.repair_every)
        elif job == "reconfigure":
            self._reconfigure()
            self._schedule(job, self.config.reconfigure_every or 1.0)

    def _snapshot(self) -> None:
        assert self._kernel is not None
        assert self._store is not None
        header = {
            "ledger": self._ledger.to_json(),
            "actions": self._actions,
            "counts": dict(self._counts),
            "rejected": dict(self._rejected),
            "latest": self._latest if math.isfinite(self._latest) else None,
            "params_version": self._params_version,
            "command_id": self._command_id,
            "config_version": self._config_version,
            "pointed": self._pointed,
            "tracks_started": self._tracks.started,
        }
        arrays = {**self._kernel.to_arrays(), **self._tracks.to_arrays()}
        if self._trainer is not None:
            arrays.update(self._trainer.to_arrays())
        data = encode_snapshot(header, arrays)
        try:
            version = self._store.put(self.config.key, data, self.system.clock.now())
        except EdgeloopError as error:  # a full disk must not stop the learner
            self._counts["snapshot_failures"] += 1
            _log.error("learner_snapshot_failed", path=self.path, error=str(error))
            return
        self._counts["snapshots"] += 1
        if self.config.keep_snapshots is not None:  # the store would grow without bound
            try:
                self._store.compact(keep_last=self.config.keep_snapshots, key=self.config.key)
            except EdgeloopError as error:  # old snapshots stay: harmless, logged
                _log.warning("learner_compact_failed", path=self.path, error=str(error))
        _log.debug("learner_snapshot", path=self.path, version=version, bytes=len(data))

    def _restore(self) -> None:
        assert self._kernel is not None
        assert self._store is not None
        record = self._store.get(self.config.key)
        if record is None:
            return
        try:
            header, arrays = decode_snapshot(record.value)
            ledger = SeqLedger.from_json(header["ledger"])
            missing = {"actions", "counts", "rejected", "latest", "params_version"} - set(header)
            if missing:
                raise LearningError(f"snapshot header lacks {sorted(missing)}")
            self._kernel.load_arrays(arrays)  # each loads all its arrays or none
            self._tracks.load_arrays(arrays)
            if self._trainer is not None:
                self._trainer.load_arrays(arrays)
        except (LearningError, KeyError, ValueError, TypeError, IndexError) as error:
            _log.error("learner_snapshot_unreadable", version=record.version, error=str(error))
            self._counts["snapshot_failures"] += 1
            return
        self._ledger = ledger
        self._actions = {k: int(v) for k, v in header["actions"].items()}
        self._counts.update(header["counts"])
        self._rejected.update(header["rejected"])
        self._latest = header["latest"] if header["latest"] is not None else -math.inf
        self._params_version = int(header["params_version"])
        self._command_id = int(header["command_id"])
        self._config_version = int(header["config_version"])
        self._pointed = dict(header["pointed"])
        self._tracks.started = int(header["tracks_started"])
        self._restored = record.version
        _log.info("learner_restored", path=self.path, version=record.version)

    def _learn(self) -> None:
        """Streaming VB over the rows since the last window (not while a repair is out:
        its answer replaces the last window, so nothing may be learnt on top of it)."""
        assert self._kernel is not None
        if self._trainer is None or self._repair_out:
            return
        self._flush()
        if self._trainer.learn(self._kernel.belief()):
            self._adopt_posterior("learn")

    def _fit_quality(self) -> None:
        if self._trainer is not None and not self._repair_out and self._trainer.fit_quality():
            self._adopt_posterior("svi")

    def _request_repair(self) -> None:
        assert self.config.repair is not None
        trainer = self._trainer
        if trainer is None or trainer.last is None or self._repair_out:
            return
        local = self.system.lookup(self.config.repair) if self.config.repair[0] == "/" else None
        if local is not None and not local.is_idle():
            # busy (another learner's window, a compile): a request would wait
            # behind that, and windows wait for it; try again when next due
            self._counts["repairs_skipped"] += 1
            return
        window = trainer.last
        request = RepairRequest(
            version=self._params_version,
            base=window.base,
            window=window.seqs,
            assign=window.assign,
            reply_to=self.path,
        )
        self._repair_out = True
        self._repair_number += 1
        self._ask_repair(self.config.repair, request, self._repair_number)

    def _ask_repair(self, address: str, request: RepairRequest, number: int) -> None:
        """Send ``request`` as an ask, so that its fate comes back: the answer itself is
        a ParamsUpdate told to ``reply_to``; a refusal, a crash or stop of the repair
        actor, or no answer within ``repair_timeout`` comes back as ``_RepairLost``
        (or the learner would wait for it forever, learning nothing meanwhile)."""
        ref = self.ref

        def done(future: Any) -> None:
            try:
                answer = future.get(0)
            except Exception as error:  # noqa: BLE001 - a dead, crashed or slow repair
                send_signal(ref, _RepairLost(number, f"{type(error).__name__}: {error}"))
                return
            if answer is not None:  # a refusal (ObservationError), answered not raised
                send_signal(ref, _RepairLost(number, f"refused: {answer}"))

        try:
            future = self.system.ref(address).ask(request, timeout=self.config.repair_timeout)
        except (EdgeloopError, ValueError) as error:
            self._counts["undelivered"] += 1
            _log.warning("learner_send_failed", to=address, error=str(error))
            self._repair_lost(_RepairLost(number, str(error)))
            return
        future.add_done_callback(done)

    def _repair_lost(self, lost: _RepairLost) -> None:
        """The request out came to nothing: count it and learn again (a late answer
        is still checked against ``params_version``)."""
        if not self._repair_out or lost.number != self._repair_number:
            return
        self._repair_out = False
        self._counts["repairs_lost"] += 1
        _log.warning("learner_repair_lost", path=self.path, why=lost.why)

    def _adopt(self, update: ParamsUpdate) -> None:
        self._repair_out = False
        if self._trainer is None or update.base_version != self._params_version:
            self._counts["stale_repairs"] += 1
            return
        self._flush()  # the pending batch was sent under the old parameters
        try:
            self._trainer.adopt(update.posterior)
        except LearningError as error:
            self._reject("posterior", str(error))
            return
        self._adopt_posterior("repair")

    def _adopt_posterior(self, why: str) -> None:
        """Run the filter under the trainer's posterior from the next batch on (same
        shapes: no recompilation)."""
        assert self._kernel is not None
        assert self._trainer is not None
        self._kernel.adopt(self._trainer.params())
        self._params_version += 1
        self._counts[why] += 1
        _log.info("learner_params", path=self.path, version=self._params_version, why=why)

    def _reconfigure(self) -> None:
        assert self._kernel is not None
        choice = most_uncertain(
            self._kernel.belief(),
            self._tracks.live(self._latest),
            {
                self._camera[c]: [self._zone[z] for z in zs]
                for c, zs in self.config.steerable.items()
            },
        )
        if choice is None:
            return
        camera, zone = self.config.cameras[choice[0]], self.config.zones[choice[1]]
        if self._pointed.get(camera) == zone or camera not in self.config.sources:
            return
        self._pointed[camera] = zone
        self._config_version += 1
        desired = ConfigDesired(
            device=camera,
            version=self._config_version,
            settings={"zones": [zone], "frame_rate": self.config.high_rate},
        )
        self._send(self.config.sources[camera], desired)
        self._counts["reconfigurations"] += 1

    # -- helpers ---------------------------------------------------------------------

    def _send(self, address: str, message: Any) -> None:
        """Tell whatever actor holds ``address`` now (a dead letter if none does). A
        peer whose mailbox stays full, or an unreachable node, is counted and logged: it
        must not stop the learner."""
        try:
            if address.startswith("/"):
                self.system.tell(address, message)
            else:
                self.system.ref(address).tell(message)
        except EdgeloopError as error:
            self._counts["undelivered"] += 1
            _log.warning("learner_send_failed", to=address, error=str(error))

    def statistics(self) -> LearnerStatistics:
        """Counters since the first start (restored from snapshots)."""
        counts = self._counts
        return LearnerStatistics(
            events=counts["events"],
            observations=counts["observations"],
            batches=counts["batches"],
            duplicates=counts["duplicates"],
            rejected=dict(self._rejected),
            snapshots=counts["snapshots"],
            restored_version=self._restored,
            replay_requests=counts["replay_requests"],
            commands=counts["commands"],
            reconfigurations=counts["reconfigurations"],
            params_version=self._params_version,
            windows=counts["learn"],
            svi_fits=counts["svi"],
            repairs=counts["repair"],
            stale_repairs=counts["stale_repairs"],
            repairs_lost=counts["repairs_lost"],
            repairs_skipped=counts["repairs_skipped"],
            undelivered=counts["undelivered"],
            tracks_started=self._tracks.started,
            seq=self._ledger.last(),
        )
