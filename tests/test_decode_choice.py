"""Which decoder reads an Opus file, and that the choice keeps the notebook's numbers.

Ogg Opus that libsndfile reads whole at 48 kHz is decoded by libopus through
PyAV (faster, libsndfile's samples within a few float32 ulps). Opus that
libsndfile decodes at a lower rate, or whose page granules it refuses part-way
(the notebook then reads FFmpeg's 16-bit output), keeps the notebook's path.
Files are made by real encoders: FFmpeg's libopus and libsndfile's own.
"""

from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest
from audio import ffmpeg_encode, music_like, write_audio

from audiodb.analysis.decode import load
from audiodb.analysis.embed import embed_file
from audiodb.analysis.params import EXTENDED, FEATURE_NAMES
from audiodb.analysis.reference import extended_reference, extract_acoustic_embedding, tolerance


def assert_notebook_parity(path, vector: np.ndarray, extended: np.ndarray) -> None:
    with warnings.catch_warnings():  # librosa warns when it falls back to audioread
        warnings.simplefilter("ignore")
        theirs = extract_acoustic_embedding(path)["embedding"]
        theirs42 = extended_reference(path)
    rel, absolute = tolerance(FEATURE_NAMES)
    bad = np.abs(vector.astype(np.float64) - theirs) > np.maximum(rel * np.abs(theirs), absolute)
    assert not bad.any(), [(FEATURE_NAMES[i], float(vector[i]), float(theirs[i])) for i in np.flatnonzero(bad)]
    # The second set within test_extended's 1e-5, except spectral contrast: its valleys are the quietest
    # 2 % of each band's bins, near-empty in lossy audio, where float32-ulp differences (libopus builds,
    # 16-bit output) come out at up to 5e-3 relative in the top band (benchmarks/bench_decode.py),
    # and above 1e-5 even for libsndfile's own decode of real Opus; 1e-2 there.
    names = EXTENDED.feature_names()
    rel42 = np.array([1e-2 if n.startswith("contrast") else 1e-5 for n in names])
    bad42 = np.abs(extended.astype(np.float64) - theirs42) > np.maximum(rel42 * np.abs(theirs42), 1e-6)
    assert not bad42.any(), [(names[i], float(extended[i]), float(theirs42[i])) for i in np.flatnonzero(bad42)]


def _source(tmp_path, seconds=6.0, sr=48000, channels=2):
    y = music_like(seconds, sr, seed=7 + channels, channels=channels)
    return write_audio(tmp_path / "src.wav", 0.9 * y, sr, subtype="FLOAT")


@pytest.mark.slow
@pytest.mark.parametrize("maker", ["ffmpeg-libopus", "libsndfile", "ffmpeg-libopus-mono-44k-source"])
def test_opus_libsndfile_reads_whole_is_decoded_by_libopus_within_parity(tmp_path, maker):
    if maker == "libsndfile":
        path = write_audio(tmp_path / "song.opus", music_like(6.0, 48000, seed=3, channels=2), 48000)
    elif maker == "ffmpeg-libopus":
        path = ffmpeg_encode(_source(tmp_path), tmp_path / "song.opus", "-c:a", "libopus", "-b:a", "128k")
    else:  # the header says 44.1 kHz: libsndfile decodes at 48 kHz all the same
        path = ffmpeg_encode(_source(tmp_path, sr=44100, channels=1), tmp_path / "song.opus", "-c:a", "libopus")
    vector, meta = embed_file(str(path), extended=True)
    assert meta["decoder"] == "libopus" and meta["native_sample_rate"] == 48000
    assert_notebook_parity(path, vector, meta["extended_vector"])
    # and libsndfile's own decode is the same waveform, to float32 rounding
    theirs = load(str(path), decoder="libsndfile").y
    ours = load(str(path)).y
    assert len(ours) == len(theirs)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)


def test_opus_from_a_16k_source_stays_with_libsndfile(tmp_path):
    # libsndfile asks libopus for the header's 16 kHz; FFmpeg always decodes at 48 kHz
    path = ffmpeg_encode(
        _source(tmp_path, sr=16000, channels=1), tmp_path / "speech.opus", "-c:a", "libopus", "-b:a", "32k"
    )
    vector, meta = embed_file(str(path), extended=True)
    assert meta["decoder"] == "libsndfile" and meta["native_sample_rate"] == 16000
    assert_notebook_parity(path, vector, meta["extended_vector"])


def _ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def _lower_a_mid_page_granule(path, by: int = 480) -> None:
    """Make one mid-stream page's granule smaller than its packets' samples (CRC fixed)."""
    data = bytearray(path.read_bytes())
    pages, i = [], 0
    while (i := data.find(b"OggS", i)) >= 0:
        pages.append(i)
        i += 4
    page = pages[len(pages) // 2]
    nseg = data[page + 26]
    end = page + 27 + nseg + sum(data[page + 27 : page + 27 + nseg])
    gp = struct.unpack_from("<q", data, page + 6)[0]
    struct.pack_into("<q", data, page + 6, gp - by)
    struct.pack_into("<I", data, page + 22, 0)
    struct.pack_into("<I", data, page + 22, _ogg_crc(bytes(data[page:end])))
    path.write_bytes(bytes(data))


@pytest.mark.slow
def test_opus_libsndfile_refuses_part_way_keeps_the_notebooks_ffmpeg_path(tmp_path):
    import soundfile as sf

    path = ffmpeg_encode(_source(tmp_path, seconds=8.0), tmp_path / "gap.opus", "-c:a", "libopus")
    _lower_a_mid_page_granule(path)
    with pytest.raises(sf.LibsndfileError):  # what the notebook's librosa.load meets, then audioread
        sf.read(str(path))
    vector, meta = embed_file(str(path), extended=True)
    assert meta["decoder"] == "ffmpeg"
    assert_notebook_parity(path, vector, meta["extended_vector"])


@pytest.mark.parametrize("channels,gain_db", [(2, 0.0), (1, 0.0), (2, -3.5)])
def test_libopus_called_directly_gives_pyavs_libopus_samples_bit_for_bit(tmp_path, channels, gain_db):
    """audiodb.analysis.libopus (libopus through ctypes) against PyAV's 'libopus' decoder: the whole
    decode and a decode from past the start (it starts 2 s early, at a page boundary), with and
    without an output gain in the header (the packets and granules as FFmpeg's encoder wrote them)."""
    from audiodb.analysis import libopus
    from audiodb.analysis.decode import _load_pyav  # the path it replaces, as the oracle
    from audiodb.analysis.seek import probe

    if not libopus.available():
        pytest.skip("no libopus library to call")
    src = _source(tmp_path, seconds=9.0, channels=channels)
    path = str(ffmpeg_encode(src, tmp_path / "song.opus", "-c:a", "libopus", "-b:a", "96k"))
    if gain_db:
        _set_output_gain(path, gain_db)
    ours, theirs = load(path), _load_pyav(path, 22050, 0, "libopus")
    assert ours.decoder == "libopus" and (ours.channels, ours.native_sr, ours.codec, ours.container) == (
        theirs.channels,
        theirs.native_sr,
        theirs.codec,
        theirs.container,
    )
    np.testing.assert_array_equal(ours.y, theirs.y)
    native = np.concatenate(list(libopus.decode_blocks(path)))
    assert len(native) == libopus.header(path)[1] == probe(path).native_frames
    for start in (0, 1000, 3 * 48000 + 17, len(native) - 5000):
        part = np.concatenate(list(libopus.decode_blocks(path, start)))
        np.testing.assert_array_equal(part, native[start:], err_msg=f"from {start}")


def test_libopus_refusing_a_packet_falls_back_to_libsndfile(tmp_path):
    """A packet libopus refuses (here: padding longer than the packet, its frame count and the page
    CRC kept, so the file still passes the clean-file check) is not a crash: the whole-file decode
    goes to libsndfile, which decides."""
    from audiodb.analysis import libopus
    from audiodb.analysis.opus import ogg_opus_is_clean

    if not libopus.available():
        pytest.skip("no libopus library to call")
    path = str(ffmpeg_encode(_source(tmp_path, seconds=4.0), tmp_path / "bad.opus", "-c:a", "libopus"))
    _break_a_packet(path)
    assert ogg_opus_is_clean(path)
    with pytest.raises(RuntimeError, match="refused a packet"):
        list(libopus.decode_blocks(path))
    try:
        decoded = load(path)
    except Exception as e:  # noqa: BLE001 - libsndfile refusing it too is a recorded failure, not a crash
        assert type(e).__name__ == "DecodeError", e
    else:
        assert decoded.decoder != "libopus"


def _pages_of(data: bytes):
    at = 0
    while at < len(data):
        nseg = data[at + 26]
        lacing = data[at + 27 : at + 27 + nseg]
        yield at, 27 + nseg, sum(lacing)
        at += 27 + nseg + sum(lacing)


def _fix_crc(data: bytearray, at: int, head: int, body: int) -> None:
    data[at + 22 : at + 26] = b"\0\0\0\0"
    data[at + 22 : at + 26] = struct.pack("<I", _ogg_crc(bytes(data[at : at + head + body])))


def _set_output_gain(path, gain_db: float) -> None:
    data = bytearray(open(path, "rb").read())
    at, head, body = next(_pages_of(bytes(data)))
    assert data[at + head : at + head + 8] == b"OpusHead"
    struct.pack_into("<h", data, at + head + 16, round(gain_db * 256))
    _fix_crc(data, at, head, body)
    open(path, "wb").write(bytes(data))


def _break_a_packet(path) -> None:
    """Make the first packet of the fourth page (one frame) a code-3 packet of one frame whose
    padding is longer than the packet: the same samples by its TOC, OPUS_INVALID_PACKET to libopus."""
    data = bytearray(open(path, "rb").read())
    at, head, body = list(_pages_of(bytes(data)))[3]
    assert data[at + head] & 3 == 0  # one frame (what libopus's encoder writes at this rate)
    data[at + head] |= 3
    data[at + head + 1 : at + head + 4] = bytes([0x41, 0xFF, 0xFF])  # padding flag, 1 frame; 254 + 255 + ...
    _fix_crc(data, at, head, body)
    open(path, "wb").write(bytes(data))
