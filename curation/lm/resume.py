"""A stopped ``train_lm`` goes on from where it stopped.

While it trains, ``train_lm`` keeps in ``<output>/_work/`` what decides the training
(``plan.json``: the data's SHA-256, the shape, the tokenizer, the settings) and, every so
many steps or minutes and when Ctrl-C stops it, the whole state of the training
(``state.pt``: the weights, the optimizer's moments, the step, the order of the blocks and
the random generators). Run again with the same data and settings, it loads that state
and goes on; the weights it ends with are those of a training never stopped (tested).
Another plan in the folder is refused, since going on from it would mix two trainings.
A finished training removes ``_work/``.

Ctrl-C (SIGINT, where the caller asks for it): the step under way finishes, the state is
saved and ``TrainingStopped`` is raised; a second Ctrl-C stops at once, and the state
last saved remains.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

WORK, PLAN, STATE = "_work", "plan.json", "state.pt"
#: Seconds of training between two saved states when no step count is given.
STATE_EVERY_S = 300.0


class TrainingStopped(KeyboardInterrupt):
    """Ctrl-C stopped the training after ``step`` of ``steps``; its state is saved."""

    def __init__(self, output: Path, step: int, steps: int) -> None:
        super().__init__(
            f"stopped after step {step:,} of {steps:,}: the training's state is saved in "
            f"{output / WORK}; run the same command to go on from it"
        )
        self.step, self.steps = step, steps


def texts_sha256(texts: Iterable[str]) -> str:
    """The SHA-256 of ``texts`` in order (each text's UTF-8 after its length in bytes)."""
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def prepare(output: Path, plan: dict[str, Any], replace_other: bool = False) -> dict | None:
    """Make ``output`` ready for the training ``plan``; its saved state when a training of
    the same plan stopped there (None: start afresh). A training of another plan that
    stopped before saving a state is removed; one that saved a state is refused
    (``FileExistsError``), or removed with ``replace_other``, as is a folder holding
    anything else refused."""
    work = output / WORK
    if output.exists() and any(output.iterdir()):
        stopped = (work / PLAN).is_file() and not (output / "config.json").exists()
        same = stopped and json.loads((work / PLAN).read_text(encoding="utf-8")) == plan
        if same and (work / STATE).is_file():
            try:
                return torch.load(work / STATE, map_location="cpu", weights_only=True)
            except Exception as err:  # torch raises several kinds for a damaged file
                raise ValueError(
                    f"{work / STATE} cannot be read ({err}): remove {output} to train "
                    "from the start"
                ) from None
        # stopped before its first state (or failed before it: a vocabulary too small,
        # too little text), it has nothing to go on from: this training starts afresh
        if same or (stopped and (replace_other or not (work / STATE).is_file())):
            shutil.rmtree(output)
        elif stopped:
            raise FileExistsError(
                f"{output} holds a stopped training of other data or settings: run that "
                "training's own command to finish it, or choose another --output"
            )
        else:
            raise FileExistsError(f"{output} exists and is not empty: choose another --output")
    work.mkdir(parents=True, exist_ok=True)
    (work / PLAN).write_text(json.dumps(plan, indent=2) + "\n", encoding="utf-8")
    return None


def save_state(output: Path, state: dict[str, Any]) -> None:
    """Write ``state`` as ``_work/state.pt`` whole or not at all (a new file renamed over
    the old one)."""
    final = output / WORK / STATE
    partial = final.with_name(f".{STATE}.partial")
    torch.save(state, partial)
    os.replace(partial, final)


def carried_state(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, generator: torch.Generator
) -> dict[str, Any]:
    """What a training carries from step to step besides its counters: the weights, the
    optimizer's moments and the random generators (the blocks' order, torch's own)."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "generator": generator.get_state(),
        "rng": torch.get_rng_state(),
    }


def restore(
    saved: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
) -> None:
    """Put ``carried_state``'s part of ``saved`` back."""
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    generator.set_state(saved["generator"])
    torch.set_rng_state(saved["rng"])


def finish(output: Path) -> None:
    """The training is saved: its plan and state go."""
    shutil.rmtree(output / WORK, ignore_errors=True)


@contextmanager
def stop_requests(enabled: bool) -> Iterator[threading.Event]:
    """An event set by the first Ctrl-C while the block runs (``enabled`` and on the main
    thread); the second raises ``KeyboardInterrupt`` at once. The handler before is put
    back afterwards."""
    requested = threading.Event()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def handler(signum: int, frame: object) -> None:
        if requested.is_set():
            raise KeyboardInterrupt
        requested.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield requested
    finally:
        signal.signal(signal.SIGINT, previous)
