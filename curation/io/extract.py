"""Trafilatura's HTML-to-text extraction, as FineWeb ran it, in a sandbox process.

FineWeb (and datatrove's ``Trafilatura`` extractor) calls ``trafilatura.extract(html,
favor_precision=True, include_comments=False, deduplicate=True)`` in a child process
and gives up on a page after a deadline (one second), so that a page that makes the
parser crawl or crash costs one document, not the worker. ``TrafilaturaSandbox`` does
the same: a child process (``python -m curation.io.extract``) that the WARC reader
hands one page at a time through a pipe, killed and started again when a page takes
longer than ``timeout_s``, kills it, or begins an answer and does not finish it within
``ANSWER_GRACE_S``. Its answers are ``(text, reason)``, where reason is None,
``read:extract_timeout`` or ``read:extract_failed``.

One difference from datatrove, on purpose: Trafilatura's ``deduplicate`` drops text
segments it has seen before *in the process*, in any earlier page, so datatrove's text
for a page depends on which pages its worker extracted before (and since when the child
last restarted). Here the seen segments are forgotten before each page, so a page's
text depends on the page alone (duplicates within it still go), whatever the sharding
and order of the run.

Frames on the pipes: an 8-byte big-endian length, then UTF-8 (lone surrogates passed
through). The child answers a page with one status byte (``0`` text, ``1`` an error
message) and a frame; it says ``ready`` once, after importing Trafilatura.
"""

from __future__ import annotations

import atexit
import os
import select
import struct
import subprocess
import sys
import threading
import time
from typing import BinaryIO

_LENGTH = struct.Struct(">Q")
TEXT, ERROR = 0, 1
STARTUP_S = 120.0  # importing Trafilatura on a loaded machine; not a page's deadline
#: seconds an answer that has begun may take to arrive whole (it is written in one piece,
#: so only a child that hangs part way needs it)
ANSWER_GRACE_S = 5.0


def _frame(text: str) -> bytes:
    data = text.encode("utf-8", "surrogatepass")
    return _LENGTH.pack(len(data)) + data


def _read_exactly(stream: BinaryIO, size: int, deadline: float | None = None) -> bytes:
    """``size`` bytes of ``stream``; ``EOFError`` if it closes first, and with a
    ``deadline`` (monotonic seconds; ``stream`` unbuffered) ``TimeoutError`` if they have
    not all come by then."""
    data = bytearray()
    while len(data) < size:
        if deadline is not None:
            left = max(0.0, deadline - time.monotonic())
            if not select.select([stream], [], [], left)[0]:
                raise TimeoutError(f"{len(data)} of {size} bytes came before the deadline")
        chunk = stream.read(size - len(data))
        if not chunk:
            raise EOFError("the pipe closed")
        data += chunk
    return bytes(data)


def _write_all(stream: BinaryIO, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = stream.write(view)
        view = view[written or 0 :]


def extract_page(html: str) -> str:
    """Trafilatura's text of one page with FineWeb's settings (datatrove's defaults), its
    memory of seen segments cleared first; "" where it finds no main text."""
    import trafilatura
    from trafilatura.deduplication import LRU_TEST

    LRU_TEST.clear()
    text = trafilatura.extract(html, favor_precision=True, include_comments=False, deduplicate=True)
    return text or ""


def serve(incoming: BinaryIO, outgoing: BinaryIO) -> None:
    """The child's loop: a page in, its text (or an error message) out, until EOF."""
    import trafilatura  # noqa: F401  (imported before saying ready)

    outgoing.write(_frame("ready"))
    outgoing.flush()
    while True:
        try:
            (size,) = _LENGTH.unpack(_read_exactly(incoming, _LENGTH.size))
            html = _read_exactly(incoming, size).decode("utf-8", "surrogatepass")
        except EOFError:
            return
        try:
            status, answer = TEXT, extract_page(html)
        except Exception as error:  # a page the parser cannot take: this page only
            status, answer = ERROR, f"{type(error).__name__}: {error}"
        outgoing.write(bytes([status]) + _frame(answer))
        outgoing.flush()


class TrafilaturaSandbox:
    """Extracts pages in a child process with a deadline per page (seconds)."""

    command: tuple[str, ...] = (sys.executable, "-m", "curation.io.extract")  # the child

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0  # child processes started
        self.lock = threading.Lock()  # one page at a time through the pipe

    def extract(self, html: str) -> tuple[str, str | None]:
        """The page's text and None, or "" and the reason it has none:
        ``read:extract_timeout`` (over the deadline; the child is killed) or
        ``read:extract_failed`` (Trafilatura raised, or the child died)."""
        with self.lock:
            return self._extract(html)

    def _extract(self, html: str) -> tuple[str, str | None]:
        process = self._started()
        try:
            assert process.stdin is not None
            _write_all(process.stdin, _frame(html))
            answer = self._answer(process, time.monotonic() + self.timeout_s)
        except TimeoutError:  # an answer begun and not finished: the child hangs
            answer = None
        except (BrokenPipeError, EOFError, OSError):
            self.close()
            return "", "read:extract_failed"
        if answer is None:
            self.close()
            return "", "read:extract_timeout"
        status, text = answer
        return (text, None) if status == TEXT else ("", "read:extract_failed")

    def _started(self) -> subprocess.Popen[bytes]:
        if self.process is not None and self.process.poll() is None:
            return self.process
        self.close()
        self.process = subprocess.Popen(
            list(self.command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,  # unbuffered: select() sees every byte the child wrote
        )
        self.starts += 1
        assert self.process.stdout is not None
        check = "check that `python -c 'import trafilatura'` works in this environment"
        if not self._wait(self.process, time.monotonic() + STARTUP_S):
            self.close()
            raise RuntimeError(
                f"the Trafilatura sandbox did not start within {STARTUP_S:.0f} s; {check}"
            )
        try:
            (size,) = _LENGTH.unpack(_read_exactly(self.process.stdout, _LENGTH.size))
            ready = size == 5 and _read_exactly(self.process.stdout, 5) == b"ready"
        except EOFError:
            ready = False
        if not ready:
            self.close()
            raise RuntimeError(
                f"the Trafilatura sandbox exited or answered something other than ready; {check}"
            )
        return self.process

    @staticmethod
    def _wait(process: subprocess.Popen[bytes], deadline: float) -> bool:
        """Whether the child's answer begins before ``deadline`` (monotonic seconds)."""
        assert process.stdout is not None
        left = deadline - time.monotonic()
        ready, _, _ = select.select([process.stdout], [], [], max(0.0, left))
        return bool(ready)

    def _answer(self, process: subprocess.Popen[bytes], deadline: float) -> tuple[int, str] | None:
        """The child's (status, text), or None when it has not begun to answer by
        ``deadline``; ``TimeoutError`` when it began and the rest has not come
        ``ANSWER_GRACE_S`` later."""
        out = process.stdout
        assert out is not None
        if not self._wait(process, deadline):
            return None
        whole_by = time.monotonic() + ANSWER_GRACE_S
        status = _read_exactly(out, 1, whole_by)[0]
        (size,) = _LENGTH.unpack(_read_exactly(out, _LENGTH.size, whole_by))
        return status, _read_exactly(out, size, whole_by).decode("utf-8", "surrogatepass")

    def close(self) -> None:
        """Stop the child (a later page starts a new one)."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


_SANDBOXES: dict[float, TrafilaturaSandbox] = {}


@atexit.register
def _close_all() -> None:
    for each in _SANDBOXES.values():
        each.close()


def sandbox(timeout_s: float) -> TrafilaturaSandbox:
    """This process's sandbox for ``timeout_s``, started at its first page and kept for
    the shards that follow (its child dies with this process)."""
    if timeout_s not in _SANDBOXES:
        _SANDBOXES[timeout_s] = TrafilaturaSandbox(timeout_s)
    return _SANDBOXES[timeout_s]


if __name__ == "__main__":
    # the answers go to a copy of stdout; anything a library prints goes to stderr
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    serve(sys.stdin.buffer, answers)
