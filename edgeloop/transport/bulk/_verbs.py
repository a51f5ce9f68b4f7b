"""The ``verbs`` provider: RC queue pairs and RDMA WRITE_WITH_IMM through pyverbs.

pyverbs is imported lazily, only here, and only through :mod:`importlib` (it must come
from the same rdma-core release as the host's ``libibverbs``: the distro's
``python3-pyverbs``; see ``docs/bulk-lane.md``). The sequence is rdma-core's own
(``tests/base.py``, ``tests/utils.py``; ``../shared/research/rdma.md`` section 3):

1. open: ``Context(name=dev)``, ``query_port``, ``query_gid``, ``PD``;
2. register: the receiver's ring as one ``MR`` with LOCAL_WRITE | REMOTE_WRITE, the
   sender's staging slot with LOCAL_WRITE (both page-aligned anonymous mappings);
3. ``CQ`` and an RC ``QP`` (INIT once created with a ``QPAttr``);
4. out of band (BulkAccept, BulkReady): ``qp_num``, a random 24-bit PSN, LID, GID,
   MTU, and from the receiver ``addr``/``rkey``/``length`` of the ring;
5. ``to_rts`` with ``path_mtu``, ``dest_qp_num``, PSNs, ``min_rnr_timer`` 12, ``timeout``
   14, ``retry_cnt`` 7, ``rnr_retry`` 7 and a global route to the peer's GID;
6. the receiver keeps one zero-SGE receive posted per slot (re-posted per completion);
   the sender writes only into slots it holds credits for, so it never meets RNR;
7. the sender posts ``IBV_WR_RDMA_WRITE_WITH_IMM`` from the staging slot to
   ``addr + slot * stride`` with ``imm_data = htonl(imm)``, signalled, and waits for its
   completion before reusing the staging slot;
8. the receiver polls ``IBV_WC_RECV_RDMA_WITH_IMM``: the bytes are in place.

Credits travel back on a ZeroMQ DEALER pair (the control plane is always ZeroMQ).

Not run on RDMA hardware yet (these machines have none): only :func:`probe` and the
fallback are tested here; the fake provider runs the same protocol with RC rules.
"""

from __future__ import annotations

import ctypes
import importlib
import mmap
import secrets
import socket
import time
from types import ModuleType
from typing import Any, Final

import structlog
import zmq

from edgeloop.errors import PeerLostError, ProtocolError
from edgeloop.messages import BulkCredit
from edgeloop.transport.bulk._protocol import HEADER, Geometry
from edgeloop.transport.bulk._provider import (
    DONE,
    Arrival,
    Availability,
    Params,
    SendHandle,
)
from edgeloop.transport.bulk._zmq import DEFAULT_ENDPOINT, _Link, check_hello

__all__ = ["VerbsProvider", "probe"]

_log = structlog.get_logger("edgeloop.transport.bulk")

MIN_RNR_TIMER: Final = 12
TIMEOUT: Final = 14
RETRY_CNT: Final = 7
RNR_RETRY: Final = 7
_POLL_PAUSE: Final = 0.0005
"""Seconds a waiting side spends on the control socket between completion-queue polls."""

_probed: Availability | None = None


def _module(name: str) -> ModuleType:
    return importlib.import_module(name)


def _enums() -> ModuleType:
    """The enum module: ``libibverbs_enums`` from v50 on, ``enums`` before (and to v56)."""
    try:
        return _module("pyverbs.libibverbs_enums")
    except ImportError:
        return _module("pyverbs.enums")


def probe(*, refresh: bool = False) -> Availability:
    """Whether RDMA can be used here. "No RDMA" is any of: pyverbs does not import, its
    ``get_device_list()`` raises (a kernel without RDMA support), or it returns ``[]``.
    The first negative answer in a process is logged once (``bulk_verbs_unavailable``)."""
    global _probed
    if _probed is not None and not refresh:
        return _probed
    result = _probe()
    _probed = result
    if not result.available:
        _log.info("bulk_verbs_unavailable", reason=result.reason)
    return result


def _probe() -> Availability:
    try:
        device = _module("pyverbs.device")
    except ImportError as exc:  # not installed, or built for another libibverbs
        return Availability(False, f"verbs unavailable: pyverbs does not import ({exc})")
    try:
        devices = device.get_device_list()
    except Exception as exc:  # noqa: BLE001 - PyverbsRDMAError; its module moved between releases
        return Availability(
            False,
            f"verbs unavailable: no RDMA support in this kernel (get_device_list() raised "
            f"{type(exc).__name__}: {exc})",
        )
    if not devices:
        return Availability(False, "verbs unavailable: no RDMA device (get_device_list() is empty)")
    names = ", ".join(_text(dev.name) for dev in devices)
    return Availability(True, f"RDMA devices: {names}")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _address(buffer: mmap.mmap) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(buffer))


class _Verbs:
    """One side's verbs objects: context, protection domain, CQ, RC QP, one region."""

    def __init__(
        self, device: str | None, port: int, gid_index: int, length: int, access: int, depth: int
    ) -> None:
        self.e = _enums()
        dev_mod = _module("pyverbs.device")
        if device is None:
            devices = dev_mod.get_device_list()
            if not devices:
                raise ProtocolError("no RDMA device", reason="unavailable")
            device = _text(devices[0].name)
        self.ctx = _module("pyverbs.device").Context(name=device)
        try:
            self.port = port
            self.gid_index = gid_index
            self.port_attr = self.ctx.query_port(port)
            self.gid = self.ctx.query_gid(port, gid_index)
            self.pd = _module("pyverbs.pd").PD(self.ctx)
            self.buffer = mmap.mmap(-1, length)
            self.addr = _address(self.buffer)
            self.mr = _module("pyverbs.mr").MR(self.pd, length, access, address=self.addr)
            self.cq = _module("pyverbs.cq").CQ(self.ctx, depth, None, None, 0)
            qp_mod = _module("pyverbs.qp")
            cap = qp_mod.QPCap(max_send_wr=depth, max_recv_wr=depth, max_send_sge=1, max_recv_sge=1)
            init = qp_mod.QPInitAttr(qp_type=self.e.IBV_QPT_RC, scq=self.cq, rcq=self.cq, cap=cap)
            attr = qp_mod.QPAttr(port_num=port)
            attr.qp_access_flags = access
            self.qp = qp_mod.QP(self.pd, init, attr)  # an RC QP given a QPAttr comes back in INIT
            self.psn = secrets.randbits(24)
        except BaseException:
            self.ctx.close()
            raise

    def info(self) -> Params:
        """What the peer needs to connect to this queue pair."""
        return {
            "qpn": int(self.qp.qp_num),
            "psn": self.psn,
            "lid": int(self.port_attr.lid),
            "gid": str(self.gid),
            "mtu": int(self.port_attr.active_mtu),
        }

    def to_rts(self, peer: Params, access: int) -> None:
        """Connect to the peer's queue pair: INIT -> RTR -> RTS (``QP.to_rts``)."""
        addr = _module("pyverbs.addr")
        attr = _module("pyverbs.qp").QPAttr(port_num=self.port)
        attr.path_mtu = min(int(self.port_attr.active_mtu), int(peer["mtu"]))
        attr.dest_qp_num = int(peer["qpn"])
        attr.rq_psn = int(peer["psn"])
        attr.sq_psn = self.psn
        attr.max_rd_atomic = 1
        attr.max_dest_rd_atomic = 1
        attr.min_rnr_timer = MIN_RNR_TIMER
        attr.timeout = TIMEOUT
        attr.retry_cnt = RETRY_CNT
        attr.rnr_retry = RNR_RETRY
        attr.qp_access_flags = access
        route = addr.GlobalRoute(dgid=addr.GID(str(peer["gid"])), sgid_index=self.gid_index)
        attr.ah_attr = addr.AHAttr(port_num=self.port, is_global=1, gr=route, dlid=int(peer["lid"]))
        self.qp.to_rts(attr)

    def poll(self) -> Any | None:
        """One work completion, or ``None``; ProtocolError for a failed one."""
        count, completions = self.cq.poll(1)
        if count == 0:
            return None
        wc = completions[0]
        if wc.status != self.e.IBV_WC_SUCCESS:
            raise ProtocolError(
                f"RDMA work completion failed with status {wc.status}", reason="remote_access"
            )
        return wc

    def close(self) -> None:
        self.ctx.close()  # closes the QP, CQ, MR and PD it created


class VerbsReceiveSide:
    """The receiver: the ring registered for remote writes, one receive per slot."""

    provider = "verbs"

    def __init__(
        self, lane: int, geometry: Geometry, accept: Params, provider: VerbsProvider
    ) -> None:
        self.geometry = geometry
        e = _enums()
        self.access = e.IBV_ACCESS_LOCAL_WRITE | e.IBV_ACCESS_REMOTE_WRITE
        self.verbs = _Verbs(
            provider.device,
            provider.port,
            provider.gid_index,
            geometry.ring_size,
            self.access,
            geometry.slot_count,
        )
        self.link = _Link()
        try:
            self.verbs.to_rts(accept, self.access)
            self.link.sock.bind(provider.endpoint)
        except BaseException:
            self.close()
            raise
        self.endpoint = self.link.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.key = secrets.randbits(64)
        self.attached = False
        self._pending: list[BulkCredit] = []
        self._ring = memoryview(self.verbs.buffer)
        self._closed = False
        for _ in range(geometry.slot_count):  # one receive per slot, re-posted per completion
            self._post_recv()

    @property
    def ring(self) -> memoryview | None:
        return self._ring

    def ready_params(self) -> Params:
        return {
            **self.verbs.info(),
            "addr": self.verbs.addr,
            "rkey": int(self.verbs.mr.rkey),
            "length": self.geometry.ring_size,
            "endpoint": self.endpoint,
            "key": self.key,
        }

    def establish(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.attached:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            parts = self.link.recv(remaining)
            if not parts:
                return False
            check_hello(parts, self.key)
            self.attached = True
            for credit in self._pending:
                self.link.send_credit(credit)
            self._pending.clear()
        return True

    def _post_recv(self) -> None:
        self.verbs.qp.post_recv(_module("pyverbs.wr").RecvWR(wr_id=0, num_sge=0))

    def grant(self, credit: BulkCredit) -> None:
        if self.attached:
            self.link.send_credit(credit)
        else:
            self._pending.append(credit)

    def poll(self, timeout: float | None) -> Arrival | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self.attached and not self.establish(timeout):
            return None
        while True:
            wc = self.verbs.poll()
            if wc is not None:
                break
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            pause = _POLL_PAUSE if remaining is None else min(_POLL_PAUSE, remaining)
            if self.link.recv(pause):  # nothing is expected from the sender but its hello
                raise ProtocolError(
                    "unexpected control message from the sender", reason="bad_state"
                )
        self._post_recv()
        e = self.verbs.e
        if wc.opcode != e.IBV_WC_RECV_RDMA_WITH_IMM or not wc.wc_flags & e.IBV_WC_WITH_IMM:
            raise ProtocolError(
                f"unexpected work completion opcode {wc.opcode}", reason="bad_state"
            )
        imm = socket.ntohl(wc.imm_data)
        slot = imm & 0xFF
        start = self.geometry.offset(slot) if slot < self.geometry.slot_count else 0
        ring = self._ring
        return Arrival(
            imm,
            ring[start : start + HEADER],
            ring[start + HEADER : start + self.geometry.stride],
            int(wc.byte_len) - HEADER,
        )

    def close(self) -> None:
        if not getattr(self, "_closed", False):
            self._closed = True
            self.link.close()
            self.verbs.close()


class VerbsSendSide:
    """The sender: a registered staging slot, one signalled write with immediate at a time."""

    provider = "verbs"

    def __init__(self, geometry: Geometry, verbs: _Verbs, ready: Params) -> None:
        self.geometry = geometry
        self.verbs = verbs
        self.rkey = int(ready["rkey"])
        self.remote_addr = int(ready["addr"])
        if int(ready["length"]) != geometry.ring_size:
            raise ProtocolError("the receiver's ring has the wrong size", reason="bad_params")
        self.verbs.to_rts(ready, self.verbs.e.IBV_ACCESS_LOCAL_WRITE)
        self.staging = memoryview(self.verbs.buffer)
        self.link = _Link.to_receiver(ready)
        self._closed = False

    def poll_credit(self, timeout: float | None) -> BulkCredit | None:
        return self.link.recv_credit(timeout)

    def write(self, slot: int, header: bytes, payload: memoryview, imm: int) -> SendHandle:
        if not 0 <= slot < self.geometry.slot_count or payload.nbytes > self.geometry.slot_size:
            raise ProtocolError(
                f"write of {payload.nbytes} bytes into slot {slot} is outside the ring",
                reason="remote_access",
            )
        length = HEADER + payload.nbytes
        self.staging[: len(header)] = header
        self.staging[HEADER:length] = payload
        wr_mod = _module("pyverbs.wr")
        e = self.verbs.e
        sge = wr_mod.SGE(self.verbs.addr, length, self.verbs.mr.lkey)
        wr = wr_mod.SendWR(
            wr_id=imm,
            opcode=e.IBV_WR_RDMA_WRITE_WITH_IMM,
            num_sge=1,
            sg=[sge],
            send_flags=e.IBV_SEND_SIGNALED,
        )
        wr.set_wr_rdma(self.rkey, self.remote_addr + self.geometry.offset(slot))
        wr.imm_data = socket.htonl(imm)
        self.verbs.qp.post_send(wr)
        while self.verbs.poll() is None:  # the staging slot is reused by the next write
            if self.link.peer_lost:
                raise PeerLostError("the receiver went away during an RDMA write")
        return DONE

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.link.close()
            self.verbs.close()


class _VerbsSetup:
    def __init__(self, geometry: Geometry, provider: VerbsProvider) -> None:
        self.geometry = geometry
        e = _enums()
        self.verbs = _Verbs(
            provider.device,
            provider.port,
            provider.gid_index,
            geometry.stride,
            e.IBV_ACCESS_LOCAL_WRITE,
            2,
        )
        self._used = False

    @property
    def params(self) -> Params:
        return self.verbs.info()

    def attach(self, ready: Params) -> VerbsSendSide:
        self._used = True
        try:
            return VerbsSendSide(self.geometry, self.verbs, ready)
        except BaseException:
            self.verbs.close()
            raise

    def close(self) -> None:
        if not self._used:
            self._used = True
            self.verbs.close()


class VerbsProvider:
    """RDMA through pyverbs: device (first one if ``None``), port, GID index, and the
    ZeroMQ endpoint the receiver binds for credits."""

    name = "verbs"

    def __init__(
        self,
        device: str | None = None,
        port: int = 1,
        gid_index: int = 0,
        endpoint: str = DEFAULT_ENDPOINT,
    ) -> None:
        self.device = device
        self.port = port
        self.gid_index = gid_index
        self.endpoint = endpoint

    def probe(self) -> Availability:
        return probe()

    def listen(
        self, lane: int, geometry: Geometry, memory: str, accept: Params
    ) -> VerbsReceiveSide:
        return VerbsReceiveSide(lane, geometry, accept, self)

    def prepare(self, lane: int, geometry: Geometry) -> _VerbsSetup:
        return _VerbsSetup(geometry, self)
