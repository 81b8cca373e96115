"""sample: deterministic by id and seed, independent of batching, close to the rate."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.batch import conform, kept_mask
from curation.selectors.random import Sample, SampleParams


def kept_ids(ids: list[str], rate: float, seed: int) -> set[str]:
    table = conform(pa.table({"id": ids, "text": ["x"] * len(ids)}))
    out = Sample(SampleParams(rate=rate, seed=seed)).process(table)
    return set(out.filter(kept_mask(out))["id"].to_pylist())


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=200, unique=True),
    st.floats(min_value=0.01, max_value=1.0),
    st.integers(0, 2**32),
    st.integers(1, 200),
)
def test_decision_depends_only_on_id_and_seed(
    ids: list[str], rate: float, seed: int, cut: int
) -> None:
    whole = kept_ids(ids, rate, seed)
    split = (
        kept_ids(ids[:cut], rate, seed) | kept_ids(ids[cut:], rate, seed)
        if ids[cut:]
        else kept_ids(ids, rate, seed)
    )
    assert whole == split
    assert kept_ids(list(reversed(ids)), rate, seed) == whole


def test_rate_is_met_and_seeds_differ() -> None:
    ids = [f"doc/{i}" for i in range(20_000)]
    a = kept_ids(ids, 0.25, 0)
    b = kept_ids(ids, 0.25, 1)
    assert abs(len(a) / len(ids) - 0.25) < 0.015
    assert a != b
    assert kept_ids(ids, 1.0, 0) == set(ids)
