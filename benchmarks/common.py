"""What several benchmarks share: the real samples beside the repository."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def documents(count: int) -> list[str]:
    """``count`` texts: the C4 and Pile samples (2,000 real documents), repeated in order."""
    with gzip.open(SHARED / "web" / "c4-sample-1000.jsonl.gz", "rt", encoding="utf-8") as f:
        base = [json.loads(line)["text"] for line in f]
    with open(SHARED / "web" / "pile-sample-1000.jsonl", encoding="utf-8") as f:
        base += [json.loads(line)["contents"] for line in f]
    return [base[i % len(base)] for i in range(count)]


def best_of(repeats: int, *runs: object) -> list[float]:
    """Best time of each run over ``repeats`` rounds; every round runs each once, in turn,
    so a burst of noise on the machine hits all of them alike."""
    best = [float("inf")] * len(runs)
    for _ in range(repeats):
        for index, run in enumerate(runs):
            started = time.perf_counter()
            run()  # type: ignore[operator]
            best[index] = min(best[index], time.perf_counter() - started)
    return best
