"""KenLM perplexity: a model trained on the reference books and Wikipedia prefers held-out
text of the same kind to web text and code; CCNet's normalisation; model errors."""

from __future__ import annotations

import gzip
import json
import statistics
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.recipe import RecipeError
from curation.scoring.kenlm import ToolMissing, kenlm_tool, train_kenlm
from curation.scoring.normalize import PUNCTUATION, normalize_text, split_paragraphs
from tests.conftest import read_output, recipe_of, run_local, shared_file

REFERENCE = (
    "wikitext-2-valid.txt",
    "gutenberg-1342-pride-and-prejudice.txt",
    "gutenberg-2701-moby-dick.txt",
)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A model trained on the first 80% of each reference text; the held-out rest."""
    try:
        kenlm_tool("lmplz")
    except ToolMissing as err:
        pytest.skip(str(err))
    root = tmp_path_factory.mktemp("kenlm")
    (root / "train").mkdir()
    (root / "held").mkdir()
    for name in REFERENCE:
        lines = shared_file(f"reference/{name}").read_text(encoding="utf-8").splitlines()
        cut = int(len(lines) * 0.8)
        (root / "train" / name).write_text("\n".join(lines[:cut]), encoding="utf-8")
        (root / "held" / name).write_text("\n".join(lines[cut:]), encoding="utf-8")
    train_kenlm([str(root / "train")], root / "model", order=5, vocab_size=8000, log=lambda m: None)
    return root / "model", root / "held"


def chunks(path: Path, size: int = 40) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    out = ["\n".join(lines[i : i + size]) for i in range(0, len(lines), size)]
    return [c for c in out if c.strip()]


def test_held_out_reference_text_is_less_perplexing_than_web_text_and_code(
    model: tuple[Path, Path], c4_path: Path, pile_path: Path, tmp_path: Path
) -> None:
    folder, held = model
    docs = []
    for name in REFERENCE:
        docs += [
            {"id": f"{name}/{i}", "text": t, "kind": name}
            for i, t in enumerate(chunks(held / name))
        ]
    with gzip.open(c4_path, "rt", encoding="utf-8") as handle:
        docs += [
            {"id": f"c4/{i}", "text": json.loads(line)["text"], "kind": "c4"}
            for i, line in enumerate(handle)
        ]
    with open(pile_path, encoding="utf-8") as handle:
        for i, line in enumerate(handle):
            row = json.loads(line)
            kind = {"Github": "code", "Pile-CC": "pile-cc"}.get(row["metadata"]["pile_set_name"])
            if kind:
                docs.append({"id": f"pile/{i}", "text": row["contents"], "kind": kind})
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    recipe = f"stages:\n  - kenlm_perplexity: {{model: '{folder}', buckets: true}}\n"
    stats = run_local(recipe_of(recipe, path), tmp_path / "out")
    assert stats["rows"]["kept"] == len(docs)
    rows = read_output(tmp_path / "out", "kept").to_pylist()
    median = {
        kind: statistics.median(r["kenlm_perplexity"] for r in rows if r["kind"] == kind)
        for kind in {r["kind"] for r in rows}
    }
    reference = max(median[name] for name in REFERENCE)
    assert reference < min(median["c4"], median["pile-cc"], median["code"]), median
    assert median["code"] > 2 * median["c4"], median

    # the buckets cut at the percentiles of held-out training paragraphs: reference
    # chunks land in the head far more often than web pages
    def head_share(kinds: tuple[str, ...]) -> float:
        chosen = [r["kenlm_bucket"] for r in rows if r["kind"] in kinds]
        return chosen.count("head") / len(chosen)

    assert head_share(REFERENCE) > 2 * head_share(("c4", "pile-cc")), median


def test_keep_low_or_high_perplexity(
    model: tuple[Path, Path], c4_path: Path, tmp_path: Path
) -> None:
    folder, held = model
    docs = [{"id": f"book/{i}", "text": t} for i, t in enumerate(chunks(held / REFERENCE[1]))]
    with gzip.open(c4_path, "rt", encoding="utf-8") as handle:
        docs += [
            {"id": f"c4/{i}", "text": json.loads(line)["text"]} for i, line in enumerate(handle)
        ]
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    outcomes = {}
    for keep in ("low", "high"):
        recipe = (
            f"stages:\n  - kenlm_perplexity: {{model: '{folder}', threshold: 300, keep: {keep}}}\n"
        )
        stats = run_local(recipe_of(recipe, path), tmp_path / keep)
        stage = stats["stages"][1]
        kept = read_output(tmp_path / keep, "kept").to_pylist()
        assert all((r["kenlm_perplexity"] <= 300) == (keep == "low") for r in kept)
        reason = "too_high" if keep == "low" else "too_low"
        assert set(stage["dropped_by_reason"]) == {f"kenlm_perplexity:{reason}"}
        outcomes[keep] = {r["id"] for r in kept}
    assert not outcomes["low"] & outcomes["high"]
    assert len(outcomes["low"]) + len(outcomes["high"]) == len(docs)
    books = {d["id"] for d in docs if d["id"].startswith("book/")}
    assert len(books & outcomes["low"]) > 0.9 * len(books)


def reference_normalize(line: str) -> str:
    """CCNet's normalisation written the obvious way, one character at a time."""
    line = line.strip().lower()
    line = "".join(c for c in unicodedata.normalize("NFD", line) if unicodedata.category(c) != "Mn")
    line = "".join("0" if unicodedata.category(c) == "Nd" else c for c in line)
    line = "".join(PUNCTUATION.get(c, c) for c in line)
    return "".join(c for c in line if not (ord(c) < 32 or 127 <= ord(c) <= 159))


def test_normalisation_matches_a_character_by_character_reference(c4_path: Path) -> None:
    with gzip.open(c4_path, "rt", encoding="utf-8") as handle:
        lines = [line for row in handle for line in json.loads(row)["text"].split("\n")]
    lines += [
        "  Ça coûte 1 234,5 € — «vraiment» ?  ",
        "ＡＢＣ １２３ … ’quoted’",
        "a\x9cb\x07c\tD٣",
    ]
    for line in lines:
        assert normalize_text(line) == reference_normalize(line), line


# characters that exercise every branch: ASCII letters, digits, white space and controls;
# trimmed Unicode spaces, accents, other digits, table punctuation, C1 controls
_TRICKY = (
    "aZ09 \t\r\n\x0b\x1c\x1f\x01\x7f\u00a0\u3000\u00e9E\u0301\u0663\u2019\u2014\u2026\u0085\u009c"
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.none() | st.text(alphabet=_TRICKY, max_size=30), max_size=8))
def test_split_paragraphs_is_the_reference_line_by_line(texts: list[str | None]) -> None:
    import pyarrow as pa

    lines, owner = split_paragraphs(pa.array(texts, pa.string()))
    expected = [
        (index, normal)
        for index, text in enumerate(texts)
        for line in (text or "").split("\n")
        if (normal := reference_normalize(line))
    ]
    assert list(zip(owner.tolist(), lines.to_pylist(), strict=True)) == expected
    sliced = pa.array(["x\ny", *texts], pa.string()).slice(1)  # buffers with an offset
    lines, owner = split_paragraphs(sliced)
    assert list(zip(owner.tolist(), lines.to_pylist(), strict=True)) == expected


def test_missing_or_corrupt_model_is_an_error_before_any_data_is_read(
    model: tuple[Path, Path], tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(RecipeError, match=str(missing)):
        recipe_of(f"stages:\n  - kenlm_perplexity: {{model: '{missing}'}}\n", "/no/such/input")
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in model[0].iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    (broken / "model.bin").write_bytes(b"not a model")
    with pytest.raises(RecipeError, match=r"model\.bin is not a KenLM binary model"):
        recipe_of(f"stages:\n  - kenlm_perplexity: {{model: '{broken}'}}\n", "/no/such/input")
    (broken / "sp.model").unlink()
    with pytest.raises(RecipeError, match=r"sp\.model is missing"):
        recipe_of(f"stages:\n  - kenlm_perplexity: {{model: '{broken}'}}\n", "/no/such/input")


def test_perplexity_is_ccnets_formula_over_scored_paragraphs(model: tuple[Path, Path]) -> None:
    import math

    import pyarrow as pa

    from curation.scoring.kenlm import load_model, perplexity

    folder, held = model
    loaded = load_model(folder)
    texts = chunks(held / REFERENCE[0], size=8)[:20]  # Wikipedia, with characters SentencePiece
    values, pieces = perplexity(loaded, pa.array(texts))  # does not know (<, >)
    for text, value, count in zip(texts, values, pieces, strict=True):
        log10, length = 0.0, 0
        for line in text.split("\n"):
            normal = normalize_text(line)
            if normal:
                tokens = loaded.tokenizer.encode(normal, out_type=str)
                log10 += loaded.model.score(" ".join(tokens), bos=True, eos=True)
                length += len(tokens) + 1
        assert count == length
        assert value == pytest.approx(math.pow(10, -log10 / length), rel=1e-9)
