"""Bootstrap intervals over held-out prompts, so a difference of two prompts is not called a win.

Every interval resamples prompts (scipy's percentile bootstrap, seeded): an accuracy is a mean of 0/1
per prompt, a transfer ratio a ratio of two means over the same prompts, a difference between two
models a mean of paired differences. To decide a win, an exact sign test on the prompts where the two
disagree: the percentile interval of 0/1 differences is too eager when they are few. Percentile, not
BCa: BCa is undefined when every prompt scores the same, which a small slice often does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

RESAMPLES = 2000
LEVEL = 0.95


class Interval(BaseModel):
    """An estimate and its bootstrap interval."""

    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.2f} [{self.low:.2f}, {self.high:.2f}]"

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def _bootstrap(samples: tuple[np.ndarray, ...], statistic, value: float) -> Interval:
    from scipy.stats import bootstrap

    if len(samples[0]) < 2 or all(np.all(s == s[0]) for s in samples):  # nothing to resample
        return Interval(value=value, low=value, high=value)
    found = bootstrap(
        samples,
        statistic,
        paired=len(samples) > 1,
        vectorized=True,
        n_resamples=RESAMPLES,
        confidence_level=LEVEL,
        method="percentile",
        rng=np.random.default_rng(0),
    )
    low, high = (float(np.nan_to_num(x, nan=value)) for x in found.confidence_interval)
    return Interval(value=value, low=min(low, value), high=max(high, value))


def mean_interval(scores: Sequence[float]) -> Interval:
    """The mean of per-prompt scores (1 right, 0 wrong) and its interval."""
    x = np.asarray(scores, dtype=float)
    return _bootstrap((x,), lambda a, axis: a.mean(axis=axis), float(x.mean()) if len(x) else 0.0)


def ratio_interval(numerator: Sequence[float], denominator: Sequence[float]) -> Interval:
    """mean(numerator) / mean(denominator) over the same prompts (0 where the denominator's mean is 0)."""
    x, y = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)

    def ratio(a, b, axis):
        below = b.mean(axis=axis)
        return np.divide(a.mean(axis=axis), below, out=np.zeros_like(below), where=below > 0)

    value = float(x.mean() / y.mean()) if len(y) and y.mean() > 0 else 0.0
    return _bootstrap((x, y), ratio, value)


def difference_interval(ours: Sequence[float], theirs: Sequence[float]) -> Interval:
    """mean(ours - theirs) over the same prompts: a win only where the interval lies above 0."""
    x, y = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
    return _bootstrap((x, y), lambda a, b, axis: (a - b).mean(axis=axis), float((x - y).mean()) if len(x) else 0.0)


def sign_test(wins: int, losses: int) -> float:
    """One-sided exact sign test (McNemar's, exact) on the prompts where two models disagree: the chance of at
    least `wins` of them going to the first model if both were equally good. Ties (both right or both wrong)
    carry no evidence either way. 1.0 with no disagreement."""
    from scipy.stats import binomtest

    return float(binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue) if wins + losses else 1.0


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0 for no values)."""
    return float(np.percentile(values, q)) if len(values) else 0.0
