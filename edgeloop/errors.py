"""Every exception edgeloop raises, in one tree.

Each class has one meaning; where a builtin category fits, the class subclasses it too, so
callers can catch either the precise or the generic type::

    EdgeloopError
    ├── ConfigError (ValueError)            an app file or spec is invalid; .key names where
    │   └── ScenarioError                   a yard scenario file is invalid; .key names where
    ├── HeadError (ValueError)              an on-device head is malformed or does not fit; .field
    ├── ActorError
    │   ├── ActorDeadError                  the actor stopped before it handled or replied
    │   │   └── PathNotFoundError (LookupError) no actor at that path (on that node)
    │   ├── AskTimeout (TimeoutError)       no reply within the ask's timeout
    │   ├── MailboxFull                     a bounded mailbox refused a message
    │   ├── PathTakenError (ValueError)     a live actor already holds that path
    │   ├── ActorStartError                 on_start raised or did not finish in time
    │   └── InjectedFault                   a crash asked for by fault injection (chaos runs)
    ├── SupervisorError
    │   ├── ChildNotFoundError (KeyError)   no child with that id
    │   ├── ChildExistsError (ValueError)   a child with that id is already present
    │   └── ChildRunningError               the operation needs a child that is not running
    ├── NodeError
    │   └── NodeFailedError                 the root supervisor escalated; the node stopped
    ├── JournalError                        a device's on-disk journal cannot be read or written
    ├── ProtocolError                       bytes or a message broke the wire protocol
    │   ├── DecodeError (ValueError)        not a valid message; .reason, .field say why
    │   ├── VersionError                    a protocol version this side does not speak
    │   └── LinkStateError                  a message the link's state does not allow now
    ├── LinkError                           a link to a peer failed
    │   ├── PeerLostError                   no heartbeat within the liveness timeout
    │   └── AuthenticationError             the peer's key is unknown, revoked or missing
    ├── RemoteError                         a remote actor raised; .remote_type, .traceback
    ├── DeviceError                         a request to a device (through its twin) failed
    │   ├── DeviceAwayError                 the device has no link (or lost it before it answered)
    │   ├── DeviceTimeout (TimeoutError)    no answer from the device within the timeout
    │   ├── DeviceRefusedError              the device answered no; .detail says why
    │   ├── InvalidRequestError (ValueError) a request to a twin is malformed; nothing was sent
    │   └── FrameError                      a pulled frame did not arrive or is not the ref's
    ├── LearningError                       the learner's model or its input is unusable
    │   ├── ObservationError (ValueError)   an observation batch is malformed; .field names it
    │   └── ClassCapacityError              every class slot is taken; raise the capacity
    ├── TraceError                          a trace could not be written, read or replayed
    │   ├── TraceFormatError (ValueError)   not an edgeloop trace (not MCAP, another encoding)
    │   ├── TraceCorruptError               truncated or damaged at .offset of .path
    │   └── ReplayError                     the node under replay failed or never settled
    └── StoreError                          the versioned store failed; .path names its file
        ├── StoreInputError (ValueError)    a key, value, time or version was not valid
        ├── StoreCorruptError               the file is not an edgeloop store (or is damaged)
        ├── StoreLockedError (TimeoutError) another writer held the file past the timeout
        └── StoreClosedError                the store was closed before the call
    EdgeloopInternalError                   a bug in edgeloop itself: please report it

Messages say what was wrong and what to do next.
"""

from __future__ import annotations

__all__ = [
    "EdgeloopError",
    "ConfigError",
    "ScenarioError",
    "HeadError",
    "ActorError",
    "ActorDeadError",
    "PathNotFoundError",
    "AskTimeout",
    "MailboxFull",
    "PathTakenError",
    "ActorStartError",
    "InjectedFault",
    "SupervisorError",
    "ChildNotFoundError",
    "ChildExistsError",
    "ChildRunningError",
    "NodeError",
    "NodeFailedError",
    "JournalError",
    "ProtocolError",
    "DecodeError",
    "VersionError",
    "LinkStateError",
    "LinkError",
    "PeerLostError",
    "AuthenticationError",
    "RemoteError",
    "DeviceError",
    "DeviceAwayError",
    "DeviceTimeout",
    "DeviceRefusedError",
    "InvalidRequestError",
    "FrameError",
    "LearningError",
    "KnowledgeError",
    "ObservationError",
    "ClassCapacityError",
    "TraceError",
    "TraceFormatError",
    "TraceCorruptError",
    "ReplayError",
    "EdgeloopInternalError",
]


class EdgeloopError(Exception):
    """Root of every error edgeloop raises on purpose."""


class ConfigError(EdgeloopError, ValueError):
    """A configuration (app file, child spec, flags) is invalid.

    ``key`` is the dotted key path of the offending value (``supervisor.children[1].restart``),
    or ``""`` when the problem is with the whole document.
    """

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}" if key else problem)


class ScenarioError(ConfigError):
    """A simulated-yard scenario (TOML) is invalid or unknown; ``key`` names where
    (``cameras[1].zones[0]``), or is ``""`` for the whole file."""


class HeadError(EdgeloopError, ValueError):
    """An on-device head (``HeadSpec``) is malformed or does not fit this device (another
    feature extractor or embedding size). ``field`` names the offending part; the device
    keeps running its previous head."""

    def __init__(self, message: str, *, field: str = "") -> None:
        self.field = field
        super().__init__(message)


class ActorError(EdgeloopError):
    """Something went wrong talking to an actor."""


class ActorDeadError(ActorError):
    """The actor had stopped (or stopped meanwhile) and will never handle the message."""


class PathNotFoundError(ActorDeadError, LookupError):
    """No actor holds that path (on that node); the message went to dead letters."""


class AskTimeout(ActorError, TimeoutError):
    """No reply arrived within the ask's timeout; the actor may still handle the message."""


class MailboxFull(ActorError):
    """A bounded mailbox refused a message under its overflow policy."""


class PathTakenError(ActorError, ValueError):
    """A live actor already holds the path; stop it first or choose another path."""


class ActorStartError(ActorError):
    """An actor's ``on_start`` raised (see ``__cause__``) or did not finish in time."""


class InjectedFault(ActorError):
    """An ``InjectFault`` message crashed the actor on purpose (``edgeloop bench chaos``);
    its supervisor restarts it as after any crash. Send none outside fault drills."""


class SupervisorError(EdgeloopError):
    """A supervisor refused a dynamic operation (start, terminate, restart, delete)."""


class ChildNotFoundError(SupervisorError, KeyError):
    """The supervisor has no child with that id."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class ChildExistsError(SupervisorError, ValueError):
    """A child with that id is already present; delete it first or pick another id."""


class ChildRunningError(SupervisorError):
    """The operation needs the child to be terminated first (``terminate_child``)."""


class NodeError(EdgeloopError):
    """The supervisor node could not start or stopped abnormally."""


class NodeFailedError(NodeError):
    """The root supervisor escalated, so the node stopped; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"the node stopped because its root supervisor escalated: {reason}")


class JournalError(EdgeloopError):
    """A device agent cannot read or write its journal (the outbox kept on disk); the
    message names the file and what to check."""


class ProtocolError(EdgeloopError):
    """Bytes or a message broke the wire protocol; ``reason`` is a short stable code
    (``malformed``, ``wrong_type``, ``unknown_kind``, ``bad_version``, ``oversized``,
    ``bad_frames``, ``bad_state``) used to count rejections."""

    reason = "protocol"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        if reason is not None:
            self.reason = reason
        super().__init__(message)


class DecodeError(ProtocolError, ValueError):
    """Not a valid message. ``field`` is the JSON path of the bad value (``$.seq``) when
    the bytes were valid MessagePack of the wrong shape, else ``""``."""

    reason = "malformed"

    def __init__(self, message: str, *, reason: str | None = None, field: str = "") -> None:
        self.field = field
        super().__init__(message, reason=reason)


class VersionError(ProtocolError):
    """The peer speaks a protocol version this side does not."""

    reason = "bad_version"


class LinkStateError(ProtocolError):
    """A message the link's current state does not allow (data before hello, say)."""

    reason = "bad_state"


class LinkError(EdgeloopError):
    """A link to a peer failed or could not be set up."""


class PeerLostError(LinkError):
    """No message from the peer within the liveness timeout; it is declared lost."""


class AuthenticationError(LinkError):
    """The peer's CurveZMQ key is unknown, revoked or missing."""


class RemoteError(EdgeloopError):
    """A remote actor's handler raised. ``remote_type`` is the exception's qualified type
    name on the remote side, ``traceback`` a short summary of where it was raised."""

    def __init__(self, remote_type: str, message: str, traceback: str = "") -> None:
        self.remote_type = remote_type
        self.remote_message = message
        self.traceback = traceback
        super().__init__(f"remote {remote_type}: {message}")


class DeviceError(EdgeloopError):
    """A request to a device failed; ``device`` names it."""

    def __init__(self, device: str, message: str) -> None:
        self.device = device
        super().__init__(message)


class DeviceAwayError(DeviceError):
    """The device has no ready link: the request was not sent, or the link went down before
    the device answered. Retry once it is back (``DeviceUp``), or check that the device
    agent runs and can reach the node."""


class DeviceTimeout(DeviceError, TimeoutError):
    """The device did not answer within the timeout; it may still act on the request."""


class DeviceRefusedError(DeviceError):
    """The device answered and refused (a failed command, a rejected config or head, a
    trap in fault); ``detail`` is the device's reason."""

    def __init__(self, device: str, message: str, detail: str = "") -> None:
        self.detail = detail
        super().__init__(device, message)


class InvalidRequestError(DeviceError, ValueError):
    """A request to a twin could not become a valid message (a bad setting value, a head
    that is not bytes, a timeout that is not a positive number); nothing was sent. The
    message names the bad value; fix the request and send it again."""


class FrameError(DeviceError):
    """A pulled frame did not arrive, or what arrived is not the frame its ref names."""


class LearningError(EdgeloopError):
    """The learner's model, its parameters or its input cannot be used as given."""


class ObservationError(LearningError, ValueError):
    """An observation batch is malformed (shape, range, dtype); ``field`` names the bad
    array (``label``, ``embedding``...). Nothing was applied: fix or drop the batch."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"observation {field}: {problem}")


class ClassCapacityError(LearningError):
    """Every class slot is taken, so no class can be added; build the model with a larger
    ``classes`` capacity (that recompiles once) or retire a class first."""


class KnowledgeError(LearningError, ValueError):
    """Open-world input cannot be used (examples of the wrong shape, not finite, too few
    to calibrate, an unknown class name, a head over its size budget); ``field`` names
    the bad part. The model is unchanged: fix the input and call again."""

    def __init__(self, message: str, *, field: str = "") -> None:
        self.field = field
        super().__init__(message)


class TraceError(EdgeloopError):
    """A trace (MCAP recording of a node's device boundary) could not be used."""


class TraceFormatError(TraceError, ValueError):
    """The file is not an edgeloop trace: not MCAP, or channels in another encoding."""


class TraceCorruptError(TraceError):
    """The trace is truncated or damaged from byte ``offset`` of ``path`` on; what comes
    before it is readable (open it with ``salvage=True``, or pass ``--salvage``)."""

    def __init__(self, path: str, offset: int, problem: str) -> None:
        self.path = path
        self.offset = offset
        super().__init__(
            f"{path}: {problem} at byte {offset}; everything before that byte is readable: "
            "replay or inspect it with --salvage (Python: open_trace(path, salvage=True))"
        )


class ReplayError(TraceError):
    """The node under replay crashed, or did not settle after an injected message."""


class EdgeloopInternalError(Exception):
    """This should never happen: a bug in edgeloop. Please report it with the traceback."""


# -- the versioned store (edgeloop.store) ----------------------------------------------

__all__ += [
    "StoreError",
    "StoreInputError",
    "StoreCorruptError",
    "StoreLockedError",
    "StoreClosedError",
]


class StoreError(EdgeloopError):
    """The versioned store (``edgeloop.store``) failed; ``path`` names its file."""

    def __init__(self, message: str, *, path: str = "") -> None:
        self.path = path
        super().__init__(message)


class StoreInputError(StoreError, ValueError):
    """A key, value, timestamp or version passed to the store was not valid."""


class StoreCorruptError(StoreError):
    """The file is not an edgeloop store or is damaged; move it aside and start afresh."""


class StoreLockedError(StoreError, TimeoutError):
    """Another connection held the file locked for longer than the store's timeout."""


class StoreClosedError(StoreError):
    """The store was closed before the call; open it again."""
