"""``c4_badwords``: C4's bad-words rule, with a word list from a file the user gives.

A document is dropped (``c4_badwords:badword``) when its lower-cased text holds an entry
of the list flanked by non-word characters (or the text's ends), as datatrove's
``C4BadWordsFilter`` matches it; for languages written without spaces (``ja``, ``th``,
``zh``) an entry matches anywhere. ``keep_fraction`` keeps that fraction of the matching
documents, chosen by a seeded hash of the id (so the choice does not depend on
partitioning). The list is one entry a line (``../shared/data/lists/ldnoobw-en.txt`` is
the English LDNOOBW list that C4 used); it is read once per worker, and a missing or
empty file is an error that names it before any data is read.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from curation.batch import ID, TEXT, with_drop_reason
from curation.selectors.random import id_uniform
from curation.stage import MapStage, StageParams, register

_NON_WORD = r"[^\p{L}\p{N}_]"  # Python's \W, which datatrove's pattern uses
UNSPACED_LANGUAGES = ("ja", "th", "zh")


class C4BadWordsParams(StageParams):
    file_params: ClassVar[tuple[str, ...]] = ("words_file",)
    words_file: str = Field(..., description="the word list, one entry a line")
    language: str = Field("en", description="language of the list (ja, th, zh: no spaces)")
    keep_fraction: float = Field(0.0, ge=0.0, le=1.0, description="keep this share of matches")
    seed: int = Field(0, ge=0, description="seed of the keep_fraction draw")

    @field_validator("words_file")
    @classmethod
    def _readable(cls, value: str) -> str:
        if not Path(value).is_file():
            raise ValueError(
                f"word list {value!r} does not exist (looked for {Path(value).absolute()}): "
                "put there a file of one word or phrase a line (C4 used LDNOOBW's English "
                "list, github.com/LDNOOBW), or give words_file another"
            )
        load_words(value)  # an empty list is an error now, not on the workers
        return value


def load_words(path: str) -> list[str]:
    """Entries of a word list file, lower-cased, blank lines and duplicates removed."""
    words = sorted({line.strip().lower() for line in Path(path).read_text("utf-8").splitlines()})
    words = [w for w in words if w]
    if not words:
        raise ValueError(f"word list {path!r} is empty")
    return words


@register
class C4BadWords(MapStage):
    """Drops documents holding a listed word; adds ``c4_badwords_found`` (bool)."""

    name = "c4_badwords"
    help = "drop documents that hold a word of a bad-words list (C4's rule)"
    Params = C4BadWordsParams
    params: C4BadWordsParams

    def setup(self) -> None:
        words = load_words(self.params.words_file)
        alternatives = "|".join(re.escape(w) for w in words)
        if self.params.language in UNSPACED_LANGUAGES:
            self._pattern = f"({alternatives})"
        else:
            self._pattern = f"(?:{_NON_WORD}|^)({alternatives})(?:{_NON_WORD}|$)"

    def versions(self) -> dict[str, str]:
        import hashlib

        data = Path(self.params.words_file).read_bytes()
        return {"words_file_sha256": hashlib.sha256(data).hexdigest()}

    def process(self, table: pa.Table) -> pa.Table:
        found = pc.match_substring_regex(pc.utf8_lower(table[TEXT]), self._pattern)
        table = table.append_column("c4_badwords_found", found)
        drop = found
        if self.params.keep_fraction > 0:
            spared = id_uniform(table[ID], self.params.seed) < self.params.keep_fraction
            drop = pc.and_(found, pa.array(~spared))
        return with_drop_reason(table, drop, self.reason("badword"))
