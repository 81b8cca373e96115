"""Progress of a run: shards done (of how many input files, where those differ), documents
read, docs/s and MB/s.

On a terminal it is a live bar (rich); otherwise (CI, log files) a line every
``interval`` seconds and one at the end, on stderr.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class RunProgress:
    """Counts shards and documents and shows them. Use as a context manager.

    ``files``, the input files the shards read, is shown beside the shards where it
    differs from their count (small files gathered into units, large ones cut into
    pieces), so that "62/62 shards" of a folder of 2,000 files does not read as lost
    files."""

    def __init__(
        self,
        total_shards: int,
        done_shards: int,
        enabled: bool = True,
        interval: float = 10.0,
        label: str = "",
        files: int | None = None,
    ) -> None:
        self.total = total_shards
        self.shards = done_shards
        self.of_files = ""
        if files is not None and files != total_shards:
            self.of_files = f" ({files:,} file{'s' if files != 1 else ''})"
        self.docs = 0
        self.bytes = 0
        self.enabled = enabled
        self.interval = interval
        self.label = f"{label} " if label else ""
        self._start = time.perf_counter()
        self._last_line = self._start
        self._console = Console(stderr=True)
        self._live = enabled and self._console.is_terminal
        self._bar: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> RunProgress:
        if self._live:
            self._bar = Progress(
                TextColumn(f"[bold]{self.label}shards{self.of_files}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rates]}"),
                TimeElapsedColumn(),
                console=self._console,
            )
            self._bar.start()
            self._task = self._bar.add_task(
                "run", total=self.total, completed=self.shards, rates=""
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._refresh()
            self._bar.stop()
        elif self.enabled:
            self._line()

    def batch(self, rows: int, nbytes: int) -> None:
        """Count a batch of ``rows`` documents of ``nbytes`` UTF-8 bytes."""
        self.docs += rows
        self.bytes += nbytes
        self._refresh()

    def shard_done(self) -> None:
        """Count a finished shard."""
        self.shards += 1
        self._refresh()

    def rates(self) -> str:
        """``N docs, D docs/s, M MB/s`` since the start."""
        seconds = max(time.perf_counter() - self._start, 1e-9)
        return (
            f"{self.docs:,} docs  {self.docs / seconds:,.0f} docs/s  "
            f"{self.bytes / 1e6 / seconds:,.2f} MB/s"
        )

    def _refresh(self) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=self.shards, rates=self.rates())
        elif self.enabled and time.perf_counter() - self._last_line >= self.interval:
            self._line()

    def _line(self) -> None:
        self._last_line = time.perf_counter()
        print(
            f"progress: {self.label}{self.shards}/{self.total} shards{self.of_files}  "
            f"{self.rates()}",
            file=sys.stderr,
            flush=True,
        )


class StepProgress:
    """Shows that one step of a run is under way, and how long it took.

    On a terminal, a spinner with ``doing`` while it runs; otherwise (CI, log files) a
    line ``progress: <doing>`` when it starts. Both end, when the step succeeds, with the
    line ``progress: <done> in <seconds> s``. Use as a context manager.
    """

    def __init__(self, doing: str, done: str, enabled: bool = True) -> None:
        self.doing = doing
        self.done = done
        self.enabled = enabled
        self._console = Console(stderr=True)
        self._status: Any = None
        self._start = time.perf_counter()

    def __enter__(self) -> StepProgress:
        self._start = time.perf_counter()
        if not self.enabled:
            return self
        if self._console.is_terminal:
            self._status = self._console.status(self.doing)
            self._status.start()
        else:
            print(f"progress: {self.doing}", file=sys.stderr, flush=True)
        return self

    def note(self, text: str) -> None:
        """Say how far the step has gone (``text``, e.g. ``part 3 of 8``): on a terminal
        after ``doing`` on the spinner's line, otherwise on a line
        ``progress: <doing>: <text>``."""
        if not self.enabled:
            return
        if self._status is not None:
            self._status.update(f"{self.doing}: {text}")
        else:
            print(f"progress: {self.doing}: {text}", file=sys.stderr, flush=True)

    def __exit__(self, kind: object, *exc: object) -> None:
        if self._status is not None:
            self._status.stop()
        if self.enabled and kind is None:
            seconds = time.perf_counter() - self._start
            print(f"progress: {self.done} in {seconds:,.1f} s", file=sys.stderr, flush=True)


class BarrierProgress(StepProgress):
    """Shows that a global stage is deciding over the whole dataset, and how long it took
    (see ``StepProgress``): the stage, and the rows and shards it decides over."""

    def __init__(
        self, stage: str, rows: int, shards: int, enabled: bool = True, label: str = ""
    ) -> None:
        label = f"{label}: " if label else ""
        over = f"{rows:,} rows of {shards:,} shard{'s' if shards != 1 else ''}"
        super().__init__(
            f"{label}{stage} deciding over {over}", f"{label}{stage} decided over {over}", enabled
        )
