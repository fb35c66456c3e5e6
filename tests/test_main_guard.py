"""A script that scans at its top level, without ``if __name__ == "__main__":``.

Worker processes are started with ``spawn``, which runs the main script again
in each of them. That used to start a scan inside every worker and record
every file as "the decoder crashed"; now the scan stops with an error that
says what to add, and records nothing.
"""

from __future__ import annotations

import subprocess
import sys

from conftest import rows

UNGUARDED = """\
import audiodb

report = audiodb.Library({db!r}).scan([{root!r}], workers=2)
print("scanned", report.added, report.failed)
"""

GUARDED = """\
import audiodb

if __name__ == "__main__":
    report = audiodb.Library({db!r}).scan([{root!r}], workers=2)
    print("scanned", report.added, report.failed)
"""


def run_script(tmp_path, name: str, text: str) -> subprocess.CompletedProcess:
    script = tmp_path / name
    script.write_text(text)
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=300)


def test_a_scan_at_a_scripts_top_level_says_what_to_add_and_records_nothing(tmp_path, music_dir):
    db = tmp_path / "script.duckdb"
    out = run_script(tmp_path, "unguarded.py", UNGUARDED.format(db=str(db), root=str(music_dir)))
    assert out.returncode == 1
    assert "scanned" not in out.stdout
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("audiodb.errors.UsageError: ")
    assert 'if __name__ == "__main__":' in last and "Library.scan" in last and "top level" in last
    assert "decoder crashed" not in out.stderr
    assert "bootstrapping phase" not in out.stderr  # the workers left quietly, before scanning themselves
    assert rows(db, "SELECT count(*) FROM failures") == [(0,)]
    assert rows(db, "SELECT count(*) FROM track_files") == [(0,)]

    # Adding the guard is all it takes; the same library then fills normally.
    out = run_script(tmp_path, "guarded.py", GUARDED.format(db=str(db), root=str(music_dir)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["scanned", "5", "0"]
    assert rows(db, "SELECT count(*) FROM failures") == [(0,)]
