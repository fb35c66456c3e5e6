"""A user's SQL: what may run on a read-only connection (statements that cannot write anything
anywhere), and running it."""

from __future__ import annotations

import re

from ..errors import DatabaseError, UsageError
from .faults import raise_if_damaged

__all__ = ["check_read_only", "lock_configuration", "run_sql"]


#: Statement types that cannot write, on a read-only connection whose configuration is locked
#: (so no SET / PRAGMA can point profiling or logging output at a file).
_READING = {"SELECT", "PRAGMA", "CALL", "EXPLAIN"}


_EXPLAIN = re.compile(r"^\s*explain\s+(?:\([^)]*\)\s*)?(?:analy[sz]e\s+)?(.*)$", re.IGNORECASE | re.DOTALL)


def check_read_only(query: str) -> None:
    """Refuse a query holding a statement that could write anything anywhere.

    DuckDB's read-only mode only protects the library file itself: ``COPY … TO``,
    ``EXPORT DATABASE``, ``INSTALL`` and ``EXPLAIN ANALYZE COPY …`` still write files.
    ``enable_external_access=false`` would stop those but also every ``read_csv``, and
    ``allowed_directories`` lets writes through too; so statements are judged by type
    (SELECT, PRAGMA, CALL, EXPLAIN of those), with the configuration locked by
    :func:`lock_configuration`. Raises UsageError for an empty query, DatabaseError
    for a refused statement; a query DuckDB cannot parse is left for it to report.
    """
    import duckdb

    if not query.strip():
        raise UsageError(
            'The query is empty. Give SQL, e.g. audiodb sql "select count(*) from tracks" '
            "(or - to read it from standard input)."
        )
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error:
        return  # a syntax error: running it reports it, and it writes nothing
    if not statements:
        raise UsageError("The query holds no statement (only comments or semicolons?).")
    for st in statements:
        kind = st.type.name
        if kind == "EXPLAIN":
            m = _EXPLAIN.match(st.query)
            if m and m.group(1).strip():
                check_read_only(m.group(1))
                continue
        if kind not in _READING:
            first = st.query.strip().split(None, 1)[0].upper() if st.query.strip() else kind
            raise DatabaseError(
                f"The library is opened read-only, and {first} statements may write (to the library "
                "or to other files), so the query was refused and nothing was run. Add --write to run "
                'it; to save rows to a file, redirect the output: audiodb sql "select …" --format csv '
                "> rows.csv."
            )


def lock_configuration(con) -> None:
    """No SET / PRAGMA may change settings on ``con`` from now on (e.g. profiling output to a file)."""
    con.execute("SET lock_configuration = true")


def run_sql(file, query: str, binds: list | None = None, *, write: bool = False) -> tuple[list[str], list[tuple]]:
    """Run ``query`` on the library ``file`` (a :class:`~audiodb.store.connection.LibraryFile`),
    read-only unless ``write``; returns column names and rows."""
    import duckdb

    if not write:
        check_read_only(query)
    with file.connect(read_only=not write) as con:
        if not write:
            lock_configuration(con)
        try:
            cur = con.execute(query, binds or [])
        except duckdb.Error as e:
            raise_if_damaged(file.path, e)
            text = str(e)
            if not write and ("read-only" in text or "read only" in text):
                raise DatabaseError(
                    "The library is opened read-only, so this statement was refused; add --write to change it."
                ) from None
            raise DatabaseError(f"SQL error: {text}") from None
        if cur.description is None:
            return [], []
        return [d[0] for d in cur.description], cur.fetchall()
