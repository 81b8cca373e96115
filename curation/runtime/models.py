"""The ``models:`` section of a recipe: models the run trains before it selects.

```yaml
models:
  models/color/prior:                 # where the model is written (the stage names it)
    train_lm: {input: $input, max_documents: 20000, config: small, steps: 2000}
  models/color/conditional:
    train_lm: {input: [target/*.jsonl], init: models/color/prior, steps: 300, lr: 0.001}
stages:
  - color_filter: {prior: models/color/prior, conditional: models/color/conditional, tau: 8}
```

Kinds: ``train_lm`` (``curate train-lm``: a checkpoint folder) and ``train_preselect``
(``curate train-preselect``: a fastText file; ``references`` maps checkpoint folders to
their target scores, or lists them with ``target``, text on which each is scored as minus
its bits per character). ``input: $input`` reads the run's own inputs. Models are built in
the order listed, so one may start from another (``init``, ``tokenizer``, references).

A model built here is recorded beside it (``<path>.build.json``): its entry and the
version (size, modification stamp) of every file it was trained from, its input and the
models it starts from. A complete model whose record matches is reused, never retrained,
so a second run (or a resumed one) trains nothing; one whose entry or files changed is
built again, saying why, and so are the models built from it after it. A complete model
without a record (made by hand, or by an engine before 2026-11-25) is reused as it is.
While a recipe is read, a stage may name a model that the section will build: its file
checks wait until the model exists.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from curation.lm import Precision

RUN_INPUT = "$input"
#: Model outputs that the recipe being read will build (their checks are deferred).
PENDING: ContextVar[frozenset[str]] = ContextVar("pending_models", default=frozenset())


class ModelBuildError(RuntimeError):
    """A model of the ``models:`` section could not be built; the message names it."""


def pending(path: str) -> bool:
    """True when ``path`` is a model the recipe being read builds and it is not built yet."""
    return str(Path(path)) in PENDING.get()


class _Inputs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    input: list[str] | Literal["$input"] = Field(..., description="text to train on, or $input")
    text_field: str = Field("text", description="field or column holding the text")
    max_documents: int | None = Field(None, ge=1, description="read at most this many")


class TrainLMSpec(_Inputs):
    config: str = Field("small", description="preset: tiny, small, 25m")
    init: str | None = Field(None, description="fine-tune this checkpoint")
    tokenizer: str | None = Field(None, description="reuse this checkpoint's tokenizer")
    steps: int = Field(500, ge=1)
    epochs: float | None = Field(None, gt=0)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(3e-3, gt=0)
    seed: int = 0
    vocab_size: int = Field(8000, ge=300)
    device: str = "auto"
    precision: Precision = "auto"
    compile: bool = False


class TrainPreselectSpec(_Inputs):
    references: dict[str, float] | list[str] = Field(
        ...,
        min_length=2,
        description="checkpoint: score, or checkpoints scored on target",
    )
    target: list[str] | None = Field(
        None, description="text whose minus bits/char under each reference is its score"
    )
    target_text_field: str = Field("text", description="the target's text field")
    seed: int = 0
    fasttext_args: dict[str, int | float | str] = Field(
        default_factory=dict, description="fastText settings over PreSelect's (e.g. epoch: 25)"
    )

    @model_validator(mode="after")
    def _scores_or_target(self) -> TrainPreselectSpec:
        if isinstance(self.references, list) and not self.target:
            raise ValueError(
                "references without scores need target: the text each is scored on "
                "(or give each its score: {checkpoint: score})"
            )
        if isinstance(self.references, dict) and self.target:
            raise ValueError(
                "give references their scores or a target to measure them on, not both"
            )
        return self


KINDS: dict[str, type[_Inputs]] = {"train_lm": TrainLMSpec, "train_preselect": TrainPreselectSpec}


@dataclass(frozen=True)
class ModelSpec:
    """One entry of ``models:``: the output path, how to build it, and its line."""

    path: str
    kind: str
    params: Any
    line: int

    def ready(self) -> bool:
        """The output is complete (a train_lm checkpoint's three files, or the file)."""
        out = Path(self.path)
        if self.kind == "train_lm":
            return all(
                (out / n).is_file() for n in ("config.json", "model.safetensors", "tokenizer.model")
            )
        return out.is_file()


def _texts(spec: ModelSpec, run_inputs: list[str], run_text_field: str) -> list[str]:
    from curation.scoring.classifier import read_texts

    params = spec.params
    own = params.input == RUN_INPUT
    paths, field = (run_inputs, run_text_field) if own else (params.input, params.text_field)
    if not paths:
        raise ValueError(f"model {spec.path}: input {RUN_INPUT} but the run has no --input")
    texts = []
    for text in read_texts(list(paths), field):
        if text and text.strip():
            texts.append(text)
            if params.max_documents and len(texts) >= params.max_documents:
                break
    if not texts:
        raise ValueError(f"model {spec.path}: its input {paths} holds no text to train on")
    return texts


def build_models(
    models: tuple[ModelSpec, ...],
    run_inputs: list[str],
    run_text_field: str,
    log: Callable[[str], None] = print,
) -> list[str]:
    """Build every model of the section that is not complete yet, in order; returns the
    paths built (reused ones are logged, not rebuilt). A failure is a ``ModelBuildError``
    that names the model."""
    from curation.io.writers import write_atomic_bytes

    built = []
    for spec in models:
        now = build_record(spec, run_inputs, run_text_field)
        record = Path(f"{spec.path}.build.json")
        build, action = _action(spec, now)
        log(f"models: {action}")
        if not build:
            continue
        record.unlink(missing_ok=True)
        try:
            _build(spec, run_inputs, run_text_field, log)
        except (ValueError, OSError) as err:  # the engine's InputError is a ValueError
            text = str(err)
            prefix = f"model {spec.path}"
            raise ModelBuildError(
                text if text.startswith(prefix) else f"{prefix}: {text}"
            ) from None
        write_atomic_bytes(record, json.dumps(now, indent=2).encode("utf-8"))
        built.append(spec.path)
    return built


def model_actions(
    models: tuple[ModelSpec, ...], run_inputs: list[str], run_text_field: str
) -> list[str]:
    """What ``build_models`` would do with each model, in order, without doing it:
    ``reusing PATH``, ``building PATH (KIND)`` or ``rebuilding PATH: why``."""
    return [_action(spec, build_record(spec, run_inputs, run_text_field))[1] for spec in models]


def _action(spec: ModelSpec, now: dict[str, Any]) -> tuple[bool, str]:
    """Whether ``spec``'s model is to be built (``now``: how it would be), and the line
    that says so."""
    if not spec.ready():
        return True, f"building {spec.path} ({spec.kind})"
    why = _changed(Path(f"{spec.path}.build.json"), now)
    if why is None:
        return False, f"reusing {spec.path}"
    return True, f"rebuilding {spec.path}: {why}"


def build_record(spec: ModelSpec, run_inputs: list[str], run_text_field: str) -> dict[str, Any]:
    """How ``spec`` builds its model now: its kind and entry, the input it reads (the run's
    own for ``$input``), and the version of every file of that input and of the models it
    starts from (``file_versions``)."""
    from curation.io.inputs import file_versions

    p = spec.params
    own = p.input == RUN_INPUT
    sources = [str(i) for i in (run_inputs if own else p.input)]
    starts = [getattr(p, "init", None), getattr(p, "tokenizer", None)]
    starts += list(getattr(p, "references", None) or {})
    starts += list(getattr(p, "target", None) or [])  # what the references are scored on
    reads = file_versions([*sources, *(s for s in starts if s)])
    return {
        "kind": spec.kind,
        "entry": p.model_dump(mode="json"),
        "input": sources,
        "text_field": run_text_field if own else p.text_field,
        "reads": reads,
    }


def _with_defaults(kind: str, entry: dict[str, Any]) -> dict[str, Any]:
    """A recorded ``entry`` with the default of every setting added to its kind since it
    was recorded (``precision``, ``compile``): a model built before a setting existed was
    built as its default says, so it is not built again for that."""
    spec = KINDS.get(kind)
    if spec is None:
        return entry
    added = {
        name: field.get_default(call_default_factory=True)
        for name, field in spec.model_fields.items()
        if name not in entry and not field.is_required()
    }
    return {**added, **entry}


def _changed(record: Path, now: dict[str, Any]) -> str | None:
    """Why a complete model must be built again: its ``record`` differs from
    how it would be built ``now``; None to reuse it (no record: made elsewhere)."""
    from curation.io.inputs import file_change

    try:
        then = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    old, new = _with_defaults(now["kind"], then.get("entry") or {}), now["entry"]
    if then.get("kind") != now["kind"] or old != new:
        keys = [k for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]
        said = ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in keys[:3])
        return f"its entry in the recipe changed since it was built ({said or now['kind']})"
    if then.get("input") != now["input"] or then.get("text_field") != now["text_field"]:
        return f"its input changed since it was built ({then.get('input')} -> {now['input']})"
    change = file_change(then.get("reads") or {}, now["reads"])
    return None if change is None else f"a file it is trained from, {change} since it was built"


def _build(
    spec: ModelSpec, run_inputs: list[str], run_text_field: str, log: Callable[[str], None]
) -> None:
    texts = _texts(spec, run_inputs, run_text_field)
    p = spec.params
    if spec.kind == "train_lm":
        import shutil

        from curation.lm.resume import WORK
        from curation.lm.train import TrainConfig, train_lm

        out = Path(spec.path)
        # a model built before goes; a build stopped goes on from its state when it trains
        # the same (train_lm replaces a stopped training of other data or settings)
        if out.exists() and ((out / "config.json").exists() or not (out / WORK).is_dir()):
            shutil.rmtree(out)
        train = TrainConfig(
            steps=p.steps,
            epochs=p.epochs,
            batch_size=p.batch_size,
            lr=p.lr,
            seed=p.seed,
            precision=p.precision,
            compile=p.compile,
        )
        sources = p.input if p.input != RUN_INPUT else run_inputs
        train_lm(
            texts,
            out,
            preset=p.config,
            init=p.init,
            tokenizer_from=p.tokenizer,
            train=train,
            vocab_size=p.vocab_size,
            device=p.device,
            log=log,
            sources=[str(i) for i in sources],
            stop_on_ctrl_c=True,
            replace_other=True,
        )
    else:
        from curation.scoring.classifier import read_texts
        from curation.selectors.preselect import target_scores, train_preselect

        Path(spec.path).parent.mkdir(parents=True, exist_ok=True)
        references = list(p.references)
        if p.target:
            target = read_texts(list(p.target), p.target_text_field)
            scores = target_scores(references, target, log=log)
        else:
            scores = list(p.references.values())
        train_preselect(
            texts,
            references,
            scores,
            spec.path,
            seed=p.seed,
            fasttext_args=dict(p.fasttext_args),
            log=log,
        )
