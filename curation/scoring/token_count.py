"""``token_count``: each document's length in tokens of a given tokenizer.

What datatrove's ``TokensCounter`` writes as ``token_count`` (FineWeb's datasets carry
it), for any tokenizer ``curate tokenize`` takes: a Hugging Face ``tokenizer.json``, a
SentencePiece ``.model``, or a folder holding either (a ``curate train-lm`` checkpoint).
With ``bos`` and ``eos`` the begin and end tokens are counted as ``curate tokenize``
writes them, so the kept documents' counts add up to the tokens a tokenization of the
run's output writes with the same options.

The count is a measurement only (deciding is separate): ``threshold`` (``column:
token_count, min: 50``) or ``sql_filter`` decide on it. A run's ``stats.json`` sums it
over the kept documents (``summaries.<column>.kept_sum``), and ``curate run`` prints that
sum at its end.

Each worker encodes on one thread (one Ray worker per CPU), through the engine's cache of
a byte-level BPE's pieces where the text allows (the same ids as ``tokenizers``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import pyarrow as pa
from pydantic import Field, model_validator

from curation.batch import DROP_REASON, ID, TEXT
from curation.stage import MapStage, StageParams, register

if TYPE_CHECKING:
    from curation.io.tokens import TextTokenizer


class TokenCountParams(StageParams):
    file_params: ClassVar[tuple[str, ...]] = ("tokenizer",)
    tokenizer: str = Field(
        ...,
        description="a tokenizers JSON file, a SentencePiece .model, or a folder holding one "
        "(a `curate train-lm` checkpoint, a Hugging Face model folder)",
    )
    bos: str | None = Field(None, description="count this begin-of-document token too")
    eos: str | None = Field(None, description="count this end-of-document token too")
    column: str = Field("token_count", min_length=1, description="the column written (int64)")

    @model_validator(mode="after")
    def _tokenizer_loads(self) -> TokenCountParams:
        from curation.io.tokens import TokenizeError

        if self.column in (ID, TEXT, DROP_REASON):
            raise ValueError(f"column {self.column!r} is the engine's own: name another")
        try:
            self.load()
        except TokenizeError as err:
            raise ValueError(str(err)) from None
        return self

    def load(self) -> TextTokenizer:
        """The tokenizer, loaded once per process and version of its file, on one thread."""
        from curation.io.tokens import TokenizerSpec, cached_tokenizer

        return cached_tokenizer(TokenizerSpec(self.tokenizer, self.eos, self.bos), False)


@register
class TokenCount(MapStage):
    """Writes ``column`` (``token_count``): the document's tokens, begin and end tokens
    included when given. Drops nothing."""

    name = "token_count"
    help = "each document's length in tokens of a tokenizer (datatrove's TokensCounter)"
    Params = TokenCountParams
    params: TokenCountParams

    def setup(self) -> None:
        self._tokenizer = self.params.load()

    def process(self, table: pa.Table) -> pa.Table:
        from curation.io.tokens import token_counts

        counts = token_counts(self._tokenizer, table[TEXT])
        return table.append_column(self.params.column, pa.array(counts, pa.int64()))

    def versions(self) -> dict[str, str]:
        from curation.io.tokens import file_sha256, tokenizer_file

        path = tokenizer_file(self.params.tokenizer)
        return {"tokenizer": self.params.tokenizer, "tokenizer_sha256": file_sha256(path)}
