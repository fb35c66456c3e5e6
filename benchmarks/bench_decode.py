"""libsndfile against PyAV (FFmpeg) decoding, per format, on real files; and soxr's share.

    python benchmarks/bench_decode.py [--audio DIR] [--work DIR]

Files are made from the Wesnoth tracks with the ffmpeg program: Opus (libopus,
through a WAV pipe so the Ogg granules are continuous, and one transcoded
directly from the .ogg, whose granules carry the source's timestamp gaps),
Vorbis (the original .ogg), MP3 (libmp3lame), FLAC and WAV; one ~10-min
file per lossy format. For each file, in the same run:

- decode+resample time of the libsndfile path and of the PyAV path (FFmpeg's
  float decoder: libopus for Opus, FFmpeg's own for the rest), and their ratio;
- the max abs difference of the two 22050-Hz waveforms (length difference too);
- the worst feature difference of audiodb's 180 + 42 features of each decode
  against the notebook's (``audiodb.analysis.reference``), as a multiple of the parity
  tolerance (<= 1 passes; 180: ``reference.tolerance``, 42: 1e-5 rel / 1e-6 abs
  as tests/test_extended.py), and the max relative difference;
- which decoder ``load()`` chose.

Then the resampling share: decode alone against decode+soxr HQ, and cheaper
resamplers (soxr MQ/LQ, one-shot HQ, scipy polyphase) against HQ's samples.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
import warnings

import _common  # noqa: F401  (pins BLAS threads before numpy)
import numpy as np
from _common import DEFAULT_AUDIO_DIR, machine, table

TRACKS = ["battle.ogg", "victory.ogg", "wanderer.ogg"]  # 318 s, 30 s, 262 s
LONG = ["knalgan_theme.ogg", "victory.ogg"]  # 557 s + 30 s: ~9.8 min


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def make_files(audio: str, work: str) -> list[tuple[str, str]]:
    os.makedirs(work, exist_ok=True)
    out = []

    def wav_of(names: list[str], dst: str) -> str:
        if not os.path.exists(dst):
            ins = sum((["-i", os.path.join(audio, n)] for n in names), [])
            ffmpeg(*ins, "-filter_complex", f"concat=n={len(names)}:v=0:a=1", dst)
        return dst

    sources = [(os.path.splitext(t)[0], wav_of([t], os.path.join(work, t.replace(".ogg", ".wav")))) for t in TRACKS[:2]]
    sources.append(("long", wav_of(LONG, os.path.join(work, "long.wav"))))
    for name, wav in sources:
        for fmt, args in [
            ("opus", ["-c:a", "libopus", "-b:a", "128k"]),
            ("mp3", ["-c:a", "libmp3lame", "-b:a", "192k"]),
            ("ogg", ["-c:a", "libvorbis", "-q:a", "5"]),
            ("flac", []),
        ]:
            if name == "long" or fmt != "flac" or name == "battle":
                dst = os.path.join(work, f"{name}.{fmt}")
                if not os.path.exists(dst):
                    ffmpeg("-i", wav, *args, dst)
                out.append((f"{fmt} ({name})", dst))
        if name != "long":
            out.append((f"wav ({name})", wav))
    direct = os.path.join(work, "battle-direct.opus")  # granules with the .ogg's timestamp gaps
    if not os.path.exists(direct):
        ffmpeg("-i", os.path.join(audio, "battle.ogg"), "-c:a", "libopus", "-b:a", "128k", direct)
    out.append(("opus (battle, direct from .ogg)", direct))
    out.append(("vorbis original (wanderer.ogg)", os.path.join(audio, "wanderer.ogg")))
    order = {"opus": 0, "vorbis": 1, "ogg": 1, "mp3": 2, "flac": 3, "wav": 4}
    return sorted(out, key=lambda x: order[x[0].split()[0]])


FLOAT_DECODER = {".opus": "libopus", ".ogg": "vorbis", ".mp3": "mp3float", ".flac": "flac", ".wav": "pcm_s16le"}


def timed(fn, repeat: int = 2):
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def worst(ours: np.ndarray, theirs: np.ndarray, rel: np.ndarray, absolute: np.ndarray) -> tuple[float, float]:
    err = np.abs(ours.astype(np.float64) - theirs)
    ratio = float(np.max(err / np.maximum(rel * np.abs(theirs), absolute)))
    big = np.abs(theirs) > absolute
    return ratio, float(np.max(err[big] / np.abs(theirs[big]))) if big.any() else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--audio", default=os.environ.get("AUDIO_DIR", DEFAULT_AUDIO_DIR))
    ap.add_argument("--work", default="/tmp/bench-decode")
    ap.add_argument("--repeat", type=int, default=2, help="timing repeats (best of)")
    ap.add_argument("--resample-only", action="store_true", help="only the resampling part")
    args = ap.parse_args()
    if args.resample_only:
        return resample_share(make_files(args.audio, args.work), args.repeat)

    from audiodb.analysis.decode import load
    from audiodb.analysis.extended import embeddings
    from audiodb.analysis.params import FEATURE_NAMES
    from audiodb.analysis.reference import extended_reference, extract_acoustic_embedding, tolerance

    rel180, abs180 = tolerance(FEATURE_NAMES)
    rel42, abs42 = np.full(42, 1e-5), np.full(42, 1e-6)
    files = make_files(args.audio, args.work)
    print(machine())
    print(f"{len(files)} files under {args.work}; times are the best of {args.repeat}, both paths in this run\n")

    rows = []
    for label, path in files:
        ext = os.path.splitext(path)[1]
        t_sf, a = timed(lambda: _try(load, path, "libsndfile"), args.repeat)
        t_av, b = timed(lambda: _try(load, path, FLOAT_DECODER[ext]), args.repeat)
        chosen = load(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # librosa's audioread fallback warns
            nb = extract_acoustic_embedding(path)["embedding"]
            nb42 = extended_reference(path)
        cells = []
        for d in (a, b):
            if isinstance(d, str):
                cells.append(("-", "-"))
                continue
            v180, v42 = embeddings(d.y)
            w180, r180 = worst(v180, nb, rel180, abs180)
            w42, r42 = worst(v42, nb42, rel42, abs42)
            cells.append((f"{w180:.2g} / {w42:.2g}", f"{max(r180, r42):.1e}"))
        if isinstance(a, str) or isinstance(b, str):
            diff = "libsndfile fails" if isinstance(a, str) else "PyAV fails"
        else:
            n = min(len(a.y), len(b.y))
            diff = f"{np.max(np.abs(a.y[:n] - b.y[:n])):.1e}" + (
                "" if len(a.y) == len(b.y) else f" (len {len(b.y) - len(a.y):+d})"
            )
        dur = f"{len(chosen.y) / 22050:.0f}"
        rows.append(
            [
                label,
                dur,
                f"{t_sf:.2f}" if not isinstance(a, str) else "fails",
                f"{t_av:.2f}",
                f"{t_sf / t_av:.2f}x" if not isinstance(a, str) else "-",
                diff,
                cells[0][0],
                cells[1][0],
                cells[0][1],
                cells[1][1],
                chosen.decoder,
            ]
        )
        print(" | ".join(rows[-1]), flush=True)
    print()
    print(
        table(
            [
                "file",
                "s",
                "libsndfile s",
                "PyAV s",
                "speed-up",
                "max |a-b|",
                "tol x (sf) 180/42",
                "tol x (PyAV) 180/42",
                "max rel (sf)",
                "max rel (PyAV)",
                "load() uses",
            ],
            rows,
            "lrrrrrrrrrl",
        )
    )
    print(
        "\ntol x: worst feature difference to the notebook as a multiple of the parity tolerance (<= 1 passes);"
        "\n'-' where that path cannot decode the file. The notebook itself reads a file libsndfile fails on"
        "\nthrough audioread (the ffmpeg program, 16-bit), which load()'s fallback reproduces.\n"
    )
    resample_share(files, args.repeat)


def _try(load, path, decoder):
    from audiodb.analysis.decode import DecodeError

    try:
        return load(path, decoder=decoder)
    except DecodeError as e:
        return str(e)


def resample_share(files, repeat: int) -> None:
    import av
    import soxr

    path = next(p for label, p in files if label == "opus (long)")

    def decode_only():
        out = []
        with av.open(path) as c:
            s = c.streams.audio[0]
            ctx = av.CodecContext.create("libopus", "r")
            ctx.extradata, ctx.sample_rate, ctx.layout = s.codec_context.extradata, 48000, s.codec_context.layout
            ctx.options = {"request_sample_fmt": "flt"}
            for pk in c.demux(s):
                for fr in ctx.decode(pk):
                    out.append(fr.to_ndarray().reshape(-1, len(fr.layout.channels)).mean(axis=1, dtype=np.float32))
        return np.concatenate(out)

    from audiodb.analysis.decode import load

    x = decode_only()  # native-rate mono, the resamplers' input
    t_all, full = timed(lambda: load(path, decoder="libopus"), repeat)
    hq = full.y
    print(
        f"Resampling, {path} ({len(x) / 48000:.0f} s, 48 kHz -> 22050): load(decoder='libopus') "
        f"{t_all:.2f} s in all; the resamplers alone on the same samples:"
    )
    rows = []
    n = len(hq)

    def stream(q):
        r = soxr.ResampleStream(48000, 22050, 1, dtype="float32", quality=q)
        parts = [r.resample_chunk(x[i : i + 65536]) for i in range(0, len(x), 65536)]
        parts.append(r.resample_chunk(np.zeros(0, np.float32), last=True))
        return np.concatenate(parts)

    cands = [
        ("soxr HQ stream (audiodb)", lambda: stream("HQ")),
        ("soxr HQ one-shot (librosa)", lambda: soxr.resample(x, 48000, 22050, quality="HQ")),
        ("soxr MQ stream", lambda: stream("MQ")),
        ("soxr LQ stream", lambda: stream("LQ")),
    ]
    try:
        from scipy.signal import resample_poly

        cands.append(("scipy resample_poly 147/320", lambda: resample_poly(x, 147, 320).astype(np.float32)))
    except ImportError:
        pass
    for name, fn in cands:
        t, y = timed(fn, repeat)
        m = min(n, len(y))
        rows.append(
            [
                name,
                f"{t:.2f}",
                f"{np.max(np.abs(y[:m] - hq[:m])):.1e}",
                "yes" if np.array_equal(y[:m], hq[:m]) else "no",
            ]
        )
    print(table(["resampler", "s", "max |y - HQ|", "bit-exact"], rows))


if __name__ == "__main__":
    main()
