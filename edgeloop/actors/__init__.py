"""The actor core: actors, refs, bounded mailboxes, monitors and dead letters, over pykka."""

from edgeloop.actors._actor import Actor
from edgeloop.actors._cell import Counters
from edgeloop.actors._dead_letters import DeadLetter, DeadLetters
from edgeloop.actors._fault import InjectFault
from edgeloop.actors._future import Future
from edgeloop.actors._mailbox import MailboxConfig, Overflow
from edgeloop.actors._monitor import ActorRefLike, Watcher, deliver_down, monitor
from edgeloop.actors._ref import DEFAULT_ASK_TIMEOUT, ActorRef, ActorStatistics, send_signal
from edgeloop.actors._signals import NORMAL, SHUTDOWN, Down, ExitReason
from edgeloop.actors._system import (
    DEFAULT_START_TIMEOUT,
    ActorSystem,
    check_path,
    split_address,
)

__all__ = [
    "Actor",
    "ActorRef",
    "ActorRefLike",
    "ActorSystem",
    "Future",
    "Down",
    "ExitReason",
    "NORMAL",
    "SHUTDOWN",
    "monitor",
    "send_signal",
    "Watcher",
    "deliver_down",
    "MailboxConfig",
    "Overflow",
    "ActorStatistics",
    "Counters",
    "DeadLetter",
    "DeadLetters",
    "InjectFault",
    "DEFAULT_ASK_TIMEOUT",
    "DEFAULT_START_TIMEOUT",
    "check_path",
    "split_address",
]
