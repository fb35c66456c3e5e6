"""audiodb: an embedding database for audio with incremental indexing, in one DuckDB file.

>>> import audiodb
>>> lib = audiodb.Library("music.duckdb")
>>> lib.scan(["~/Music"]).counts()
{'added': 41, 'updated': 0, 'moved': 0, 'removed': 0, 'unchanged': 0, 'failed': 0}

Importing it loads numpy and nothing heavier: scipy, librosa, scikit-learn and
DuckDB are imported inside the functions that need them.
"""

from __future__ import annotations

from .analysis.embed import embed_file
from .analysis.params import FEATURE_NAMES, NOTEBOOK, FeatureParams
from .errors import (
    AudiodbError,
    DatabaseError,
    DatabaseLocked,
    DecodeError,
    LibraryNotFound,
    NotALibrary,
    SchemaTooNew,
    TrackNotFound,
    UsageError,
)
from .index.plan import Change, ScanReport
from .index.scan import scan
from .library import Library, QueryResult
from .query.cluster import ClusterRun, cluster_vectors

__all__ = [
    "FEATURE_NAMES",
    "NOTEBOOK",
    "AudiodbError",
    "Change",
    "ClusterRun",
    "DatabaseError",
    "DatabaseLocked",
    "DecodeError",
    "FeatureParams",
    "Library",
    "LibraryNotFound",
    "NotALibrary",
    "QueryResult",
    "ScanReport",
    "SchemaTooNew",
    "TrackNotFound",
    "UsageError",
    "cluster_vectors",
    "embed_file",
    "scan",
]
