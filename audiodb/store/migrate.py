"""The library's schema: numbered ``.sql`` files in ``audiodb.migrations``, applied in order on open,
each in one transaction with its version row (a new library's all in one: it is made whole or not at all)."""

from __future__ import annotations

import contextlib
import functools
import importlib.resources
import re
from pathlib import Path

from ..errors import DatabaseError, NotALibrary, SchemaTooNew

__all__ = ["migrate", "migrations", "schema_version"]


@functools.cache
def _bundled() -> tuple[tuple[int, str, str], ...]:
    found = []
    for entry in importlib.resources.files("audiodb.migrations").iterdir():
        m = re.match(r"^(\d+)_(.+)\.sql$", entry.name)
        if m:
            found.append((int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return tuple(sorted(found))


def migrations() -> list[tuple[int, str, str]]:
    """``(version, name, sql)`` of every bundled migration, in order (read once per process)."""
    return list(_bundled())


def schema_version(con) -> int:
    # fetchall, not fetchone: a half-read result would stay pending on the connection.
    # duckdb_tables(), not information_schema.tables: the catalog function is cheaper.
    rows = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'schema_migrations' AND schema_name = 'main'"
    ).fetchall()
    if not rows[0][0]:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchall()[0][0]


def migrate(con, path: Path) -> None:
    known = migrations()
    latest = known[-1][0] if known else 0
    current = schema_version(con)
    if current > latest:
        raise SchemaTooNew(
            f"{path} was written by a newer audiodb (schema version {current}; this audiodb "
            f"knows up to {latest}). Upgrade audiodb (pip install -U audiodb) to open it."
        )
    if current == latest:
        return
    if current == 0:
        _refuse_foreign(con, path)
    pending = [m for m in known if m[0] > current]
    # A new library gets every migration in one transaction (each still with its version row):
    # 30-40 ms less of a first scan than a commit each, and a failure leaves no half-made schema.
    # An older library is upgraded one migration, one transaction, at a time.
    steps = [pending] if current == 0 else [[m] for m in pending]
    for step in steps:
        con.execute("BEGIN TRANSACTION")
        name = step[0][1]
        try:
            con.execute(_VERSIONS)
            for version, name, sql in step:
                con.execute(sql)
                con.execute("INSERT INTO schema_migrations VALUES (?, ?, current_localtimestamp())", [version, name])
            con.execute("COMMIT")
        except Exception as e:
            with contextlib.suppress(Exception):  # a COMMIT that failed has ended the transaction
                con.execute("ROLLBACK")
            raise DatabaseError(f"Migration {name} failed on {path}: {e}") from e


_VERSIONS = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
)


def _refuse_foreign(con, path: Path) -> None:
    """A DuckDB file with tables of its own and no audiodb schema is someone else's: never migrate it."""
    tables = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database() "
            "AND table_name <> 'schema_migrations' "
            "ORDER BY table_name"
        ).fetchall()
    ]
    if tables:
        shown = ", ".join(tables[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
        raise NotALibrary(
            f"{path} is a DuckDB database but not an audiodb library (it holds {shown}); nothing was changed. "
            "Point --db (or AUDIODB_DB) at an audiodb library, or at a new file to create one."
        )
