"""Results: typed records keyed by (model, condition, epoch, layer), and their file format."""

from .keys import SAMPLE, Key
from .records import (
    ArrayRecord,
    ProbeRecord,
    Record,
    RegionEmbedding,
    RegionRecord,
    SampleEmbedding,
    SampleRecord,
)
from .store import ResultStore

__all__ = [
    "SAMPLE",
    "ArrayRecord",
    "Key",
    "ProbeRecord",
    "Record",
    "RegionEmbedding",
    "RegionRecord",
    "ResultStore",
    "SampleEmbedding",
    "SampleRecord",
]
