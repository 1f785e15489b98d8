"""Do two sets of trained models differ? A paired test over the test images (image level).

This is not the test between recipes: its sample is the test images, so it does not see the
seed-to-seed spread of training, and two seeds of one recipe can "differ" by it. The
recipe-level test, whose unit is the seed, is ``ablate.report.recipe``; the report's headline
is that one, and this one is shown beside it, labelled as what it is.

Each image's GAME value is averaged over a variant's seeds, so both variants are measured on
the same images; the test is on the per-image differences d = variant - other:
a percentile bootstrap 95% confidence interval of mean(d) (fixed seed, reproducible) and the
Wilcoxon signed-rank p-value (``scipy.stats.wilcoxon``, two-sided), and the minimum detectable
effect (``mde``, see ``minimum_detectable``): what "not significant" rules out.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ablate.db import Run, RunStore
from model.metrics import GAME_LEVELS

# Per image the protocol fixes GAME0-3, so the paired tests are over those levels.
GAME_METRICS = tuple(f"game{level}" for level in GAME_LEVELS)
N_BOOTSTRAP = 10_000
BOOTSTRAP_SEED = 0
LEVEL = 0.95
POWER = 0.80  # the power at which the minimum detectable effect is quoted
ALPHA = 0.05  # two-sided, the level at which p-values are read
# Pitman asymptotic relative efficiency of the Wilcoxon signed-rank test against the paired
# t-test for normal differences: Wilcoxon on n images is worth a t-test on 3/pi * n images.
WILCOXON_ARE = 3 / np.pi


@dataclass(frozen=True)
class PairedTest:
    n_images: int
    mean_diff: float  # mean over images of (variant - other); negative = variant better
    ci_low: float
    ci_high: float
    p_value: float  # Wilcoxon signed-rank, two-sided
    # Smallest |mean difference| the test finds at POWER, two-sided ALPHA (minimum_detectable).
    mde: float = float("nan")

    @property
    def significant(self) -> bool:
        """The CI excludes 0 (at the 95% level)."""
        return self.ci_low > 0 or self.ci_high < 0


def paired_test(diff: np.ndarray, n_boot: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED,
                level: float = LEVEL) -> PairedTest:
    """Bootstrap CI of the mean and Wilcoxon p-value of paired differences ``diff``."""
    diff = np.asarray(diff, dtype=np.float64)
    if diff.ndim != 1 or len(diff) == 0 or not np.isfinite(diff).all():
        raise ValueError("paired_test needs a non-empty 1-D array of finite differences")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(diff), size=(n_boot, len(diff)))
    means = diff[picks].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return PairedTest(len(diff), float(diff.mean()), float(low), float(high), _wilcoxon(diff),
                      minimum_detectable(diff))


def minimum_detectable(diff: np.ndarray, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true mean difference the paired test detects with probability ``power``:
    MDE = (t_{n-1, 1-alpha/2} + t_{n-1, power}) * sd(d) / sqrt(n * 3/pi).

    This is the standard paired t-test approximation (the normal one, z_{0.975} + z_{0.8} =
    2.80, with Student quantiles so that 16 images are not read as if they were many),
    converted to the Wilcoxon test the report uses through its asymptotic relative efficiency
    3/pi (Wilcoxon on n images has the power of a t-test on 0.955 n). sd(d) is the observed
    per-image spread of the differences (ddof=1). NaN below two images; infinite when even the
    most extreme outcome, every image moving the same way, has an exact two-sided Wilcoxon
    p-value 2 / 2**n above ``alpha`` (5 images or fewer): then no difference is detectable."""
    n = len(diff)
    if n < 2:
        return float("nan")
    if 2 * 0.5**n > alpha:
        return float("inf")
    quantiles = stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(power, n - 1)
    return float(quantiles * np.std(diff, ddof=1) / np.sqrt(n * WILCOXON_ARE))


def _wilcoxon(diff: np.ndarray) -> float:
    if not np.any(diff):
        return 1.0  # identical predictions: no evidence of any difference
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small-sample and tie notes; the p-value stands
        return float(stats.wilcoxon(diff, alternative="two-sided").pvalue)


def per_image(store: RunStore, runs: list[Run], split: str) -> pd.DataFrame:
    """Per-image GAME0-3 averaged over ``runs`` (the seeds of one row), indexed by image id,
    with the true count to check that two rows were tested on the same images."""
    frames = [pd.DataFrame(store.image_results(run.id, split)) for run in runs]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=["true_count", *GAME_METRICS])
    table = pd.concat(frames)[["image_id", "true_count", *GAME_METRICS]]
    numeric = ["true_count", *GAME_METRICS]
    table[numeric] = table[numeric].astype(np.float64)  # None (a NaN prediction) -> NaN
    return table.groupby("image_id").mean()


def seed_images(store: RunStore, runs: list[Run], split: str) -> pd.DataFrame:
    """Per-image GAME0-3 of every seed, indexed by (seed, image_id), with the true count."""
    frames = []
    for run in runs:
        frame = pd.DataFrame(store.image_results(run.id, split))
        if not frame.empty:
            frames.append(frame.assign(seed=run.seed))
    if not frames:
        return pd.DataFrame(columns=["true_count", *GAME_METRICS],
                            index=pd.MultiIndex.from_tuples([], names=["seed", "image_id"]))
    table = pd.concat(frames)[["seed", "image_id", "true_count", *GAME_METRICS]]
    numeric = ["true_count", *GAME_METRICS]
    table[numeric] = table[numeric].astype(np.float64)  # None (a NaN prediction) -> NaN
    return table.set_index(["seed", "image_id"])


def per_seed_image(seed_frame: pd.DataFrame) -> pd.DataFrame:
    """A ``seed_images`` frame averaged over its seeds: per image, as ``per_image`` gives;
    NaN where some seed's value is NaN (a diverged model is not averaged away)."""
    if seed_frame.empty:
        return pd.DataFrame(columns=["true_count", *GAME_METRICS])
    by_image = seed_frame.groupby(level="image_id")
    return by_image.mean().mask(seed_frame.isna().groupby(level="image_id").any())


def compare(variant: pd.DataFrame, other: pd.DataFrame) -> dict[str, PairedTest] | str:
    """One PairedTest per GAME level, or the reason no test could be made."""
    if variant.empty or other.empty:
        return "no per-image results"
    common = variant.index.intersection(other.index)
    if len(common) == 0:
        return "no common test images"
    a, b = variant.loc[common], other.loc[common]
    if not np.allclose(a["true_count"], b["true_count"]):
        return "tested on different images"
    out = {}
    for metric in GAME_METRICS:
        test = finite_test((a[metric] - b[metric]).to_numpy(dtype=np.float64), metric)
        if isinstance(test, str):
            return test
        out[metric] = test
    return out


def finite_test(diff: np.ndarray, metric: str) -> PairedTest | str:
    """``paired_test`` of per-image differences, or why there is none: a non-finite value is
    a model that diverged there, and leaving the image out would flatter it."""
    bad = int((~np.isfinite(diff)).sum())
    if bad:
        return f"non-finite {metric} on {bad} image(s): a diverged model, no test"
    return paired_test(diff)
