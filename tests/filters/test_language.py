"""language: accuracy on real sentences in many languages, thresholds, model errors.

The sentences are the example sentences that ship inside spaCy (a dev dependency):
native-speaker text for about 60 languages that lid.176 knows.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pytest

from curation.batch import conform
from curation.filters.language import Language, LanguageParams, ModelError, load_model
from curation.recipe import RecipeError, parse_recipe
from tests.filters.parity import real_documents

ALIASES = {"nb": "no"}  # spaCy's Norwegian Bokmal is lid.176's "no"


def spacy_sentences(known: set[str]) -> list[tuple[str, str]]:
    import spacy.lang

    rows = []
    for module in pkgutil.iter_modules(spacy.lang.__path__):
        try:
            examples = importlib.import_module(f"spacy.lang.{module.name}.examples")
        except ImportError:
            continue
        code = ALIASES.get(module.name, module.name)
        if code in known:
            rows += [(code, s) for s in getattr(examples, "sentences", [])]
    return rows


def run(texts: list[str], **params: object) -> pa.Table:
    stage = Language(LanguageParams(**params))  # type: ignore[arg-type]
    stage.setup()
    table = conform(pa.table({"id": [str(i) for i in range(len(texts))], "text": texts}))
    return stage.process(table)


def test_accuracy_on_real_sentences() -> None:
    stage = Language(LanguageParams())
    stage.setup()
    known = {label.removeprefix("__label__") for label in stage._model.get_labels()}
    rows = spacy_sentences(known)
    assert len(rows) >= 300 and len({code for code, _ in rows}) >= 5
    predicted = run([s for _, s in rows])["lang"].to_pylist()
    hits: dict[str, list[bool]] = defaultdict(list)
    for (code, _), guess in zip(rows, predicted, strict=True):
        hits[code].append(code == guess)
    overall = sum(sum(h) for h in hits.values()) / len(rows)
    assert overall >= 0.8, overall
    major = ["en", "de", "fr", "es", "it", "ru", "zh", "ja", "ar", "tr", "pl", "el"]
    major_hits = [h for code in major for h in hits[code]]
    assert sum(major_hits) / len(major_hits) >= 0.95


def test_keeps_listed_languages_above_threshold() -> None:
    c4 = real_documents()["c4"][:200]
    out = run(c4, languages=["en"])
    reasons = out["drop_reason"].to_pylist()
    assert reasons.count(None) >= 180, "C4 is English"
    assert set(reasons) <= {None, "language:low_score", "language:other_language"}
    french = "Le chat est assis sur le tapis et regarde la pluie tomber dans le jardin."
    out = run([french, c4[0]], languages=["en"])
    assert out["drop_reason"].to_pylist() == ["language:other_language", None]
    assert out["lang"].to_pylist() == ["fr", "en"]
    out = run([french, c4[0]], languages=None, threshold=0.5)
    assert out["drop_reason"].to_pylist() == [None, None]


def test_degenerate_text_gets_a_reason() -> None:
    out = run(["", "   ", "!!! ???", "\ufffd\ufffd"], languages=["en"])
    assert all(r is not None for r in out["drop_reason"].to_pylist())


def test_missing_or_corrupt_model_is_named_before_reading(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"language model /no/model.bin does not exist"):
        parse_recipe("stages:\n  - language: {model_path: /no/model.bin}\n")
    corrupt = tmp_path / "corrupt.bin"
    corrupt.write_bytes(b"not a fasttext model at all")
    with pytest.raises(ModelError, match=r"corrupt.bin cannot be loaded"):
        load_model(str(corrupt))


@pytest.mark.slow
@pytest.mark.parametrize("languages", [["en"], None, ["en", "fr", "de"]])
def test_same_decisions_as_datatrove_with_the_same_model(
    languages: list[str] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """datatrove's LanguageFilter downloads its model; hand it the same lid.176 file.

    It also insists on the `fasttext-numpy2-wheel` distribution; `fasttext-numpy2` installs
    the same `fasttext` module, so its dependency check is switched off here."""
    from datatrove.data import Document
    from datatrove.pipeline.filters import LanguageFilter
    from fasttext.FastText import _FastText

    from curation.filters.language import default_model_path

    monkeypatch.setattr(LanguageFilter, "_requires_dependencies", [])
    reference = LanguageFilter(languages=languages)
    reference.model._model = _FastText(str(default_model_path()))
    docs = real_documents()
    texts = docs["c4"] + docs["pile"]
    theirs = [bool(reference.filter(Document(text=t, id=str(i)))) for i, t in enumerate(texts)]
    ours = [r is None for r in run(texts, languages=languages)["drop_reason"].to_pylist()]
    same = sum(a == b for a, b in zip(theirs, ours, strict=True)) / len(texts)
    assert same >= 0.999, [i for i, (a, b) in enumerate(zip(theirs, ours, strict=True)) if a != b]
