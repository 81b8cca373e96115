"""minhash_dedup: planted near duplicates of real articles, licence copies, the hashing and
the clustering, on every executor and in any shard order."""

from __future__ import annotations

import gzip
import itertools
import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.dedup import minhash as mh
from tests.conftest import (
    c4_texts,
    on_every_executor,
    read_output,
    recipe_of,
    run_local,
    shared_file,
)
from tests.dedup.strategies import texts_with_spaces

MIT = """MIT License

Copyright (c) {year} {holder}

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""

RECIPE = "stages:\n  - minhash_dedup: {params}\n"


def articles(folder: Path, shards: int = 4) -> tuple[list[str], set[frozenset[str]]]:
    """The articles as JSONL shards (ids ``tNNN``); returns the shard paths and the truth."""
    train = shared_file("dedup/articles_1000.train")
    truth = shared_file("dedup/articles_1000.truth")
    rows = []
    for line in train.read_text(encoding="utf-8").splitlines():
        doc_id, text = line.split(" ", 1)
        rows.append({"id": doc_id, "text": text})
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for shard in range(shards):
        path = folder / f"articles-{shard}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows[shard::shards]))
        paths.append(str(path))
    pairs = {frozenset(line.split()) for line in truth.read_text().splitlines() if line}
    return paths, pairs


def clusters(out: Path) -> dict[str, list[str]]:
    """Cluster id -> sorted member ids, for clusters of two or more rows."""
    rows = read_output(out, "kept").to_pylist() + read_output(out, "dropped").to_pylist()
    found: dict[str, list[str]] = {}
    for row in rows:
        if row.get("minhash_cluster_size", 1) > 1:
            found.setdefault(row["minhash_cluster_id"], []).append(row["id"])
    return {k: sorted(v) for k, v in found.items()}


def detected_pairs(out: Path) -> set[frozenset[str]]:
    return {
        frozenset(pair)
        for members in clusters(out).values()
        for pair in itertools.combinations(members, 2)
    }


def test_planted_article_pairs_are_found(tmp_path: Path) -> None:
    paths, truth = articles(tmp_path / "in")
    stats = run_local(recipe_of(RECIPE.format(params="{}"), *paths), tmp_path / "out")
    found = detected_pairs(tmp_path / "out")
    assert truth <= found, f"missed {truth - found}"
    assert len(found - truth) <= 1
    stage = next(s for s in stats["stages"] if s["name"] == "minhash_dedup")
    assert stage["rows_in"] == 1000
    assert stage["dropped_by_reason"] == {"minhash_dedup:near_duplicate": len(found)}
    dropped = read_output(tmp_path / "out", "dropped").to_pylist()
    for row in dropped:  # the smallest id of each pair is kept, and named
        (other,) = next(p for p in truth if row["id"] in p) - {row["id"]}
        assert row["duplicate_of"] == other == min(row["id"], other)
        assert row["minhash_cluster_id"] == other
    kept = read_output(tmp_path / "out", "kept")
    assert not [c for c in kept.column_names if c.startswith("_minhash")]


def test_jaccard_check_rejects_pairs_below_its_threshold(tmp_path: Path) -> None:
    # the planted pairs have word 5-gram Jaccard 0.959 to 0.968
    paths, truth = articles(tmp_path / "in", shards=2)
    run_local(recipe_of(RECIPE.format(params="{jaccard_threshold: 0.9}"), *paths), tmp_path / "a")
    assert detected_pairs(tmp_path / "a") == truth
    run_local(recipe_of(RECIPE.format(params="{jaccard_threshold: 0.97}"), *paths), tmp_path / "b")
    assert detected_pairs(tmp_path / "b") == set()


def licence_docs(c4_path: Path) -> list[dict[str, str]]:
    with gzip.open(c4_path, "rt", encoding="utf-8") as handle:
        unrelated = [json.loads(line)["text"] for line in itertools.islice(handle, 200)]
    original = MIT.format(year=2018, holder="Jane Doe")
    docs = [
        {"id": "mit-a", "text": original},
        {"id": "mit-b-exact", "text": original},
        # re-wrapped lines, other white space, another year and holder
        {
            "id": "mit-c-edited",
            "text": " ".join(MIT.format(year=2023, holder="The Example Project Authors").split()),
        },
    ]
    docs += [{"id": f"c4-{i:03d}", "text": t} for i, t in enumerate(unrelated)]
    return docs


@pytest.mark.parametrize("shingle", ["word", "char"])
def test_licence_copies_cluster_and_unrelated_documents_do_not(
    c4_path: Path, tmp_path: Path, shingle: str
) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in licence_docs(c4_path)))
    run_local(recipe_of(RECIPE.format(params=f"{{shingle: {shingle}}}"), path), tmp_path / "out")
    assert clusters(tmp_path / "out") == {"mit-a": ["mit-a", "mit-b-exact", "mit-c-edited"]}


def test_priority_column_keeps_the_best_copy(c4_path: Path, tmp_path: Path) -> None:
    docs = licence_docs(c4_path)[:3]
    for doc, score in zip(docs, (0.2, 0.1, 0.9), strict=True):
        doc["quality"] = score  # type: ignore[assignment]
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    run_local(recipe_of(RECIPE.format(params="{priority_column: quality}"), path), tmp_path / "o")
    kept = read_output(tmp_path / "o", "kept").to_pylist()
    assert [r["id"] for r in kept] == ["mit-c-edited"]
    assert {r["duplicate_of"] for r in read_output(tmp_path / "o", "dropped").to_pylist()} == {
        "mit-c-edited"
    }


def test_documents_without_words_are_kept_alone(tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    texts = ["!!! ...", "***", "— …", "Two words", "two WORDS!"]
    docs = [{"id": str(i), "text": t} for i, t in enumerate(texts)]
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    run_local(recipe_of(RECIPE.format(params="{}"), path), tmp_path / "out")
    kept = read_output(tmp_path / "out", "kept").to_pylist()
    # no words, no signature: never a duplicate, even of each other; shorter than one
    # shingle: the whole text is the shingle
    assert [(r["id"], r["minhash_cluster_id"], r["minhash_cluster_size"]) for r in kept] == [
        ("0", "0", 1),
        ("1", "1", 1),
        ("2", "2", 1),
        ("3", "3", 2),
    ]


@pytest.mark.ray
@pytest.mark.slow
def test_same_clusters_on_every_executor_and_in_any_shard_order(tmp_path: Path) -> None:
    paths, truth = articles(tmp_path / "in", shards=5)
    recipe = recipe_of(RECIPE.format(params="{}"), *paths)
    outputs = on_every_executor(recipe, tmp_path)
    assert outputs["local"] == outputs["ray1"] == outputs["ray2"]
    reordered = recipe_of(RECIPE.format(params="{}"), *reversed(paths))
    run_local(reordered, tmp_path / "reordered")
    assert clusters(tmp_path / "reordered") == clusters(tmp_path / "local")
    assert sorted(r["id"] for r in read_output(tmp_path / "reordered", "kept").to_pylist()) == (
        sorted(r["id"] for r in outputs["local"][0])
    )
    assert truth <= detected_pairs(tmp_path / "local")


# ----------------------------------------------------------------- hashing and clustering


def reference_shingles(text: str, n: int) -> set[tuple[str, ...]]:
    words = regex.sub(r"[\p{P}\p{S}]+", "", text.lower().replace("ς", "σ")).split()
    if 0 < len(words) < n:
        return {tuple(words)}
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def test_shingles_match_a_python_reference_on_real_text(c4_path: Path) -> None:
    with gzip.open(c4_path, "rt", encoding="utf-8") as handle:
        texts = [json.loads(line)["text"] for line in itertools.islice(handle, 300)]
    hashes, per_doc = mh.document_shingles(pa.array(texts), "word", 5, seed=1)
    offsets = np.concatenate([[0], np.cumsum(per_doc)])
    owner: dict[int, tuple[str, ...]] = {}
    for i, text in enumerate(texts):
        expected = reference_shingles(text, 5)
        mine = hashes[offsets[i] : offsets[i + 1]]
        assert len(set(mine.tolist())) == len(expected), i
        # the same shingle always gets the same hash, and different ones different hashes
        words = regex.sub(r"[\p{P}\p{S}]+", "", text.lower().replace("ς", "σ")).split()
        grams = [tuple(words[j : j + 5]) for j in range(len(words) - 4)] or [tuple(words)]
        for gram, value in zip(grams, mine.tolist(), strict=True):
            assert owner.setdefault(value, gram) == gram


def splitmix_finaliser(v: int) -> int:
    """SplitMix64's finaliser in Python integers."""
    mask = 2**64 - 1
    v ^= v >> 30
    v = (v * 0xBF58476D1CE4E5B9) & mask
    v ^= v >> 27
    v = (v * 0x94D049BB133111EB) & mask
    return v ^ (v >> 31)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.integers(0, 20), max_size=15),
    st.integers(1, 8),
    st.integers(0, 2**32),
    st.randoms(use_true_random=False),
)
def test_shingle_hashes_are_the_weighted_sums_of_their_tokens(
    counts: list[int], n: int, seed: int, rng: random.Random
) -> None:
    # the definition in Python integers: a shingle of tokens t_0..t_{w-1} (w = n, or all
    # of a shorter document's) hashes to finalise(sum of t_j * weight_j mod 2**64)
    tokens = [rng.getrandbits(64) for _ in range(sum(counts))]
    weights = [int(w) for w in mh._shingle_weights(n, seed)]
    expected, start = [], 0
    for count in counts:
        for s in range(max(count - n + 1, min(count, 1))):
            grams = tokens[start + s : start + s + min(n, count)]
            total = sum(t * w for t, w in zip(grams, weights, strict=False)) % 2**64
            expected.append(splitmix_finaliser(total))
        start += count
    mine = mh.shingle_hashes(
        np.array(tokens, dtype=np.uint64), np.array(counts, dtype=np.int64), n, seed
    )
    assert mine.dtype == np.uint64
    assert mine.tolist() == expected
    assert len(mine) == mh.shingle_counts(np.array(counts, dtype=np.int64), n).sum()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.text(alphabet=st.sampled_from("ab cé\n,.Ω"), max_size=200), min_size=1, max_size=12
    ),
    st.integers(1, 6),
    st.sampled_from(["word", "char"]),
)
def test_a_documents_hashes_do_not_depend_on_its_batch(
    texts: list[str], n: int, shingle: str
) -> None:
    together, per_doc = mh.document_shingles(pa.array(texts), shingle, n, seed=3)
    offsets = np.concatenate([[0], np.cumsum(per_doc)])
    for i, text in enumerate(texts):
        alone, count = mh.document_shingles(pa.array([text]), shingle, n, seed=3)
        assert count.tolist() == [per_doc[i]]
        assert alone.tolist() == together[offsets[i] : offsets[i + 1]].tolist()
    a, b = mh.permutations(16, seed=3)
    tokens, counts = mh.tokens_of(pa.array(texts), shingle)
    has = per_doc > 0
    if has.any():  # the compiled kernel against numpy's definition over the shingles
        signature = mh.signatures(tokens, counts, n, 3, a, b)
        starts = np.concatenate([[0], np.cumsum(per_doc[has])[:-1]])
        values = a[None, :] * together[:, None] + b[None, :]
        assert np.array_equal(signature, np.minimum.reduceat(values, starts, axis=0))


def test_signature_agreement_estimates_jaccard(tmp_path: Path) -> None:
    paths, truth = articles(tmp_path / "in", shards=1)
    rows = [json.loads(line) for line in Path(paths[0]).read_text().splitlines()]
    index = {r["id"]: i for i, r in enumerate(rows)}
    texts = pa.array([r["text"] for r in rows])
    hashes, per_doc = mh.document_shingles(texts, "word", 5, 1)
    a, b = mh.permutations(256, seed=1)
    sig = mh.signatures(*mh.tokens_of(texts, "word"), 5, 1, a, b)
    offsets = np.concatenate([[0], np.cumsum(per_doc)])
    rng = np.random.default_rng(0)
    pairs = [tuple(sorted(p)) for p in truth] + [
        tuple(rng.choice(len(rows), 2, replace=False)) for _ in range(50)
    ]
    for x, y in pairs:
        i, j = (index[x], index[y]) if isinstance(x, str) else (x, y)
        s1 = set(hashes[offsets[i] : offsets[i + 1]].tolist())
        s2 = set(hashes[offsets[j] : offsets[j + 1]].tolist())
        exact = len(s1 & s2) / len(s1 | s2)
        estimate = float(np.mean(sig[i] == sig[j]))
        assert abs(estimate - exact) < 0.1, (x, y, exact, estimate)


def reference_components(n: int, edges: list[tuple[int, int]]) -> dict[int, int]:
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for u, v in edges:
        ru, rv = find(u), find(v)
        parent[max(ru, rv)] = min(ru, rv)
    touched = {x for e in edges for x in e}
    return {x: find(x) for x in touched}


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), max_size=60), st.integers(1, 4))
def test_components_match_union_find(edges: list[tuple[int, int]], files: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for k in range(files):
            part = np.array(edges[k::files], dtype=np.int64).reshape(-1, 2)
            paths.append(Path(folder) / f"e{k}.npy")
            np.save(paths[-1], part)
        members, roots = mh.components(paths)
    assert dict(zip(members.tolist(), roots.tolist(), strict=True)) == reference_components(
        41, edges
    )


def test_a_chain_is_one_cluster(tmp_path: Path) -> None:
    # node 0 ~ 3 in one band, 3 ~ 4 in another; 0 and 4 share no bucket
    values = np.array([7, 7, 9, 9, 5], dtype=np.uint64)
    nodes = np.array([3, 0, 4, 3, 1])
    u, v = mh.bucket_edges(values, nodes)
    assert sorted(zip(u.tolist(), v.tolist(), strict=True)) == [(3, 0), (4, 3)]
    np.save(tmp_path / "e.npy", np.stack([u, v], axis=1))
    members, roots = mh.components([tmp_path / "e.npy"])
    assert members.tolist() == [0, 3, 4] and roots.tolist() == [0, 0, 0]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=40), st.randoms(use_true_random=False))
def test_recentred_row_stars_are_the_stars_of_the_policy_ranks(
    keys: list[int], rnd: random.Random
) -> None:
    # The barrier buckets on scan rows, then renumbers only the rows that have a candidate
    # by the keep policy; that must draw the stars bucketing on the policy rank draws.
    values = np.array(keys, dtype=np.uint64)
    rows = np.arange(len(keys), dtype=np.int64)
    rank = np.array(rnd.sample(range(len(keys)), len(keys)), dtype=np.int64)
    u, v = mh.bucket_edges(values, rows)
    edges = np.stack([u, v], axis=1)
    candidates = np.unique(edges)
    node_of = np.argsort(np.argsort(rank[candidates]))  # ranks among candidates only
    got = mh.recentre(edges, candidates, node_of)
    du, dv = mh.bucket_edges(values, rank)
    ranked = np.sort(rank[candidates])
    want = {
        (int(np.searchsorted(ranked, a)), int(np.searchsorted(ranked, b)))
        for a, b in zip(du, dv, strict=True)
    }
    assert {(int(a), int(b)) for a, b in got} == want


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 20), max_size=25), min_size=1, max_size=12),
    st.lists(st.tuples(st.integers(0, 11), st.integers(0, 11)), max_size=30),
    st.floats(0.05, 1.0),
)
def test_batch_shingle_sets_and_their_jaccard_match_python_sets(
    docs: list[list[int]], pairs: list[tuple[int, int]], threshold: float
) -> None:
    # What jaccard_threshold rests on: each document's distinct sorted hashes made for a
    # whole batch at once, and the compiled merge that compares two of them.
    sizes = np.array([len(d) for d in docs], dtype=np.int64)
    values = np.array([h for d in docs for h in d], dtype=np.uint64)
    flat, lengths = mh.distinct_sorted(values, sizes)
    sets = [sorted(set(d)) for d in docs]
    assert lengths.tolist() == [len(x) for x in sets]
    assert flat.tolist() == [h for x in sets for h in x]
    pairs = [(u % len(docs), v % len(docs)) for u, v in pairs]
    u = np.array([p[0] for p in pairs], dtype=np.int64)
    v = np.array([p[1] for p in pairs], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    got = mh.jaccard_at_least(offsets, flat, u, v, threshold)
    for k, (a, b) in enumerate(pairs):
        union = set(sets[a]) | set(sets[b])
        want = bool(union) and len(set(sets[a]) & set(sets[b])) / len(union) >= threshold
        assert bool(got[k]) == want, (sets[a], sets[b], threshold)


def test_partitioned_buckets_give_the_same_clusters(tmp_path: Path) -> None:
    paths, truth = articles(tmp_path / "in", shards=3)
    run_local(recipe_of(RECIPE.format(params="{partitions: 8}"), *paths), tmp_path / "p")
    run_local(recipe_of(RECIPE.format(params="{}"), *paths), tmp_path / "one")
    assert clusters(tmp_path / "p") == clusters(tmp_path / "one")
    assert truth <= detected_pairs(tmp_path / "p")


def _codepoint_tokens_reference(texts: list[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """The char tokens as pyarrow and Python define them (the stage's code before it was
    compiled, plus the final-sigma fold): lower-case, fold "ς" to "σ", fold ``\\s+``
    (RE2: ASCII) to a space, trim Unicode space."""
    array = pc.fill_null(pa.array(texts, pa.large_string()), "")
    lowered = pc.replace_substring(pc.utf8_lower(array), "ς", "σ")
    normal = pc.utf8_trim_whitespace(pc.replace_substring_regex(lowered, r"\s+", " "))
    points = [np.frombuffer(t.encode("utf-32-le"), dtype=np.uint32) for t in normal.to_pylist()]
    counts = np.array([len(p) for p in points], dtype=np.int64)
    flat = np.concatenate(points) if points else np.empty(0, dtype=np.uint32)
    return mh.mix64(flat.astype(np.uint64) + mh._GOLDEN), counts


@settings(max_examples=300, deadline=None)
@given(
    texts_with_spaces("aZÉß€𝔘漢İΣσς"),
    st.integers(0, 3),
)
def test_char_tokens_fold_and_trim_as_pyarrow(texts: list[str | None], skip: int) -> None:
    array = pa.array(texts, pa.large_string())[skip:]  # a sliced array has an offset
    tokens, counts = mh.tokens_of(array, "char")
    want_tokens, want_counts = _codepoint_tokens_reference(texts[skip:])
    assert counts.tolist() == want_counts.tolist()
    assert tokens.tolist() == want_tokens.tolist()


@pytest.mark.parametrize("shingle", ["word", "char"])
def test_an_upper_cased_greek_copy_has_the_same_tokens(shingle: str) -> None:
    source = "Η GMC παρουσιάζει την Nightfall έκδοση στην έκθεση της Νέας Υόρκης."
    tokens, counts = mh.tokens_of(pa.array([source, source.upper()]), shingle)
    assert counts[0] == counts[1] > 0
    assert tokens[: counts[0]].tolist() == tokens[counts[0] :].tolist()


# ----------------------------------------------------------------- against other datasets


def split_articles(folder: Path) -> tuple[Path, list[list[str]]]:
    """The articles as the dataset (3 JSONL shards) and ``held.jsonl`` (field ``body``):
    the second of 5 planted pairs and 200 other articles go there. Returns the dataset's
    folder and the pairs (sorted ids)."""
    paths, truth = articles(folder / "all", shards=1)
    rows = [json.loads(line) for line in Path(paths[0]).read_text().splitlines()]
    pairs = sorted(sorted(p) for p in truth)
    paired = {i for p in pairs for i in p}
    others = sorted(r["id"] for r in rows if r["id"] not in paired)
    held = {b for _, b in pairs[:5]} | set(others[:200])
    with open(folder / "held.jsonl", "w", encoding="utf-8") as handle:
        for row in rows:
            if row["id"] in held:
                handle.write(json.dumps({"body": row["text"]}) + "\n")
    mine = [r for r in rows if r["id"] not in held]
    (folder / "data").mkdir()
    for k in range(3):
        lines = "".join(json.dumps(r) + "\n" for r in mine[k::3])
        (folder / "data" / f"part-{k}.jsonl").write_text(lines)
    return folder / "data", pairs


def drops(out: Path) -> dict[str, tuple[str, str | None, str, int]]:
    """id -> reason, duplicate_of, cluster id and size of every dropped row."""
    return {
        r["id"]: (
            r["drop_reason"],
            r["duplicate_of"],
            r["minhash_cluster_id"],
            r["minhash_cluster_size"],
        )
        for r in read_output(out, "dropped").to_pylist()
    }


@pytest.mark.parametrize("only_against", [False, True])
def test_against_another_dataset(tmp_path: Path, only_against: bool) -> None:
    """An article whose near copy is held elsewhere goes as ``minhash_dedup:in_against``
    (no ``duplicate_of``: its copy is not here); the pairs wholly here go as near
    duplicates unless ``only_against``."""
    data, pairs = split_articles(tmp_path)
    flag = str(only_against).lower()
    params = f"{{against: ['{tmp_path / 'held.jsonl'}'], against_text_field: body, "
    params += f"only_against: {flag}}}"
    stats = run_local(recipe_of(RECIPE.format(params=params), data), tmp_path / "out")
    expected = {a: ("minhash_dedup:in_against", None, a, 1) for a, _ in pairs[:5]}
    if not only_against:
        expected |= {b: ("minhash_dedup:near_duplicate", a, a, 2) for a, b in pairs[5:]}
    assert drops(tmp_path / "out") == expected
    stage = next(s for s in stats["stages"] if s["name"] == "minhash_dedup")
    assert stage["rows_in"] == 795 == stage["rows_kept"] + stage["rows_dropped"]
    kept = read_output(tmp_path / "out", "kept")
    assert not [c for c in kept.column_names if c.startswith("_minhash")]


def test_against_with_the_jaccard_check(tmp_path: Path) -> None:
    """The pairs' word 5-gram Jaccard is 0.959 to 0.968: a copy held elsewhere takes its
    article with it at 0.9, not at 0.97."""
    data, pairs = split_articles(tmp_path)
    held = f"against: ['{tmp_path / 'held.jsonl'}'], against_text_field: body"
    for threshold, gone in ((0.9, {a for a, _ in pairs[:5]}), (0.97, set())):
        params = f"{{{held}, only_against: true, jaccard_threshold: {threshold}}}"
        run_local(recipe_of(RECIPE.format(params=params), data), tmp_path / f"o{threshold}")
        assert set(drops(tmp_path / f"o{threshold}")) == gone


def edited_copies(count: int, seed: int) -> list[str]:
    """``count`` C4 articles, each with up to three copies, 3% of whose words another
    word replaces (near duplicates, sometimes of each other only through a third)."""
    rng = random.Random(seed)
    texts = []
    for text in c4_texts(0, count):
        words = text.split()
        texts.append(text)
        for _ in range(rng.choice((0, 0, 1, 2, 3))):
            copy = [w if rng.random() > 0.03 else rng.choice(words) for w in words]
            texts.append(" ".join(copy))
    return texts


def test_against_drops_here_what_a_run_over_both_would(tmp_path: Path) -> None:
    """Against other documents, the stage drops here what one run over both datasets
    drops here when it keeps theirs first (a priority): in their clusters, as
    ``in_against``; near duplicates of their own, as before, with the same kept copy.
    With ``only_against``, a document goes when it shares a band with one of theirs."""
    texts = edited_copies(150, seed=5)
    rng = random.Random(6)
    side = [rng.random() < 0.3 for _ in texts]
    theirs = [t for t, s in zip(texts, side, strict=True) if s]
    mine = [{"id": f"doc-{i:04d}", "text": t} for i, t in enumerate(texts) if not side[i]]
    with open(tmp_path / "theirs.jsonl", "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"text": t}) + "\n" for t in theirs)
    (tmp_path / "mine").mkdir()
    for k in range(2):
        (tmp_path / "mine" / f"{k}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in mine[k::2])
        )
    both = [{"id": f"ref-{i:04d}", "text": t, "first": 1.0} for i, t in enumerate(theirs)]
    both += [{**r, "first": 0.0} for r in mine]
    (tmp_path / "both.jsonl").write_text("".join(json.dumps(r) + "\n" for r in both))
    run_local(
        recipe_of(RECIPE.format(params="{priority_column: first}"), tmp_path / "both.jsonl"),
        tmp_path / "together",
    )
    expected = {}
    for key, (reason, of, cluster, _) in drops(tmp_path / "together").items():
        if key.startswith("doc-"):
            if cluster.startswith("ref-"):
                expected[key] = "minhash_dedup:in_against", None
            else:
                expected[key] = reason, of
    params = f"{{against: ['{tmp_path / 'theirs.jsonl'}']}}"
    run_local(recipe_of(RECIPE.format(params=params), tmp_path / "mine"), tmp_path / "apart")
    found = {k: (reason, of) for k, (reason, of, _, _) in drops(tmp_path / "apart").items()}
    assert found == expected
    reasons = sorted({reason for reason, _ in found.values()})
    assert reasons == ["minhash_dedup:in_against", "minhash_dedup:near_duplicate"]

    stage = mh.MinhashDedup(mh.MinhashParams())
    held = stage._keys(pa.array(theirs))
    here = stage._keys(pa.array([r["text"] for r in mine]))
    shares = np.zeros(len(mine), dtype=bool)
    for band in range(stage.params.num_bands):
        column = mh.band_column(band)
        values = held[column].drop_null()
        shares |= np.asarray(pc.fill_null(pc.is_in(here[column], values), False))
    params = f"{{against: ['{tmp_path / 'theirs.jsonl'}'], only_against: true}}"
    run_local(recipe_of(RECIPE.format(params=params), tmp_path / "mine"), tmp_path / "only")
    gone = drops(tmp_path / "only")
    assert set(gone) == {r["id"] for r, s in zip(mine, shares, strict=True) if s}
    assert {reason for reason, *_ in gone.values()} == {"minhash_dedup:in_against"}


@pytest.mark.ray
@pytest.mark.slow
def test_against_gives_the_same_rows_on_every_executor(tmp_path: Path) -> None:
    """On Ray the bands are bucketed by tasks that read the other dataset's keys from the
    decisions folder: the same rows as the local executor's."""
    data, _ = split_articles(tmp_path)
    params = f"{{against: ['{tmp_path / 'held.jsonl'}'], against_text_field: body}}"
    outputs = on_every_executor(recipe_of(RECIPE.format(params=params), data), tmp_path)
    assert outputs["local"] == outputs["ray1"] == outputs["ray2"]
    assert len(outputs["local"][1]) == 10
