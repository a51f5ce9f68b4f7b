"""A small self-contained yard for ``bench learner``: skunk, cat and raccoon episodes seen
by three overlapping cameras, with ground truth, until the sensors' world lands.

Each species is one digit class of scikit-learn's bundled digits; a camera's embedding
is a frozen PCA (fitted once on training digits of the known species) of a held-out
image of that class plus camera noise, quantised to int8. Zones: 0 away, 1 lawn, 2 near
the trap, 3 in the trap. Species-specific zone chains differ by time of day (skunks are
nocturnal and seek the bait; cats pass by the trap and rarely step in). Cameras report
with a zone-dependent detection probability, a noisy zone, an on-device label (a
confusion matrix whose accuracy is swept) and a score (higher when the label is right).
Only numpy and scikit-learn here: the learner is driven through its public core.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["SPECIES", "DIGITS", "ZONES", "TRAP", "YardWorld", "Episodes", "make_world", "simulate"]

SPECIES = ("skunk", "cat", "raccoon")
DIGITS = (3, 5, 8)
ZONES = ("away", "lawn", "near", "trap")
TRAP = 3
DIM = 16
TICKS = 24
SCORE_EDGES = np.array([0.5, 0.75])

# transitions per species, [tod][zone][zone'] (tod 0 = day, 1 = night)
_SKUNK_NIGHT = [
    [0.55, 0.45, 0.0, 0.0],
    [0.1, 0.45, 0.45, 0.0],
    [0.0, 0.15, 0.45, 0.4],
    [0.0, 0.0, 0.2, 0.8],
]
_SKUNK_DAY = [
    [0.85, 0.15, 0.0, 0.0],
    [0.3, 0.5, 0.2, 0.0],
    [0.0, 0.3, 0.5, 0.2],
    [0.0, 0.0, 0.4, 0.6],
]
_CAT = [[0.5, 0.5, 0.0, 0.0], [0.2, 0.5, 0.3, 0.0], [0.0, 0.35, 0.55, 0.1], [0.0, 0.0, 0.7, 0.3]]
_RACCOON = [
    [0.5, 0.5, 0.0, 0.0],
    [0.15, 0.5, 0.35, 0.0],
    [0.0, 0.3, 0.5, 0.2],
    [0.0, 0.0, 0.5, 0.5],
]
TRANS = np.array([[_SKUNK_DAY, _SKUNK_NIGHT], [_CAT, _CAT], [_RACCOON, _RACCOON]])
INIT = np.array([0.7, 0.3, 0.0, 0.0])
SPECIES_P = np.array([0.4, 0.4, 0.2])
# which zones each camera sees (in-trap camera, lawn camera, wide camera)
COVER = np.array([[0, 0, 0.5, 1.0], [0, 1.0, 0.8, 0.0], [0, 0.6, 0.7, 0.6]])


def _coverage(overlap: float) -> np.ndarray:
    cover = COVER.copy()
    cover[1:, 2:] *= overlap
    return cover


@dataclasses.dataclass(frozen=True)
class YardWorld:
    """One yard configuration: camera noise, the frozen embedding, the digit pools."""

    label_acc: float
    zone_acc: float
    emb_noise: float
    cam_noise: np.ndarray  # [C] embedding noise per camera
    detect: np.ndarray  # [C, Z]
    zone_obs: np.ndarray  # [C, Z, Z]
    confusion: np.ndarray  # [C, K1, K1]: P(label | species); label K = unknown
    pca_mean: np.ndarray
    pca_basis: np.ndarray  # [64, D]
    quant: float  # int8 step
    train: tuple[np.ndarray, ...]  # training embeddings (float, dequantised) per species
    pool: tuple[np.ndarray, ...]  # held-out images per species [n, 64]

    def embed(self, images: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
        """Camera embeddings of images: PCA, camera noise, int8 codes (returned as int8)."""
        z = (images - self.pca_mean) @ self.pca_basis
        z = z + rng.normal(scale=noise, size=z.shape)
        codes: np.ndarray = np.clip(np.round(z / self.quant), -127, 127).astype(np.int8)
        return codes


def make_world(
    seed: int, *, label_acc: float, zone_acc: float, emb_noise: float, overlap: float = 1.0
) -> YardWorld:
    """A yard with this camera noise; the PCA is fitted on half of each species' digits.
    ``overlap`` scales how much of the near and trap zones the lawn and wide cameras
    also see (1: as drawn in :data:`COVER`; 0: only the in-trap camera sees the trap)."""
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(seed)
    digits = load_digits()
    train_imgs, pools = [], []
    for digit in DIGITS:
        imgs = digits.data[digits.target == digit]
        order = rng.permutation(len(imgs))
        half = len(imgs) // 2
        train_imgs.append(imgs[order[:half]])
        pools.append(imgs[order[half:]])
    pca = PCA(n_components=DIM, random_state=seed).fit(np.concatenate(train_imgs))
    basis = pca.components_.T
    proj = [(t - pca.mean_) @ basis for t in train_imgs]
    quant = float(np.max(np.abs(np.concatenate(proj)))) / 100.0
    k, z = len(SPECIES), len(ZONES)
    # The in-trap camera (0) is a close-up in the dark: it places the animal well but
    # identifies it worse than the lawn and wide cameras do.
    accs = [max(0.4, label_acc - 0.25), label_acc, label_acc]
    confusion = np.zeros((3, k + 1, k + 1))
    for c, acc in enumerate(accs):
        confusion[c] = (1.0 - acc) / k
        confusion[c, np.arange(k + 1), np.arange(k + 1)] = acc
    zone_obs = np.full((3, z, z), (1.0 - zone_acc) / (z - 1))
    zone_obs[:, np.arange(z), np.arange(z)] = zone_acc
    world = YardWorld(
        label_acc=label_acc,
        zone_acc=zone_acc,
        emb_noise=emb_noise,
        cam_noise=np.array([3.0 * emb_noise, emb_noise, emb_noise]),
        detect=_coverage(overlap) * 0.9,
        zone_obs=zone_obs,
        confusion=confusion,
        pca_mean=pca.mean_,
        pca_basis=basis,
        quant=quant,
        train=(),
        pool=tuple(pools),
    )
    train = tuple(world.embed(t, rng, emb_noise).astype(np.float64) * quant for t in train_imgs)
    return dataclasses.replace(world, train=train)


def score_bin_probs() -> tuple[np.ndarray, np.ndarray]:
    """P(score bin | label right) and P(score bin | label wrong) of the score model below."""
    from scipy import stats

    edges = np.concatenate([[0.0], SCORE_EDGES, [1.0]])
    right = np.diff(stats.beta(5, 2).cdf(edges))
    wrong = np.diff(stats.beta(2, 3).cdf(edges))
    return right, wrong


@dataclasses.dataclass(frozen=True)
class Episodes:
    """Simulated episodes [E] of TICKS ticks, in ``make_obs_batch`` field layout per tick."""

    species: np.ndarray  # [E]
    zones: np.ndarray  # [E, T]
    tod: np.ndarray  # [E]
    present: np.ndarray  # [E, T, C]
    silent: np.ndarray  # [E, T, C]
    zone: np.ndarray  # [E, T, C]
    label: np.ndarray  # [E, T, C]
    score: np.ndarray  # [E, T, C]
    embedding: np.ndarray  # [E, T, C, D] int8


def simulate(world: YardWorld, seed: int, episodes: int) -> Episodes:
    """``episodes`` independent animal visits with ground truth."""
    rng = np.random.default_rng(seed)
    c, k, d = 3, len(SPECIES), DIM
    species = rng.choice(k, size=episodes, p=SPECIES_P)
    tod = rng.integers(0, 2, episodes)
    zones = np.zeros((episodes, TICKS), np.int64)
    shape = (episodes, TICKS, c)
    present = np.zeros(shape, np.bool_)
    zone = np.zeros(shape, np.int32)
    label = np.zeros(shape, np.int32)
    score = np.zeros(shape, np.float32)
    embedding = np.zeros((*shape, d), np.int8)
    for e in range(episodes):
        s = species[e]
        for t in range(TICKS):
            prev = zones[e, t - 1]
            p = INIT if t == 0 else TRANS[s, tod[e], prev]
            zones[e, t] = rng.choice(4, p=p)
    det = rng.random(shape) < world.detect[np.arange(c)[None, None], zones[:, :, None]]
    present[:] = det
    for e, t, cam in zip(*np.nonzero(present), strict=True):
        s, zz = species[e], zones[e, t]
        zone[e, t, cam] = rng.choice(4, p=world.zone_obs[cam, zz])
        lab = rng.choice(k + 1, p=world.confusion[cam, s])
        label[e, t, cam] = lab
        score[e, t, cam] = rng.beta(5, 2) if lab == s else rng.beta(2, 3)
        pool = world.pool[s]
        image = pool[rng.integers(len(pool))][None]
        embedding[e, t, cam] = world.embed(image, rng, float(world.cam_noise[cam]))[0]
    silent = ~present  # every camera watches every tick
    return Episodes(species, zones, tod, present, silent, zone, label, score, embedding)
