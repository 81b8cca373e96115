"""datatrove's punctuation (``datatrove.utils.text.PUNCTUATION``), which its text
simplification and its symbol-line remover use."""

from __future__ import annotations

#: ASCII and CJK punctuation, some arrows and quotes, and the C0 and C1 control
#: characters but tab and newline
PUNCTUATION = (
    "!/—”:％１〈&(、━\\【#%「」，】；+^]~“《„';’{|∶´[=-`*．（–？！：$～«〉,><》)?）。…@_.\"}►»"
    + "".join(map(chr, (*range(0, 9), *range(11, 32), *range(127, 160))))
)


def punctuation_set() -> frozenset[str]:
    """datatrove's ``PUNCTUATION_SET``: ``PUNCTUATION`` and its terminal punctuation of
    every script (spaCy's sentence terminals, and 31 of scripts added to Unicode since)."""
    from curation.filters.sentences import TERMINALS

    newer = (
        "\u061d\u061e\u0837\u0839\u083d\u083e\u17d4\u17d5\u17d6\u17d9\u17da\u1b7d\u1b7e"
        "\u2e53\u2e54\U00010f55\U00010f56\U00010f57\U00010f58\U00010f59\U00010f86\U00010f87"
        "\U00010f88\U00010f89\U00011944\U00011946\U00011ef7\U00011ef8\U00011f43\U00011f44"
        "\U00016e98"
    )
    return frozenset(PUNCTUATION) | TERMINALS | frozenset(newer)
