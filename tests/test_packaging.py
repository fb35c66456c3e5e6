"""The wheel holds exactly the ``audiodb`` package, and an installed wheel really works.

The source tree maps ``cli/`` to ``audiodb.cli`` and ``migrations/`` to
``audiodb.migrations`` (setuptools ``package-dir``), with an explicit package
list. These tests build a wheel from a copy of the tree (nothing is written
into the work tree), check its file list, install it into a fresh venv and run
a real scan there from a folder outside the source tree, so the migrations
must come from inside the installed package.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
from audio import music_like, write_audio

pytestmark = [pytest.mark.slow, pytest.mark.process]

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 300

# Only these mean "a wheel cannot be built here, offline"; anything else is a packaging bug.
_OFFLINE_SIGNS = (
    "invalid command 'bdist_wheel'",  # old setuptools without the `wheel` package
    "No matching distribution found",  # build requirements not downloadable
    "Could not find a version that satisfies",
    "Failed to establish a new connection",
    "Network is unreachable",
    "Temporary failure in name resolution",
    "No module named 'setuptools'",
    "No module named setuptools",
)


def _copy_source(dest: Path) -> Path:
    """The work tree, minus VCS data, build output and caches (a stale build/ could leak files)."""
    ignore = shutil.ignore_patterns(
        ".git",
        "build",
        "dist",
        "*.egg-info",
        "__pycache__",
        ".pytest_cache",
        ".benchmarks",
        "bench-audio",
        "*.duckdb",
        "*.duckdb.wal",
        "*.lock",
        ".venv",
        "venv",
        ".mypy_cache",
        ".ruff_cache",
    )
    shutil.copytree(REPO, dest, ignore=ignore)
    return dest


def _pip_wheel(src: Path, out: Path, isolated: bool) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        str(src),
        "--no-deps",
        "-w",
        str(out),
        "--disable-pip-version-check",
        "--no-cache-dir",
    ]
    if not isolated:
        cmd.append("--no-build-isolation")
    return subprocess.run(cmd, cwd=src, capture_output=True, text=True, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Build the wheel once: without build isolation if the environment allows, else with it."""
    tmp = tmp_path_factory.mktemp("wheel_build")
    src = _copy_source(tmp / "src")
    out = tmp / "dist"
    attempts = []
    for isolated in (False, True):
        result = _pip_wheel(src, out, isolated)
        wheels = sorted(out.glob("audiodb-*.whl"))
        if result.returncode == 0 and wheels:
            return wheels[0]
        attempts.append((isolated, result))
    log = "\n\n".join(
        f"--- pip wheel (build isolation {'on' if iso else 'off'}), exit {r.returncode}\n"
        f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        for iso, r in attempts
    )
    if all(any(sign in r.stdout + r.stderr for sign in _OFFLINE_SIGNS) for _, r in attempts):
        pytest.skip(
            "cannot build a wheel here: the build backend is unusable without build isolation "
            "(e.g. setuptools < 70.1 without the `wheel` package) and its build requirements "
            f"cannot be downloaded. pip said:\n{log}"
        )
    pytest.fail(f"building the wheel failed:\n{log}")


def _names(whl: Path) -> list[str]:
    with zipfile.ZipFile(whl) as z:
        return z.namelist()


def _source_files(folder: str, pattern: str) -> list[str]:
    root = REPO / folder
    return sorted(p.relative_to(root).as_posix() for p in root.rglob(pattern) if "__pycache__" not in p.parts)


def test_wheel_contains_the_audiodb_package_and_nothing_else(wheel):
    names = _names(wheel)
    for required in (
        "audiodb/__init__.py",
        "audiodb/cli/__init__.py",
        "audiodb/migrations/__init__.py",
        "audiodb/migrations/001_initial.sql",
    ):
        assert required in names, f"{required} missing from {wheel.name}: {names}"

    # Every source module and migration made it in, under its package name.
    expected = (
        [f"audiodb/{f}" for f in _source_files("audiodb", "*.py")]
        + [f"audiodb/cli/{f}" for f in _source_files("cli", "*.py")]
        + [f"audiodb/migrations/{f}" for f in _source_files("migrations", "*.py")]
        + [f"audiodb/migrations/{f}" for f in _source_files("migrations", "*.sql")]
        + [f"audiodb/maps/static/{f}" for f in _source_files("audiodb/maps/static", "*")]
    )
    assert "audiodb/maps/static/page.html" in expected, "the map's static files are not where the test looks"
    missing = sorted(set(expected) - set(names))
    assert not missing, f"source files missing from the wheel (a package not listed?): {missing}"

    # Nothing at top level but the package and its metadata.
    dist_info = [n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")]
    assert len(set(dist_info)) == 1, dist_info
    top = {n.split("/", 1)[0] for n in names}
    assert top == {"audiodb", dist_info[0]}, f"unexpected top-level entries: {sorted(top)}"
    for bad in ("cli/", "migrations/", "tests/"):
        assert not [n for n in names if n.startswith(bad)], f"top-level {bad} in the wheel"
    assert not [n for n in names if "/" not in n], "top-level modules in the wheel"
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".duckdb"))]

    with zipfile.ZipFile(wheel) as z:
        meta = {n.rsplit("/", 1)[-1]: n for n in names if n.startswith(dist_info[0] + "/")}
        if "top_level.txt" in meta:
            assert z.read(meta["top_level.txt"]).decode().split() == ["audiodb"]
        entry_points = z.read(meta["entry_points.txt"]).decode()
    assert "audiodb = audiodb.cli:run" in entry_points.replace("  ", " ")


def _venv_env() -> dict[str, str]:
    env = dict(os.environ)
    for var in ("PYTHONPATH", "PYTHONHOME", "AUDIODB_DB", "VIRTUAL_ENV", "PYTHONSTARTUP"):
        env.pop(var, None)
    env["AUDIODB_LOCK_TIMEOUT"] = "60"
    return env


def test_installed_wheel_scans_with_its_own_migrations(wheel, tmp_path):
    # A fresh venv whose dependencies come from this environment, audiodb from the wheel only.
    # Not system_site_packages: a venv made from inside a venv (as in CI) would see the base
    # interpreter's packages, which on a fresh machine have none of audiodb's dependencies.
    # A .pth line adds this environment's site-packages after the venv's own (its .pth
    # files, such as an editable install's finder, are not run), so the wheel wins.
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=False, with_pip=False, symlinks=os.name != "nt").create(env_dir)
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    inner_site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    outer = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(inner_site, "outer-environment.pth").write_text("\n".join(sorted(outer)) + "\n")
    env, cwd = _venv_env(), tmp_path  # not the repo: the source tree must not be importable

    def run(*args, ok=True):
        r = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
        if ok:
            assert r.returncode == 0, f"{args} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
        return r

    # pip comes from the outer environment (the .pth line); --ignore-installed leaves the
    # outer (editable) audiodb alone and installs the wheel into the venv.
    run(
        python,
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--no-index",
        "--ignore-installed",
        "--disable-pip-version-check",
        "--no-cache-dir",
        wheel,
    )
    audiodb = bin_dir / "audiodb"
    assert audiodb.is_file(), "the wheel installed no `audiodb` console script"

    # The venv's audiodb is the wheel's: the outer editable install maps audiodb.cli and
    # audiodb.migrations to the source tree, which must not be what gets imported here.
    where = json.loads(
        run(
            python,
            "-c",
            (
                "import json, importlib.resources, audiodb, audiodb.cli, audiodb.migrations, audiodb.store.migrate;"
                "print(json.dumps({'audiodb': audiodb.__file__, 'cli': audiodb.cli.__file__,"
                " 'migrations': str(importlib.resources.files('audiodb.migrations')),"
                " 'found': [m[1] for m in audiodb.store.migrate.migrations()]}))"
            ),
        ).stdout
    )
    site = str(env_dir.resolve())
    for key in ("audiodb", "cli", "migrations"):
        assert str(Path(where[key]).resolve()).startswith(site), f"{key} imported from outside the venv: {where}"
    assert "001_initial.sql" in where["found"], where

    helped = run(audiodb, "--help")
    assert "scan" in helped.stdout and "sql" in helped.stdout, helped.stdout

    music = tmp_path / "music"
    music.mkdir()
    for i, sr in enumerate((22050, 44100)):
        write_audio(music / f"song{i}.wav", music_like(1.5, sr, seed=100 + i), sr)
    db = tmp_path / "pkg.duckdb"
    out = run(audiodb, "--db", db, "scan", music, "--workers", "1", "--format", "json")
    counts = json.loads(out.stdout)
    assert counts == {"added": 2, "updated": 0, "moved": 0, "removed": 0, "unchanged": 0, "failed": 0, "skipped": 0}, (
        out
    )

    rows = json.loads(
        run(
            audiodb,
            "--db",
            db,
            "sql",
            "SELECT (SELECT count(*) FROM tracks) AS tracks, "
            "(SELECT count(*) FROM embeddings) AS embeddings, "
            "(SELECT max(version) FROM schema_migrations) AS schema",
            "--format",
            "json",
        ).stdout
    )
    assert rows[0]["tracks"] == 2 and rows[0]["embeddings"] == 2, rows
    assert rows[0]["schema"] == max(int(n.split("_", 1)[0]) for n in where["found"]), rows
