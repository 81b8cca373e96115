"""``decontaminate``: drop documents that share a word n-gram with a benchmark's items.

Training on a benchmark's test items inflates the scores measured on it. This stage
indexes every word n-gram (default 13 words, as GPT-3 and NeMo Curator) of the items of
the benchmark files the recipe names, and drops a document that holds at least
``min_matches`` distinct indexed n-grams (``decontaminate:benchmark_ngram``).

- Words are the MinHash stage's: split at white space, lower-cased, punctuation and
  symbols stripped, so "Paris," and "paris" are one word.
- An item's text is its ``query`` followed by its gold answer (``choices[gold]``) in the
  multiple-choice layout of llm-foundry and lighteval (``query``, ``choices``, ``gold``),
  and its ``text_field`` otherwise. With ``query_ngrams: false`` only n-grams that hold
  at least one word of the answer are indexed (datatrove's default), so a document that
  quotes a question's passage but not its answer is kept.
- Items shorter than ``ngram`` words have no n-gram and cannot be matched; how many there
  are is logged and recorded in ``recipe.yaml`` (lower ``ngram`` to cover them).
- Columns: ``decontaminate_matches`` (int64, distinct shared n-grams) and
  ``decontaminate_item`` (the id of the item whose n-gram the document shares first, as
  the readers give it: the file's id field, else ``<shard name>/<row>``; null when none).

The index is built once per worker from the files (about a second for the 9,156 items
of ``../shared/data/benchmarks``): 8 bytes per n-gram for the sorted hashes, 8 for the
item of each, and a 2 MiB bitmap that answers most look-ups without touching them.
"""

from __future__ import annotations

import hashlib
import logging
from typing import ClassVar

import fsspec
import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from curation.batch import DROP_REASON, ID, TEXT, with_drop_reason
from curation.dedup.minhash import shingle_counts, shingle_hashes, tokens_of
from curation.io.inputs import InputError, resolve_inputs
from curation.io.readers import read_shard
from curation.recipe import InputSpec
from curation.stage import MapStage, StageParams, register

log = logging.getLogger(__name__)

_SEED = 0  # documents and items must hash n-grams alike; any fixed value does
_BITMAP_BITS = 24  # 2 MiB: a hash's top 24 bits pick its bit


class DecontaminateParams(StageParams):
    file_params: ClassVar[tuple[str, ...]] = ("benchmarks",)
    benchmarks: list[str] = Field(
        ..., min_length=1, description="benchmark files, directories or globs (any input format)"
    )
    ngram: int = Field(13, ge=1, le=64, description="words per n-gram")
    min_matches: int = Field(1, ge=1, description="distinct shared n-grams that drop a document")
    query_ngrams: bool = Field(
        True, description="also index n-grams of the question alone (false: only with answer words)"
    )
    text_field: str = Field("text", description="the items' text, when not query/choices/gold")

    @field_validator("benchmarks")
    @classmethod
    def _exist(cls, value: list[str]) -> list[str]:
        try:
            resolve_inputs(value)
        except InputError as err:
            raise ValueError(f"benchmarks: {err}") from None
        return value


class BenchmarkIndex:
    """The n-gram hashes of benchmark items, sorted, each with the item it came from."""

    def __init__(self, params: DecontaminateParams) -> None:
        items, queries, answers = _read_items(params)
        self.item_ids = pa.array(items, pa.string())
        texts = pa.array(
            [q if a is None else f"{q} {a}" for q, a in zip(queries, answers, strict=True)]
        )
        shingles, per_item, words = word_ngrams(texts, params.ngram)
        whole = np.repeat(words >= params.ngram, per_item)  # short items have no n-gram
        owner = np.repeat(np.arange(len(items), dtype=np.int64), per_item)
        if not params.query_ngrams:
            query_words = tokens_of(pa.array(queries), "word")[1]
            has_answer = np.array([a is not None for a in answers])
            # window i of an item covers words i..i+n-1: it reaches the answer from
            # i = query words - n + 1 on; items without an answer keep every window
            first = np.where(has_answer, query_words - params.ngram + 1, 0)
            starts = np.cumsum(per_item) - per_item
            window = np.arange(len(shingles), dtype=np.int64) - np.repeat(starts, per_item)
            whole &= window >= np.repeat(first, per_item)
        order = np.argsort(shingles[whole], kind="stable")
        self.hashes = shingles[whole][order]
        self.owner = owner[whole][order]
        self.short_items = int((words < params.ngram).sum())
        self.bitmap = np.zeros(1 << (_BITMAP_BITS - 3), dtype=np.uint8)
        top = (self.hashes >> np.uint64(64 - _BITMAP_BITS)).astype(np.int64)
        np.bitwise_or.at(self.bitmap, top >> 3, (1 << (top & 7)).astype(np.uint8))

    def __len__(self) -> int:
        return len(self.hashes)


def word_ngrams(
    texts: pa.Array | pa.ChunkedArray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hashes of the word n-grams of every text (flat), and per text the number of
    hashes and of words. A text of fewer than ``n`` words has one hash, of all its words,
    which matches nothing: the index holds only whole n-grams."""
    tokens, words = tokens_of(texts, "word")
    return shingle_hashes(tokens, words, n, _SEED), shingle_counts(words, n), words


def _read_items(params: DecontaminateParams) -> tuple[list[str], list[str], list[str | None]]:
    """Ids, questions (or texts) and gold answers (None for plain texts) of every item."""
    ids: list[str] = []
    queries: list[str] = []
    answers: list[str | None] = []
    for shard in resolve_inputs(params.benchmarks):
        try:
            tables = list(read_shard(shard, InputSpec(paths=[shard.url], text_field="query")))
            layout = all({"choices", "gold"} <= set(t.column_names) for t in tables)
        except InputError:
            layout = False
        if not layout:
            spec = InputSpec(paths=[shard.url], text_field=params.text_field)
            tables = list(read_shard(shard, spec))
        for table in tables:
            live = table.filter(pc.is_null(table[DROP_REASON]))
            ids += live[ID].to_pylist()
            queries += live[TEXT].to_pylist()
            if not layout:
                answers += [None] * live.num_rows
                continue
            for row, (choices, gold) in enumerate(
                zip(live["choices"].to_pylist(), live["gold"].to_pylist(), strict=True)
            ):
                if (
                    not isinstance(choices, list)
                    or not isinstance(gold, int)
                    or not (0 <= gold < len(choices))
                ):
                    raise InputError(
                        f"{shard.url}: item {live[ID][row]} has gold {gold!r} for "
                        f"{len(choices) if isinstance(choices, list) else 'no'} choices: "
                        "gold must index its choices"
                    )
                answers.append(str(choices[gold]))
    if not ids:
        raise InputError(f"benchmarks {params.benchmarks}: no item with text")
    return ids, queries, answers


@numba.njit(cache=True, nogil=True)
def _shared_ngrams(
    shingles: np.ndarray,
    per_doc: np.ndarray,
    usable: np.ndarray,
    bitmap: np.ndarray,
    hashes: np.ndarray,
    owner: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Per document: distinct shingles found in ``hashes``, and the item of the first one
    in document order (-1 when none). Documents with ``usable`` false are skipped."""
    docs = len(per_doc)
    matches = np.zeros(docs, dtype=np.int64)
    first_item = np.full(docs, -1, dtype=np.int64)
    shift = np.uint64(64 - _BITMAP_BITS)
    found = np.empty(0, dtype=np.uint64)
    start = 0
    for d in range(docs):
        end = start + per_doc[d]
        if usable[d]:
            count = 0
            for k in range(start, end):
                h = shingles[k]
                top = np.int64(h >> shift)
                if (bitmap[top >> 3] >> (top & 7)) & 1 == 0:
                    continue
                at = np.searchsorted(hashes, h)
                if at == len(hashes) or hashes[at] != h:
                    continue
                if count == len(found):
                    grown = np.empty(max(16, 2 * count), dtype=np.uint64)
                    grown[:count] = found[:count]
                    found = grown
                found[count] = h
                count += 1
                if first_item[d] < 0:
                    first_item[d] = owner[at]
            if count:
                matches[d] = len(np.unique(found[:count]))
        start = end
    return matches, first_item


@register
class Decontaminate(MapStage):
    """Drops documents that share word n-grams with benchmark items; adds
    ``decontaminate_matches`` and ``decontaminate_item``."""

    name = "decontaminate"
    help = "drop documents sharing a word n-gram with benchmark items (test-set leakage)"
    Params = DecontaminateParams
    params: DecontaminateParams

    def setup(self) -> None:
        self._index = BenchmarkIndex(self.params)
        if len(self._index) == 0:
            raise InputError(
                f"benchmarks {self.params.benchmarks}: no item has {self.params.ngram} words; "
                "lower `ngram`"
            )
        if self._index.short_items:
            log.info(
                "decontaminate: %d of %d benchmark items are shorter than %d words and "
                "cannot be matched",
                self._index.short_items,
                len(self._index.item_ids),
                self.params.ngram,
            )

    def versions(self) -> dict[str, str]:
        digest = hashlib.sha256()
        for shard in resolve_inputs(self.params.benchmarks):
            with fsspec.open(shard.url, "rb") as handle:  # remote benchmarks too
                digest.update(shard.name.encode() + b"\0" + handle.read())
        index = getattr(self, "_index", None) or BenchmarkIndex(self.params)
        return {
            "benchmarks_sha256": digest.hexdigest(),
            "benchmark_items": str(len(index.item_ids)),
            "benchmark_items_too_short": str(index.short_items),
            "benchmark_ngrams": str(len(index)),
        }

    def process(self, table: pa.Table) -> pa.Table:
        shingles, per_doc, words = word_ngrams(table[TEXT], self.params.ngram)
        index = self._index
        matches, first = _shared_ngrams(
            shingles, per_doc, words >= self.params.ngram, index.bitmap, index.hashes, index.owner
        )
        item = index.item_ids.take(pa.array(np.maximum(first, 0), mask=first < 0))
        table = table.append_column("decontaminate_matches", pa.array(matches))
        table = table.append_column("decontaminate_item", item)
        drop = pa.array(matches >= self.params.min_matches)
        return with_drop_reason(table, drop, self.reason("benchmark_ngram"))
