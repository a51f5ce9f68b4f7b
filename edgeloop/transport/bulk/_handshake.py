"""Setting a lane up: configuration, provider selection and the three-message handshake.

The handshake is sans-IO: each step takes the peer's message and returns this side's
answer, and the caller carries them (over the control link in a deployment)::

    receiver                                   sender
    offer = make_offer(lane, config)   ---->   accept, setup = answer(offer, config)
    rx, ready = open_receiver(offer, accept)  <----
                                       ---->   tx = open_sender(offer, setup, ready)

Selection (:func:`select_provider`, made by the sender from the receiver's offer):
an explicit ``provider`` in the config wins; otherwise ``shm`` when both sides are on
the same host, else ``verbs`` when both offer it and an RDMA device is present, else
``zmq``. "Same host" means the same kernel boot, network namespace and mount namespace
(:func:`host_id`), since the shm lane needs a shared ``/dev/shm`` and abstract Unix
sockets. Every choice is logged once per lane (``bulk_provider_selected``, with why).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Final, Literal

import structlog

from edgeloop.errors import ConfigError, LinkError, ProtocolError
from edgeloop.messages import BulkAccept, BulkOffer, BulkReady
from edgeloop.transport.bulk._fake import FakeProvider
from edgeloop.transport.bulk._lane import Receiver, Sender
from edgeloop.transport.bulk._protocol import MAX_SLOTS, Geometry
from edgeloop.transport.bulk._provider import Provider, ReceiveSide, SenderSetup, SendSide
from edgeloop.transport.bulk._shm import ShmProvider
from edgeloop.transport.bulk._verbs import VerbsProvider
from edgeloop.transport.bulk._verbs import probe as probe_verbs
from edgeloop.transport.bulk._zmq import DEFAULT_ENDPOINT, ZmqProvider

__all__ = [
    "PROVIDER_NAMES",
    "BulkConfig",
    "host_id",
    "make_provider",
    "select_provider",
    "make_offer",
    "answer",
    "open_receiver",
    "open_sender",
    "connect_pair",
]

_log = structlog.get_logger("edgeloop.transport.bulk")

PROVIDER_NAMES: Final = ("shm", "verbs", "zmq", "fake")
"""Every provider, in the order ``auto`` prefers them (``fake`` only when configured)."""


@dataclasses.dataclass(frozen=True, slots=True)
class BulkConfig:
    """How this side runs its lanes.

    ``provider`` is ``auto`` or a provider's name (a receiver then offers only it; a
    sender accepts only it). ``offer`` lists the providers this side may use under
    ``auto``. ``checksums``: the sender computes a CRC-32 of each frame whose checksum
    the caller does not give; ``verify``: the receiver checks every checksum it is
    given. ``memory`` is the receiver's slot memory (``gpu``: the consumer page-locks the
    ring for copies to a GPU).
    """

    provider: Literal["auto", "shm", "verbs", "zmq", "fake"] = "auto"
    slot_size: int = 4 * 1024 * 1024
    slot_count: int = 8
    memory: Literal["host", "gpu"] = "host"
    checksums: bool = True
    verify: bool = True
    offer: tuple[str, ...] = ("shm", "verbs", "zmq")
    zmq_endpoint: str = DEFAULT_ENDPOINT
    verbs_device: str | None = None
    verbs_port: int = 1
    verbs_gid_index: int = 0
    host_id: str | None = None

    def __post_init__(self) -> None:
        if self.provider != "auto" and self.provider not in PROVIDER_NAMES:
            raise ConfigError(
                "bulk.provider",
                f"unknown provider {self.provider!r}; use auto or one of "
                f"{', '.join(PROVIDER_NAMES)}",
            )
        unknown = [name for name in self.offer if name not in PROVIDER_NAMES]
        if unknown or not self.offer:
            raise ConfigError(
                "bulk.offer",
                f"offer names providers from {', '.join(PROVIDER_NAMES)}; got {self.offer}",
            )
        if not 1 <= self.slot_count <= MAX_SLOTS:
            raise ConfigError(
                "bulk.slot_count", f"must be in 1..{MAX_SLOTS}, got {self.slot_count}"
            )
        if not 1 <= self.slot_size <= 2**40:
            raise ConfigError("bulk.slot_size", f"must be in 1..2**40 bytes, got {self.slot_size}")
        if self.memory not in ("host", "gpu"):
            raise ConfigError("bulk.memory", f"must be host or gpu, got {self.memory!r}")

    @property
    def geometry(self) -> Geometry:
        """The ring this side's receivers register."""
        return Geometry(self.slot_size, self.slot_count)

    def candidates(self) -> tuple[str, ...]:
        """The providers this side may use, before probing."""
        return (self.provider,) if self.provider != "auto" else self.offer


def host_id() -> str:
    """What identifies "this host" for the shm lane: a hash of the kernel's boot id and
    this process's network and mount namespaces (16 hex digits)."""
    parts = [socket.gethostname()]
    try:
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
    except OSError:
        pass
    for namespace in ("net", "mnt"):
        try:
            parts.append(f"{namespace}:{os.stat(f'/proc/self/ns/{namespace}').st_ino}")
        except OSError:
            pass
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def make_provider(name: str, config: BulkConfig) -> Provider:
    """The provider called ``name``, configured from ``config``."""
    if name == "shm":
        return ShmProvider()
    if name == "zmq":
        return ZmqProvider(config.zmq_endpoint)
    if name == "verbs":
        return VerbsProvider(
            config.verbs_device, config.verbs_port, config.verbs_gid_index, config.zmq_endpoint
        )
    if name == "fake":
        return FakeProvider()
    raise ConfigError("bulk.provider", f"unknown provider {name!r}")


def _usable(config: BulkConfig) -> tuple[str, ...]:
    """The candidates that can run here (verbs only with an RDMA device)."""
    usable = []
    for name in config.candidates():
        availability = probe_verbs() if name == "verbs" else make_provider(name, config).probe()
        if availability.available:
            usable.append(name)
    return tuple(usable)


def select_provider(
    offered: tuple[str, ...], usable: tuple[str, ...], *, same_host: bool, prefer: str = "auto"
) -> tuple[str, str]:
    """The provider a sender picks from an offer, and why (one line for the log).

    ``offered`` is the receiver's list, ``usable`` the sender's; LinkError when they have
    none in common (or not the preferred one).
    """
    common = [name for name in offered if name in usable]
    if prefer != "auto":
        if prefer in common:
            return prefer, f"{prefer} is configured"
        raise LinkError(
            f"bulk provider {prefer!r} is configured, but the receiver offers "
            f"{', '.join(offered)} and this side can use {', '.join(usable) or 'none'}"
        )
    if same_host and "shm" in common:
        return "shm", "both peers are on this host"
    where = "this host" if same_host else "different hosts"
    if "verbs" in common:
        return "verbs", f"peers on {where}, both with RDMA"
    if "zmq" in common:
        verbs = probe_verbs()
        why = verbs.reason if not verbs.available else "the receiver does not offer verbs"
        return "zmq", f"peers on {where}; {why}"
    if common:
        return common[0], f"the only provider both peers can use on {where}"
    raise LinkError(
        f"no bulk provider in common: the receiver offers {', '.join(offered)}, this side "
        f"can use {', '.join(usable) or 'none'}"
    )


def make_offer(lane: int, config: BulkConfig) -> BulkOffer:
    """The receiver's opening message for ``lane``."""
    usable = _usable(config)
    if not usable:
        raise LinkError(f"none of the bulk providers {', '.join(config.candidates())} can run here")
    return BulkOffer(
        lane=lane,
        host_id=config.host_id or host_id(),
        providers=usable,
        slot_size=config.slot_size,
        slot_count=config.slot_count,
        memory=config.memory,
    )


def answer(offer: BulkOffer, config: BulkConfig) -> tuple[BulkAccept, SenderSetup]:
    """The sender's answer to ``offer``: the chosen provider, and its half-built state."""
    here = config.host_id or host_id()
    name, reason = select_provider(
        tuple(offer.providers),
        _usable(config),
        same_host=offer.host_id == here,
        prefer=config.provider,
    )
    _log.info("bulk_provider_selected", lane=offer.lane, provider=name, reason=reason)
    geometry = Geometry(offer.slot_size, offer.slot_count)
    setup = make_provider(name, config).prepare(offer.lane, geometry)
    accept = BulkAccept(lane=offer.lane, host_id=here, provider=name, params=setup.params)
    return accept, setup


def open_receiver(
    offer: BulkOffer,
    accept: BulkAccept,
    config: BulkConfig,
    *,
    wrap: Callable[[ReceiveSide], ReceiveSide] | None = None,
) -> tuple[Receiver, BulkReady]:
    """Register the ring for the sender's choice; the receiver and its BulkReady.

    ``wrap`` may replace the provider's side (a lane bound to a control link wraps it so
    that credits travel on the link)."""
    if accept.lane != offer.lane or accept.provider not in offer.providers:
        raise ProtocolError(
            f"the sender accepted provider {accept.provider!r} on lane {accept.lane}, but "
            f"lane {offer.lane} offered {', '.join(offer.providers)}",
            reason="bad_accept",
        )
    geometry = Geometry(offer.slot_size, offer.slot_count)
    provider = make_provider(accept.provider, config)
    side = provider.listen(offer.lane, geometry, offer.memory, dict(accept.params))
    try:
        if wrap is not None:
            side = wrap(side)
        receiver = Receiver(side, offer.lane, geometry, verify=config.verify)
    except BaseException:
        side.close()
        raise
    return receiver, BulkReady(
        lane=offer.lane, provider=accept.provider, params=side.ready_params()
    )


def open_sender(
    offer: BulkOffer,
    setup: SenderSetup,
    ready: BulkReady,
    config: BulkConfig,
    *,
    wrap: Callable[[SendSide], SendSide] | None = None,
) -> Sender:
    """Attach to the receiver's ring: the sender of the lane (``wrap`` as in
    :func:`open_receiver`)."""
    if ready.lane != offer.lane:
        setup.close()
        raise ProtocolError(
            f"bulk_ready for lane {ready.lane} answers lane {offer.lane}", reason="bad_lane"
        )
    try:
        side = setup.attach(dict(ready.params))
    except BaseException:
        setup.close()
        raise
    if wrap is not None:
        side = wrap(side)
    return Sender(
        side, offer.lane, Geometry(offer.slot_size, offer.slot_count), checksums=config.checksums
    )


def connect_pair(
    config: BulkConfig, *, lane: int = 0, timeout: float = 5.0
) -> tuple[Sender, Receiver]:
    """Both ends of one lane in this process, handshake done (tests, benchmarks)."""
    offer = make_offer(lane, config)
    accept, setup = answer(offer, config)
    receiver, ready = open_receiver(offer, accept, config)
    try:
        sender = open_sender(offer, setup, ready, config)
    except BaseException:
        receiver.close()
        raise
    if not receiver.wait_attached(timeout):
        sender.close()
        receiver.close()
        raise LinkError(f"the sender did not attach to lane {lane} within {timeout} s")
    return sender, receiver
