"""fineweb_quality against datatrove's FineWebQualityFilter on the real samples."""

from __future__ import annotations

import pyarrow as pa
import pytest

from curation.batch import conform
from curation.filters.fineweb import FineWebQuality, FineWebQualityParams, sentence_terminals
from tests.filters.parity import compare, real_documents


@pytest.mark.slow
@pytest.mark.parametrize("sample", ["c4", "pile"])
def test_parity_with_datatrove(sample: str) -> None:
    from datatrove.pipeline.filters import FineWebQualityFilter

    texts = real_documents()[sample]
    parity = compare(FineWebQualityFilter(), "fineweb_quality", texts)
    assert parity.agreement >= 0.99, parity.disagreements()
    options = dict(line_punct_thr=0.3, short_line_length=50, char_duplicates_ratio=0.05)
    other = compare(FineWebQualityFilter(**options), "fineweb_quality", texts, **options)
    assert other.agreement >= 0.99, other.disagreements()


def test_sentence_terminals_are_unicodes() -> None:
    stops = set(sentence_terminals())
    assert {".", "!", "?", "。", "؟", "।"} <= stops
    assert not {",", ";", ":", "a"} & stops


def run(texts: list[str], **params: object) -> list[str | None]:
    table = conform(pa.table({"id": [str(i) for i in range(len(texts))], "text": texts}))
    stage = FineWebQuality(FineWebQualityParams(**params))  # type: ignore[arg-type]
    stage.setup()
    return stage.process(table)["drop_reason"].to_pylist()


def test_rules_name_themselves() -> None:
    line = "A long enough line of ordinary prose that ends properly with a period."
    good = "\n".join(f"{line} Number {i}." for i in range(5))
    assert run([good]) == [None]
    assert run(["", " \n \n"]) == ["fineweb_quality:empty"] * 2
    no_punct = "\n".join(f"{line[:-1]} number {i}" for i in range(5))
    assert run([no_punct]) == ["fineweb_quality:line_punct_ratio"]
    short = good + "\n" + "\n".join(f"Item {i}." for i in range(20))
    assert run([short]) == ["fineweb_quality:short_line_ratio"]
    repeated = good + "\n" + f"{line} Number 0."
    assert run([repeated]) == ["fineweb_quality:char_dup_ratio"]
    listing = "\n".join(f"Pneumonoultramicroscopicsilicovolcanoconiosis{i}." for i in range(10))
    assert run([listing]) == ["fineweb_quality:list_ratio"]
