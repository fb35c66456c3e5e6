"""Decoding in blocks gives the samples of decoding frame by frame.

:class:`audiodb.analysis.blocks.FrameBlocks` gathers PyAV frames and converts and
mixes them once per block; :class:`~audiodb.analysis.blocks.BlockReader` reads
libsndfile without soundfile's seeks. Both must give, bit for bit, what one frame
(or one ``SoundFile.read``) at a time gives: each layout FFmpeg hands out
(planar and interleaved; float, 16/32-bit and unsigned 8-bit; 1, 2, 3 and 6 channels).
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from audio import ffmpeg_encode, music_like, write_audio

from audiodb.analysis.blocks import BlockReader
from audiodb.analysis.decode import load

# (name, channels, ffmpeg arguments); .mka holds any PCM layout
LAYOUTS = [
    ("aac-6ch-fltp.m4a", 6, ("-c:a", "aac", "-b:a", "192k")),
    ("aac-mono.m4a", 1, ("-c:a", "aac", "-b:a", "64k")),
    (
        "s32-3ch.mka",
        3,
        (
            "-c:a",
            "pcm_s32le",
        ),
    ),
    (
        "u8-2ch.mka",
        2,
        (
            "-c:a",
            "pcm_u8",
        ),
    ),
    (
        "f64-2ch.mka",
        2,
        (
            "-c:a",
            "pcm_f64le",
        ),
    ),
    (
        "s16-6ch.mka",
        6,
        (
            "-c:a",
            "pcm_s16le",
        ),
    ),
]


def _frame_by_frame(path: str) -> np.ndarray:
    """FFmpeg's samples at the native rate as librosa's audioread fallback reads them, one frame at a time."""
    import av

    out = []
    with av.open(path) as container:
        for frame in container.decode(container.streams.audio[0]):
            arr = frame.to_ndarray()
            if not frame.format.is_planar:
                arr = arr.reshape(-1, len(frame.layout.channels)).T
            kind, size = arr.dtype.kind, arr.dtype.itemsize
            if kind == "f":  # ffmpeg -f s16le: rounded to nearest, clipped
                q = np.clip(np.rint(arr.astype(np.float32) * np.float32(32768.0)), -32768.0, 32767.0)
            elif kind == "u":
                q = (arr.astype(np.int16) - 128) << 8
            else:
                q = arr >> (8 * size - 16)
            x = q.astype(np.float32) * np.float32(1.0 / 32768)
            out.append(np.mean(np.ascontiguousarray(x.T), axis=1, dtype=np.float32))  # librosa.to_mono
    return np.concatenate(out)


@pytest.mark.parametrize("name,channels,args", LAYOUTS, ids=[n for n, _, _ in LAYOUTS])
def test_frame_blocks_give_the_frame_by_frame_samples(tmp_path, name, channels, args):
    rate = 44100
    y = music_like(3.0, rate, seed=channels, channels=min(channels, 2))
    if channels > 2:  # distinct channels: a wrong mix shows
        y = np.stack([y[:, i % 2] * (1.0 - 0.1 * i) for i in range(channels)], axis=1)
    src = write_audio(tmp_path / "src.wav", y, rate, subtype="FLOAT")
    path = str(ffmpeg_encode(src, tmp_path / name, *args))
    decoded = load(path, sr=rate)  # the native rate: no resampling, the mixed samples themselves
    assert decoded.decoder == "ffmpeg" and decoded.channels == channels
    expected = _frame_by_frame(path)
    assert len(decoded.y) == len(expected)
    assert np.array_equal(decoded.y, expected)


@pytest.mark.parametrize("subtype,fmt", [("PCM_16", "FLAC"), ("PCM_24", "WAV"), ("VORBIS", "OGG")])
def test_block_reader_gives_soundfile_read_samples(tmp_path, subtype, fmt):
    rate = 44100
    y = music_like(4.0, rate, seed=3, channels=2)
    path = str(tmp_path / f"x.{fmt.lower()}")
    sf.write(path, y, rate, subtype=subtype, format=fmt)
    with sf.SoundFile(path) as f:
        theirs = f.read(dtype="float32", always_2d=True)
    ours = []
    with sf.SoundFile(path) as f:
        reader = BlockReader(f, 5000)  # several blocks, the last one short
        while len(got := reader.read(5000)):
            ours.append(got.copy())
    assert np.array_equal(np.concatenate(ours), theirs)
