"""Record what crossed a node's device boundary into MCAP traces, read them back, and
replay them deterministically under a virtual clock (docs/trace-format.md).

::

    from edgeloop.trace import Recorder, RecorderConfig, open_trace

    recorder = Recorder(RecorderConfig(Path("runs/a")), node="edge").attach(node.devices)
    ...
    recorder.close()

    trace = open_trace("runs/a")
    for record in trace.records(topics="cam-1", start=10.0):
        print(record.ts, record.direction, record.message)
    events = trace.columns("event")         # {"log_time": [...], "score": [...], ...}
"""

from edgeloop.trace._check import Divergence, first_divergence
from edgeloop.trace._format import (
    FORMAT_VERSION,
    MESSAGE_ENCODING,
    PROFILE,
    SCHEMA_ENCODING,
    Frame,
    FrameRecord,
    TraceRecord,
    parse_topic,
    topic_for,
)
from edgeloop.trace._player import (
    Progress,
    ReplayNode,
    ReplayOptions,
    ReplayPort,
    ReplayResult,
    replay,
    settle,
)
from edgeloop.trace._reader import ChannelInfo, Trace, TraceInfo, open_trace, trace_files
from edgeloop.trace._recorder import (
    RECORDER_SERVICE,
    Recorder,
    RecorderConfig,
    RecorderStatistics,
    TapLike,
    TappablePort,
)
from edgeloop.trace._serve import (
    SUBSCRIBER_PATH,
    TRACE_PATH,
    TraceServer,
    TraceSubscriber,
    serve_trace,
)
from edgeloop.trace._writer import Compression, TraceWriter

__all__ = [
    # reading
    "open_trace",
    "Trace",
    "TraceInfo",
    "ChannelInfo",
    "TraceRecord",
    "FrameRecord",
    "Frame",
    "trace_files",
    # writing and recording
    "Recorder",
    "RecorderConfig",
    "RECORDER_SERVICE",
    "RecorderStatistics",
    "TraceWriter",
    "Compression",
    "TapLike",
    "TappablePort",
    # replaying and checking
    "replay",
    "ReplayOptions",
    "ReplayResult",
    "ReplayNode",
    "ReplayPort",
    "Progress",
    "settle",
    "first_divergence",
    "Divergence",
    # recording a node from elsewhere
    "serve_trace",
    "TraceServer",
    "TraceSubscriber",
    "TRACE_PATH",
    "SUBSCRIBER_PATH",
    # the format
    "PROFILE",
    "FORMAT_VERSION",
    "MESSAGE_ENCODING",
    "SCHEMA_ENCODING",
    "topic_for",
    "parse_topic",
]
