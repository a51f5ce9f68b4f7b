"""The Learner's learning half: streaming VB, SVI and repairs over the rows it filtered.

Imported by the Learner in ``on_start`` (it imports JAX). Every filtered row is kept until
the next streaming-VB window; a window groups them by track ``[M, T]`` (rounded up to
powers of two so the smoother compiles for few shapes), runs the core's
``svb_window`` from the current posterior, and the result is the next prior. Camera
quality (the non-conjugate part) is fitted by the core's ``svi_quality`` on its own,
slower schedule, from the label counts the windows added. The last window, with the
posterior before it, is what a GibbsRepair resamples: its answer replaces that window's
streaming update, which is only sound if nothing was learnt since, so windows wait while a
repair is out (bounded staleness of one window).

Each new window shape compiles the smoother (seconds, on the event path), so with a
``shape`` every window is padded to at least that many tracks and rows (padding has no
report and adds nothing) and :meth:`Trainer.warm` compiles it before the first event.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from edgeloop.errors import LearningError
from edgeloop.learning import core
from edgeloop.learning._kernel import Rows
from edgeloop.learning._tracks import bucket

__all__ = ["Trainer", "Window"]


@dataclasses.dataclass(frozen=True, slots=True)
class Window:
    """One learnt window: the posterior before it, its tracks ``[M, T]`` and the species
    the streaming learner gave each (for a repair)."""

    base: Any
    seqs: Any
    assign: np.ndarray


class Trainer:
    """Holds the posterior and the rows not yet learnt from; see the module docstring."""

    def __init__(
        self,
        dims: core.Dims,
        prior: core.Posterior,
        *,
        seed: int,
        sweeps: int,
        shape: tuple[int, int] = (1, 1),
    ) -> None:
        self.dims = dims
        self.shape = shape
        self.posterior = prior
        self.quality = core.quality_prior(dims.cameras)
        self.sweeps = sweeps
        self._key = jax.random.PRNGKey(seed)
        self._rows: list[tuple[Rows, np.ndarray]] = []
        self._start_belief: np.ndarray | None = None
        self._labels = np.zeros(np.shape(prior.label_conc))  # counts learnt so far
        self._labels_at_svi = np.zeros_like(self._labels)
        template = np.asarray(prior.label_conc).mean(axis=0)
        self._template = template / template.sum(axis=-1, keepdims=True)
        self.last: Window | None = None
        self.windows = 0

    def warm(self) -> None:
        """Compile a window of the least ``shape`` (every track padding)."""
        m, t = self.shape
        seqs = core.padding_obs_seq(self.dims, m, t)
        prior = np.asarray(core.prior_belief(self.params()))
        first = np.broadcast_to(prior, (m, *prior.shape)).copy()
        after, _ = core.svb_window(self.posterior, seqs, first, sweeps=self.sweeps)
        np.asarray(after.crp)  # waits for the result: the compile is done

    def params(self) -> core.Params:
        """The filter's parameters under the current posterior (posterior means)."""
        return core.params(core.spec_of(self.posterior, "mean"))

    def keep(self, rows: Rows, ts: np.ndarray) -> None:
        """Remember a filtered batch for the next window."""
        self._rows.append((rows, ts))

    @property
    def pending(self) -> int:
        return sum(len(ts) for _, ts in self._rows)

    def learn(self, belief: np.ndarray) -> bool:
        """Streaming VB over the rows kept since the last window; ``belief`` is every
        track's belief now (the next window starts from it). ``False`` if no rows."""
        if not self._rows:
            self._start_belief = belief
            return False
        seqs, first, tracks = self._window(belief)
        before = self.posterior
        after, _ = core.svb_window(before, seqs, first, sweeps=self.sweeps)
        self._labels += np.asarray(after.label_conc) - np.asarray(before.label_conc)
        species = belief[tracks].sum(axis=2).argmax(axis=1)
        assign = np.zeros(seqs.start.shape[0], np.int32)
        assign[: len(tracks)] = species
        self.last = Window(base=before, seqs=seqs, assign=assign)
        self.posterior = after
        self._rows = []
        self._start_belief = belief
        self.windows += 1
        return True

    def fit_quality(self) -> bool:
        """NumPyro SVI for camera quality on the label counts since the last fit, then the
        label rows become ``quality * template + counts``. ``False`` if nothing new."""
        counts = self._labels - self._labels_at_svi
        if not counts.any():
            return False
        self._key, key = jax.random.split(self._key)
        self.quality = core.svi_quality(
            key, self.quality, self._template, self._labels_at_svi, counts
        )
        self._labels_at_svi = self._labels.copy()
        q = np.asarray(self.quality.mean())
        self.posterior = self.posterior._replace(
            label_conc=q[:, None, None] * self._template[None] + self._labels
        )
        return True

    def adopt(self, posterior: core.Posterior) -> None:
        """A repaired posterior replaces the last window's streaming update.

        Raises LearningError (and changes nothing) if it is not a posterior of this
        model's shapes: it came from another actor, so it is input like any other."""
        try:
            shapes = [np.shape(a) for a in posterior]
            params = core.params(core.spec_of(posterior, "mean"))
        except (TypeError, ValueError, AttributeError) as error:
            msg = f"not a posterior ({type(error).__name__}: {error}); the repair is dropped"
            raise LearningError(msg) from error
        finite = all(
            bool(np.all(np.isfinite(np.asarray(a)))) for a in (params.trans, params.emb_loc)
        )
        if shapes != [np.shape(a) for a in self.posterior] or not finite:
            msg = "the repaired posterior has other shapes or non-finite values; dropped"
            raise LearningError(msg)
        self.posterior = posterior
        self.last = None

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The posterior, camera quality and learnt label counts, for a snapshot."""
        arrays = {f"post.{k}": np.asarray(v) for k, v in self.posterior._asdict().items()}
        arrays["quality.loc"] = np.asarray(self.quality.loc)
        arrays["quality.scale"] = np.asarray(self.quality.scale)
        arrays["labels"] = self._labels
        arrays["labels_at_svi"] = self._labels_at_svi
        return arrays

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`to_arrays` saved (rows not yet learnt from are not saved)."""
        fields = core.Posterior._fields
        self.posterior = core.Posterior(
            **{k: jax.numpy.asarray(arrays[f"post.{k}"]) for k in fields}
        )
        self.quality = core.Quality(
            jax.numpy.asarray(arrays["quality.loc"]), jax.numpy.asarray(arrays["quality.scale"])
        )
        self._labels = np.array(arrays["labels"])
        self._labels_at_svi = np.array(arrays["labels_at_svi"])

    def _window(self, belief: np.ndarray) -> tuple[core.ObsSeq, Any, np.ndarray]:
        rows = [r for r, _ in self._rows]
        track = np.concatenate([r.track for r in rows])
        ts = np.concatenate([t for _, t in self._rows])
        tracks, inverse = np.unique(track, return_inverse=True)
        order = np.lexsort((ts, inverse))
        position = np.empty_like(order)
        sorted_inverse = inverse[order]
        group_first = np.r_[0, np.flatnonzero(np.diff(sorted_inverse)) + 1]
        offsets = np.repeat(group_first, np.diff(np.r_[group_first, len(order)]))
        position[order] = np.arange(len(order)) - offsets
        m = bucket(len(tracks), least=self.shape[0])
        t = bucket(int(position.max()) + 1, least=self.shape[1])

        def gather(name: str) -> np.ndarray:
            return np.concatenate([getattr(r, name) for r in rows])

        def place(values: np.ndarray, fill: Any = 0) -> np.ndarray:
            out = np.full((m, t, *values.shape[1:]), fill, values.dtype)
            out[inverse, position] = values
            return out

        seqs = core.make_obs_seq(
            self.dims,
            start=place(gather("start"), False),
            steps=place(gather("steps")),
            tod=place(gather("tod")),
            present=place(gather("present"), False),
            zone=place(gather("zone")),
            label=place(gather("label")),
            score=place(gather("score")),
            embedding=place(gather("embedding")),
        )
        start_belief = self._start_belief if self._start_belief is not None else belief
        prior = np.asarray(core.prior_belief(self.params()))
        first = np.broadcast_to(prior, (m, *prior.shape)).copy()
        first[: len(tracks)] = start_belief[tracks]
        return seqs, first, tracks
