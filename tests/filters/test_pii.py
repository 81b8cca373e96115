"""pii against datatrove's PIIFormatter: the same text on real and generated documents."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from curation.batch import conform
from curation.filters.pii import PIIFormatter, PIIParams
from tests.conftest import shared_file

# a replacement that no generated or real text holds, to count datatrove's replacements
MARK = "\x00R\x00"


def run_stage(texts: list[str], **params: object) -> pa.Table:
    stage = PIIFormatter(PIIParams(**params))
    stage.setup()
    table = conform(pa.table({"id": [str(i) for i in range(len(texts))], "text": texts}))
    return stage.process(table)


def datatrove_texts(texts: list[str], **params: object) -> list[str]:
    """datatrove's output, with a fresh formatter per document: its replacement cycle
    then restarts at each document, as ours does."""
    from datatrove.pipeline.formatters import PIIFormatter as Reference

    return [Reference(**params).format(text) for text in texts]


def datatrove_counts(texts: list[str], **params: object) -> tuple[list[int], list[int]]:
    emails = datatrove_texts(texts, email_replacement=MARK, remove_ips=False, **params)
    ips = datatrove_texts(emails, ip_replacement=MARK, remove_emails=False, **params)
    email_counts = [t.count(MARK) for t in emails]
    return email_counts, [t.count(MARK) - e for t, e in zip(ips, email_counts, strict=True)]


def real_texts() -> list[str]:
    with gzip.open(shared_file("web/c4-sample-1000.jsonl.gz"), "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    with open(shared_file("web/pile-sample-1000.jsonl"), encoding="utf-8") as f:
        texts += [json.loads(line)["contents"] for line in f]
    return texts


def test_same_text_as_datatrove_on_c4_and_the_pile() -> None:
    texts = real_texts()
    out = run_stage(texts)
    assert out["text"].to_pylist() == datatrove_texts(texts)
    emails, ips = datatrove_counts(texts)
    assert out["pii_emails"].to_pylist() == emails
    assert out["pii_ips"].to_pylist() == ips
    # the samples hold real addresses: 21 C4 and 5 Pile documents with an e-mail address
    assert sum(e > 0 for e in emails) >= 20
    assert out["drop_reason"].null_count == len(texts)


# pieces that build e-mail addresses, IPs (public, private, out of range, too long) and
# the characters around them that decide a match (word boundaries, Unicode letters)
PIECES = [
    "john", "j.doe", "x_y", "a+b", "é", "ß", "😀", "0", "1", "25", "255", "256", "300", "8",
    ".", ".", "@", "@", "[", "]", ":", "-", " ", "\n", ",", "(", "example.com", "mail.org",
    "8.8.8.8", "1.1.1.1", "192.168.0.1", "127.0.0.1", "10.0.0.12", "203.0.113.5",
    "1234.5.6.78", "999.1.1.1", "[8.8.4.4]", "[IPv6:x]", "aé@b.c", "x@[1.2.3.4]", "[1.2.3.ab:]",
    "y@[5.6.7.ab:]",
]  # fmt: skip
texts_with_addresses = st.lists(
    st.lists(st.sampled_from(PIECES), max_size=24).map("".join), min_size=1, max_size=12
)


@settings(max_examples=300, deadline=None)
@given(texts_with_addresses, st.booleans())
def test_same_text_and_counts_as_datatrove(texts: list[str], public_only: bool) -> None:
    out = run_stage(texts, only_remove_public_ips=public_only)
    assert out["text"].to_pylist() == datatrove_texts(texts, only_remove_public_ips=public_only)
    emails, ips = datatrove_counts(texts, only_remove_public_ips=public_only)
    assert out["pii_emails"].to_pylist() == emails
    assert out["pii_ips"].to_pylist() == ips


@settings(max_examples=50, deadline=None)
@given(texts_with_addresses, st.integers(1, 5))
def test_output_does_not_depend_on_batching(texts: list[str], size: int) -> None:
    whole = run_stage(texts)
    parts = [run_stage(texts[i : i + size]) for i in range(0, len(texts), size)]
    assert [t for p in parts for t in p["text"].to_pylist()] == whole["text"].to_pylist()


def test_replacements_cycle_within_each_document() -> None:
    text = "a@x.com b@y.com c@z.com 8.8.8.8 1.1.1.1 10.0.0.1"
    out = run_stage([text, text], email_replacement=["E1", "E2"], ip_replacement="IP")
    expected = "E1 E2 E1 IP IP 10.0.0.1"
    assert out["text"].to_pylist() == [expected, expected]
    assert out["pii_emails"].to_pylist() == [3, 3]
    assert out["pii_ips"].to_pylist() == [2, 2]


def test_private_ips_stay_unless_asked() -> None:
    text = "hosts 192.168.1.10, 127.0.0.1 and 172.16.5.4; dns 9.9.9.9"
    kept = run_stage([text], ip_replacement="IP")
    assert kept["text"].to_pylist() == ["hosts 192.168.1.10, 127.0.0.1 and 172.16.5.4; dns IP"]
    every = run_stage([text], ip_replacement="IP", only_remove_public_ips=False)
    assert every["text"].to_pylist() == ["hosts IP, IP and IP; dns IP"]
    assert every["pii_ips"].to_pylist() == [4]


def test_one_kind_only_adds_only_its_column() -> None:
    out = run_stage(["a@b.com 8.8.8.8"], remove_ips=False)
    assert out["text"].to_pylist() == ["email@example.com 8.8.8.8"]
    assert "pii_ips" not in out.column_names


def test_nothing_to_do_is_an_error() -> None:
    with pytest.raises(ValidationError, match="nothing to replace"):
        PIIParams(remove_emails=False, remove_ips=False)
    with pytest.raises(ValidationError):
        PIIParams(email_replacement=[])
