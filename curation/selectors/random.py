"""``sample``: a deterministic random sample of documents, decided by a hash of the id.

The decision for a document depends only on its id and the seed, never on the order or
partitioning of the data, so any number of workers keeps the same rows.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import xxhash
from pydantic import Field

from curation.batch import ID, with_drop_reason
from curation.stage import MapStage, StageParams, register

_TWO_POW_64 = float(2**64)


class SampleParams(StageParams):
    rate: float = Field(..., gt=0.0, le=1.0, description="fraction of documents to keep, in (0, 1]")
    seed: int = Field(0, ge=0, description="seed of the id hash; another seed keeps other rows")


def id_hashes(ids: pa.ChunkedArray | pa.Array, seed: int) -> np.ndarray:
    """xxh64 of each id's UTF-8 bytes with ``seed`` (``uint64``)."""
    values = ids.to_pylist()
    return np.fromiter(
        (xxhash.xxh64_intdigest(value.encode("utf-8"), seed) for value in values),
        dtype=np.uint64,
        count=len(values),
    )


def id_uniform(ids: pa.ChunkedArray | pa.Array, seed: int) -> np.ndarray:
    """Map each id to a number in [0, 1) with xxh64(id, seed) / 2**64 (float64 array)."""
    return id_hashes(ids, seed).astype(np.float64) / _TWO_POW_64


@register
class Sample(MapStage):
    """Keeps a document when ``xxh64(id, seed) / 2**64 < rate``; otherwise ``not_sampled``."""

    name = "sample"
    help = "keep a deterministic fraction `rate` of documents, chosen by a seeded hash of the id"
    Params = SampleParams
    params: SampleParams

    def process(self, table: pa.Table) -> pa.Table:
        draw = id_uniform(table[ID], self.params.seed)
        return with_drop_reason(
            table, pa.array(draw >= self.params.rate), self.reason("not_sampled")
        )
