"""Peak memory on one long recording: the notebook vs audiodb.

    python benchmarks/bench_memory.py [AUDIO_DIR] [--minutes M] [--format flac|ogg] [--seed S]

Builds an M-minute (default 120) 44100 Hz stereo file by concatenating the
tracks of AUDIO_DIR (seeded order, decoded with soundfile, streamed to a FLAC
in a temp dir), then runs each of these in a fresh Python subprocess and
reads its peak resident memory (max RSS) from the kernel's rusage of that
child (os.wait4: the figure resource.getrusage(RUSAGE_CHILDREN) reports for a
process whose only child it is):

  imports only      python + numpy + soundfile + soxr + audiodb + `import librosa`
                    (librosa loads its submodules lazily: those count to the notebook)
  decode+resample   audiodb.analysis.decode.load(path, sr=22050)
  audiodb           audiodb.analysis.embed.embed_file(path)
  audiodb+extended  embed_file(path, extended=True): both feature sets, as a scan computes them
  notebook          audiodb.analysis.reference.extract_acoustic_embedding(path)

and checks that the two embeddings agree (max relative difference).
BLAS/OpenMP pools are pinned to one thread in the parent and the children.
The notebook needs roughly 10 GB for two hours of audio.
"""

import os

# One BLAS/OpenMP thread (inherited by the children). Must precede any numpy import.
for _k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_k] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

KINDS = ("imports only", "decode+resample", "audiodb", "audiodb+extended", "notebook")


def child(kind: str, path: str, out: str) -> None:
    """Runs in the fresh subprocess."""
    import numpy as np
    import soundfile  # noqa: F401
    import soxr  # noqa: F401

    import audiodb.analysis.decode
    import audiodb.analysis.embed
    import audiodb.analysis.reference

    info: dict = {}
    t0 = time.perf_counter()
    if kind == "imports only":
        import librosa  # noqa: F401  (the notebook's import floor)
    elif kind == "decode+resample":
        d = audiodb.analysis.decode.load(path, sr=22050)
        info["samples"] = len(d.y)
    elif kind in ("audiodb", "audiodb+extended"):
        vec, _meta = audiodb.analysis.embed.embed_file(path, extended=kind == "audiodb+extended")
        np.save(out, vec.astype(np.float64))
    elif kind == "notebook":
        r = audiodb.analysis.reference.extract_acoustic_embedding(path)
        np.save(out, np.asarray(r["embedding"], dtype=np.float64))
    else:
        raise SystemExit(f"unknown kind {kind}")
    info["seconds"] = time.perf_counter() - t0
    print(json.dumps(info))


def build_long(audio_dir: str, minutes: float, dest: str, fmt: str, seed: int) -> tuple[float, int]:
    import numpy as np  # noqa: F401
    import soundfile as sf

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _common import audio_files

    files = audio_files(audio_dir)
    random.Random(seed).shuffle(files)
    sr, ch = 44100, 2
    target = int(minutes * 60 * sr)
    written = 0
    subtype = "PCM_16" if fmt == "flac" else "VORBIS"
    with sf.SoundFile(dest, "w", samplerate=sr, channels=ch, format=fmt.upper(), subtype=subtype) as out:
        i = 0
        while written < target:
            src = files[i % len(files)]
            i += 1
            info = sf.info(src)
            if info.samplerate != sr or info.channels != ch:
                continue  # keep it simple: only 44.1 kHz stereo sources
            for block in sf.blocks(src, blocksize=1 << 18, dtype="float32", always_2d=True):
                block = block[: target - written]
                out.write(block)
                written += len(block)
                if written >= target:
                    break
            if i > 10 * len(files) and written == 0:
                raise SystemExit("no 44.1 kHz stereo source files found")
    return written / sr, os.path.getsize(dest)


def measure(kind: str, path: str, out: str) -> tuple[float, float, dict]:
    """(peak RSS in MB, wall seconds, child's JSON) of one fresh subprocess."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--child", kind, path, out], stdout=subprocess.PIPE, text=True
    )
    stdout = proc.stdout.read()
    _pid, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed with exit code {proc.returncode}")
    return ru.ru_maxrss / 1024, wall, json.loads(stdout.strip().splitlines()[-1])  # KiB -> MiB


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("audio_dir", nargs="?", default="/tmp/bench-audio/usr/share/games/wesnoth/1.16/data/core/music")
    ap.add_argument("--minutes", type=float, default=120.0)
    ap.add_argument("--format", choices=("flac", "ogg"), default="flac")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import numpy as np

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _common import machine, table

    print(f"# bench_memory; seed {args.seed}")
    print(f"# {machine()}")
    with tempfile.TemporaryDirectory(prefix="audiodb-mem-", dir="/tmp") as tmp:
        path = os.path.join(tmp, f"long.{args.format}")
        t0 = time.perf_counter()
        secs, size = build_long(args.audio_dir, args.minutes, path, args.format, args.seed)
        print(
            f"# built {secs / 60:.1f} min, 44100 Hz stereo {args.format.upper()}, {size / 1e6:.0f} MB, "
            f"in {time.perf_counter() - t0:.0f} s"
        )
        rows, vecs, peaks = [], {}, {}
        for kind in KINDS:
            out = os.path.join(tmp, kind.replace(" ", "_").replace("+", "_") + ".npy")
            peak, wall, info = measure(kind, path, out)
            peaks[kind] = peak
            if os.path.exists(out):
                vecs[kind] = np.load(out)
            rows.append([kind, f"{peak:,.0f}", f"{wall:.1f}", f"{info['seconds']:.1f}"])
            print(f"  {kind}: {peak:,.0f} MB, {wall:.1f} s", file=sys.stderr, flush=True)
        print()
        print(table(["run (fresh process)", "max RSS MB", "process wall s", "work s"], rows))
        print(
            f"notebook / audiodb peak memory: {peaks['notebook'] / peaks['audiodb']:.1f}x; "
            f"notebook / audiodb+extended: {peaks['notebook'] / peaks['audiodb+extended']:.1f}x"
        )
        floor = peaks["imports only"]
        print(
            f"above the imports floor ({floor:,.0f} MB): notebook {peaks['notebook'] - floor:,.0f} MB, "
            f"audiodb {peaks['audiodb'] - floor:,.0f} MB, decode+resample {peaks['decode+resample'] - floor:,.0f} MB "
            f"(mono float32 at 22050 Hz is {secs * 22050 * 4 / 2**20:,.0f} MB)"
        )
        a, b = vecs["notebook"], vecs["audiodb"]
        rel = np.abs(a - b) / np.maximum(np.abs(a), 1e-12)
        from audiodb.analysis.params import FEATURE_NAMES

        j = int(np.argmax(rel))
        print(
            f"embeddings agree: max relative difference {rel.max():.2e} at {FEATURE_NAMES[j]} "
            f"(notebook {a[j]:.6g}, audiodb {b[j]:.6g})"
        )
        cum = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"(cross-check: getrusage(RUSAGE_CHILDREN).ru_maxrss over all children = {cum:,.0f} MB)")


if __name__ == "__main__":
    main()
