"""Banding parameters for MinHash LSH.

With ``b`` bands of ``r`` rows, two documents of Jaccard similarity ``s`` share at least
one band, and so become a candidate pair, with probability ``1 - (1 - s**r)**b``. For a
target threshold ``t`` the best ``(b, r)`` with ``b * r <= num_perm`` minimises the
weighted area of false positives (candidates below ``t``) plus false negatives (missed
pairs above ``t``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_GRID = 2001


def detection_probability(similarity: float | np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Probability that two documents of this Jaccard similarity share a band."""
    s = np.asarray(similarity, dtype=np.float64)
    return 1.0 - (1.0 - s**rows) ** bands


@dataclass(frozen=True)
class Banding:
    """A choice of bands and rows, with its error areas around the threshold."""

    bands: int
    rows: int
    false_positive_area: float
    false_negative_area: float

    @property
    def permutations(self) -> int:
        """Hash functions used: ``bands * rows``."""
        return self.bands * self.rows


def error_areas(threshold: float, bands: int, rows: int) -> tuple[float, float]:
    """(area under the detection curve below ``threshold``, area above it left undetected)."""
    below = np.linspace(0.0, threshold, _GRID)
    above = np.linspace(threshold, 1.0, _GRID)
    false_positive = np.trapezoid(detection_probability(below, bands, rows), below)
    false_negative = np.trapezoid(1.0 - detection_probability(above, bands, rows), above)
    return float(false_positive), float(false_negative)


def optimal_banding(
    threshold: float,
    num_perm: int,
    false_positive_weight: float = 0.5,
    false_negative_weight: float = 0.5,
) -> Banding:
    """The ``(bands, rows)`` with ``bands * rows <= num_perm`` that minimises the weighted
    error areas around ``threshold`` (0 < threshold < 1)."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must lie strictly between 0 and 1, got {threshold}")
    if num_perm < 1:
        raise ValueError(f"num_perm must be at least 1, got {num_perm}")
    best: Banding | None = None
    best_cost = np.inf
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            fp, fn = error_areas(threshold, bands, rows)
            cost = false_positive_weight * fp + false_negative_weight * fn
            if cost < best_cost:
                best, best_cost = Banding(bands, rows, fp, fn), cost
    assert best is not None
    return best
