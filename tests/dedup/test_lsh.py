"""MinHash banding: the same choice as datasketch's optimiser, and sane curves."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from curation.cli import main
from curation.dedup.lsh import detection_probability, error_areas, optimal_banding


@pytest.mark.parametrize(
    "threshold, num_perm", [(0.8, 112), (0.8, 128), (0.7, 256), (0.9, 64), (0.5, 32)]
)
def test_same_bands_and_rows_as_datasketch(threshold: float, num_perm: int) -> None:
    from datasketch.lsh import _optimal_param

    best = optimal_banding(threshold, num_perm)
    assert (best.bands, best.rows) == _optimal_param(threshold, num_perm, 0.5, 0.5)
    assert best.permutations <= num_perm


def test_curve_and_areas() -> None:
    s = np.linspace(0, 1, 101)
    p = detection_probability(s, 14, 8)
    assert p[0] == 0 and p[-1] == 1 and np.all(np.diff(p) >= 0)
    fp, fn = error_areas(0.8, 14, 8)
    assert 0 < fp < 0.8 and 0 < fn < 0.2
    # weighting false negatives more buys recall with precision
    recall_first = optimal_banding(0.8, 128, 0.1, 0.9)
    balanced = optimal_banding(0.8, 128)
    assert recall_first.false_negative_area < balanced.false_negative_area
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        optimal_banding(1.0, 128)


def test_cli_prints_bands_and_probabilities() -> None:
    result = CliRunner().invoke(main, ["minhash-params", "--threshold", "0.8", "--num-perm", "112"])
    assert result.exit_code == 0, result.output
    assert "9 bands x 12 rows" in result.output
    assert "datatrove default 14x8" in result.output
    assert "0.95" in result.output
