"""Recipes: a YAML file that lists stages with their parameters, validated before any data
is read.

```yaml
input: {format: jsonl, text_field: text, id_field: id}   # optional defaults
stages:
  - length_filter: {min_chars: 200}
  - sample: {rate: 0.5, seed: 0}
output: {shard_rows: 100000}
```

A stage entry may hold ``where: SQL`` beside the stage's name: the stage then sees only
the rows that condition is true for (``StageSpec.where``; map stages only). A
``models:`` section names models the run trains before its stages run
(``curation.runtime.models``). Every error names the recipe file and line and lists what
is valid there.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from curation.runtime.models import KINDS as MODEL_KINDS
from curation.runtime.models import PENDING, ModelSpec
from curation.stage import (
    GlobalStage,
    MapStage,
    StageParams,
    describe_params,
    stage_class,
    stage_names,
)

Location = tuple[Any, ...]


class RecipeError(ValueError):
    """A recipe is invalid. The message names the file and line."""


class InputSpec(BaseModel):
    """How input shards are found and read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    paths: list[str] = Field(
        default_factory=list, description="files, directories, globs or fsspec URLs"
    )
    format: Literal["auto", "jsonl", "parquet", "warc", "text"] = Field(
        "auto", description="auto: by file extension"
    )
    text_field: str = Field("text", description="field or column holding the document text")
    id_field: str = Field(
        "id", description="field or column holding the document id; made when absent"
    )
    batch_rows: int = Field(10_000, gt=0, description="rows per batch handed to the stages")
    unit_bytes: int = Field(
        64 * 2**20,
        ge=0,
        description="input files smaller than this (and than 1/64 of the input) are read "
        "together, in name order, as units of work of about this size, and Parquet and local "
        "uncompressed JSONL files of twice this size are cut into pieces of about it (whole "
        "row groups, whole batches of lines), read by several workers; 0: a unit per file",
    )
    max_doc_chars: int | None = Field(
        10_000_000, gt=0, description="longer documents are set aside as read:too_long"
    )
    on_corrupt_file: Literal["error", "skip"] = Field(
        "error", description="a file that cannot be read: stop the run, or record it and go on"
    )
    warc_main_content: bool = Field(
        True, description="WARC: keep only the main content of each page (resiliparse)"
    )
    warc_extractor: Literal["resiliparse", "trafilatura"] = Field(
        "resiliparse",
        description="WARC: HTML to text with Resiliparse (fast, in the reader) or "
        "Trafilatura (FineWeb's, datatrove's settings, in a sandbox process)",
    )
    warc_extract_timeout_s: float = Field(
        1.0,
        gt=0,
        description="WARC, trafilatura: a page that takes longer is set aside as "
        "read:extract_timeout",
    )


class OutputSpec(BaseModel):
    """How kept and dropped rows are written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["parquet", "jsonl"] = "parquet"
    shard_rows: int = Field(100_000, gt=0, description="most rows in one output file")
    row_group_bytes: int = Field(
        64 * 2**20,
        gt=0,
        description="parquet: Arrow bytes gathered into one row group (a strict filter's "
        "few kept rows per batch are written together, not as many tiny row groups)",
    )
    compression: Literal["zstd", "snappy", "gzip", "none"] = Field(
        "zstd", description="parquet: zstd, snappy, gzip or none; jsonl: zstd, gzip or none"
    )
    min_file_bytes: int = Field(
        32 * 2**20,
        ge=0,
        description="output files smaller than this (the rows of small input files) are "
        "merged in order into files of about this size, at most shard_rows rows; 0: one "
        "file per input file's part",
    )
    dropped_text: bool = Field(
        True,
        description="false: dropped/ holds each dropped row's columns but its text (its id, "
        "drop_reason, url, scores): a fraction of the disk and writing where most rows go",
    )
    partition_by: str | list[str] | None = Field(
        None,
        description="kept rows written under kept/<value>/, a folder per value of this "
        "column (strings, integers, booleans or dates: a language, a source; a struct's "
        "field with dots: metadata.pile_set_name), or of each of a list of columns, "
        "nested (kept/<lang>/<source>/); null: one folder",
    )
    max_partitions: int = Field(
        1000, gt=0, description="partition_by: most folders a run may write (and a shard)"
    )
    work_compression: Literal["zstd", "lz4", "snappy", "none"] = Field(
        "zstd",
        description="Parquet compression of the parts a pass hands to the next (in _work/, "
        "deleted at the end): none writes and reads them fastest, at about twice the disk",
    )

    @property
    def partition_columns(self) -> list[str]:
        """The columns of ``partition_by``, outermost folder first (none: one folder)."""
        if self.partition_by is None:
            return []
        return [self.partition_by] if isinstance(self.partition_by, str) else self.partition_by

    @model_validator(mode="after")
    def _partition_columns(self) -> OutputSpec:
        columns = self.partition_columns
        if self.partition_by is not None and (not columns or not all(columns)):
            raise ValueError("partition_by: give a column name or a list of them, or leave it out")
        for column in columns:
            if column in ("id", "text", "drop_reason"):
                raise ValueError(
                    f"partition_by: {column!r} would give every kept row a folder of its own "
                    "(or none): name a column of few values, such as lang"
                )
        if len(set(columns)) != len(columns):
            raise ValueError(f"partition_by: {columns} names a column twice")
        return self


@dataclass(frozen=True)
class StageSpec:
    """One validated stage entry of a recipe."""

    name: str
    params: StageParams
    line: int
    #: a SQL condition: the stage sees only the rows it is true for (``where:``)
    where: str | None = None

    def build(self) -> MapStage:
        """A fresh stage object (its ``setup`` has not run), with its ``where``."""
        stage = stage_class(self.name)(self.params)
        if self.where is not None:
            from curation.filters.sql import RowFilter

            stage.where = RowFilter.parse(self.where)
        return stage

    def resolved(self) -> dict[str, Any]:
        """The entry with every default filled in, as plain data; ``where`` where given."""
        entry: dict[str, Any] = {self.name: self.params.model_dump()}
        return entry if self.where is None else {**entry, WHERE: self.where}


#: The key of a stage entry beside the stage's name that limits it to some rows.
WHERE = "where"


@dataclass(frozen=True)
class Recipe:
    """A validated recipe."""

    input: InputSpec
    stages: tuple[StageSpec, ...]
    output: OutputSpec
    source: str = "<recipe>"
    extra: dict[str, Any] = field(default_factory=dict)
    models: tuple[ModelSpec, ...] = ()

    def with_input(self, **overrides: Any) -> Recipe:
        """A copy whose input options are overridden by the non-None values given."""
        values = {k: v for k, v in overrides.items() if v is not None}
        if not values:
            return self
        merged = {**self.input.model_dump(), **values}
        try:
            spec = InputSpec.model_validate(merged)
        except ValidationError as err:
            raise RecipeError(f"command-line input options: {_first_error(err)}") from None
        return Recipe(spec, self.stages, self.output, self.source, self.extra, self.models)

    def resolved(self) -> dict[str, Any]:
        """The recipe with every default filled in, as plain data (for ``recipe.yaml``)."""
        plain = {
            "input": self.input.model_dump(),
            "stages": [s.resolved() for s in self.stages],
            "output": self.output.model_dump(),
        }
        if self.models:
            plain["models"] = {m.path: {m.kind: m.params.model_dump()} for m in self.models}
        return plain


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe file. Raises ``RecipeError`` naming file and line."""
    path = Path(path)
    if not path.exists():
        raise RecipeError(f"recipe {path} does not exist (see pipelines/ for ready recipes)")
    return parse_recipe(path.read_text(encoding="utf-8"), source=str(path))


def parse_recipe(text: str, source: str = "<recipe>") -> Recipe:
    """Validate recipe YAML text. ``source`` names it in error messages."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise RecipeError(f"{source}{where}: not valid YAML: {problem}") from None
    lines: dict[Location, int] = {}
    data = _plain(node, (), lines) if node is not None else {}

    def fail(loc: Location, message: str) -> RecipeError:
        line = _line_of(lines, loc)
        return RecipeError(f"{source} line {line}: {message}" if line else f"{source}: {message}")

    if not isinstance(data, dict):
        raise fail((), "a recipe is a mapping with keys input, models, stages, output")
    allowed = {"input", "stages", "output", "models"}
    for key in data:
        if key not in allowed:
            raise fail((key,), f"unknown key {key!r}; valid keys: {', '.join(sorted(allowed))}")

    input_spec = _validate_section(InputSpec, data.get("input"), ("input",), fail)
    output_spec = _validate_section(OutputSpec, data.get("output"), ("output",), fail)

    raw_stages = data.get("stages") or []
    if not isinstance(raw_stages, list):
        raise fail(("stages",), "'stages' is a list of one-key mappings: '- sample: {rate: 0.5}'")
    models = _parse_models(data.get("models"), lines, fail)
    # stages may name models the section has yet to build: their file checks wait
    waiting = PENDING.set(frozenset(str(Path(m.path)) for m in models if not m.ready()))
    try:
        stages = tuple(_parse_stage(entry, i, lines, fail) for i, entry in enumerate(raw_stages))
    finally:
        PENDING.reset(waiting)
    return Recipe(input_spec, stages, output_spec, source, models=models)


def _parse_models(raw: Any, lines: dict[Location, int], fail: Any) -> tuple[ModelSpec, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise fail(
            ("models",),
            "'models' maps an output path to how to build it: "
            "'models/prior: {train_lm: {input: $input}}'",
        )
    specs = []
    for path, entry in raw.items():
        loc: Location = ("models", path)
        if not isinstance(entry, dict) or len(entry) != 1:
            raise fail(loc, f"model {path}: one build step, e.g. 'train_lm: {{input: $input}}'")
        ((kind, params),) = entry.items()
        if kind not in MODEL_KINDS:
            raise fail(
                (*loc, kind),
                f"model {path}: unknown kind {kind!r}; valid kinds: {', '.join(MODEL_KINDS)}",
            )
        try:
            validated = MODEL_KINDS[kind].model_validate(params or {})
        except ValidationError as err:
            problem = err.errors()[0]
            where = (*loc, kind, *problem["loc"][:1])
            message = _describe_problem(problem, MODEL_KINDS[kind])
            raise fail(where, f"model {path}: {message}") from None
        specs.append(ModelSpec(str(path), kind, validated, _line_of(lines, loc) or 0))
    return tuple(specs)


def _parse_stage(entry: Any, index: int, lines: dict[Location, int], fail: Any) -> StageSpec:
    loc: Location = ("stages", index)
    known = stage_names()
    if isinstance(entry, str):
        entry = {entry: None}
    where = None
    if isinstance(entry, dict) and len(entry) == 2 and WHERE in entry:
        entry = dict(entry)
        where = _parse_where(entry.pop(WHERE), (*loc, WHERE), next(iter(entry)), fail)
    if not isinstance(entry, dict) or len(entry) != 1:
        extra = [k for k in entry if k not in known] if isinstance(entry, dict) else []
        beside = f" (unknown key {extra[0]!r})" if len(extra) == 1 and len(entry) == 2 else ""
        raise fail(
            loc,
            "each stage is a one-key mapping: '- STAGE_NAME: {param: value}', with "
            f"'where: SQL' beside it to run it on the rows that condition holds for{beside}",
        )
    ((name, params),) = entry.items()
    if name not in known:
        hint = difflib.get_close_matches(str(name), known, n=1)
        did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise fail(
            (*loc, name),
            f"unknown stage {name!r}{did_you_mean}; valid stages: {', '.join(known)}",
        )
    cls = stage_class(name)
    if where is not None and issubclass(cls, GlobalStage):
        raise fail(
            (*loc, WHERE),
            f"stage {name} decides over the whole dataset, so 'where' cannot limit it: it "
            "limits filters, scorers and rewrites (map stages); run the rows apart with "
            "--where on a run's kept/ folder, or partition the run (output: {partition_by})",
        )
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise fail((*loc, name), f"the parameters of {name} are a mapping, got {params!r}")
    try:
        validated = cls.Params.model_validate(params)
    except ValidationError as err:
        problem = err.errors()[0]
        where_ = (*loc, name, *problem["loc"][:1])
        raise fail(where_, f"stage {name}: {_describe_problem(problem, cls.Params)}") from None
    return StageSpec(name, validated, _line_of(lines, loc) or 0, where)


def _parse_where(value: Any, loc: Location, name: Any, fail: Any) -> str:
    """A stage entry's ``where``: a SQL condition over a row's own columns (``sql_filter``'s
    dialect), checked to parse."""
    from curation.filters.sql import parse_condition

    if not isinstance(value, str) or not value.strip():
        raise fail(loc, f"stage {name}: 'where' is a SQL condition, e.g. \"lang = 'en'\"")
    try:
        parse_condition(value)
    except ValueError as err:
        raise fail(loc, f"stage {name}: where {value!r}: {err}") from None
    return value


def _validate_section(model: type[BaseModel], value: Any, loc: Location, fail: Any) -> Any:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise fail(loc, f"'{loc[0]}' is a mapping, got {value!r}")
    try:
        return model.model_validate(value)
    except ValidationError as err:
        problem = err.errors()[0]
        where = (*loc, *problem["loc"][:1])
        raise fail(where, f"{loc[0]}: {_describe_problem(problem, model)}") from None


def _describe_problem(problem: dict[str, Any], model: type[BaseModel]) -> str:
    if len(problem["loc"]) > 1 and problem["loc"][0] in model.model_fields:
        return _nested_problem(problem, model)
    name = problem["loc"][0] if problem["loc"] else None
    valid = "; ".join(
        f"{p['name']} ({p['type']}, default {p['default']})"
        for p in describe_params(model)  # type: ignore[arg-type]
    )
    if problem["type"] == "extra_forbidden":
        hint = difflib.get_close_matches(str(name), list(model.model_fields), n=1)
        did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
        return f"unknown parameter {name!r}{did_you_mean}; valid parameters: {valid}"
    if name is None:
        return f"{problem['msg']}; valid parameters: {valid}"
    return f"parameter {name!r}: {problem['msg']} (got {problem.get('input')!r}); valid: {valid}"


def _nested_problem(problem: dict[str, Any], model: type[BaseModel]) -> str:
    """The message for a problem inside a parameter's mappings (``rules: [{with: x}]``):
    where it is (``rules item 1``), and for a key that is unknown or missing the keys
    that mapping takes."""
    loc = problem["loc"]
    inner = _inner_model(model.model_fields[loc[0]].annotation)
    key = loc[-1] if isinstance(loc[-1], str) and inner is not None else None
    path = loc[1:-1] if key is not None else loc[1:]
    where = str(loc[0]) + "".join(
        f" item {part + 1}" if isinstance(part, int) else f".{part}" for part in path
    )
    keys = list(inner.model_fields) if inner is not None else []
    valid = f"; valid keys: {', '.join(keys)}"
    if key is not None and problem["type"] == "extra_forbidden":
        hint = difflib.get_close_matches(str(key), keys, n=1)
        did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
        return f"parameter {where}: unknown key {key!r}{did_you_mean}{valid}"
    if key is not None and problem["type"] == "missing":
        return f"parameter {where}: missing key {key!r}{valid}"
    if key is not None:
        where += f".{key}"
    return f"parameter {where}: {problem['msg']} (got {problem.get('input')!r})"


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    """The first pydantic model a type annotation holds (``list[Rule] | None``: Rule)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _first_error(err: ValidationError) -> str:
    problem = err.errors()[0]
    where = ".".join(str(p) for p in problem["loc"])
    return f"{where}: {problem['msg']} (got {problem.get('input')!r})"


def _plain(node: yaml.Node, loc: Location, lines: dict[Location, int]) -> Any:
    """Turn a composed YAML node into Python values, recording each value's line."""
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.SafeLoader("").construct_object(key_node, deep=True)
            result[key] = _plain(value_node, (*loc, key), lines)
            lines[(*loc, key)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_plain(child, (*loc, i), lines) for i, child in enumerate(node.value)]
    return yaml.SafeLoader("").construct_object(node, deep=True)


def _line_of(lines: dict[Location, int], loc: Location) -> int | None:
    """The line of ``loc``, or of its nearest enclosing value that has one."""
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return lines.get(())
