"""Run a datatrove filter and one of our stages on the same real documents."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass

import pyarrow as pa

from curation.batch import conform
from curation.stage import registry
from tests.conftest import shared_file


def real_documents() -> dict[str, list[str]]:
    """The C4 and Pile samples' texts, by sample name (skips when the data is absent)."""
    with gzip.open(shared_file("web/c4-sample-1000.jsonl.gz"), "rt", encoding="utf-8") as f:
        c4 = [json.loads(line)["text"] for line in f]
    with open(shared_file("web/pile-sample-1000.jsonl"), encoding="utf-8") as f:
        pile = [json.loads(line)["contents"] for line in f]
    return {"c4": c4, "pile": pile}


@dataclass
class Parity:
    """Keep/drop decisions of both implementations on the same documents."""

    theirs: list[bool]
    ours: list[bool]
    reasons: list[str | None]
    their_texts: list[str]
    our_texts: list[str]

    @property
    def agreement(self) -> float:
        same = sum(a == b for a, b in zip(self.theirs, self.ours, strict=True))
        return same / len(self.ours)

    def text_mismatches(self) -> list[int]:
        """Documents both keep whose text (after line removals) differs."""
        return [
            i
            for i, (a, b) in enumerate(zip(self.theirs, self.ours, strict=True))
            if a and b and self.their_texts[i] != self.our_texts[i]
        ]

    def disagreements(self) -> list[int]:
        return [i for i, (a, b) in enumerate(zip(self.theirs, self.ours, strict=True)) if a != b]


def compare(reference: object, stage_name: str, texts: list[str], **params: object) -> Parity:
    """Decisions of datatrove filter ``reference`` and our ``stage_name`` on ``texts``."""
    from datatrove.data import Document

    theirs, their_texts = [], []
    for i, text in enumerate(texts):
        doc = Document(text=text, id=str(i))
        result = reference.filter(doc)  # type: ignore[attr-defined]
        theirs.append(result is True or (isinstance(result, tuple) and bool(result[0])))
        their_texts.append(doc.text)
    cls = registry()[stage_name]
    stage = cls(cls.Params(**params))
    stage.setup()
    table = conform(pa.table({"id": [str(i) for i in range(len(texts))], "text": texts}))
    out = stage.process(table)
    reasons = out["drop_reason"].to_pylist()
    return Parity(
        theirs, [r is None for r in reasons], reasons, their_texts, out["text"].to_pylist()
    )
