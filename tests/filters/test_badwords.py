"""c4_badwords on the real samples with the real LDNOOBW list, against a plain `re` loop
built the way datatrove builds its pattern."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pytest

from curation.batch import conform
from curation.filters.badwords import C4BadWords, C4BadWordsParams, load_words
from curation.recipe import RecipeError, parse_recipe
from tests.conftest import shared_file
from tests.filters.parity import real_documents


def run(texts: list[str], **params: object) -> pa.Table:
    stage = C4BadWords(C4BadWordsParams(**params))  # type: ignore[arg-type]
    stage.setup()
    table = conform(pa.table({"id": [f"d{i}" for i in range(len(texts))], "text": texts}))
    return stage.process(table)


@pytest.mark.parametrize("sample", ["c4", "pile"])
def test_same_documents_as_a_python_regex(sample: str) -> None:
    words_file = shared_file("lists/ldnoobw-en.txt")
    words = load_words(str(words_file))
    reference = re.compile(r"(?:\W|^)({})(?:\W|$)".format("|".join(re.escape(w) for w in words)))
    texts = real_documents()[sample]
    expected = [reference.search(t.lower()) is not None for t in texts]
    out = run(texts, words_file=str(words_file))
    assert out["c4_badwords_found"].to_pylist() == expected
    assert sum(expected) >= 3, "the samples do hold listed words"
    dropped = [r is not None for r in out["drop_reason"].to_pylist()]
    assert dropped == expected


def test_word_boundaries_and_keep_fraction(tmp_path: Path) -> None:
    words = tmp_path / "words.txt"
    words.write_text("badword\ntwo words\n\n")
    out = run(
        ["a badword here", "badwordish is fine", "TWO WORDS.", "clean"], words_file=str(words)
    )
    assert out["drop_reason"].to_pylist() == [
        "c4_badwords:badword",
        None,
        "c4_badwords:badword",
        None,
    ]
    texts = [f"badword {i}" for i in range(2000)]
    kept = run(texts, words_file=str(words), keep_fraction=0.25)["drop_reason"].null_count
    assert 400 < kept < 600


def test_missing_or_empty_list_fails_before_reading(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"line 2: stage c4_badwords.*does not exist"):
        parse_recipe("stages:\n  - c4_badwords: {words_file: /no/such/list.txt}\n")
    # a relative name: where it was looked for, and what to put there
    with pytest.raises(RecipeError, match=r"looked for .*lists/words\.txt\): put there a file"):
        parse_recipe("stages:\n  - c4_badwords: {words_file: lists/words.txt}\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(RecipeError, match=r"is empty"):
        parse_recipe(f"stages:\n  - c4_badwords: {{words_file: {empty}}}\n")


@pytest.mark.slow
@pytest.mark.parametrize("sample", ["c4", "pile"])
def test_parity_with_datatrove(
    sample: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """datatrove's C4BadWordsFilter downloads the LDNOOBW list; its cache is seeded here
    with the same list from ../shared/data, so its own code runs offline."""
    from datatrove.data import Document
    from datatrove.io import cached_assets_path, strip_protocol
    from datatrove.pipeline.filters import C4BadWordsFilter
    from datatrove.pipeline.filters.c4_filters import _EN_BADWORDS_URL

    words_file = shared_file("lists/ldnoobw-en.txt")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    folder = Path(
        cached_assets_path(library_name="datatrove", namespace="filters", subfolder="c4_badwords")
    )
    cached = folder / strip_protocol(_EN_BADWORDS_URL).replace("/", "_")
    cached.write_bytes(words_file.read_bytes())
    Path(f"{cached}.completed").touch()

    reference = C4BadWordsFilter()
    texts = real_documents()[sample]
    theirs = [reference.filter(Document(text=t, id=str(i))) is True for i, t in enumerate(texts)]
    out = run(texts, words_file=str(words_file))
    ours = [r is None for r in out["drop_reason"].to_pylist()]
    assert ours == theirs
