"""Vectorised text statistics shared by the heuristic filters.

Everything works on whole Arrow columns: documents are split into whitespace tokens or
lines once, per-token or per-line facts are computed with pyarrow.compute kernels over
the flattened pieces, and they are summed back per document with ``numpy.bincount``.
No Python loop runs per document or per word.

Words follow datatrove's English word tokenizer (spaCy's rules) closely enough for the
filters' decisions: punctuation at either end of a whitespace token is split off as
symbol tokens (``...`` as one), English contractions (``do|n't``, ``it|'s``) give two
words, and hyphenated words of letters (``well-known``) give two words and a hyphen.
Where spaCy differs (rare prefixes and infixes) the counts differ by a token or two;
``benchmarks/RESULTS.md`` lists the decisions that change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from curation.filters.tokenize import PERIOD_SPECIALS

# datatrove's PUNCTUATION (ASCII and CJK punctuation and C0/C1 control characters
# other than tab and newline), against which it decides whether a token is a symbol.
PUNCTUATION = (
    "!/—”:％１〈&(、━\\【#%「」，】；+^]~“《„';’{|∶´[=-`*．（–？！：$～«〉,><》)?）。…@_.\"}►»"
    + "".join(map(chr, (*range(0, 9), 11, 12, *range(13, 32), *range(127, 160))))
)
# Of those, the characters spaCy splits off the ends of a token ("\\[@CR1]" stays whole).
SPLIT_PUNCTUATION = "".join(c for c in PUNCTUATION if c not in "\\@=~_^|&`")
_PREFIXES = SPLIT_PUNCTUATION.replace("-", "").replace("/", "")
_SUFFIX = r"(n['’]t|['’](s|re|ve|ll|d|m))$"
_CONTRACTION = r"(?i)." + _SUFFIX
# infixes spaCy splits on: a hyphen before a letter, and ':<>=/' between a letter or digit
# and a letter (digit-hyphen-digit is counted apart)
_INFIX = r"([\pL\pN](-|[:<>=/])\pL|\pL[–—]\pL|\p{Ll}\.\p{Lu})"
_TWO_WORDS = ("cannot", "gonna", "gotta", "wanna")
_URL_LIKE = r"(?i)^(https?:|www\.)"
_NUMBER_UNIT = (
    r"(?i)^\pN+([.,]\pN+)?(mm|cm|km|kg|mg|ml|gb|mb|kb|tb|ft|lbs?|oz|hz|khz|mhz|ghz|m|g|l|k)$"
)
# Words that keep their final period in the word statistics: spaCy's period exceptions
# (the tokenizer's list), runs of capitals and periods (U.S.), and "etc." (the tokenizer
# splits "etc." off; the statistics count it as one word).
ABBREVIATIONS = (*sorted(PERIOD_SPECIALS), "etc.")
_ABBREVIATION = r"^(\p{Lu}\.)+$"
LINE_BREAKS = r"\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\x{2028}\x{2029}]"


@dataclass(frozen=True)
class Words:
    """Per-document word statistics (numpy arrays, one entry per document).

    ``tokens``: all tokens, symbols included (datatrove's ``len(words)``);
    ``words``: tokens with a character that is not punctuation; ``word_chars``: their
    total length in characters; ``alpha_words``: tokens with a letter. For word-list
    rules: ``flat`` holds every whitespace token and ``parents`` its document; the
    tokens at ``special`` (those not made only of letters) have ``special_core``, the
    word left once punctuation and a contraction suffix are removed.
    """

    tokens: np.ndarray
    words: np.ndarray
    word_chars: np.ndarray
    alpha_words: np.ndarray
    flat: pa.Array
    parents: np.ndarray
    special: np.ndarray
    special_core: pa.Array


def _per_doc(parents: np.ndarray, values: np.ndarray | None, n: int) -> np.ndarray:
    return np.bincount(parents, weights=values, minlength=n)


def to_numpy(array: pa.Array | pa.ChunkedArray, dtype: type = np.int64) -> np.ndarray:
    """An Arrow column as a numpy array of ``dtype``, nulls as 0 (or False)."""
    fill = False if pa.types.is_boolean(array.type) else 0
    return np.asarray(pc.fill_null(array, fill).to_numpy(zero_copy_only=False), dtype=dtype)


def replace_rows(
    text: pa.Array | pa.ChunkedArray, rows: np.ndarray | list[int], values: list[str] | pa.Array
) -> pa.Array:
    """``text`` as one array with the strings at ``rows`` (ascending) replaced by
    ``values``, in order."""
    array = text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text
    mask = np.zeros(len(array), bool)
    mask[rows] = True
    new = pa.array(values, array.type) if isinstance(values, list) else values.cast(array.type)
    return pc.replace_with_mask(array, pa.array(mask), new)


def split_words(text: pa.ChunkedArray | pa.Array) -> Words:
    """Word statistics of every document of ``text``.

    Most tokens are made only of letters: each is one word of its own length. Only the
    others go through the punctuation, contraction and infix rules.
    """
    n = len(text)
    pieces = pc.utf8_split_whitespace(text)
    if isinstance(pieces, pa.ChunkedArray):
        pieces = pieces.combine_chunks()
    flat = pieces.flatten()
    parents = to_numpy(pc.list_parent_indices(pieces))
    length = to_numpy(pc.utf8_length(flat))
    special = np.flatnonzero(~to_numpy(pc.utf8_is_alpha(flat), bool))
    tokens = np.ones(len(flat), dtype=np.int64)
    words = np.ones(len(flat), dtype=np.int64)
    chars = length.copy()
    alpha = np.ones(len(flat), dtype=np.int64)
    two_words = to_numpy(pc.is_in(pc.utf8_lower(flat), pa.array(_TWO_WORDS)), bool)
    words += two_words
    tokens += two_words
    alpha += two_words
    stats, special_core = _special_tokens(flat.take(pa.array(special)))
    for target, values in zip((tokens, words, chars, alpha), stats, strict=True):
        target[special] = values
    return Words(
        tokens=_per_doc(parents, tokens, n),
        words=_per_doc(parents, words, n),
        word_chars=_per_doc(parents, chars, n),
        alpha_words=_per_doc(parents, alpha, n),
        flat=flat,
        parents=parents,
        special=special,
        special_core=special_core,
    )


def _special_tokens(flat: pa.Array) -> tuple[tuple[np.ndarray, ...], pa.Array]:
    """(tokens, words, word characters, alpha words) per token, and each token's word."""
    core = pc.utf8_trim(flat, PUNCTUATION)
    core_length = to_numpy(pc.utf8_length(core))
    is_word = core_length > 0
    # punctuation split off either end, one token a character, a run of periods as one
    runs = pc.replace_substring_regex(flat, r"(\.|-){2,}", "-")
    run_length = to_numpy(pc.utf8_length(runs))
    lead = run_length - to_numpy(pc.utf8_length(pc.utf8_ltrim(runs, _PREFIXES)))
    trail = run_length - to_numpy(pc.utf8_length(pc.utf8_rtrim(runs, SPLIT_PUNCTUATION)))
    split_off = lead + trail
    # "G.", "U.S.", "Tenn.", "e.g.," keep their final period; ".7" keeps its leading one
    bare = pc.utf8_rtrim(pc.utf8_ltrim(flat, PUNCTUATION), ",;:)]\"'")
    kept_period = to_numpy(pc.match_substring_regex(bare, _ABBREVIATION), bool)
    kept_period |= to_numpy(pc.is_in(bare, pa.array(ABBREVIATIONS)), bool)
    kept_period = kept_period.astype(np.int64)
    kept_period += to_numpy(pc.match_substring_regex(flat, r"^\.\pN"), bool)
    split_off -= kept_period
    url = to_numpy(pc.match_substring_regex(core, _URL_LIKE), bool)
    contraction = is_word & to_numpy(pc.match_substring_regex(core, _CONTRACTION), bool)
    contraction |= to_numpy(pc.is_in(pc.utf8_lower(core), pa.array(_TWO_WORDS)), bool)
    infixes = to_numpy(pc.count_substring_regex(core, _INFIX)) + to_numpy(
        pc.count_substring_regex(core, r"\pN-\pN")
    )
    infixes = np.where(url, 0, infixes)
    unit = to_numpy(pc.match_substring_regex(core, _NUMBER_UNIT), bool)
    has_letter = to_numpy(pc.match_substring_regex(core, r"\pL"), bool)
    word_count = np.where(is_word, 1 + contraction + infixes + unit, 0)
    symbols = np.maximum(run_length, 1)  # "==" is two tokens, "--" and "..." one
    tokens = np.where(is_word, np.where(url, 1, word_count + split_off + infixes), symbols)
    # the parts around infixes that hold a letter ("2-run": one of two)
    lettered_parts = to_numpy(pc.count_substring_regex(core, r"[^-–—.:<>=/]*\pL[^-–—.:<>=/]*"))
    alpha = np.where(infixes > 0, lettered_parts, np.where(has_letter, word_count - unit, 0))
    chars = np.where(is_word, core_length - infixes, 0)
    stripped = pc.replace_substring_regex(core, "(?i)" + _SUFFIX, "")
    return (tokens, word_count, chars, alpha), stripped


def distinct_hits(words: Words, vocabulary: list[str], n: int) -> np.ndarray:
    """How many distinct entries of ``vocabulary`` each document contains as a word."""
    wanted = pa.array(vocabulary)
    index = to_numpy(pc.fill_null(pc.index_in(words.flat, wanted), -1))
    index[words.special] = to_numpy(pc.fill_null(pc.index_in(words.special_core, wanted), -1))
    hit = index >= 0
    pairs = np.unique(words.parents[hit] * len(vocabulary) + index[hit])
    return np.bincount(pairs // len(vocabulary), minlength=n)


@dataclass(frozen=True)
class Lines:
    """Lines as Python's ``str.splitlines`` makes them: no trailing empty line.

    ``flat``: every line of every document; ``parents``: its document; ``count``: lines
    per document (numpy).
    """

    flat: pa.Array
    parents: np.ndarray
    count: np.ndarray


def split_lines(text: pa.ChunkedArray | pa.Array) -> Lines:
    """Split each document into lines."""
    n = len(text)
    # a final line break ends the last line rather than starting an empty one
    trimmed = pc.replace_substring_regex(text, f"({LINE_BREAKS})$", "")
    pieces = pc.split_pattern_regex(trimmed, LINE_BREAKS)
    if isinstance(pieces, pa.ChunkedArray):
        pieces = pieces.combine_chunks()
    empty = to_numpy(pc.equal(pc.binary_length(text), 0), bool)
    # an empty document has no line at all
    pieces = pc.if_else(pa.array(empty), pa.scalar([], pieces.type), pieces)
    parents = to_numpy(pc.list_parent_indices(pieces))
    return Lines(pieces.flatten(), parents, np.bincount(parents, minlength=n))


def per_doc_sum(parents: np.ndarray, mask: pa.Array | np.ndarray, n: int) -> np.ndarray:
    """Count of true ``mask`` entries per document."""
    values = mask if isinstance(mask, np.ndarray) else to_numpy(mask, bool)
    return np.bincount(parents[values], minlength=n)


def split_pieces(values: pa.ChunkedArray | pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Flatten a list column: every piece, and the index of the row it came from."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    parents = np.asarray(pc.list_parent_indices(values).to_numpy(zero_copy_only=False))
    return values.flatten(), parents.astype(np.int64)


def repeated_pieces(flat: pa.Array, parents: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per document: how many pieces repeat an earlier piece of it, and their characters."""
    if len(flat) == 0:
        return np.zeros(n), np.zeros(n)
    frame = pl.DataFrame({"doc": parents, "piece": pl.from_arrow(flat)})
    repeat = ~frame.select(pl.struct("doc", "piece").is_first_distinct()).to_series().to_numpy()
    length = np.asarray(pc.utf8_length(flat).to_numpy(zero_copy_only=False), dtype=np.float64)
    return (
        np.bincount(parents[repeat], minlength=n).astype(np.float64),
        np.bincount(parents, weights=length * repeat, minlength=n),
    )
