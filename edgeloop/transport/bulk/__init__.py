"""The bulk lane: full frames between processes and hosts, zero-copy where the hardware allows.

One protocol, modelled on RDMA one-sided writes (``docs/bulk-lane.md``): the receiver
owns a ring of fixed-size slots and grants credits; the sender writes a frame into a slot
it holds a credit for and completes the write with an immediate value ``(seq, slot)``;
the receiver checks the slot's descriptor and hands the consumer a read-only numpy view,
and the slot goes back to the sender (credits in batches) when the consumer releases the
frame. Between a node and a device the handshake and the credits ride on their control
link: ``Endpoint.open_bulk_receiver`` / ``Endpoint.open_bulk_sender``.

Providers move the bytes: ``shm`` (shared memory, one host), ``zmq`` (zero-copy ZeroMQ,
any hosts), ``verbs`` (RDMA through pyverbs, where a NIC exists) and ``fake`` (an
in-process RDMA model for tests). :func:`select_provider` picks one; the config can
insist on one::

    from edgeloop.transport import bulk

    sender, receiver = bulk.connect_pair(bulk.BulkConfig(slot_size=1 << 20))
    sender.send(frame)                      # an ndarray; waits for a credit
    with receiver.recv(timeout=1.0) as got:
        use(got.array)                      # zero-copy, read-only, valid until released
"""

from edgeloop.transport.bulk._fake import FakeProvider
from edgeloop.transport.bulk._fetch import FrameFetcher, ref_mismatch, send_frame
from edgeloop.transport.bulk._handshake import (
    PROVIDER_NAMES,
    BulkConfig,
    answer,
    connect_pair,
    host_id,
    make_offer,
    make_provider,
    open_receiver,
    open_sender,
    select_provider,
)
from edgeloop.transport.bulk._lane import Frame, Receiver, ReceiverStatistics, Sender
from edgeloop.transport.bulk._protocol import (
    HEADER,
    MAX_SLOTS,
    CreditState,
    Geometry,
    RingState,
    SlotState,
    crc32,
    decode_imm,
    encode_imm,
    pack_header,
    unpack_header,
)
from edgeloop.transport.bulk._provider import (
    DONE,
    Arrival,
    Availability,
    Params,
    Provider,
    ReceiveSide,
    SenderSetup,
    SendHandle,
    SendSide,
)
from edgeloop.transport.bulk._shm import SEGMENT_PREFIX, ShmProvider
from edgeloop.transport.bulk._verbs import VerbsProvider
from edgeloop.transport.bulk._verbs import probe as probe_verbs
from edgeloop.transport.bulk._zmq import ZmqProvider

__all__ = [
    # lanes
    "BulkConfig",
    "Sender",
    "Receiver",
    "Frame",
    "ReceiverStatistics",
    "connect_pair",
    # handshake and selection
    "make_offer",
    "answer",
    "open_receiver",
    "open_sender",
    "select_provider",
    "host_id",
    "make_provider",
    "probe_verbs",
    "PROVIDER_NAMES",
    # frames by reference
    "FrameFetcher",
    "send_frame",
    "ref_mismatch",
    # providers
    "Provider",
    "ReceiveSide",
    "SendSide",
    "SenderSetup",
    "SendHandle",
    "Arrival",
    "Availability",
    "Params",
    "DONE",
    "ShmProvider",
    "ZmqProvider",
    "VerbsProvider",
    "FakeProvider",
    "SEGMENT_PREFIX",
    # the sans-IO protocol
    "Geometry",
    "RingState",
    "CreditState",
    "SlotState",
    "HEADER",
    "MAX_SLOTS",
    "encode_imm",
    "decode_imm",
    "pack_header",
    "unpack_header",
    "crc32",
]
