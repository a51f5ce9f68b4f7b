"""What one camera sees at one tick: a noisy frame with the animals in view, detections
cropped from it and embedded by the frozen extractor, and the ground truth.

Each frame is split into one vertical band per zone the camera covers; an animal sits in
a slot of its zone's band (slots never overlap, so the crop of a detection is exactly its
patch of the frame). All randomness of one observation comes from a generator keyed by
``(seed, camera, tick)``, and the look of an animal from one keyed by ``(seed, animal,
tick)``: a camera's stream can be computed in any process, in any order, and two cameras
that see one animal see the same sprite, each with its own noise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from edgeloop.errors import ConfigError
from edgeloop.sensors.world._appearance import FeatureExtractor
from edgeloop.sensors.world._motion import AnimalInfo, Trajectory, is_night
from edgeloop.sensors.world._scenario import SLOT_MARGIN, Camera, Scenario

__all__ = [
    "Detection",
    "Observation",
    "CameraView",
    "crop_to_digit",
    "thumbnail",
    "BACKGROUND",
    "NIGHT_GAIN",
    "NIGHT_NOISE",
]

BACKGROUND = 24.0
"""Mean grey level of the yard in a frame (0..255)."""
INK = 200.0
"""Grey level added by a full-intensity stroke of a sprite in daylight."""
NIGHT_GAIN = 0.45
"""How much dimmer sprites are at night (infrared)."""
NIGHT_NOISE = 1.5
"""How much noisier a camera is at night."""

_CAMERA_STREAM = 2


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class Detection:
    """One animal a camera detected: where (its zone and box in the frame), its int8
    embedding from the crop, and who it really was (ground truth, not known to a device)."""

    zone: str
    box: tuple[int, int, int, int]
    """``(top, left, height, width)`` in frame pixels."""
    embedding: npt.NDArray[np.int8]
    animal: str
    species: str

    @property
    def embedding_bytes(self) -> bytes:
        """The embedding as an Event carries it: one signed byte per value."""
        return self.embedding.tobytes()


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class Observation:
    """What camera ``camera`` saw at ``tick`` (simulated second ``t``).

    A ``dropped`` frame has no detections and no frame. ``in_view`` is the ground truth:
    the ids of all animals in the covered zones, detected or missed. ``frame`` is the full
    ``uint8`` image (``None`` when dropped or not rendered).
    """

    camera: str
    tick: int
    t: float
    night: bool
    zones: tuple[str, ...]
    dropped: bool
    detections: tuple[Detection, ...]
    in_view: tuple[str, ...]
    frame: npt.NDArray[np.uint8] | None


class CameraView:
    """One camera of a world; ``observe`` is a pure function of its arguments."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        camera_index: int,
        trajectory: Trajectory,
        extractor: FeatureExtractor,
        sprite: Callable[[AnimalInfo, int], npt.NDArray[np.float64]],
    ) -> None:
        self.scenario = scenario
        self.seed = seed
        self.index = camera_index
        self.camera: Camera = scenario.cameras[camera_index]
        self._trajectory = trajectory
        self._extractor = extractor
        self._sprite = sprite

    @property
    def id(self) -> str:
        """The camera's id in the scenario."""
        return self.camera.id

    def observe(
        self,
        tick: int,
        *,
        zones: Sequence[str] | None = None,
        noise: float | None = None,
        render: bool = True,
    ) -> Observation:
        """What the camera sees at ``tick``, seeing ``zones`` (default: the scenario's;
        a pan) with pixel ``noise`` (default: the camera's). ``render=False`` skips the
        full frame but yields the same detections and embeddings."""
        s = self.scenario
        if not 0 <= tick < s.ticks:
            raise ValueError(f"tick {tick} is outside the scenario's 0..{s.ticks - 1}")
        view, noise = self.check_settings(zones=zones, noise=noise)
        sigma = noise * 255.0
        t = tick * s.tick
        night = is_night(s, t)
        if night:
            sigma *= NIGHT_NOISE
        rng = np.random.default_rng([self.seed, _CAMERA_STREAM, self.index, tick])
        band = s.frame_size // len(view)
        cell = s.sprite_size + SLOT_MARGIN
        cols, rows = max(band // cell, 1), s.frame_size // cell
        zone_band = {s.zone_index(z): i for i, z in enumerate(view)}
        in_view = [(a, zone_band[z]) for a, z in self._trajectory.present(tick) if z in zone_band]
        if rng.random() < self.camera.dropout:
            return Observation(self.camera.id, tick, t, night, view, True, (), _ids(in_view), None)
        gain = NIGHT_GAIN if night else 1.0
        taken: set[tuple[int, int]] = set()
        patches: list[tuple[AnimalInfo, int, tuple[int, int, int, int], npt.NDArray[np.uint8]]] = []
        for animal, b in in_view:
            slot = _free_slot(animal.index % (cols * rows), b, cols * rows, taken)
            r, c = divmod(slot, cols)
            dy, dx = (int(v) for v in rng.integers(0, SLOT_MARGIN + 1, size=2))
            box = (r * cell + dy, b * band + c * cell + dx, s.sprite_size, s.sprite_size)
            missed = rng.random() < self.camera.miss
            ink = np.kron(self._sprite(animal, tick), np.ones((s.sprite_size // 8,) * 2))
            pixels = BACKGROUND + gain * INK / 16.0 * ink + rng.normal(0.0, sigma, ink.shape)
            patch = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
            patches.append((animal, -1 if missed else b, box, patch))
        found = [p for p in patches if p[1] >= 0]
        embeddings = self._embed([p[3] for p in found])
        detections = tuple(
            Detection(view[b], box, embeddings[i], animal.id, animal.species)
            for i, (animal, b, box, _) in enumerate(found)
        )
        frame = None
        if render:
            # float32 draws, rounded by adding 0.5 before truncation: a third of the time of
            # float64 normals, and the background is most of a frame's pixels
            noise_px = rng.standard_normal((s.frame_size, s.frame_size), dtype=np.float32)
            noise_px *= np.float32(sigma)
            noise_px += np.float32(BACKGROUND + 0.5)
            frame = noise_px.clip(0.0, 255.0).astype(np.uint8)
            for _, _, (top, left, h, w), patch in patches:
                frame[top : top + h, left : left + w] = patch
        return Observation(
            self.camera.id, tick, t, night, view, False, detections, _ids(in_view), frame
        )

    def check_settings(
        self, *, zones: Sequence[str] | None = None, noise: float | None = None
    ) -> tuple[tuple[str, ...], float]:
        """The zones and noise :meth:`observe` would use, or a ConfigError naming the
        setting this camera cannot take (a device checks a desired config with it)."""
        s = self.scenario
        if isinstance(zones, str):
            raise ConfigError("zones", f"expected a list of zone names, got the string {zones!r}")
        view = tuple(self.camera.zones if zones is None else zones)
        known = {z.id for z in s.zones}
        if not view:
            raise ConfigError("zones", "a camera must see at least one zone")
        for i, zone in enumerate(view):
            if not isinstance(zone, str) or zone not in known:
                raise ConfigError(
                    f"zones[{i}]", f"no zone {zone!r} in the yard (has {', '.join(sorted(known))})"
                )
        if len(set(view)) != len(view):
            raise ConfigError("zones", f"{list(view)} names a zone twice")
        if s.frame_size // len(view) < s.sprite_size + SLOT_MARGIN:
            raise ConfigError(
                "zones",
                f"{len(view)} zones do not fit one {s.frame_size} px frame; see at most "
                f"{s.frame_size // (s.sprite_size + SLOT_MARGIN)}",
            )
        level = self.camera.noise if noise is None else noise
        if isinstance(level, bool) or not isinstance(level, int | float) or not 0 <= level <= 1:
            raise ConfigError("noise", f"expected a number from 0 to 1, got {level!r}")
        return view, float(level)

    def _embed(self, patches: list[npt.NDArray[np.uint8]]) -> npt.NDArray[np.int8]:
        if not patches:
            return np.zeros((0, self._extractor.dim), dtype=np.int8)
        return self._extractor.embed(np.stack([crop_to_digit(p) for p in patches]))


def crop_to_digit(patch: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    """A detection's crop shrunk to the extractor's 8x8 input (mean of each block)."""
    size = patch.shape[0]
    block = size // 8
    blocks = np.asarray(patch, dtype=np.float64).reshape(8, block, 8, block)
    out: npt.NDArray[np.float64] = blocks.mean(axis=(1, 3))
    return out


def thumbnail(frame: npt.NDArray[np.uint8], size: int = 32) -> npt.NDArray[np.uint8]:
    """``frame`` shrunk to ``size`` pixels square by block means: what a device reports
    by default while the full frame stays in its ring buffer."""
    block = frame.shape[0] // size
    if block < 1 or frame.shape[0] % size or frame.shape[1] != frame.shape[0]:
        raise ValueError(f"cannot shrink a {frame.shape} frame to {size} x {size}")
    blocks = np.asarray(frame, dtype=np.float64).reshape(size, block, size, block)
    small: npt.NDArray[np.uint8] = np.rint(blocks.mean(axis=(1, 3))).astype(np.uint8)
    return small


def _free_slot(preferred: int, band: int, slots: int, taken: set[tuple[int, int]]) -> int:
    for step in range(slots):
        slot = (preferred + step) % slots
        if (band, slot) not in taken:
            taken.add((band, slot))
            return slot
    return preferred  # more animals than slots in one zone: they overlap


def _ids(in_view: list[tuple[AnimalInfo, int]]) -> tuple[str, ...]:
    return tuple(animal.id for animal, _ in in_view)
