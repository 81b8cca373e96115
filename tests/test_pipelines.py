"""The shipped recipes run end to end on real data."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from curation.recipe import load_recipe
from tests.conftest import read_output, run_local

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"


@pytest.mark.slow
def test_fineweb_from_warc(warc_dir: Path, tmp_path: Path) -> None:
    recipe = load_recipe(PIPELINES / "fineweb.yaml").with_input(paths=[str(warc_dir)])
    stats = run_local(recipe, tmp_path / "out")
    names = [s["name"] for s in stats["stages"]]
    assert names == [
        "read",
        "url_filter",
        "language",
        "gopher_repetition",
        "gopher_quality",
        "c4_quality",
        "fineweb_quality",
        "exact_dedup",
        "minhash_dedup",
        "pii",
    ]
    assert stats["rows"]["read"] == 37
    kept = read_output(tmp_path / "out", "kept")
    assert 10 <= kept.num_rows < 37
    assert set(kept["lang"].to_pylist()) == {"en"}
    assert {
        "gopher_word_count",
        "fineweb_list_ratio",
        "exact_dedup_cluster_size",
        "minhash_cluster_size",
        "duplicate_of",
        "pii_emails",
        "pii_ips",
    } <= set(kept.column_names)
    dropped = read_output(tmp_path / "out", "dropped")
    assert dropped.num_rows == 37 - kept.num_rows
    assert dropped["drop_reason"].null_count == 0


def _c4_recipe(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """pipelines/c4.yaml names lists/ldnoobw-en.txt: the shared LDNOOBW list put there."""
    from tests.conftest import shared_file

    words = shared_file("lists/ldnoobw-en.txt")
    monkeypatch.chdir(cwd)
    (cwd / "lists").mkdir()
    (cwd / "lists" / "ldnoobw-en.txt").write_bytes(words.read_bytes())
    return PIPELINES / "c4.yaml"


C4_STAGES = [
    "read",
    "length_filter",
    "exact_dedup",
    "c4_quality",
    "sentence_dedup",
    "language",
    "c4_badwords",
]


def test_c4_keeps_c4s_own_pages_and_the_newest_page_per_url(
    c4_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """C4's own pages pass C4's recipe (what it drops, it drops by the differences the
    recipe names). A second crawl of 50 of their URLs goes as duplicates of C4's pages
    where it is older and keeps their place where it is newer, as C4 kept the newest page
    of a URL; a page over C4's 190,000 characters goes first."""
    import gzip
    import json

    recipe_file = _c4_recipe(tmp_path, monkeypatch)
    pages = [
        {"id": f"c4-{i:04d}", **json.loads(line)} for i, line in enumerate(gzip.open(c4_path, "rt"))
    ]
    year = 365 * 24 * 3600

    def recrawl(i: int, page: dict, later: bool) -> dict:
        date = datetime.fromisoformat(page["date"]).timestamp() + (year if later else -year)
        when = datetime.fromtimestamp(date, UTC).isoformat().replace("+00:00", "Z")
        return {**page, "id": f"recrawl-{i:04d}", "date": when}

    # the same text, so only the dates tell which page a URL keeps
    newer = [recrawl(i, page, later=True) for i, page in enumerate(pages[:25])]
    older = [recrawl(i, page, later=False) for i, page in enumerate(pages[25:50], 25)]
    huge = {**pages[60], "id": "huge", "url": "https://example.org/long", "text": "Word. " * 40_000}
    crawl = tmp_path / "crawl.jsonl"
    crawl.write_text("".join(json.dumps(p) + "\n" for p in pages + newer + older + [huge]))
    recipe = load_recipe(recipe_file).with_input(paths=[str(crawl)], format="jsonl")
    stats = run_local(recipe, tmp_path / "out")
    assert [s["name"] for s in stats["stages"]] == C4_STAGES
    by_name = {s["name"]: s for s in stats["stages"]}
    assert by_name["length_filter"]["rows_dropped"] == 1
    assert by_name["exact_dedup"]["rows_dropped"] == 50
    kept = read_output(tmp_path / "out", "kept")
    assert kept.num_rows >= 950, stats  # 962 on the sample
    # C4's lines already pass C4's line rules: none is removed
    assert sum(kept["c4_lines_removed"].to_pylist()) == 0
    dropped = read_output(tmp_path / "out", "dropped").to_pylist()
    assert [r["id"] for r in dropped if r["drop_reason"] == "length_filter:too_long"] == ["huge"]
    second = {
        r["id"]: r["duplicate_of"] for r in dropped if r["drop_reason"] == "exact_dedup:duplicate"
    }
    assert second == {
        **{f"c4-{i:04d}": f"recrawl-{i:04d}" for i in range(25)},  # the newer crawl kept
        **{f"recrawl-{i:04d}": f"c4-{i:04d}" for i in range(25, 50)},  # C4's page kept
    }
    assert kept.num_rows + len(dropped) == 1051


def test_c4_from_warc(warc_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = load_recipe(_c4_recipe(tmp_path, monkeypatch)).with_input(paths=[str(warc_dir)])
    stats = run_local(recipe, tmp_path / "out")
    assert [s["name"] for s in stats["stages"]] == C4_STAGES
    assert stats["rows"]["read"] == 37
    kept = read_output(tmp_path / "out", "kept")
    assert 1 <= kept.num_rows < 37
    assert set(kept["lang"].to_pylist()) == {"en"}
    # every kept line ends in one of C4's marks and has 5 words or more
    for text in kept["text"].to_pylist():
        for line in text.splitlines():
            assert line.endswith((".", "?", "!", '"')) and len(line.split()) >= 5, line


@pytest.mark.slow
def test_dclm_from_warc(warc_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from curation.scoring.classifier import train_classifier
    from tests.conftest import shared_file

    rows = [
        json.loads(line)
        for line in shared_file("quality/dclm-human-quality-majority.jsonl")
        .read_text()
        .splitlines()
    ]
    monkeypatch.chdir(tmp_path)  # the recipe names models/dclm-quality.bin
    train_classifier(
        [r["text"] for r in rows if r["label"] == 1],
        [r["text"] for r in rows if r["label"] == 0],
        Path("models/dclm-quality.bin"),
    )
    recipe = load_recipe(PIPELINES / "dclm.yaml").with_input(paths=[str(warc_dir)])
    stats = run_local(recipe, tmp_path / "out")
    names = [s["name"] for s in stats["stages"]]
    assert names == [
        "read",
        "url_filter",
        "url_removal",
        "regex_replace",
        "language",
        "dclm_quality",
        "dclm_repetition",
        "refinedweb_lines",
        "bff_dedup",
        "fasttext_classifier",
        "threshold",
    ]
    assert stats["rows"]["read"] == 37
    kept = read_output(tmp_path / "out", "kept").to_pylist()
    before = stats["stages"][-1]["rows_in"]
    assert 1 <= len(kept) < before
    # the kept documents are the best-scored ones and hold at least 10% of the characters
    dropped = read_output(tmp_path / "out", "dropped").to_pylist()
    # RefinedWeb's line corrections reach these pages: lines removed from kept ones
    assert sum(r["refinedweb_lines_removed"] for r in kept) > 0
    # and DCLM's URL clean-up removed URLs from these pages
    assert sum(r.get("url_removal_urls") or 0 for r in kept + dropped) > 0
    cut = [r for r in dropped if r["drop_reason"] == "threshold:below_cut"]
    assert min(r["quality_hq_prob"] for r in kept) >= max(r["quality_hq_prob"] for r in cut)
    chars = sum(len(r["text"]) for r in kept)
    assert chars >= 0.1 * (chars + sum(len(r["text"]) for r in cut))


@pytest.mark.slow
def test_color_filter_recipe_trains_its_models_and_selects(
    c4_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pipelines/color_filter.yaml (its training made quick) trains the prior on the run's
    input and fine-tunes it on target/, then keeps the top 1/8 of a pool of C4 and book
    chunks: nearly all book. A second run reuses the models."""
    import gzip
    import json
    import math

    from click.testing import CliRunner

    from curation.cli import main
    from tests.conftest import shared_file

    monkeypatch.chdir(tmp_path)  # the recipe names models/color/... and target/
    book = shared_file("reference/gutenberg-2701-moby-dick.txt").read_text(encoding="utf-8")
    chunks = [book[i : i + 1200] for i in range(30_000, 30_000 + 1200 * 100, 1200)]
    Path("target").mkdir()
    Path("target/book.jsonl").write_text(
        "".join(json.dumps({"text": c}) + "\n" for c in chunks[:60])
    )
    with gzip.open(c4_path, "rt", encoding="utf-8") as handle:
        web = [json.loads(line)["text"] for line in handle]
    pool = [{"id": f"c4/{i}", "text": t} for i, t in enumerate(web[600:760])]
    pool += [{"id": f"book/{i}", "text": t} for i, t in enumerate(chunks[60:])]
    Path("pool.jsonl").write_text("".join(json.dumps(d) + "\n" for d in pool))
    shipped = (PIPELINES / "color_filter.yaml").read_text(encoding="utf-8")
    quick = shipped.replace(
        "config: small, steps: 2000", "config: tiny, steps: 60, batch_size: 8, vocab_size: 1200"
    ).replace("steps: 300", "steps: 40")
    assert quick.count("tiny") == 1 and "steps: 40" in quick
    Path("recipe.yaml").write_text(quick)
    runner = CliRunner()
    args = ["run", "recipe.yaml", "--input", "pool.jsonl", "--executor", "local", "--quiet"]
    dry = runner.invoke(main, [*args, "--output", "out", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "models: building models/color/prior (train_lm)" in dry.output
    assert "models: building models/color/conditional (train_lm)" in dry.output
    assert not Path("out").exists() and not Path("models").exists()  # nothing built
    result = runner.invoke(main, [*args, "--output", "out"])
    assert result.exit_code == 0, result.output
    assert "models: building models/color/prior" in result.output
    assert "models: building models/color/conditional" in result.output
    conditional = json.loads(Path("models/color/conditional/config.json").read_text())
    assert conditional["training"]["init"] == "models/color/prior"
    assert conditional["training"]["sources"] == ["target"]
    kept = read_output(tmp_path / "out", "kept").to_pylist()
    assert len(kept) == math.ceil(len(pool) / 8)
    assert sum(r["id"].startswith("book/") for r in kept) >= 0.9 * len(kept)
    again = runner.invoke(main, [*args, "--output", "out2"])
    assert again.exit_code == 0, again.output
    assert "models: reusing models/color/prior" in again.output and "building" not in again.output
    assert read_output(tmp_path / "out2", "kept").to_pylist() == kept


def test_stats_adds_every_statistic_and_keeps_every_document(c4_path: Path, tmp_path: Path) -> None:
    recipe = load_recipe(PIPELINES / "stats.yaml").with_input(paths=[str(c4_path)])
    stats = run_local(recipe, tmp_path / "out")
    assert stats["rows"]["read"] == stats["rows"]["kept"] == 1000
    kept = read_output(tmp_path / "out", "kept")
    columns = set(kept.column_names)
    for stage in ("doc", "line", "paragraph", "word", "sentence"):
        assert any(c.startswith(f"{stage}_stats_") for c in columns), stage
    assert kept["word_stats_n_words"].to_pylist()[:3] != [0, 0, 0]


@pytest.mark.slow
def test_refinedweb_from_warc(warc_dir: Path, tmp_path: Path) -> None:
    recipe = load_recipe(PIPELINES / "refinedweb.yaml").with_input(paths=[str(warc_dir)])
    stats = run_local(recipe, tmp_path / "out")
    assert [s["name"] for s in stats["stages"]] == REFINEDWEB_STAGES
    assert stats["rows"]["read"] == 37
    kept = read_output(tmp_path / "out", "kept")
    assert 10 <= kept.num_rows < 37
    assert set(kept["lang"].to_pylist()) == {"en"}
    dropped = read_output(tmp_path / "out", "dropped")
    assert dropped.num_rows == 37 - kept.num_rows
    # two of the sample's pages are near copies of others
    assert dropped["drop_reason"].to_pylist().count("minhash_dedup:near_duplicate") == 2


REFINEDWEB_STAGES = [
    "read",
    "url_filter",
    "language",
    "gopher_repetition",
    "gopher_quality",
    "refinedweb_lines",
    "minhash_dedup",
    "substring_dedup",
    "exact_dedup",
]


@pytest.mark.slow
def test_refinedweb_dedups_near_copies_quoted_spans_and_urls(c4_path: Path, tmp_path: Path) -> None:
    """On C4 pages: near copies (a word added: 99.5% or more of their 5-grams shared) go
    to MinHash's 20 bands of 450 hashes, a 300-byte span quoted by another page is struck
    from both (ExactSubstr strikes every copy), and a second page of a URL goes to the
    URL dedup."""
    import gzip
    import json

    pages = [
        {"id": f"c4-{i:04d}", **json.loads(line)} for i, line in enumerate(gzip.open(c4_path, "rt"))
    ]
    near = [
        {**pages[i], "id": f"z-near-{i}", "text": pages[i]["text"] + " indeed", "url": f"n{i}"}
        for i in range(10)
    ]
    span = pages[20]["text"][100:400]
    quote = {**pages[400], "id": "z-quote", "text": pages[400]["text"] + "\n" + span}
    same_url = {**pages[500], "id": "z-url", "url": pages[31]["url"]}
    crawl = tmp_path / "crawl.jsonl"
    rows = pages[:300] + near + [quote, same_url]
    crawl.write_text("".join(json.dumps(p) + "\n" for p in rows))
    recipe = load_recipe(PIPELINES / "refinedweb.yaml").with_input(
        paths=[str(crawl)], format="jsonl"
    )
    stats = run_local(recipe, tmp_path / "out")
    assert [s["name"] for s in stats["stages"]] == REFINEDWEB_STAGES
    kept = {r["id"]: r for r in read_output(tmp_path / "out", "kept").to_pylist()}
    dropped = {r["id"]: r for r in read_output(tmp_path / "out", "dropped").to_pylist()}
    assert len(kept) + len(dropped) == len(rows)
    survivors = [i for i in range(10) if f"c4-{i:04d}" in kept]
    assert len(survivors) >= 5
    for i in survivors:
        copy = dropped[f"z-near-{i}"]
        assert copy["drop_reason"] == "minhash_dedup:near_duplicate"
        assert copy["duplicate_of"] == f"c4-{i:04d}"
    for key in ("c4-0020", "z-quote"):
        assert kept[key]["substring_dedup_bytes_removed"] >= 200
        assert span[50:250] not in kept[key]["text"]
    assert dropped["z-url"]["drop_reason"] == "exact_dedup:duplicate"
    assert dropped["z-url"]["duplicate_of"] == "c4-0031"


def test_pile_mixture_on_the_pile_sample(pile_path: Path, tmp_path: Path) -> None:
    """pipelines/pile_mixture.yaml over the Pile sample, written as The Pile ships it
    (text, meta.pile_set_name): each subset's share of characters as asked, the scarcest
    for its share taken twice, every other subset dropped by reason."""
    import json

    rows = [json.loads(line) for line in pile_path.read_text(encoding="utf-8").splitlines()]
    source = tmp_path / "pile.jsonl"
    with open(source, "w", encoding="utf-8") as out:
        for row in rows:
            meta = {"pile_set_name": row["metadata"]["pile_set_name"]}
            out.write(json.dumps({"text": row["contents"], "meta": meta}) + "\n")
    recipe = load_recipe(PIPELINES / "pile_mixture.yaml").with_input(paths=[str(source)])
    stats = run_local(recipe, tmp_path / "out")
    mix = stats["stages"][-1]
    parts = mix["decision"]["parts"]
    assert mix["decision"]["notes"] == []
    for part in parts.values():  # within a document's size of its share
        assert abs(part["share_taken"] - part["share"]) < 0.01
    # GitHub is the scarcest for its share: all of it twice; the total is what that allows
    assert parts["Github"]["copies"] == 2 * parts["Github"]["rows"]
    assert parts["Github"]["taken"] == 2 * parts["Github"]["available"]
    assert max(p["copies"] / p["rows"] for p in parts.values()) <= 2
    kept = read_output(tmp_path / "out", "kept").to_pylist()
    assert {r["meta"]["pile_set_name"] for r in kept} == set(parts)
    assert sum(r["mix_copies"] for r in kept) == sum(p["copies"] for p in parts.values())
    others = mix["rows_in"] - sum(p["rows"] for p in parts.values())
    assert mix["dropped_by_reason"]["mix:not_in_mix"] == others > 0
