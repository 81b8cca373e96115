"""``sentence_dedup``: remove every span of sentences seen before anywhere in the dataset.

C4's rule ("we discarded all but one of any three-sentence span occurring more than once
in the data set"), as datatrove's ``SentenceDedupSignature`` / ``SentenceFindDedups`` /
``SentenceDedupFilter`` run it, with the same decisions:

- Sentences are cut as datatrove's English splitter cuts them (spaCy's sentencizer over
  its blank English tokenizer: ``curation.filters.sentences``). A span is ``n_sentences``
  sentences in a row (white-space-only sentences left out), each simplified as
  datatrove's ``simplify_text`` does (lower case, numbers to ``0``, its punctuation to
  spaces, white space folded and trimmed, accents removed) and joined by a space; a span
  that simplifies to nothing is never removed.
- A global stage. Before the barrier each live row gets a 64-bit hash of every span. At
  the barrier the hashes of all rows are sorted; every occurrence of a span but the first
  (smallest id, then earliest span) is a duplicate, within one document too.
- After the barrier a duplicate span removes its sentences from the text (each with the
  white space before it; the text is then stripped at its start), and
  ``sentence_dedup_removed`` records how many sentences went. A text that changed is
  dropped when nothing is left (``sentence_dedup:all_duplicated``), when it has fewer
  than ``min_doc_words`` words (``too_few_words``, spaCy's tokens, punctuation included)
  or fewer than ``min_num_sentences`` sentences (``too_few_sentences``). A dropped text
  is kept as it came; a text that did not change is never dropped.

With ``split: lines`` (datatrove's ``split_sentences: false``) the units are the text's
lines as Python's ``str.splitlines`` cuts them (``\n``, ``\r\n``, ``\r`` and the other
Unicode line breaks), blank ones included, and a text that lost lines is rebuilt from the
others joined by ``\n`` (then stripped at its start); ``sentence_dedup_removed`` counts
lines, and ``min_num_sentences`` still counts sentences, as datatrove does.

``min_words_to_remove_span`` (0: off) is datatrove's option as its filter runs it: a run
of removed units whose first unit has fewer words keeps that first unit (only it: the
rest of the run still goes).

``against`` (documents kept elsewhere: a previous dump, a training set) is datatrove's
index (``SentenceDedupBuildIndex``): a span it holds goes in every copy here; with
``only_against`` (datatrove's ``only_dedup_in_index``) nothing else does.

datatrove keeps the first occurrence in the order of its sort (hash, then the document's
number within its task, then the task), so with several tasks which copy stays differs;
ours is the smallest id whatever the number of workers.

Memory at the barrier: the rows' ids and about 40 bytes per span.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curation.batch import ID, TEXT, with_drop_reason
from curation.dedup.common import AgainstParams
from curation.dedup.lines import (
    _line_positions,
    copies_to_remove,
    decide_units,
)
from curation.filters.punctuation import PUNCTUATION
from curation.filters.sentences import sentence_ends, sentence_texts
from curation.filters.tokenize import word_tokens
from curation.stage import GlobalStage, register
from curation.utf8 import (
    byte_slices,
    code_point,
    is_unicode_space,
    join_lines,
    large_text,
    line_bounds,
    skip_spaces,
    string_buffers,
)

_NO_LINE = np.zeros(0, np.uint8)  # a run of removed lines leaves nothing in their place
_HASHES = "_sentence_dedup_hashes"
_ENDS = "_sentence_dedup_ends"

# each character of datatrove's punctuation becomes a space
_PUNCTUATION_CLASS = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in PUNCTUATION) + "]"
_NUMBER = r"\p{Nd}+(?:[.,،٫⎖⎗⎘]\p{Nd}+)?"


class SentenceDedupParams(AgainstParams):
    n_sentences: int = Field(3, ge=1, description="sentences (or lines) in a span (C4: 3)")
    split: Literal["sentences", "lines"] = Field(
        "sentences", description="units of a span: sentences, or lines (datatrove's line mode)"
    )
    min_words_to_remove_span: int = Field(
        0,
        ge=0,
        description="datatrove's: a removed run whose first sentence has fewer words keeps it",
    )
    min_doc_words: int = Field(
        50, ge=0, description="a text that lost sentences is dropped below this many words"
    )
    min_num_sentences: int = Field(
        3, ge=0, description="a text that lost sentences is dropped below this many sentences"
    )


@register
class SentenceDedup(GlobalStage):
    """Removes spans of sentences repeated anywhere in the dataset (C4, datatrove's
    SentenceDedup); adds ``sentence_dedup_removed``."""

    name = "sentence_dedup"
    help = "remove every span of sentences (3) seen before in the dataset (C4, datatrove)"
    Params = SentenceDedupParams
    params: SentenceDedupParams
    internal_columns = (_HASHES, _ENDS)
    keys_by_library = True

    def key_columns(self) -> list[str]:
        return [_HASHES]  # the sentences' ends are only read after the barrier

    def measure(self, table: pa.Table) -> pa.Table:
        text = large_text(table[TEXT])
        data, offsets = string_buffers(text)
        lines = self.params.split == "lines"
        if lines:  # every line counts, blank ones too
            per_text, starts, ends = line_bounds(data, offsets)
            units = byte_slices(data, offsets, per_text, starts, ends)
            counted = np.ones(len(units), dtype=bool)
        else:  # white-space-only sentences are left out of the spans
            per_text, ends = sentence_ends(text)
            units, blank = sentence_texts(data, offsets, per_text, ends)
            counted = ~blank
        parents = np.repeat(np.arange(len(per_text)), per_text)
        spans, span_counts = _spans(
            simplified(units.filter(pa.array(counted))),
            parents[counted],
            len(per_text),
            self.params.n_sentences,
        )
        table = table.append_column(
            _HASHES, pa.ListArray.from_arrays(_offsets(span_counts, np.int32), spans)
        )
        if lines:  # cut again after the barrier: cheap, unlike sentences
            return table
        ends_list = pa.ListArray.from_arrays(
            _offsets(per_text, np.int32), pa.array(ends, pa.int64())
        )
        return table.append_column(_ENDS, ends_list)

    def decide(self, keys: Any, folder: Path) -> None:
        decide_units(self, keys, folder, _HASHES, keep_first=True)

    def apply(self, table: pa.Table, decisions: pa.Table | None) -> pa.Table:
        n = table.num_rows
        hashes = table[_HASHES].combine_chunks()
        flat = hashes.flatten()
        _, parents, span_no = _line_positions(hashes)
        duplicate = copies_to_remove(table[ID], flat, parents, span_no, decisions)
        text = large_text(table[TEXT])
        data, offsets = string_buffers(text)
        lines = self.params.split == "lines"
        if lines:
            per_text, starts, ends = line_bounds(data, offsets)
        else:
            ends_list = table[_ENDS].combine_chunks()
            per_text = np.asarray(pc.list_value_length(ends_list).fill_null(0), dtype=np.int64)
            ends = np.asarray(ends_list.flatten(), dtype=np.int64)
        removed = _removed_sentences(per_text, parents, span_no, duplicate, self.params.n_sentences)
        if self.params.min_words_to_remove_span:
            if not lines:  # a sentence runs from the end of the one before it
                starts = np.zeros_like(ends)
                starts[1:] = ends[:-1]
                starts[(np.cumsum(per_text) - per_text)[per_text > 0]] = 0
            removed = _short_runs_kept(
                removed, per_text, data, offsets, starts, ends, self.params.min_words_to_remove_span
            )
        lost = np.bincount(np.repeat(np.arange(n), per_text)[removed], minlength=n)
        changed = lost > 0
        if lines:
            out, out_offsets = join_lines(
                data, offsets, per_text, starts, ends, removed, changed, _NO_LINE, True
            )
        else:
            out, out_offsets = _without_sentences(data, offsets, per_text, ends, removed, changed)
        rebuilt = pa.LargeStringArray.from_buffers(n, pa.py_buffer(out_offsets), pa.py_buffer(out))
        empty = changed & (np.diff(out_offsets) == 0)
        few_words = np.zeros(n, dtype=bool)
        few_sentences = np.zeros(n, dtype=bool)
        left = np.flatnonzero(changed & ~empty)
        if len(left):
            new = rebuilt.take(pa.array(left))
            if self.params.min_doc_words:
                _, owners = word_tokens(new)
                words = np.bincount(owners, minlength=len(left))
                few_words[left] = words < self.params.min_doc_words
            if self.params.min_num_sentences:
                sentences, _ = sentence_ends(new)
                few_sentences[left] = sentences < self.params.min_num_sentences
        dropped = empty | few_words | few_sentences
        final = pc.if_else(pa.array(changed & ~dropped), rebuilt, text)
        table = table.set_column(table.column_names.index(TEXT), TEXT, final)
        table = table.append_column("sentence_dedup_removed", pa.array(lost, pa.int64()))
        table = with_drop_reason(table, pa.array(empty), self.reason("all_duplicated"))
        table = with_drop_reason(table, pa.array(few_words), self.reason("too_few_words"))
        return with_drop_reason(table, pa.array(few_sentences), self.reason("too_few_sentences"))


def _offsets(counts: np.ndarray, dtype: type) -> pa.Array:
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return pa.array(offsets.astype(dtype))


def simplified(sentences: pa.Array) -> pa.Array:
    """datatrove's ``simplify_text`` with its defaults, over a string array: lower case;
    each number (digits, with one decimal part) ``0``; each of its punctuation characters
    a space; white space folded to one space and trimmed; accents (combining marks after
    NFD) removed. Lower case is Arrow's, where a final sigma stays σ (Python's makes it ς):
    the same for every copy of a span, so no decision turns on it."""
    text = pc.utf8_lower(sentences)
    text = pc.replace_substring_regex(text, _NUMBER, "0")
    text = _folded(pc.replace_substring_regex(text, _PUNCTUATION_CLASS, " "))
    text = pc.utf8_normalize(text, "NFD")
    return pc.utf8_trim(pc.replace_substring_regex(text, r"\p{Mn}", ""), " ")


def _folded(text: pa.Array) -> pa.LargeStringArray:
    """Each run of white space (``str.isspace``) one space, none at either end."""
    text = text.cast(pa.large_string())
    out, offsets = _fold_spaces(*string_buffers(text))
    return pa.LargeStringArray.from_buffers(len(text), pa.py_buffer(offsets), pa.py_buffer(out))


def _spans(
    simple: pa.Array, parents: np.ndarray, texts: int, n: int
) -> tuple[pa.Array, np.ndarray]:
    """The hash of every span of ``n`` sentences in a row of one text (``simple``: the
    texts' non-blank sentences simplified, in order; ``parents``: each one's text), null
    for a span that is all empty; and the spans of each text."""
    per_text = np.bincount(parents, minlength=texts) if len(parents) else np.zeros(texts, int)
    spans = np.maximum(per_text - n + 1, 0)
    if not spans.sum():
        return pa.array([], pa.uint64()), spans
    size = len(simple) - n + 1
    first = np.flatnonzero(parents[:size] == parents[n - 1 :])
    parts = [simple.slice(k, size).take(pa.array(first)) for k in range(n)]
    joined = pc.binary_join_element_wise(*parts, pa.scalar(" ", pa.large_string()))
    blank = np.ones(len(first), dtype=bool)
    for part in parts:
        blank &= np.asarray(pc.equal(pc.binary_length(part), 0), dtype=bool)
    import polars as pl

    hashed = pl.from_arrow(joined).hash(seed=0).to_arrow()
    return pc.if_else(pa.array(blank), pa.scalar(None, pa.uint64()), hashed), spans


def _short_runs_kept(
    removed: np.ndarray,
    per_text: np.ndarray,
    data: np.ndarray,
    offsets: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    min_words: int,
) -> np.ndarray:
    """``removed`` with the first unit of each run of removed units kept again when it
    has fewer than ``min_words`` words: datatrove's ``min_words_to_remove_span``, as its
    filter runs it (it counts the words of a run's first sentence only, and puts back
    only that one). Units span ``starts``-``ends`` of their text (``per_text`` a text)."""
    first = (np.cumsum(per_text) - per_text)[per_text > 0]
    before = np.zeros(len(removed), dtype=bool)
    before[1:] = removed[:-1]
    before[first] = False
    run_starts = np.flatnonzero(removed & ~before)
    if not len(run_starts):
        return removed
    owner = np.repeat(np.arange(len(per_text)), per_text)[run_starts]
    counts = np.bincount(owner, minlength=len(per_text))
    pieces = byte_slices(data, offsets, counts, starts[run_starts], ends[run_starts])
    _, owners = word_tokens(pieces)
    words = np.bincount(owners, minlength=len(run_starts))
    out = removed.copy()
    out[run_starts[words < min_words]] = False
    return out


def _removed_sentences(
    per_text: np.ndarray, span_text: np.ndarray, span_no: np.ndarray, duplicate: np.ndarray, n: int
) -> np.ndarray:
    """Per sentence of every text: whether a duplicate span covers it (span ``k`` of a
    text covers its sentences ``k`` to ``k + n - 1``, as datatrove counts them).
    ``span_text`` and ``span_no``: each span's text and number in it."""
    removed = np.zeros(int(per_text.sum()), dtype=bool)
    first_sentence = np.cumsum(per_text) - per_text
    start = (first_sentence[span_text] + span_no)[duplicate]
    limit = (first_sentence + per_text)[span_text[duplicate]]
    for k in range(n):
        covered = start + k
        removed[covered[covered < limit]] = True
    return removed


@numba.njit(cache=True, nogil=True)
def _fold_spaces(
    data: np.ndarray, offsets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """``_folded`` over UTF-8: new bytes and offsets."""
    out = np.empty(offsets[-1] - offsets[0], np.uint8)
    out_offsets = np.zeros(len(offsets), np.int64)
    written = 0
    for d in range(len(offsets) - 1):
        start = written
        space = False
        i = offsets[d]
        while i < offsets[d + 1]:
            c, size = code_point(data, i)
            if is_unicode_space(c):
                space = True
            else:
                if space and written > start:
                    out[written] = 0x20
                    written += 1
                space = False
                out[written : written + size] = data[i : i + size]
                written += size
            i += size
        out_offsets[d + 1] = written
    return out[:written], out_offsets


@numba.njit(cache=True, nogil=True)
def _without_sentences(
    data: np.ndarray,
    offsets: np.ndarray,
    per_text: np.ndarray,
    ends: np.ndarray,
    removed: np.ndarray,
    changed: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Each ``changed`` text rebuilt from its sentences not ``removed`` (each from the end
    of the one before it), with white space stripped at its start; each other text left
    out (empty). New bytes and offsets."""
    out = np.empty(offsets[-1] - offsets[0], np.uint8)
    out_offsets = np.zeros(len(per_text) + 1, np.int64)
    written = 0
    s = 0
    for d in range(len(per_text)):
        start = written
        previous = 0
        for _ in range(per_text[d]):
            if changed[d] and not removed[s]:
                begin = offsets[d] + previous
                end = offsets[d] + ends[s]
                if written == start:  # strip white space at the text's start
                    begin = skip_spaces(data, begin, end)
                out[written : written + end - begin] = data[begin:end]
                written += end - begin
            previous = ends[s]
            s += 1
        out_offsets[d + 1] = written
    return out[:written], out_offsets
