"""audiodb: an embedding database for audio with incremental indexing, in one DuckDB file.

>>> import audiodb
>>> lib = audiodb.Library("music.duckdb")
>>> lib.scan(["~/Music"]).counts()
{'added': 41, 'updated': 0, 'moved': 0, 'removed': 0, 'unchanged': 0, 'failed': 0}

Importing it loads nothing: each name below is imported when first used, and numpy
is the heaviest of what they load (scipy, librosa, scikit-learn and DuckDB are
imported inside the functions that need them).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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

#: Where each public name lives: imported when first used, so that ``import audiodb.errors`` (what
#: the command line does first) or a scan does not load the query side, and the reverse.
_HOMES = {
    "FEATURE_NAMES": ".analysis.params",
    "NOTEBOOK": ".analysis.params",
    "FeatureParams": ".analysis.params",
    "embed_file": ".analysis.embed",
    "AudiodbError": ".errors",
    "DatabaseError": ".errors",
    "DatabaseLocked": ".errors",
    "DecodeError": ".errors",
    "LibraryNotFound": ".errors",
    "NotALibrary": ".errors",
    "SchemaTooNew": ".errors",
    "TrackNotFound": ".errors",
    "UsageError": ".errors",
    "Change": ".index.plan",
    "ScanReport": ".index.plan",
    "scan": ".index.scan",
    "Library": ".library",
    "QueryResult": ".library",
    "ClusterRun": ".query.cluster",
    "cluster_vectors": ".query.cluster",
}


def __getattr__(name: str):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'audiodb' has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


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
