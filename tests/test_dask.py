"""`audiodb scan --scheduler`: extraction on a real Dask cluster (distributed.LocalCluster)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import duckdb
import pytest
from audio import music_like, write_audio
from conftest import AUDIODB, run_audiodb

pytestmark = [pytest.mark.slow, pytest.mark.process]

distributed = pytest.importorskip("distributed", reason="pip install 'audiodb[dask]'")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=50
    ) as c:
        with distributed.Client(c) as client:
            yield c, client


def vectors(db, table: str = "embeddings") -> dict[str, tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return dict(
            con.execute(f"SELECT t.path, e.vector FROM track_files t JOIN {table} e USING (track_id)").fetchall()
        )
    finally:
        con.close()


THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def without_thread_variables() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in THREAD_ENV}


def blas_threads() -> list[int]:
    """Thread counts of the BLAS/OpenMP pools loaded in this process (run on a worker)."""
    import numpy  # noqa: F401
    from threadpoolctl import threadpool_info

    return [i["num_threads"] for i in threadpool_info()]


@pytest.fixture(scope="module")
def bare_worker(tmp_path_factory):
    """A real scheduler and a `dask worker --no-nanny --nthreads 2` started without any thread variable.

    Without the nanny, Dask sets no OMP/OPENBLAS/MKL variables either, so the
    worker's BLAS uses every core, as a worker started by hand or by a cluster
    manager that does not set them.
    """
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs 2 or more cores for a multi-threaded BLAS in the worker")
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the worker cannot import this file
    d = tmp_path_factory.mktemp("bare-dask")
    env = without_thread_variables()
    sched_file = d / "scheduler.json"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dask",
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(sched_file),
            ],
            cwd=d,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sched_file.exists(), "the dask scheduler did not start within 60 s"
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dask",
                    "worker",
                    "--scheduler-file",
                    str(sched_file),
                    "--no-nanny",
                    "--nthreads",
                    "2",
                    "--no-dashboard",
                ],
                cwd=d,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        address = json.loads(sched_file.read_text())["address"]
        with distributed.Client(address, timeout=30) as client:
            client.wait_for_workers(1, timeout=60)
            yield address, client
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=30)


def test_results_through_dask_equal_a_local_scan(tmp_path, cluster):
    c, _ = cluster
    root = tmp_path / "music"
    root.mkdir()
    for i, (ext, sr) in enumerate([("wav", 22050), ("flac", 44100), ("ogg", 44100), ("mp3", 44100), ("wav", 8000)]):
        write_audio(root / f"t{i}.{ext}", music_like(2.0, sr, seed=i), sr)
    (root / "broken.wav").write_bytes(b"RIFF" + os.urandom(100))

    local = run_audiodb("--db", tmp_path / "local.duckdb", "scan", root, "-f", "json", cwd=tmp_path)
    remote = run_audiodb(
        "--db", tmp_path / "dask.duckdb", "scan", root, "--scheduler", c.scheduler_address, "-f", "json", cwd=tmp_path
    )
    assert remote.returncode == 0, remote.stderr
    assert (
        json.loads(remote.stdout)
        == json.loads(local.stdout)
        == {"added": 5, "updated": 0, "moved": 0, "removed": 0, "unchanged": 0, "failed": 1, "skipped": 0}
    )
    a, b = vectors(tmp_path / "local.duckdb"), vectors(tmp_path / "dask.duckdb")
    assert a.keys() == b.keys() and len(a) == 5
    assert all(a[p] == b[p] for p in a)  # identical, not merely close
    con = duckdb.connect(str(tmp_path / "dask.duckdb"), read_only=True)
    assert con.execute("SELECT path FROM failures").fetchall() == [(str(root / "broken.wav"),)]
    con.close()


def test_a_worker_without_thread_variables_gives_the_numbers_of_a_local_scan(tmp_path, cluster, bare_worker):
    address, client = bare_worker
    assert all(max(t) > 1 for t in client.run(blas_threads).values())  # the worker really multi-threads BLAS
    root = tmp_path / "music"
    root.mkdir()
    for i, (ext, sr, ch) in enumerate([("wav", 22050, 1), ("flac", 44100, 2), ("ogg", 44100, 1), ("mp3", 44100, 1)]):
        write_audio(root / f"t{i}.{ext}", music_like(3.0, sr, seed=20 + i, channels=ch), sr)
    env = without_thread_variables()
    dbs = {"local": [], "bare": ["--scheduler", address], "nanny": ["--scheduler", cluster[0].scheduler_address]}
    for name, extra in dbs.items():
        out = run_audiodb(
            "--db", tmp_path / f"{name}.duckdb", "scan", root, *extra, "-f", "json", cwd=tmp_path, env=env
        )
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["added"] == 4
    for table in ("embeddings", "extended_embeddings"):
        local, bare, nanny = (vectors(tmp_path / f"{name}.duckdb", table) for name in dbs)
        assert len(local) == 4 and local.keys() == bare.keys() == nanny.keys()
        for p in local:  # identical, not merely close
            assert local[p] == bare[p] == nanny[p], (table, p)


def test_a_worker_killed_mid_scan_loses_nothing(tmp_path, cluster):
    c, client = cluster
    root = tmp_path / "many"
    root.mkdir()
    n = 24
    for i in range(n):
        write_audio(root / f"m{i:02d}.flac", music_like(4.0, 44100, seed=100 + i, channels=2), 44100)
    db = tmp_path / "k.duckdb"
    proc = subprocess.Popen(
        AUDIODB + ["--db", str(db), "scan", str(root), "--scheduler", c.scheduler_address, "-f", "json"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Wait until work is under way on the workers, then kill one of them.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(client.processing().values()):
        time.sleep(0.05)
    time.sleep(0.5)
    pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]
    os.kill(victim, signal.SIGKILL)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    counts = json.loads(out)
    assert counts["added"] == n and counts["failed"] == 0
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*), count(DISTINCT path) FROM track_files").fetchone() == (n, n)
    assert con.execute("SELECT count(*) FROM embeddings").fetchone()[0] == n
    con.close()
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it


def test_unreachable_scheduler_fails_fast_and_writes_nothing(tmp_path, music_dir):
    started = time.monotonic()
    out = run_audiodb(
        "--db",
        tmp_path / "never.duckdb",
        "scan",
        music_dir,
        "--scheduler",
        "tcp://127.0.0.1:9",
        cwd=tmp_path,
        timeout=60,
    )
    assert out.returncode == 1
    assert "Cannot reach the Dask scheduler" in out.stderr and "Nothing was written" in out.stderr
    assert time.monotonic() - started < 20
    assert not (tmp_path / "never.duckdb").exists()


def test_a_path_the_worker_cannot_see_is_explained(tmp_path):
    from audiodb.analysis.params import NOTEBOOK
    from audiodb.index.pools import analyse_on_worker

    result = analyse_on_worker(str(tmp_path / "only-on-the-scanner.wav"), None, NOTEBOOK)
    assert result["status"] == "failed" and "same path" in result["reason"] and "shared storage" in result["reason"]


def test_without_scheduler_dask_is_not_imported(tmp_path, music_dir):
    code = (
        "import sys, json; from audiodb import Library; "
        f"r = Library({str(tmp_path / 'x.duckdb')!r}).scan([{str(music_dir)!r}], workers=1); "
        "print(json.dumps([r.added, 'distributed' in sys.modules, 'dask' in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [5, False, False]
