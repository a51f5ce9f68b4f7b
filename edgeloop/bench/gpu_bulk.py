"""GPU consumers of the bulk lane: a frame straight from a page-locked slot into JAX.

A receiver whose memory kind is ``gpu`` page-locks its ring once (:func:`pin`, which is
``cudaHostRegister`` through CuPy); each frame then reaches the GPU with one
asynchronous host-to-device copy straight from its slot into device memory, handed to
JAX through DLPack without another copy (:func:`to_jax`)::

    pinned = gpu_bulk.pin(receiver.ring)          # once per ring
    with receiver.recv() as frame:
        x = gpu_bulk.to_jax(frame.array)          # a jax.Array on the GPU; release after
    pinned.close()

Run as a script it checks (bytes equal) and times that path on this machine's GPU for 4
and 16 MiB frames, against the pinned-copy ceiling (CuPy ``memcpyAsync`` from the same
page-locked slot; goal: ratio >= 0.7) and against ``jax.device_put`` from pageable
memory (goal: ratio >= 2)::

    python edgeloop/bench/gpu_bulk.py --json       # or python -m edgeloop.bench.gpu_bulk

It needs a CUDA GPU, CuPy (the ``gpu`` extra: ``cupy-cuda12x``) and JAX with CUDA
(``jax[cuda12]``); without them it prints ``skipped: <reason>`` and exits 0. The module
imports only the standard library and NumPy at the top (CuPy and JAX inside functions),
and nothing from edgeloop, so the file runs on its own where edgeloop is not installed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np

__all__ = ["Skipped", "Pinned", "Upload", "pin", "upload", "to_jax", "measure", "main"]

MiB = 1024 * 1024
CEILING_GOAL = ">= 0.7"
DEVICE_PUT_GOAL = ">= 2"


class Skipped(Exception):
    """This machine cannot run the GPU path; the message says why."""


def _cupy() -> Any:
    try:
        import cupy  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise Skipped(f"CuPy is not installed ({exc}); pip install cupy-cuda12x") from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError, or a driver that fails to load
        raise Skipped(f"no CUDA GPU: {type(exc).__name__}: {exc}") from exc
    if count == 0:
        raise Skipped("no CUDA GPU: CUDA reports 0 devices")
    return cupy


def _jax() -> Any:
    try:
        import jax
    except ImportError as exc:
        raise Skipped(f"JAX is not installed ({exc}); pip install 'jax[cuda12]'") from exc
    try:
        gpus = jax.devices("gpu")
    except RuntimeError as exc:
        raise Skipped(f"JAX has no GPU backend ({exc}); pip install 'jax[cuda12]'") from exc
    if not gpus:
        raise Skipped("JAX sees no GPU")
    return jax


def _address(array: np.ndarray) -> int:
    return int(array.__array_interface__["data"][0])


class Pinned:
    """A host buffer page-locked for the GPU (``cudaHostRegister``) until :meth:`close`."""

    def __init__(self, buffer: memoryview | np.ndarray) -> None:
        self._cupy = _cupy()
        self.array = np.frombuffer(buffer, np.uint8) if isinstance(buffer, memoryview) else buffer
        self.address = _address(self.array)
        self.nbytes = int(self.array.nbytes)
        self._cupy.cuda.runtime.hostRegister(
            self.address, self.nbytes, 0
        )  # cudaHostRegisterDefault
        self._registered = True

    def contains(self, view: np.ndarray) -> bool:
        """Whether ``view``'s bytes lie inside this page-locked buffer."""
        start = _address(view)
        return self.address <= start and start + view.nbytes <= self.address + self.nbytes

    def close(self) -> None:
        """Unlock the pages (idempotent)."""
        if self._registered:
            self._registered = False
            self._cupy.cuda.runtime.hostUnregister(self.address)

    def __enter__(self) -> Pinned:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pin(buffer: memoryview | np.ndarray) -> Pinned:
    """Page-lock ``buffer`` (a receiver's ``ring``) for fast asynchronous copies to the GPU."""
    return Pinned(buffer)


class Upload:
    """One frame on its way to the GPU: its copy runs while the caller does other work."""

    def __init__(self, device: Any, event: Any) -> None:
        self._device = device
        self._event = event

    def done(self) -> bool:
        """Whether the copy has finished (the frame's slot may be released)."""
        return bool(self._event.done)

    def result(self) -> Any:
        """Wait for the copy, then the frame as a ``jax.Array`` (via DLPack, no copy)."""
        self._event.synchronize()
        return _jax().dlpack.from_dlpack(self._device)


def upload(view: np.ndarray, stream: Any | None = None) -> Upload:
    """Start copying ``view`` (C-contiguous, in page-locked memory for full speed) into
    fresh GPU memory on ``stream``; returns at once. Release the frame once the upload
    is done; start the next frame's upload before taking this one's result, and the
    DLPack import overlaps the next copy."""
    cupy = _cupy()
    if not view.flags.c_contiguous:
        raise ValueError("upload needs a C-contiguous view (a frame's array is one)")
    stream = stream or cupy.cuda.get_current_stream()
    device = cupy.empty(view.shape, dtype=view.dtype)
    cupy.cuda.runtime.memcpyAsync(
        device.data.ptr,
        _address(view),
        view.nbytes,
        cupy.cuda.runtime.memcpyHostToDevice,
        stream.ptr,
    )
    event = cupy.cuda.Event(block=False, disable_timing=True)
    event.record(stream)
    return Upload(device, event)


def to_jax(view: np.ndarray, stream: Any | None = None) -> Any:
    """``view`` as a ``jax.Array`` on the GPU: one copy straight from the (page-locked)
    slot into device memory, then DLPack, no other copy. The copy is complete when this
    returns, so the frame may be released at once."""
    return upload(view, stream).result()


def _median_seconds(call: Callable[[], float], repeats: int) -> float:
    """The median of ``repeats`` runs of ``call`` (which returns seconds), after a warm-up."""
    call()  # warm-up: allocations, compilation, first touch
    return float(statistics.median(call() for _ in range(repeats)))


def _result(
    name: str, edgeloop: float, anchor: float, anchor_name: str, goal: str
) -> dict[str, Any]:
    ratio = edgeloop / anchor if anchor > 0 else math.nan
    op, bound = goal.split()
    met = ratio >= float(bound) if op == ">=" else ratio <= float(bound)
    return {
        "name": name,
        "unit": "GB/s",
        "edgeloop": edgeloop,
        "anchor": anchor,
        "anchor_name": anchor_name,
        "ratio": ratio if math.isfinite(ratio) else None,
        "goal": goal,
        "met": bool(math.isfinite(ratio) and met),
    }


FRAMES = 32
"""Frames per timed stream: each path moves the slot this many times, two in flight."""


def _stream_seconds(start: Callable[[], Any], finish: Callable[[Any], object]) -> float:
    """Seconds to move :data:`FRAMES` frames, starting frame ``i + 1`` before finishing ``i``."""
    began = time.perf_counter()
    pending = start()
    for _ in range(FRAMES - 1):
        following = start()
        finish(pending)
        pending = following
    finish(pending)
    return (time.perf_counter() - began) / FRAMES


def _check_and_time(cupy: Any, jax: Any, slot: np.ndarray, repeats: int) -> dict[str, float]:
    """Bytes-equal checks, then the median seconds per frame of each path for ``slot``."""
    size = slot.nbytes
    pageable = slot.copy()
    with pin(slot) as pinned:
        assert pinned.contains(slot)
        stream = cupy.cuda.Stream(non_blocking=True)
        ceiling_dst = [cupy.empty(size, cupy.uint8) for _ in range(2)]
        turn = [0]

        def ceiling_start() -> Any:
            turn[0] ^= 1
            cupy.cuda.runtime.memcpyAsync(
                ceiling_dst[turn[0]].data.ptr,
                _address(slot),
                size,
                cupy.cuda.runtime.memcpyHostToDevice,
                stream.ptr,
            )
            event = cupy.cuda.Event(block=False, disable_timing=True)
            event.record(stream)
            return event

        def ceiling() -> float:
            return _stream_seconds(ceiling_start, lambda event: event.synchronize())

        def slot_to_jax() -> float:
            return _stream_seconds(
                lambda: upload(slot, stream), lambda up: up.result().block_until_ready()
            )

        def device_put() -> float:
            return _stream_seconds(
                lambda: jax.device_put(pageable), lambda array: array.block_until_ready()
            )

        ceiling_start()
        stream.synchronize()
        checks = {
            "the JAX array from the slot": np.asarray(to_jax(slot, stream)),
            "the pinned copy": cupy.asnumpy(ceiling_dst[turn[0]]),
            "jax.device_put": np.asarray(jax.device_put(pageable)),
        }
        for what, got in checks.items():
            if not np.array_equal(got, slot):
                raise AssertionError(f"{size // MiB} MiB: {what} differs from the slot's bytes")
        return {
            name: _median_seconds(call, repeats)
            for name, call in (
                ("ceiling", ceiling),
                ("slot_to_jax", slot_to_jax),
                ("device_put", device_put),
            )
        }


def measure(mib: int, repeats: int = 15) -> list[dict[str, Any]]:
    """Check and time one frame size; the two results (raises Skipped without a GPU)."""
    cupy = _cupy()
    jax = _jax()
    size = mib * MiB
    rng = np.random.default_rng(mib)
    segment = SharedMemory(f"edgeloop-gpubench-{secrets.token_hex(6)}", create=True, size=size)
    try:
        slot = np.ndarray((size,), np.uint8, buffer=segment.buf)
        slot[:] = rng.integers(0, 256, size, dtype=np.uint8)
        seconds = _check_and_time(cupy, jax, slot, repeats)
        del slot  # the segment can only be closed once no array views it
    finally:
        segment.close()
        segment.unlink()
    rate = {name: size / value / 1e9 for name, value in seconds.items()}
    return [
        _result(
            f"slot_to_jax_{mib}MiB",
            rate["slot_to_jax"],
            rate["ceiling"],
            "cupy memcpyAsync from the pinned slot",
            CEILING_GOAL,
        ),
        _result(
            f"vs_device_put_{mib}MiB",
            rate["slot_to_jax"],
            rate["device_put"],
            "jax.device_put from pageable memory",
            DEVICE_PUT_GOAL,
        ),
    ]


def _environment(repeats: int) -> dict[str, Any]:
    environment: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "repeats": repeats,
    }
    try:
        cupy = _cupy()
        jax = _jax()
        props = cupy.cuda.runtime.getDeviceProperties(0)
        environment.update(
            gpu=props["name"].decode() if isinstance(props["name"], bytes) else props["name"],
            cupy=cupy.__version__,
            jax=jax.__version__,
            cuda_runtime=cupy.cuda.runtime.runtimeGetVersion(),
        )
    except Skipped:
        pass
    return environment


def main(argv: list[str] | None = None) -> int:
    """Run the check; print a table or (``--json``) the suite document. Exit 0 when skipped."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the JSON document")
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 16], help="frame MiB")
    parser.add_argument("--repeats", type=int, default=15, help="timed streams per path")
    args = parser.parse_args(argv)
    document: dict[str, Any] = {"suite": "gpu_bulk", "results": []}
    try:
        for mib in args.sizes:
            document["results"].extend(measure(mib, args.repeats))
    except Skipped as skipped:
        document["skipped"] = str(skipped)
    document["environment"] = _environment(args.repeats)
    if args.json:
        print(json.dumps(document, allow_nan=False))
    elif "skipped" in document:
        print(f"skipped: {document['skipped']}")
    else:
        for entry in document["results"]:
            print(
                f"{entry['name']:<22} {entry['edgeloop']:8.2f} GB/s vs {entry['anchor']:8.2f} "
                f"({entry['anchor_name']}) ratio {entry['ratio']:.3f} goal {entry['goal']} "
                f"{'met' if entry['met'] else 'NOT met'}"
            )
    if args.json and "skipped" in document:
        print(f"skipped: {document['skipped']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
