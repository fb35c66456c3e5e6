"""One vector loader: every bulk read of stored vectors goes through audiodb.store.vectors."""

from __future__ import annotations

import ast
import pathlib
import re

import audiodb

PACKAGE = pathlib.Path(audiodb.__file__).parent
# A query that reads whole vectors out (``vector`` selected, not an element of it as in a
# summary's ``avg(e.vector[i])``); an INSERT ... SELECT writes them and is not counted.
READS_VECTORS = re.compile(
    r"^(?!.*\bINSERT\b).*\bSELECT\b.*\b(\w+\.)?vector\b(?!\s*\[).*\bFROM\b", re.IGNORECASE | re.DOTALL
)


def test_only_store_vectors_reads_the_vector_columns():
    """similar, cluster and maps share the Arrow path (store/vectors.py); a module that
    SELECTs ``vector`` itself (the map once joined the 180 floats through DuckDB) fails this."""
    readers = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and READS_VECTORS.search(node.value):
                readers.add(path.relative_to(PACKAGE).as_posix())
            elif isinstance(node, ast.JoinedStr):
                text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
                if READS_VECTORS.search(text):
                    readers.add(path.relative_to(PACKAGE).as_posix())
    assert readers <= {"store/vectors.py"}, readers
