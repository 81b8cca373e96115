"""The dedup stages' shared key normalisation against its pyarrow definition, and the
cache of what they hold of other datasets (``against``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.dedup import common
from curation.dedup.common import normalized_text
from tests.conftest import c4_texts, read_output, recipe_of, run_local
from tests.dedup.strategies import texts_with_spaces


def reference(values: list[str | None], digits_to_zero: bool) -> list[str | None]:
    """What the stages computed with pyarrow kernels before the compiled pass."""
    key = pc.replace_substring(pc.utf8_lower(pa.array(values, pa.large_string())), "ς", "σ")
    if digits_to_zero:
        key = pc.replace_substring_regex(key, r"\d", "0")
    key = pc.utf8_trim_whitespace(pc.replace_substring_regex(key, r"\s+", " "))
    return key.to_pylist()


@settings(max_examples=400, deadline=None)
@given(
    texts_with_spaces("aZ09ΣσςÉ€𝔘漢İ٣"),
    st.booleans(),
    st.integers(0, 3),
)
def test_one_pass_equals_the_pyarrow_kernels(
    values: list[str | None], digits_to_zero: bool, skip: int
) -> None:
    array = pa.array(values, pa.large_string())[skip:]  # an offset into the buffers
    got = normalized_text(array, digits_to_zero=digits_to_zero)
    assert got.to_pylist() == reference(values[skip:], digits_to_zero)
    got.validate(full=True)


def test_greek_upper_case_copies_meet() -> None:
    source = "Η έκθεση της Νέας Υόρκης."
    assert normalized_text(pa.array([source, source.upper()])).to_pylist() == [
        "η έκθεση τησ νέασ υόρκησ.",
        "η έκθεση τησ νέασ υόρκησ.",
    ]


# ----------------------------------------------------------------- the keys of `against`

STAGES = {
    "exact_dedup": "{against: ['HELD']}",
    "line_dedup": "{against: ['HELD']}",
    "sentence_dedup": "{against: ['HELD']}",
    "minhash_dedup": "{against: ['HELD'], jaccard_threshold: 0.5}",
}


def dataset(folder: Path) -> tuple[Path, Path]:
    """200 C4 documents as the dataset and ``held.jsonl``: 60 of them and 40 others."""
    texts = c4_texts(0, 240)
    (folder / "in").mkdir(parents=True)
    rows = [{"id": f"d{i:03d}", "text": t} for i, t in enumerate(texts[:200])]
    (folder / "in" / "part.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    held = folder / "held.jsonl"
    held.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[140:240]))
    return folder / "in", held


def outcome(out: Path) -> list[tuple[str, str | None]]:
    rows = read_output(out, "kept").to_pylist() + read_output(out, "dropped").to_pylist()
    return sorted((r["id"], r["drop_reason"]) for r in rows)


def cached(cache: Path) -> list[str]:
    return sorted(p.name for p in (cache / "against").glob("*.arrow"))


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_later_run_reads_the_cached_keys_instead_of_the_documents(
    stage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The keys of ``against`` are made once: a run against the same files (with other
    parameters that only use them) reads the cache and decides the same; a changed file
    makes them anew."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("CURATION_CACHE_DIR", str(cache))
    data, held = dataset(tmp_path)
    recipe = f"stages:\n  - {stage}: {STAGES[stage].replace('HELD', str(held))}\n"
    run_local(recipe_of(recipe, data), tmp_path / "first")
    first = outcome(tmp_path / "first")
    assert {r for _, r in first} & {f"{stage}:in_against", f"{stage}:all_duplicated"} or (
        stage == "line_dedup"  # lines removed, documents kept
    )
    (made,) = cached(cache)
    assert made.startswith(f"{stage}-")

    reads = []
    original = common.against_tables
    monkeypatch.setattr(common, "against_tables", lambda *a: reads.append(a) or original(*a))
    run_local(recipe_of(recipe, data), tmp_path / "second")
    assert outcome(tmp_path / "second") == first
    assert not reads and cached(cache) == [made]
    only = recipe.replace("{against:", "{only_against: true, against:")
    run_local(recipe_of(only, data), tmp_path / "only")
    assert not reads and cached(cache) == [made]

    held.write_text(held.read_text() + json.dumps({"text": c4_texts(0, 1)[0]}) + "\n")
    run_local(recipe_of(recipe, data), tmp_path / "changed")
    assert reads and len(cached(cache)) == 2
    assert outcome(tmp_path / "changed") != first


def test_keys_cached_under_another_polars_are_made_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """polars' hash is stable within a version only: keys cached by another version would
    match nothing, so a run under another one makes its own (and decides the same)."""
    import polars

    cache = tmp_path / "cache"
    monkeypatch.setenv("CURATION_CACHE_DIR", str(cache))
    data, held = dataset(tmp_path)
    recipe = f"stages:\n  - exact_dedup: {{against: ['{held}']}}\n"
    run_local(recipe_of(recipe, data), tmp_path / "first")
    (made,) = cached(cache)
    monkeypatch.setattr(polars, "__version__", "0.0.1")
    run_local(recipe_of(recipe, data), tmp_path / "upgraded")
    assert len(cached(cache)) == 2 and made in cached(cache)
    assert outcome(tmp_path / "upgraded") == outcome(tmp_path / "first")


def test_a_torn_cache_file_is_made_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("CURATION_CACHE_DIR", str(cache))
    data, held = dataset(tmp_path)
    recipe = f"stages:\n  - exact_dedup: {{against: ['{held}']}}\n"
    run_local(recipe_of(recipe, data), tmp_path / "first")
    (made,) = (cache / "against").glob("*.arrow")
    made.write_bytes(made.read_bytes()[:100])  # a copy cut short
    run_local(recipe_of(recipe, data), tmp_path / "second")
    assert outcome(tmp_path / "second") == outcome(tmp_path / "first")
    assert common._readable(made)


def test_an_unwritable_cache_is_done_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    cache.write_text("a file where the cache folder should be")
    monkeypatch.setenv("CURATION_CACHE_DIR", str(cache))
    data, held = dataset(tmp_path)
    recipe = f"stages:\n  - minhash_dedup: {{against: ['{held}']}}\n"
    with pytest.warns(UserWarning, match="cannot keep the keys of `against` in .*CURATION"):
        run_local(recipe_of(recipe, data), tmp_path / "out")
    gone = {i for i, r in outcome(tmp_path / "out") if r == "minhash_dedup:in_against"}
    assert gone == {f"d{i:03d}" for i in range(140, 200)}


def test_priority_values_order_times_across_zones_and_forms() -> None:
    """Times in any zone, without a zone (UTC) or as a date alone rank by the instant
    they name; numbers in text stay numbers; nulls stay null (they rank last)."""
    texts = [
        "2019-04-18T12:34:56Z",
        "2019-04-18T14:34:57+02:00",  # one second after the first
        "2019-04-18T12:34:55",  # one second before, no zone: UTC
        "2019-04-18",  # midnight UTC
        None,
        "2019-04-18T07:34:56.5-0500",  # half a second after the first
    ]
    ids = pa.array([str(i) for i in range(len(texts))])
    values = common.priority_values(pa.array(texts), ids, "x").to_pylist()
    first = values[0]
    assert [v - first if v is not None else None for v in values] == [
        0,
        1e6,
        -1e6,
        -(12 * 3600 + 34 * 60 + 56) * 1e6,
        None,
        0.5e6,
    ]
    assert common.priority_values(pa.array(["3", "2.5", None]), ids[:3], "x").to_pylist() == [
        3.0,
        2.5,
        None,
    ]
    stamps = pa.array([0, 1_000], pa.timestamp("ms", "Europe/Paris"))
    assert common.priority_values(stamps, ids[:2], "x").to_pylist() == [0.0, 1e6]


def test_a_priority_that_is_no_time_names_the_value_and_row() -> None:
    texts = pa.array(["2019-04-18T12:34:56Z", None, "last tuesday"])
    with pytest.raises(
        ValueError,
        match=r"dedup: priority column 'date': 'last tuesday' "
        r"\(row 'c'\) is neither a number nor an ISO 8601 time",
    ):
        common.priority_values(texts, pa.array(["a", "b", "c"]), "dedup: priority column 'date'")
    with pytest.raises(ValueError, match="holds list<item: int64>: it must hold numbers"):
        common.priority_values(pa.array([[1]]), pa.array(["a"]), "dedup")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)),
            st.integers(-14 * 60, 14 * 60),  # the zone's offset in minutes
            st.sampled_from(["Z", "offset", "none", "date"]),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_priority_values_rank_times_as_the_instants_they_name(
    times: list[tuple[datetime, int, str]],
) -> None:
    """However each time is written (Z, an offset, no zone as UTC, a date alone as its
    UTC midnight), its value is its instant's microseconds since 1970 UTC, exactly."""
    texts, instants = [], []
    for when, minutes, form in times:
        if form == "date":
            texts.append(when.date().isoformat())
            midnight = datetime.combine(when.date(), datetime.min.time(), UTC)
            instants.append(midnight)
        elif form == "offset":
            zone = timezone(timedelta(minutes=minutes))
            texts.append(when.replace(tzinfo=zone).isoformat())
            instants.append(when.replace(tzinfo=zone))
        else:
            text = when.isoformat()
            texts.append(text + "Z" if form == "Z" else text)
            instants.append(when.replace(tzinfo=UTC))
    ids = pa.array([str(i) for i in range(len(texts))])
    values = common.priority_values(pa.array(texts), ids, "x").to_pylist()
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert values == [(t - epoch) // timedelta(microseconds=1) for t in instants]
