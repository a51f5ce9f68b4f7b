"""Any sequence of boundary records written by the recorder's MCAP writer reads back the
same, through edgeloop's reader and the ``mcap`` package's, split into chunks or not."""

from __future__ import annotations

import tempfile
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import given, settings
from mcap.reader import make_reader

from edgeloop.messages import decode
from edgeloop.trace import TraceRecord, TraceWriter, open_trace
from tests.property.test_messages_roundtrip import any_message

records = st.lists(
    st.builds(
        TraceRecord,
        direction=st.sampled_from(["in", "out"]),
        device=st.from_regex(r"\A[a-z][a-z0-9-]{0,8}\Z"),
        message=any_message,
        ts=st.floats(0.0, 1e6, allow_nan=False).map(lambda t: round(t * 1e9) / 1e9),
    ),
    max_size=40,
)


@settings(max_examples=40)
@given(records, st.sampled_from([64, 4096]), st.sampled_from(["zstd", "lz4", "none"]))
def test_written_records_read_back_the_same(
    written: list[TraceRecord], chunk_size: int, compression: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.mcap"
        with TraceWriter(path, chunk_size=chunk_size, compression=compression) as writer:  # type: ignore[arg-type]
            writer.write_records(written)
        assert list(open_trace(path)) == written
        with path.open("rb") as stream:
            reader = make_reader(stream, validate_crcs=True)
            got = [
                (channel.topic, message.log_time, decode(message.data))
                for _, channel, message in reader.iter_messages(log_time_order=False)
            ]
        assert got == [(r.topic, round(r.ts * 1e9), r.message) for r in written]
