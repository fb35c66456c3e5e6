"""``Library``: one audiodb file and what can be asked of it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from . import db as _db
from .errors import DatabaseError
from .features import NOTEBOOK, FeatureParams
from .scan import ScanReport, scan

__all__ = ["Library", "QueryResult"]


class QueryResult:
    """Rows of a query: ``columns`` (names) and ``rows`` (tuples)."""

    def __init__(self, columns: list[str], rows: list[tuple]):
        self.columns, self.rows = columns, rows

    def dicts(self) -> list[dict]:
        return [dict(zip(self.columns, r)) for r in self.rows]

    def __len__(self) -> int:
        return len(self.rows)


class Library:
    """An audiodb library file.

    >>> lib = Library("music.duckdb")          # or Library() for $AUDIODB_DB / the default
    >>> report = lib.scan(["~/Music"])
    >>> lib.sql("select count(*) from tracks").rows

    Every method opens the file, does its work and closes it again, so other
    processes (a watcher, a notebook) can use it in between.
    """

    def __init__(self, path: str | os.PathLike | None = None, *, params: FeatureParams = NOTEBOOK,
                 on_wait: Callable[[str], None] | None = None):
        self.path: Path = _db.resolve_path(path)
        self.params = params
        self.on_wait = on_wait

    def __repr__(self) -> str:
        return f"Library({str(self.path)!r})"

    def connect(self, *, read_only: bool = True):
        """Context manager yielding a DuckDB connection (read-only by default)."""
        return _db.connect(self.path, read_only=read_only, on_wait=self.on_wait)

    def scan(self, roots: Iterable[str | os.PathLike], **kwargs) -> ScanReport:
        """Index ``roots`` incrementally; see :func:`audiodb.scan.scan` for options."""
        roots = [os.path.expanduser(os.fspath(r)) for r in roots]
        return scan(roots, db=self.path, params=self.params, on_wait=self.on_wait, **kwargs)

    def sql(self, query: str, params: list | None = None, *, write: bool = False) -> QueryResult:
        """Run SQL; read-only unless ``write``. Returns columns and rows."""
        import duckdb

        with self.connect(read_only=not write) as con:
            try:
                cur = con.execute(query, params or [])
            except duckdb.Error as e:
                text = str(e)
                if not write and ("read-only" in text or "read only" in text):
                    raise DatabaseError(
                        "The library is opened read-only, so this statement was refused; "
                        "add --write to change it."
                    ) from None
                raise DatabaseError(f"SQL error: {text}") from None
            if cur.description is None:
                return QueryResult([], [])
            columns = [d[0] for d in cur.description]
            return QueryResult(columns, cur.fetchall())

    def status(self) -> dict:
        """Counts, location and size, the feature set, and failures."""
        with self.connect() as con:
            one = lambda q, *a: con.execute(q, list(a)).fetchone()[0]  # noqa: E731
            out = {
                "db_path": str(self.path),
                "db_size_bytes": self.path.stat().st_size,
                "schema_version": _db.schema_version(con),
                "tracks": one("SELECT count(*) FROM track_files"),
                "embedded": one("SELECT count(*) FROM embeddings WHERE feature_set = ?", self.params.id),
                "stale": one(
                    "SELECT count(*) FROM track_files t WHERE NOT EXISTS (SELECT 1 FROM embeddings e "
                    "WHERE e.track_id = t.track_id AND e.feature_set = ?)", self.params.id),
                "failures": one("SELECT count(*) FROM failures"),
                "total_duration_sec": float(one("SELECT coalesce(sum(duration_sec), 0) FROM track_files")),
                "feature_set": self.params.id,
                "feature_dims": self.params.dims,
                "folders": one("SELECT count(DISTINCT folder) FROM track_files"),
                "last_indexed_at": one("SELECT max(indexed_at) FROM track_files"),
            }
        return out

    def failures(self) -> QueryResult:
        """Files that could not be analysed: path, reason, when."""
        return self.sql("SELECT path, reason, failed_at, size FROM failures ORDER BY failed_at DESC, path")
