"""The sans-IO slot/credit protocol, the fake RC model's rules, selection and verbs detection."""

from __future__ import annotations

import socket
import struct
import sys
import types

import msgspec
import numpy as np
import pytest
import structlog

from edgeloop.errors import ConfigError, LinkError, ProtocolError
from edgeloop.messages import BulkComplete, BulkCredit, BulkOffer, encode_bulk
from edgeloop.transport import bulk
from edgeloop.transport.bulk import _verbs
from edgeloop.transport.bulk._fake import Access, FakeQP, QPState
from tests.transport.conftest import SHM

GEOMETRY = bulk.Geometry(slot_size=1000, slot_count=4)


def descriptor(seq: int = 0, slot: int = 0, **changes: object) -> BulkComplete:
    """A valid descriptor of a 10-byte frame on lane 1."""
    base = BulkComplete(lane=1, seq=seq, slot=slot, nbytes=10, shape=(10,), dtype="|u1")
    return msgspec.structs.replace(base, **changes)


class TestImmediateAndLayout:
    def test_imm_round_trips_seq_mod_2_24_and_slot(self):
        """The immediate value keeps the slot and the sequence number modulo 2**24."""
        for seq, slot in [(0, 0), (1, 255), (2**24 - 1, 7), (2**24 + 5, 3), (2**40, 9)]:
            assert bulk.decode_imm(bulk.encode_imm(seq, slot)) == (seq % 2**24, slot)
            assert 0 <= bulk.encode_imm(seq, slot) < 2**32

    def test_payload_is_page_aligned_after_a_4k_header(self):
        """Each slot is a 4 KiB header and a page-rounded payload."""
        assert GEOMETRY.stride == 4096 + 4096
        assert GEOMETRY.ring_size == 4 * 8192
        assert GEOMETRY.payload_offset(2) == 2 * 8192 + bulk.HEADER

    @pytest.mark.parametrize(("size", "count"), [(0, 1), (1, 0), (1, 257)])
    def test_geometry_bounds(self, size: int, count: int):
        """A ring needs 1 to 256 slots of at least one byte."""
        with pytest.raises(ValueError, match="must be"):
            bulk.Geometry(size, count)

    def test_header_round_trips(self):
        """A descriptor packed into a header unpacks to itself."""
        assert bulk.unpack_header(bulk.pack_header(descriptor(5, 2))) == descriptor(5, 2)

    @pytest.mark.parametrize(
        "header",
        [
            b"\x01",
            struct.pack("<I", 0),
            struct.pack("<I", 5000) + b"x",
            struct.pack("<I", 3) + b"abc",
            struct.pack("<I", 100) + encode_bulk(BulkCredit(lane=1, slots=(0,))),
        ],
        ids=["truncated", "empty", "too-long", "not-msgpack", "short-length"],
    )
    def test_malformed_headers(self, header: bytes):
        """Headers that are not a length-prefixed descriptor raise ``malformed``."""
        with pytest.raises(ProtocolError) as caught:
            bulk.unpack_header(header)
        assert caught.value.reason == "malformed"

    def test_header_with_another_message(self):
        """A header holding some other bulk message is ``malformed``."""
        body = encode_bulk(BulkCredit(lane=1, slots=(0,)))
        with pytest.raises(ProtocolError, match="not a BulkComplete"):
            bulk.unpack_header(struct.pack("<I", len(body)) + body)


class TestRingState:
    def test_first_grant_covers_every_slot_once(self):
        """The first grant hands out every slot; a second finds none idle."""
        ring = bulk.RingState(1, GEOMETRY)
        assert ring.grant_idle() == BulkCredit(lane=1, slots=(0, 1, 2, 3))
        assert ring.grant_idle() is None
        assert ring.state(0) is bulk.SlotState.GRANTED

    def test_accept_then_release(self):
        """An accepted frame fills its slot until released, which grants it again."""
        ring = bulk.RingState(1, GEOMETRY)
        ring.grant_idle()
        payload = memoryview(bytes(range(10)))
        verdict = ring.complete(bulk.encode_imm(0, 2), descriptor(0, 2), payload)
        assert verdict.error is None
        assert verdict.descriptor == descriptor(0, 2)
        assert ring.state(2) is bulk.SlotState.FILLED
        assert ring.expected_seq == 1
        assert ring.release(2) == BulkCredit(lane=1, slots=(2,))
        assert ring.state(2) is bulk.SlotState.GRANTED
        with pytest.raises(ValueError, match="holds no frame"):
            ring.release(2)

    def test_credits_go_back_in_batches(self):
        """Released slots are withheld until a batch is full, while the sender still
        holds credits to write with."""
        ring = bulk.RingState(1, GEOMETRY, credit_batch=2)
        ring.grant_idle()
        payload = memoryview(bytes(range(10)))
        for seq in range(2):
            assert (
                ring.complete(bulk.encode_imm(seq, seq), descriptor(seq, seq), payload).error
                is None
            )
        assert ring.release(0) is None  # slots 2 and 3 are still the sender's
        assert ring.state(0) is bulk.SlotState.IDLE
        assert ring.release(1) == BulkCredit(lane=1, slots=(0, 1))
        assert ring.statistics.released == 2

    def test_a_sender_without_credits_never_waits_for_a_batch(self):
        """Once the sender has used its last credit, withheld slots go back at once:
        on the release, or on the completion that used that last credit."""
        ring = bulk.RingState(1, GEOMETRY, credit_batch=4)
        ring.grant_idle()
        payload = memoryview(bytes(range(10)))
        verdicts = [
            ring.complete(bulk.encode_imm(seq, seq), descriptor(seq, seq), payload)
            for seq in range(3)
        ]
        assert all(verdict.credit is None for verdict in verdicts)
        assert ring.release(0) is None  # the sender still holds slot 3
        last = ring.complete(bulk.encode_imm(3, 3), descriptor(3, 3), payload)
        assert last.credit == BulkCredit(lane=1, slots=(0,))  # its last credit is spent
        assert ring.release(1) is None  # the sender holds slot 0 again
        assert ring.complete(bulk.encode_imm(4, 0), descriptor(4, 0), payload).credit == (
            BulkCredit(lane=1, slots=(1,))
        )
        assert ring.complete(bulk.encode_imm(5, 1), descriptor(5, 1), payload).credit is None
        assert ring.release(2) == BulkCredit(lane=1, slots=(2,))  # it holds none: at once

    def test_rejection_in_a_granted_slot_returns_its_credit(self):
        """A corrupted frame is rejected, its seq spent, its slot granted back at once."""
        ring = bulk.RingState(1, GEOMETRY)
        ring.grant_idle()
        bad = descriptor(0, 1, checksum=1)
        verdict = ring.complete(bulk.encode_imm(0, 1), bad, memoryview(bytes(10)))
        assert verdict.error is not None
        assert verdict.error.reason == "bad_checksum"
        assert verdict.credit == BulkCredit(lane=1, slots=(1,))
        assert ring.expected_seq == 1
        assert ring.statistics.rejected == {"bad_checksum": 1}

    def test_unverified_ring_skips_checksums(self):
        """With verify off the checksum is carried, not checked."""
        ring = bulk.RingState(1, GEOMETRY, verify=False)
        ring.grant_idle()
        verdict = ring.complete(
            bulk.encode_imm(0, 0), descriptor(checksum=1), memoryview(bytes(10))
        )
        assert verdict.error is None

    def test_transport_byte_count_must_match(self):
        """A write whose transport length disagrees with its descriptor is rejected."""
        ring = bulk.RingState(1, GEOMETRY)
        ring.grant_idle()
        verdict = ring.complete(bulk.encode_imm(0, 0), descriptor(), None, byte_len=11)
        assert verdict.error is not None
        assert verdict.error.reason == "bad_imm"

    @pytest.mark.parametrize("dtype", ["|O", "<zz9"])
    def test_dtypes_that_cannot_travel(self, dtype: str):
        """Object and unknown dtypes are ``bad_shape``."""
        ring = bulk.RingState(1, GEOMETRY)
        ring.grant_idle()
        verdict = ring.complete(bulk.encode_imm(0, 0), descriptor(dtype=dtype), None)
        assert verdict.error is not None
        assert verdict.error.reason == "bad_shape"

    def test_a_checked_layout_is_remembered_per_shape(self):
        """After a good frame, a descriptor with the same dtype and size but a shape
        that contradicts them is still ``bad_shape``; accepted frames carry their dtype."""
        ring = bulk.RingState(1, GEOMETRY)
        ring.grant_idle()
        good = ring.complete(bulk.encode_imm(0, 0), descriptor(), None)
        assert good.error is None
        assert good.descriptor is not None
        assert good.dtype == np.dtype("|u1")
        bad = ring.complete(bulk.encode_imm(1, 1), descriptor(1, 1, shape=(5,)), None)
        assert bad.error is not None
        assert bad.error.reason == "bad_shape"
        again = ring.complete(bulk.encode_imm(2, 2), descriptor(2, 2, shape=(2, 5)), None)
        assert again.error is None

    def test_seq_wraps_in_the_immediate_only(self):
        """Past 2**24 frames the immediate wraps while the descriptor's seq keeps counting."""
        ring = bulk.RingState(1, GEOMETRY)
        ring.grant_idle()
        ring.expected_seq = 2**24 + 3
        verdict = ring.complete(bulk.encode_imm(2**24 + 3, 0), descriptor(2**24 + 3), None)
        assert verdict.error is None


class TestCreditState:
    def test_credits_are_spent_oldest_first_with_rising_seq(self):
        """Credits are spent in the order granted; each frame gets the next seq."""
        credits = bulk.CreditState(1, GEOMETRY)
        credits.add(BulkCredit(lane=1, slots=(2, 0)))
        first = credits.take(10, (10,), "|u1", None)
        second = credits.take(10, (10,), "|u1", 7, frame_id=3)
        assert (first.slot, first.seq, second.slot, second.seq) == (2, 0, 0, 1)
        assert (second.checksum, second.frame_id) == (7, 3)
        assert credits.credits == 0

    @pytest.mark.parametrize(
        "credit",
        [
            BulkCredit(lane=1, slots=(4,)),
            BulkCredit(lane=1, slots=(1, 1)),
            BulkCredit(lane=2, slots=(0,)),
        ],
        ids=["out-of-range", "already-held", "other-lane"],
    )
    def test_bad_credits(self, credit: BulkCredit):
        """A credit out of range, for a slot already held, or for another lane is refused."""
        credits = bulk.CreditState(1, GEOMETRY)
        with pytest.raises(ProtocolError) as caught:
            credits.add(credit)
        assert caught.value.reason in {"bad_credit", "bad_lane"}

    def test_oversized_frame_is_refused_before_a_credit_is_spent(self):
        """A frame larger than a slot raises ``oversized`` and keeps the credit."""
        credits = bulk.CreditState(1, GEOMETRY)
        credits.add(BulkCredit(lane=1, slots=(0,)))
        with pytest.raises(ProtocolError, match="slot size") as caught:
            credits.take(1001, (1001,), "|u1", None)
        assert caught.value.reason == "oversized"
        assert credits.credits == 1


class TestFakeRC:
    def pair(self, *, recvs: int = 4) -> tuple[FakeQP, FakeQP, int, int]:
        """Two connected queue pairs: a 64-byte source and a 64-byte target region."""
        requester, responder = FakeQP(), FakeQP()
        local = requester.register(memoryview(bytearray(range(64))), Access.LOCAL_WRITE)
        remote = responder.register(
            memoryview(bytearray(64)), Access.LOCAL_WRITE | Access.REMOTE_WRITE
        )
        requester.connect(responder)
        responder.connect(requester)
        responder.post_recv(recvs)
        return requester, responder, local.lkey, remote.rkey

    def test_writes_complete_in_posting_order_with_their_bytes(self):
        """Completions arrive in posting order, the bytes in place before them."""
        requester, responder, lkey, rkey = self.pair()
        requester.post_write_imm(lkey, 0, 8, rkey, 0, 11)
        requester.post_write_imm(lkey, 8, 8, rkey, 8, 12)
        assert [c.imm for c in responder.cq] == [11, 12]
        assert bytes(responder.regions[rkey].buffer[:16]) == bytes(range(16))

    def test_queue_pair_states_go_in_order(self):
        """A queue pair walks RESET, INIT, RTR, RTS and posts only in RTS."""
        qp = FakeQP()
        with pytest.raises(ProtocolError, match="cannot move"):
            qp.modify(QPState.RTS)
        qp.modify(QPState.INIT)
        with pytest.raises(ProtocolError) as caught:
            qp.post_write_imm(0, 0, 0, 0, 0, 0)
        assert caught.value.reason == "qp_state"

    @pytest.mark.parametrize(
        ("offset", "length", "use_rkey", "reason"),
        [(60, 8, True, "remote_access"), (0, 8, False, "remote_access")],
        ids=["out-of-bounds", "wrong-rkey"],
    )
    def test_remote_access_errors_break_the_connection(
        self, offset: int, length: int, use_rkey: bool, reason: str
    ):
        """A bad key or range is a remote access error; both queue pairs go to ERROR."""
        requester, responder, lkey, rkey = self.pair()
        with pytest.raises(ProtocolError) as caught:
            requester.post_write_imm(lkey, 0, length, rkey if use_rkey else rkey + 99, offset, 1)
        assert caught.value.reason == reason
        assert requester.state is responder.state is QPState.ERROR
        with pytest.raises(ProtocolError) as again:
            requester.post_write_imm(lkey, 0, 1, rkey, 0, 2)
        assert again.value.reason == "qp_state"

    def test_region_without_remote_write_refuses_writes(self):
        """A region registered without REMOTE_WRITE cannot be written remotely."""
        requester, responder, lkey, _ = self.pair()
        private = responder.register(memoryview(bytearray(64)), Access.LOCAL_WRITE)
        with pytest.raises(ProtocolError) as caught:
            requester.post_write_imm(lkey, 0, 8, private.rkey, 0, 1)
        assert caught.value.reason == "remote_access"

    def test_wrong_lkey_is_a_local_error(self):
        """A write from memory the requester did not register is a local protection error."""
        requester, _, lkey, rkey = self.pair()
        with pytest.raises(ProtocolError) as caught:
            requester.post_write_imm(lkey + 99, 0, 8, rkey, 0, 1)
        assert caught.value.reason == "local_access"

    def test_write_without_a_posted_receive_is_rnr(self):
        """With no receive posted the requester retries, then fails receiver-not-ready."""
        requester, responder, lkey, rkey = self.pair(recvs=0)
        with pytest.raises(ProtocolError) as caught:
            requester.post_write_imm(lkey, 0, 8, rkey, 0, 1)
        assert caught.value.reason == "rnr"
        assert requester.rnr_events == 8
        assert not responder.cq


class TestSelection:
    def test_same_host_prefers_shm(self):
        """Peers on one host use shared memory."""
        name, why = bulk.select_provider(("shm", "zmq"), ("shm", "zmq"), same_host=True)
        assert (name, why) == ("shm", "both peers are on this host")

    def test_other_hosts_use_verbs_when_both_have_it(self):
        """Across hosts verbs wins when both sides can use it."""
        name, _ = bulk.select_provider(("shm", "verbs", "zmq"), ("verbs", "zmq"), same_host=False)
        assert name == "verbs"

    def test_other_hosts_fall_back_to_zmq_saying_why(self):
        """Without verbs on both sides the lane is zmq, and the reason says why."""
        name, why = bulk.select_provider(("shm", "zmq"), ("shm", "zmq"), same_host=False)
        assert name == "zmq"
        assert "different hosts" in why

    def test_configured_provider_wins(self):
        """An explicit provider overrides the automatic choice."""
        assert (
            bulk.select_provider(("shm", "zmq"), ("shm", "zmq"), same_host=True, prefer="zmq")[0]
            == "zmq"
        )

    @pytest.mark.parametrize(
        ("offered", "usable", "prefer"),
        [(("shm",), ("zmq",), "auto"), (("shm", "zmq"), ("shm",), "zmq")],
        ids=["nothing-in-common", "configured-not-offered"],
    )
    def test_no_usable_provider(self, offered, usable, prefer):
        """No provider in common (or not the configured one) is a LinkError."""
        with pytest.raises(LinkError, match="receiver offers"):
            bulk.select_provider(offered, usable, same_host=True, prefer=prefer)

    def test_handshake_across_hosts_picks_zmq_and_logs_it(self):
        """A sender on another host answers an offer with zmq and logs the choice once."""
        receiver_cfg = bulk.BulkConfig(host_id="host-a", offer=("shm", "zmq"))
        sender_cfg = bulk.BulkConfig(host_id="host-b")
        offer = bulk.make_offer(3, receiver_cfg)
        with structlog.testing.capture_logs() as logs:
            accept, setup = bulk.answer(offer, sender_cfg)
        setup.close()
        assert accept.provider == "zmq"
        selected = [log for log in logs if log["event"] == "bulk_provider_selected"]
        assert len(selected) == 1
        assert selected[0]["provider"] == "zmq"

    def test_host_id_is_stable_hex(self):
        """host_id is 16 hex digits and the same on every call."""
        assert bulk.host_id() == bulk.host_id()
        assert len(bulk.host_id()) == 16
        int(bulk.host_id(), 16)

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("provider", "carrier-pigeon"),
            ("offer", ()),
            ("slot_count", 0),
            ("slot_size", 0),
            ("memory", "disk"),
        ],
    )
    def test_config_validation(self, field: str, value: object):
        """Bad settings raise ConfigError naming the key."""
        with pytest.raises(ConfigError) as caught:
            bulk.BulkConfig(**{field: value})  # type: ignore[arg-type]
        assert caught.value.key == f"bulk.{field}"

    def test_accept_for_a_provider_not_offered_is_refused(self):
        """The receiver refuses an accept naming a provider it did not offer."""
        cfg = bulk.BulkConfig(provider="fake")
        offer = bulk.make_offer(1, cfg)
        accept, setup = bulk.answer(offer, cfg)
        setup.close()
        forged = msgspec.structs.replace(accept, provider="zmq")
        with pytest.raises(ProtocolError, match="offered") as caught:
            bulk.open_receiver(offer, forged, cfg)
        assert caught.value.reason == "bad_accept"


class TestVerbsDetection:
    @pytest.fixture(autouse=True)
    def fresh_probe(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Each test probes afresh and the cached answer is restored after."""
        monkeypatch.setattr(_verbs, "_probed", None)

    def fake_pyverbs(self, monkeypatch: pytest.MonkeyPatch, get_device_list) -> None:
        device = types.ModuleType("pyverbs.device")
        device.get_device_list = get_device_list  # type: ignore[attr-defined]
        package = types.ModuleType("pyverbs")
        monkeypatch.setitem(sys.modules, "pyverbs", package)
        monkeypatch.setitem(sys.modules, "pyverbs.device", device)

    def test_missing_pyverbs(self, monkeypatch: pytest.MonkeyPatch):
        """No pyverbs: unavailable, saying it does not import."""
        monkeypatch.setitem(sys.modules, "pyverbs", None)
        result = bulk.probe_verbs()
        assert not result.available
        assert "pyverbs does not import" in result.reason

    def test_kernel_without_rdma(self, monkeypatch: pytest.MonkeyPatch):
        """get_device_list() raising (no RDMA in the kernel) means unavailable."""

        class PyverbsRDMAError(Exception):
            pass

        def raises() -> list[object]:
            raise PyverbsRDMAError("Failed to get devices list")

        self.fake_pyverbs(monkeypatch, raises)
        result = bulk.probe_verbs()
        assert not result.available
        assert "no RDMA support in this kernel" in result.reason
        assert "Failed to get devices list" in result.reason

    def test_no_devices(self, monkeypatch: pytest.MonkeyPatch):
        """An empty device list means unavailable."""
        self.fake_pyverbs(monkeypatch, list)
        result = bulk.probe_verbs()
        assert not result.available
        assert "no RDMA device" in result.reason

    def test_devices_present(self, monkeypatch: pytest.MonkeyPatch):
        """A device list with names means available."""
        self.fake_pyverbs(monkeypatch, lambda: [types.SimpleNamespace(name=b"mlx5_0")])
        result = bulk.probe_verbs()
        assert result.available
        assert "mlx5_0" in result.reason

    def test_unavailability_is_logged_once(self, monkeypatch: pytest.MonkeyPatch):
        """The reason verbs is unavailable is logged once per process, then cached."""
        monkeypatch.setitem(sys.modules, "pyverbs", None)
        with structlog.testing.capture_logs() as logs:
            first = bulk.probe_verbs()
            assert bulk.probe_verbs() is first
            offer = bulk.make_offer(1, bulk.BulkConfig(offer=("verbs", "zmq")))
        assert offer.providers == ("zmq",)
        lines = [log for log in logs if log["event"] == "bulk_verbs_unavailable"]
        assert len(lines) == 1
        assert lines[0]["reason"] == first.reason

    def test_verbs_only_with_no_rdma_fails_clearly(self, monkeypatch: pytest.MonkeyPatch):
        """A config insisting on verbs where there is none says so."""
        monkeypatch.setitem(sys.modules, "pyverbs", None)
        with pytest.raises(LinkError, match="verbs"):
            bulk.make_offer(1, bulk.BulkConfig(provider="verbs"))


class TestShmLifecycle:
    def test_owner_unlinks_once_the_sender_attached(self):
        """The ring's name is gone as soon as both sides mapped it; the lane still works."""
        sender, receiver = bulk.connect_pair(bulk.BulkConfig(provider="shm", slot_size=4096))
        with sender, receiver:
            name = receiver.side.name  # type: ignore[attr-defined]
            assert not (SHM / name).exists()
            sender.send(np.arange(10), timeout=5.0)
            with receiver.recv(5.0) as frame:
                assert frame.array.tolist() == list(range(10))

    def test_ring_never_attached_is_unlinked_at_close(self):
        """An owner closed before any sender attached removes its segment."""
        cfg = bulk.BulkConfig(provider="shm", slot_size=4096)
        offer = bulk.make_offer(1, cfg)
        accept, setup = bulk.answer(offer, cfg)
        setup.close()
        receiver, _ready = bulk.open_receiver(offer, accept, cfg)
        name = receiver.side.name  # type: ignore[attr-defined]
        assert (SHM / name).exists()
        receiver.close()
        receiver.close()
        assert not (SHM / name).exists()

    def test_connection_without_the_key_is_refused(self):
        """A process that connects without the ring's key is turned away."""
        cfg = bulk.BulkConfig(provider="shm", slot_size=4096)
        offer = bulk.make_offer(1, cfg)
        accept, setup = bulk.answer(offer, cfg)
        setup.close()
        receiver, ready = bulk.open_receiver(offer, accept, cfg)
        with receiver, socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as intruder:
            intruder.connect("\0" + str(ready.params["socket"]))
            intruder.send(struct.pack("<cQ", b"H", (int(ready.params["key"]) + 1) % 2**64))
            with pytest.raises(ProtocolError) as caught:
                receiver.wait_attached(5.0)
            assert caught.value.reason == "bad_key"

    def test_frames_kept_past_close_do_not_leak_the_descriptor(self):
        """Arrays still viewing a closed ring keep the mapping, not the file descriptor."""
        sender, receiver = bulk.connect_pair(bulk.BulkConfig(provider="shm", slot_size=4096))
        sender.send(np.arange(4), timeout=5.0)
        frame = receiver.recv(5.0)
        kept = frame.array
        frame.release()
        with structlog.testing.capture_logs() as logs:
            receiver.close()
        sender.close()
        assert [log["event"] for log in logs] == ["bulk_ring_still_referenced"]
        assert kept.tolist() == [0, 1, 2, 3]  # still mapped; unmapped when collected
        del kept, frame


def test_zmq_hello_without_the_key_is_refused():
    """A zmq peer whose hello carries the wrong key is turned away."""
    import zmq

    cfg = bulk.BulkConfig(provider="zmq", slot_size=4096)
    offer = bulk.make_offer(1, cfg)
    accept, setup = bulk.answer(offer, cfg)
    setup.close()
    receiver, ready = bulk.open_receiver(offer, accept, cfg)
    context = zmq.Context()
    intruder = context.socket(zmq.DEALER)
    try:
        intruder.connect(str(ready.params["endpoint"]))
        intruder.send_multipart([b"H", struct.pack("<Q", (int(ready.params["key"]) + 1) % 2**64)])
        with pytest.raises(ProtocolError) as caught:
            receiver.wait_attached(5.0)
        assert caught.value.reason == "bad_key"
    finally:
        intruder.close(linger=0)
        context.term()
        receiver.close()


def test_zmq_write_handle_says_when_the_buffer_may_be_reused():
    """A zero-copy write's handle is done once ZeroMQ no longer reads the caller's
    buffer: changing the buffer after ``wait`` leaves the frame as it was sent. A frame
    below pyzmq's copy threshold is copied, so its handle is done at once."""
    import zmq

    sender, receiver = bulk.connect_pair(
        bulk.BulkConfig(provider="zmq", slot_size=1 << 20, checksums=False)
    )
    with sender, receiver:
        data = np.arange(1 << 20, dtype=np.uint8)
        sent = data.copy()
        handle = sender.send(data, timeout=5.0)
        assert handle.wait(5.0)
        assert handle.done()
        data[:] = 7
        with receiver.recv(5.0) as frame:
            assert np.array_equal(frame.array, sent)
        small = sender.send(np.arange(zmq.COPY_THRESHOLD // 2, dtype=np.uint8), timeout=5.0)
        assert small.done()
        assert small.wait(0.0)
        receiver.recv(5.0).release()


def test_zmq_credit_in_another_shape_is_refused():
    """The sender takes a credit only as one ``C`` part; anything else is ``bad_state``."""
    config = bulk.BulkConfig(provider="zmq", slot_size=4096, slot_count=4)
    sender, receiver = bulk.connect_pair(config)
    with sender, receiver:
        assert sender.wait_credits(4, 5.0)  # every slot: the next credit is the forged one
        forged = encode_bulk(BulkCredit(lane=receiver.lane, slots=(0,)))
        receiver.side.link.sock.send_multipart([b"C", forged])  # type: ignore[attr-defined]
        with pytest.raises(ProtocolError) as caught:
            sender.wait_credits(5, 5.0)
        assert caught.value.reason == "bad_state"


def test_offer_lists_only_usable_providers():
    """An offer names the providers this side can run, in preference order."""
    offer = bulk.make_offer(1, bulk.BulkConfig())
    assert isinstance(offer, BulkOffer)
    assert offer.providers[0] == "shm"
    assert "zmq" in offer.providers
