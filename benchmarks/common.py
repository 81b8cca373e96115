"""What several benchmarks share: the real samples beside the repository."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def documents(count: int) -> list[str]:
    """``count`` texts: the C4 and Pile samples (2,000 real documents), repeated in order."""
    with gzip.open(SHARED / "web" / "c4-sample-1000.jsonl.gz", "rt", encoding="utf-8") as f:
        base = [json.loads(line)["text"] for line in f]
    with open(SHARED / "web" / "pile-sample-1000.jsonl", encoding="utf-8") as f:
        base += [json.loads(line)["contents"] for line in f]
    return [base[i % len(base)] for i in range(count)]
