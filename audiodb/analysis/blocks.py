"""Decoders' output in blocks: channels mixed as librosa mixes them, PyAV frames gathered, libsndfile read.

The pieces :mod:`audiodb.analysis.decode` (whole files) and :mod:`audiodb.analysis.seek`
(ranges of a file) share, so that both give the same samples.
"""

from __future__ import annotations

from typing import cast

import numpy as np

__all__ = ["BLOCK", "BlockReader", "FrameBlocks", "to_float", "to_mono"]

#: Native frames mixed and resampled at a time.
BLOCK = 1 << 16


def to_mono(block: np.ndarray) -> np.ndarray:
    """``librosa.to_mono`` of a ``(frames, channels)`` float32 block: the mean over channels, in float32.

    A single channel comes back as a view of ``block`` (copy it if ``block`` is a reused buffer).
    """
    if block.ndim == 1:
        return block
    if block.shape[1] == 1:
        return np.ascontiguousarray(block[:, 0])
    if block.shape[1] == 2:  # the same float32 numbers as np.mean (a + b, halved exactly), 6x faster
        out = np.add(block[:, 0], block[:, 1], dtype=np.float32)
        out *= np.float32(0.5)
        return out
    return cast(np.ndarray, np.mean(block, axis=1, dtype=np.float32))  # an array: block is 2-D


class FrameBlocks:
    """Decoded PyAV audio frames in, mono float32 blocks of at least ``BLOCK`` samples out.

    A 20-ms Opus or AAC frame at a time, ``to_ndarray`` and the conversion and
    channel mix cost more than the decoding; here each frame's planes are only
    viewed (``np.frombuffer``) and gathered, and converted and mixed once per
    block. Every step is elementwise per sample, so the numbers are the same as
    frame by frame. ``convert`` maps an array of samples to float32 (by default
    :func:`to_float`: kept in float; :mod:`audiodb.analysis.decode` passes one that
    brings them to 16 bits as the ``ffmpeg`` program does).
    """

    def __init__(self, convert=None):
        self.convert = convert or to_float
        self.views: list[list[np.ndarray]] = []  # per frame: its planes' samples
        self.key: tuple[str, int] = ("", 0)  # (format, channels) of the gathered frames
        self.dtype = np.dtype(np.float32)
        self.per_sample = 1
        self.n = 0

    def add(self, frame) -> np.ndarray | None:
        """Gather ``frame``; a mono block when enough samples are gathered (or the layout changes)."""
        fmt = frame.format
        layout = frame.layout  # nb_channels: no tuple of channel objects per frame (PyAV >= 13)
        key = (fmt.name, layout.nb_channels if hasattr(layout, "nb_channels") else len(layout.channels))
        out = None
        if key != self.key:
            import av.audio.frame

            out = self.flush()
            if fmt.name not in av.audio.frame.format_dtypes:
                raise ValueError(f"Conversion from {fmt.name!r} format to numpy array is not supported.")
            self.key = key
            self.dtype = np.dtype(av.audio.frame.format_dtypes[fmt.name])
            self.per_sample = 1 if fmt.is_planar else key[1]  # values per sample in a plane
        n = frame.samples
        self.views.append([np.frombuffer(p, dtype=self.dtype, count=n * self.per_sample) for p in frame.planes])
        self.n += n
        if out is None and self.n >= BLOCK:
            out = self.flush()
        return out

    def flush(self) -> np.ndarray | None:
        """The gathered samples as one mono block (None if there are none)."""
        if not self.views:
            return None
        ch = len(self.views[0])  # planes: one per channel when planar, else one interleaved
        if ch == 1:  # interleaved (or one channel): (n, channels), as to_mono takes it
            x = self.convert(np.concatenate([v[0] for v in self.views]))
            out = to_mono(x.reshape(-1, self.key[1]) if self.key[1] > 1 else x)
        else:  # planar: one row per channel, mixed without a transposed copy
            rows = [self.convert(np.concatenate([v[c] for v in self.views])) for c in range(ch)]
            if ch == 2:  # to_mono's numbers: a + b, halved
                out = np.add(rows[0], rows[1], dtype=np.float32)
                out *= np.float32(0.5)
            else:
                out = to_mono(np.stack(rows, axis=1))
        self.views, self.n = [], 0
        return out


class BlockReader:
    """Float32 frames of an open ``soundfile.SoundFile``, read into one reused ``(block, channels)`` buffer.

    ``SoundFile.read`` asks libsndfile for the position before every read and
    seeks to it again after (two ``sf_seek`` calls a read: 4-11 % of the decode
    of FLAC and MP3). :meth:`read` makes the same ``sf_readf_float`` call without
    them when soundfile's handles are there (the same samples: the reads are
    consecutive either way), else it goes through ``SoundFile.read``.
    """

    def __init__(self, f, block: int):
        self.f = f
        self.buf = np.empty((block, f.channels), dtype=np.float32)
        self.raw = None
        try:
            from soundfile import _ffi, _snd

            self.raw, self.error = _snd.sf_readf_float, _snd.sf_error
            self.handle, self.ptr = f._file, _ffi.cast("float *", self.buf.ctypes.data)
        except (ImportError, AttributeError):  # another soundfile: its public read
            self.raw = None

    def read(self, want: int) -> np.ndarray:
        """Up to ``want`` (at most ``block``) frames, a view of the buffer; fewer at the end of the data."""
        if self.raw is None:
            return self.f.read(want, dtype="float32", always_2d=True, out=self.buf[:want])
        import soundfile as sf

        if self.f.closed:
            raise RuntimeError("I/O operation on closed file")
        got = self.raw(self.handle, self.ptr, min(want, len(self.buf)))
        err = self.error(self.handle)
        if err:
            raise sf.LibsndfileError(err)
        return self.buf[:got]


def to_float(arr: np.ndarray) -> np.ndarray:
    """Samples as float32 without passing through 16 bits (a float decoder's own output)."""
    if arr.dtype.kind == "f":
        return arr.astype(np.float32, copy=False)
    if arr.dtype.kind == "u" and arr.dtype.itemsize == 1:
        return (arr.astype(np.float32) - np.float32(128.0)) * np.float32(1.0 / 128)
    return arr.astype(np.float32) * np.float32(1.0 / (1 << (8 * arr.dtype.itemsize - 1)))
