"""Tags, field-recording times, the audio-payload hash and the formats FFmpeg reads (issue 15).

Every file here is written by the test: audio with soundfile or the ffmpeg program, tags with
mutagen or ``ffmpeg -metadata``, recorder chunks (GUANO, BWF bext, AudioMoth's comment) by hand.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import struct
import subprocess

import numpy as np
import pytest
from audio import music_like, write_audio
from conftest import rows

from audiodb import Library
from audiodb.analysis.audiohash import audio_hash
from audiodb.analysis.tags import parse_audiomoth_comment, parse_guano, read_tags

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the ffmpeg program is not installed")

#: extension -> ffmpeg output options: every format the scanner reads that ffmpeg writes.
FFMPEG_FORMATS = {
    ".mp3": ["-c:a", "libmp3lame", "-b:a", "128k"],
    ".flac": ["-c:a", "flac"],
    ".ogg": ["-c:a", "libvorbis"],
    ".opus": ["-c:a", "libopus"],
    ".m4a": ["-c:a", "aac"],
    ".wav": ["-c:a", "pcm_s16le"],
    ".aiff": ["-c:a", "pcm_s16be"],
    ".aac": ["-c:a", "aac", "-f", "adts"],
    ".wma": ["-c:a", "wmav2"],
    ".mp4": ["-c:a", "aac"],
    ".m4b": ["-c:a", "aac", "-f", "ipod"],
    ".webm": ["-c:a", "libopus"],
    ".mka": ["-c:a", "libvorbis"],
    ".wv": ["-c:a", "wavpack"],
    ".tta": ["-c:a", "tta"],
    ".mp2": ["-c:a", "mp2"],
    ".ac3": ["-c:a", "ac3"],
    ".caf": ["-c:a", "pcm_s16le"],
    ".au": ["-c:a", "pcm_s16be"],
    ".aifc": ["-c:a", "pcm_s16be"],
}
ALAC = "alac.m4a"  # ALAC in .m4a: its own file name, the extension is .m4a

TAGS = {
    "title": "Señal número 3",
    "artist": "The Testers",
    "album": "Round Trip",
    "album_artist": "Various",
    "genre": "Field",
    "date": "2019-04-01",
    "track": "3/12",
    "disc": "1/2",
}
#: What the tracks view must show for TAGS.
EXPECTED = ("Señal número 3", "The Testers", "Round Trip", "Various", "Field", 2019, 3, 1)
WORDS = "title, artist, album, album_artist, genre, year, track_number, disc_number"


def ffmpeg(*args) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *map(str, args)], check=True)


def encode(src, dst, ext_or_name: str) -> None:
    args = ["-c:a", "alac"] if ext_or_name == ALAC else FFMPEG_FORMATS[ext_or_name]
    ffmpeg("-i", src, "-map_metadata", "-1", *args, dst)


def source(tmp_path, seed=1, seconds=1.5, sr=44100):
    path = tmp_path / f"src{seed}.wav"
    write_audio(path, music_like(seconds, sr, seed=seed, channels=2), sr)
    return path


def tag_with_mutagen(path, tags: dict) -> bool:
    """Write ``tags`` the way tag editors do (mutagen); False for formats mutagen cannot tag."""
    import mutagen
    from mutagen import id3

    name = str(path).lower()
    if name.endswith((".wav", ".aiff", ".aif", ".aifc", ".mp3", ".mp2", ".aac", ".tta")):
        f = mutagen.File(path) if name.endswith((".wav", ".aiff", ".aif", ".aifc")) else None
        frames = id3.ID3() if f is None else (f.tags if f.tags is not None else (f.add_tags() or f.tags))
        for key, frame in (
            ("title", id3.TIT2),
            ("artist", id3.TPE1),
            ("album", id3.TALB),
            ("album_artist", id3.TPE2),
            ("genre", id3.TCON),
            ("date", id3.TDRC),
            ("track", id3.TRCK),
            ("disc", id3.TPOS),
        ):
            if key in tags:
                frames.add(frame(encoding=3, text=tags[key]))
        if f is None:
            frames.save(path)
        else:
            f.save()
        return True
    f = mutagen.File(path)
    if f is None:
        return False
    if f.tags is None:
        try:
            f.add_tags()
        except mutagen.MutagenError:  # AC-3: mutagen reads its stream, writes no tags
            return False
    kind = type(f.tags).__name__
    if kind == "MP4Tags":
        keys = {"title": "©nam", "artist": "©ART", "album": "©alb", "album_artist": "aART", "genre": "©gen"}
        for k, v in tags.items():
            if k in keys:
                f.tags[keys[k]] = [v]
        if "date" in tags:
            f.tags["©day"] = [tags["date"]]
        if "track" in tags:
            f.tags["trkn"] = [tuple(int(x) for x in tags["track"].split("/"))]
        if "disc" in tags:
            f.tags["disk"] = [tuple(int(x) for x in tags["disc"].split("/"))]
    elif kind == "ASFTags":
        keys = {
            "title": "Title",
            "artist": "Author",
            "album": "WM/AlbumTitle",
            "album_artist": "WM/AlbumArtist",
            "genre": "WM/Genre",
            "date": "WM/Year",
            "track": "WM/TrackNumber",
            "disc": "WM/PartOfSet",
        }
        for k, v in tags.items():
            f.tags[keys[k]] = [v]
    elif kind == "APEv2":
        keys = {"album_artist": "Album Artist", "date": "Year"}
        for k, v in tags.items():
            f.tags[keys.get(k, k.title())] = v
    else:  # Vorbis comments (FLAC, Ogg Vorbis, Opus)
        keys = {"album_artist": "albumartist", "track": "tracknumber", "disc": "discnumber"}
        for k, v in tags.items():
            f.tags[keys.get(k, k)] = [v]
    f.save()
    return True


def tag_with_ffmpeg(path, tags: dict, tmp_path) -> None:
    """Rewrite ``path`` with ``ffmpeg -c copy -metadata``: the audio copied, the tags new."""
    ext = os.path.splitext(str(path))[1]
    out = tmp_path / f"retag-tmp{ext}"
    fmt = {".aac": ["-f", "adts", "-write_id3v2", "1"], ".m4b": ["-f", "ipod"]}.get(ext, [])
    meta = [x for k, v in tags.items() for x in ("-metadata", f"{k}={v}")]
    ffmpeg("-i", path, "-map", "0", "-c", "copy", *meta, *fmt, out)
    os.replace(out, path)


def scan(db, *roots, **kw):
    kw.setdefault("workers", 2)
    return Library(db).scan([str(r) for r in roots], **kw)


# ---- tags of every format -----------------------------------------------------------------------------


@pytest.mark.slow
def test_tags_of_every_format_round_trip_into_tracks(tmp_path, db_path):
    src = source(tmp_path)
    music = tmp_path / "music"
    music.mkdir()
    by_ffmpeg = {".webm", ".mka"}  # mutagen cannot write Matroska: ffmpeg -metadata does
    untaggable = {".ac3", ".caf", ".au", ".aifc"}  # neither writes tags these read back: NULLs
    names = [f"t{ext}" for ext in FFMPEG_FORMATS] + [ALAC]
    for name in names:
        ext = ALAC if name == ALAC else os.path.splitext(name)[1]
        encode(src, music / name, ext)
        if ext in by_ffmpeg:
            tag_with_ffmpeg(music / name, TAGS, tmp_path)
        elif ext not in untaggable:
            assert tag_with_mutagen(music / name, TAGS), name
    report = scan(db_path, music)
    assert report.added == len(names) and report.failed == 0, report.changes
    got = {r[0]: r[1:] for r in rows(db_path, f"SELECT file_name, {WORDS}, tag_error FROM tracks")}
    for name in names:
        ext = os.path.splitext(name)[1]
        if ext in untaggable:
            assert got[name] == (None,) * 9, name
        else:
            assert got[name] == (*EXPECTED, None), name
    # The rest of what a file carries is in tags (JSON): the totals of "3/12" and "1/2", ffmpeg's encoder.
    extra = json.loads(rows(db_path, "SELECT tags FROM tracks WHERE file_name = 't.flac'")[0][0])
    assert extra["tracktotal"] == "12" and extra["disctotal"] == "2"
    assert Library(db_path).status()["tagged"] == len(names) - len(untaggable)


@pytest.mark.slow
def test_wav_info_tags_written_by_ffmpeg(tmp_path):
    src = source(tmp_path)
    path = tmp_path / "info.wav"
    meta = {"title": "Dawn", "artist": "Wren", "album": "Site 4", "genre": "Birds", "date": "2021", "track": "7"}
    ffmpeg("-i", src, *[x for k, v in meta.items() for x in ("-metadata", f"{k}={v}")], "-c:a", "pcm_s16le", path)
    t = read_tags(path)
    got = (t["title"], t["artist"], t["album"], t["genre"], t["year"], t["track_number"])
    assert got == ("Dawn", "Wren", "Site 4", "Birds", 2021, 7)
    assert t["tag_error"] is None


def test_a_file_without_tags_gives_nulls(tmp_path):
    path = write_audio(tmp_path / "plain.wav", music_like(0.5, 22050, seed=2), 22050)
    assert read_tags(path) == dict.fromkeys((*WORDS.split(", "), "tags", "recorded_at", "device", "tag_error"))


def test_number_and_year_forms():
    from audiodb.analysis.tags import _number_of, _year

    assert _number_of("3/12") == (3, 12) and _number_of("03") == (3, None) and _number_of("A2") == (None, None)
    assert _number_of(" 4 / 9") == (4, 9) and _number_of("") == (None, None)
    assert _year("2019-04-01") == 2019 and _year("1999") == 1999 and _year("April 2001") == 2001
    assert _year("12") is None and _year(None) is None


# ---- broken tag blocks ------------------------------------------------------------------------------------


def _riff_with(path, *chunks: tuple[bytes, bytes]) -> None:
    """Append chunks to a WAV file and fix the RIFF size."""
    data = bytearray(open(path, "rb").read())
    for cid, payload in chunks:
        data += cid + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) & 1 else b"")
    data[4:8] = struct.pack("<I", len(data) - 8)
    open(path, "wb").write(bytes(data))


@pytest.mark.slow
def test_broken_tag_blocks_are_recorded_and_the_audio_indexed(tmp_path, db_path):
    music = tmp_path / "music"
    music.mkdir()
    wav = write_audio(music / "bad-id3.wav", music_like(1.0, 22050, seed=3), 22050)
    _riff_with(wav, (b"id3 ", b"ID3\x04\x00\x00" + b"\xff\xff\xff\xff" + b"garbage" * 10))
    mp3 = music / "bad.mp3"
    encode(source(tmp_path, seed=4), mp3, ".mp3")
    body = open(mp3, "rb").read()
    # An ID3v2 header of an unknown version (2.9): mutagen refuses it, the decoder skips it by its size.
    open(mp3, "wb").write(b"ID3\x09\x00\x00\x00\x00\x00\x10" + b"\x00" * 16 + body)
    report = scan(db_path, music)
    assert report.added == 2 and report.failed == 0, report.changes
    got = dict(rows(db_path, "SELECT file_name, tag_error FROM tracks"))
    assert "ID3" in got["bad-id3.wav"] and got["bad.mp3"], got
    assert rows(db_path, "SELECT count(*) FROM embeddings")[0][0] == 2
    assert Library(db_path).status()["tag_errors"] == 2


# ---- field recorders: GUANO, BWF bext, AudioMoth ---------------------------------------------------------


def _bext(originator: str, date: str, time: str) -> bytes:
    b = bytearray(602)
    b[0:11] = b"Dawn chorus"
    b[256 : 256 + len(originator)] = originator.encode()
    b[320:330] = date.encode()
    b[330:338] = time.encode()
    return bytes(b)


def _info(**fields: str) -> bytes:
    body = b"INFO"
    for cid, text in fields.items():
        raw = text.encode() + b"\0"
        body += cid.encode() + struct.pack("<I", len(raw)) + raw + (b"\0" if len(raw) & 1 else b"")
    return body


@pytest.mark.slow
def test_recorder_times_and_devices_from_guano_bext_and_audiomoth(tmp_path, db_path):
    field = tmp_path / "field"
    field.mkdir()
    y = music_like(1.0, 22050, seed=5)
    guano = write_audio(field / "bat.wav", y, 22050)
    _riff_with(
        guano,
        (
            b"guan",
            b"GUANO|Version: 1.0\nMake: Wildlife Acoustics\nModel: SM4BAT\nSerial: S4U12345\n"
            b"Timestamp: 2023-08-14T21:03:05-04:00\nNABat|Site: Pond 3\n",
        ),
    )
    bwf = write_audio(field / "bwf.wav", y * 0.9, 22050)
    _riff_with(bwf, (b"bext", _bext("ZOOM F3", "2022-06-01", "05:30:15")))
    moth = write_audio(field / "moth.wav", y * 0.8, 22050)
    comment = (
        "Recorded at 12:00:00 01/05/2024 (UTC+1) by AudioMoth 24E144085F256E1B at medium gain while battery "
        "was 4.2V and temperature was 15.3C."
    )
    _riff_with(moth, (b"LIST", _info(ICMT=comment, IART="AudioMoth 24E144085F256E1B")))
    deployed = write_audio(field / "deployed.wav", y * 0.6, 22050)
    _riff_with(
        deployed,
        (
            b"LIST",
            _info(
                ICMT="Recorded at 06:00:00 10/10/2022 (UTC) during deployment 0123456789ABCDEF at high gain",
                IART="AudioMoth 24E144085F256E1B",
            ),
        ),
    )
    plain = write_audio(field / "plain.wav", y * 0.7, 22050)
    scan(db_path, field)
    got = {r[0]: r[1:] for r in rows(db_path, "SELECT file_name, recorded_at, device, tags FROM tracks")}
    assert got["bat.wav"][:2] == (datetime.datetime(2023, 8, 15, 1, 3, 5), "Wildlife Acoustics SM4BAT S4U12345")
    assert json.loads(got["bat.wav"][2])["GUANO|NABat|Site"] == "Pond 3"
    assert got["bwf.wav"][:2] == (datetime.datetime(2022, 6, 1, 5, 30, 15), "ZOOM F3")
    assert got["moth.wav"][:2] == (datetime.datetime(2024, 5, 1, 11, 0, 0), "AudioMoth 24E144085F256E1B")
    assert got["deployed.wav"][:2] == (datetime.datetime(2022, 10, 10, 6, 0, 0), "AudioMoth 24E144085F256E1B")
    assert got["plain.wav"] == (None, None, None)
    assert Library(db_path).status()["recorded"] == 4
    del plain


def test_audiomoth_comment_variants():
    # Firmware 1.0 (no zone), later firmware (UTC, UTC+h, UTC-h:mm), and the deployment form.
    v1 = parse_audiomoth_comment(
        "Recorded at 23:59:58 31/12/2019 by AudioMoth 0FE081F80FE081F0 at gain setting 2 while battery state was 4.5V"
    )
    assert v1 == {"recorded_at": datetime.datetime(2019, 12, 31, 23, 59, 58), "device": "AudioMoth 0FE081F80FE081F0"}
    utc = parse_audiomoth_comment("Recorded at 12:00:00 01/05/2024 (UTC) by AudioMoth 24E144085F256E1B at medium gain")
    assert utc["recorded_at"] == datetime.datetime(2024, 5, 1, 12, 0, 0)
    west = parse_audiomoth_comment("Recorded at 01:30:00 02/05/2024 (UTC-5:30) by AudioMoth 24E144085F256E1B")
    assert west["recorded_at"] == datetime.datetime(2024, 5, 2, 7, 0, 0)
    deployed = parse_audiomoth_comment("Recorded at 06:00:00 10/10/2022 (UTC+10) during deployment 0123456789ABCDEF")
    assert deployed == {
        "recorded_at": datetime.datetime(2022, 10, 9, 20, 0, 0),
        "device": "AudioMoth deployment 0123456789ABCDEF",
    }
    assert parse_audiomoth_comment("Recorded at the village hall") is None
    assert parse_audiomoth_comment("Recorded at 25:00:00 01/05/2024 (UTC) by AudioMoth 24E144085F256E1B") is None


def test_guano_without_offset_is_the_recorders_clock():
    g = parse_guano(b"GUANO|Version: 1.0\nTimestamp: 2020-01-02 03:04:05\nMake: Titley\n\x00\x00")
    assert g["recorded_at"] == datetime.datetime(2020, 1, 2, 3, 4, 5) and g["device"] == "Titley"
    assert parse_guano(b"\x00\x00") is None


# ---- the audio-payload hash ---------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", [f"t{ext}" for ext in FFMPEG_FORMATS] + [ALAC])
def test_audio_hash_ignores_retags_and_sees_one_sample(tmp_path, name):
    ext = ALAC if name == ALAC else os.path.splitext(name)[1]
    src = source(tmp_path, seconds=1.0)
    original = tmp_path / name
    encode(src, original, ext)
    h = audio_hash(original)
    # A retag by a tag editor (mutagen) and by ffmpeg -c copy -metadata: the audio hash stays.
    edited = tmp_path / f"edited-{name}"
    shutil.copy(original, edited)
    if tag_with_mutagen(edited, {**TAGS, "title": "A much longer title " * 30}):
        assert (
            os.path.getsize(edited) != os.path.getsize(original)
            or open(edited, "rb").read() != open(original, "rb").read()
        )
        assert audio_hash(edited) == h, "mutagen retag"
    remuxed = tmp_path / f"remuxed-{name}"
    shutil.copy(original, remuxed)
    tag_with_ffmpeg(remuxed, {"title": "Other", "comment": "x" * 500}, tmp_path)
    assert audio_hash(remuxed) == h, "ffmpeg -c copy -metadata"
    # One sample changed in the source (a click: lossy encoders quantise a one-LSB change away), encoded
    # the same way: another hash.
    import soundfile as sf

    y, sr = sf.read(src, dtype="int16")
    y[len(y) // 2, 0] = 30000 if y[len(y) // 2, 0] < 0 else -30000
    changed_src = tmp_path / "changed.wav"
    sf.write(changed_src, y, sr, subtype="PCM_16")
    changed = tmp_path / f"changed-{name}"
    encode(changed_src, changed, ext)
    assert audio_hash(changed) != h


def test_audio_hash_of_a_flipped_byte_in_mp3_frames_and_wav_data(tmp_path):
    src = source(tmp_path, seconds=1.0)
    for ext in (".mp3", ".wav", ".flac", ".ogg", ".m4a"):
        path = tmp_path / f"f{ext}"
        encode(src, path, ext)
        h = audio_hash(path)
        data = bytearray(open(path, "rb").read())
        data[-len(data) // 3] ^= 0x01  # inside the audio payload of each of these small files
        open(path, "wb").write(bytes(data))
        assert audio_hash(path) != h, ext


def _first_audio_on_the_setup_page(path) -> None:
    """Rewrite an Ogg Vorbis file so that its first audio packet shares the setup header's page
    (granule 0), as some encoders write it (the Wesnoth music: comments, setup, 145 audio bytes)."""
    from mutagen.ogg import OggPage

    pages = []
    with open(path, "rb") as f:
        while True:
            try:
                pages.append(OggPage(f))
            except EOFError:
                break
    setup = next(i for i, p in enumerate(pages) if p.position == 0 and i > 0 and p.complete)
    merged, audio = pages[setup], pages[setup + 1]
    assert not audio.continued and len(audio.packets) > 1
    merged.packets = merged.packets + audio.packets[:1]
    audio.packets = audio.packets[1:]
    for i, page in enumerate(pages):
        page.sequence = i
    with open(path, "wb") as f:
        f.write(b"".join(page.write() for page in pages))


def test_ogg_audio_starting_on_the_setup_page_keeps_its_hash_through_retags(tmp_path):
    import soundfile as sf

    path = write_audio(tmp_path / "mixed.ogg", music_like(1.0, 44100, seed=8), 44100)
    _first_audio_on_the_setup_page(path)
    assert len(sf.read(path)[0]) > 40000  # still a stream that decodes
    h = audio_hash(path)
    edited = shutil.copy(path, tmp_path / "edited.ogg")
    tag_with_mutagen(edited, {"title": "Long " * 2000})  # the comment grows over several pages
    remuxed = shutil.copy(path, tmp_path / "remuxed.ogg")
    tag_with_ffmpeg(remuxed, {"title": "Other"}, tmp_path)  # ffmpeg pages the audio its own way
    assert audio_hash(edited) == h and audio_hash(remuxed) == h


def test_one_lsb_in_one_sample_of_a_lossless_file_changes_the_audio_hash(tmp_path):
    import soundfile as sf

    src = source(tmp_path, seconds=0.5)
    y, sr = sf.read(src, dtype="int16")
    y[1000, 1] += 1
    other = tmp_path / "other.wav"
    sf.write(other, y, sr, subtype="PCM_16")
    for ext in (".wav", ".flac", ".wv", ".aiff", ".tta", ALAC):
        a, b = tmp_path / f"a-{ext.strip('.')}", tmp_path / f"b-{ext.strip('.')}"
        suffix = ".m4a" if ext == ALAC else ext
        a, b = a.with_suffix(suffix), b.with_suffix(suffix)
        encode(src, a, ext)
        encode(other, b, ext)
        assert audio_hash(a) != audio_hash(b), ext


# ---- rescans: a retag is not an audio change -----------------------------------------------------------------


def _vectors_at(db):
    return dict(rows(db, "SELECT t.file_name, e.computed_at FROM tracks t JOIN embeddings e USING (track_id)"))


@pytest.mark.slow
def test_a_retag_of_every_file_reanalyses_none(tmp_path, db_path):
    music = tmp_path / "music"
    music.mkdir()
    src = source(tmp_path)
    names = ["a.mp3", "b.flac", "c.ogg", "d.opus", "e.m4a", "f.wav", "g.aiff", "h.wma", "i.webm", "j.wv", ALAC]
    for name in names:
        encode(src, music / name, ALAC if name == ALAC else os.path.splitext(name)[1])
    scan(db_path, music)
    before = _vectors_at(db_path)
    for i, name in enumerate(names):
        if name.endswith((".webm", ".m4a")) or i % 2:  # both ways of retagging across the library
            tag_with_ffmpeg(music / name, {"title": f"Retagged {name}", "artist": "New"}, tmp_path)
        else:
            tag_with_mutagen(music / name, {"title": f"Retagged {name}", "artist": "New"})
    report = scan(db_path, music)
    assert report.retagged == len(names) and report.updated == len(names) and report.added == 0, report
    assert _vectors_at(db_path) == before  # no vector computed again
    titles = dict(rows(db_path, "SELECT file_name, title FROM tracks"))
    assert titles == {n: f"Retagged {n}" for n in names}
    # And the stored size/mtime/hash are the new file's: the next scan has nothing to do.
    again = scan(db_path, music)
    assert again.unchanged == len(names) and again.retagged == 0


@pytest.mark.slow
def test_a_changed_sample_is_reanalysed_even_with_new_tags(tmp_path, db_path):
    music = tmp_path / "music"
    music.mkdir()
    path = write_audio(music / "x.wav", music_like(1.0, 22050, seed=7), 22050)
    scan(db_path, music)
    before = _vectors_at(db_path)
    import soundfile as sf

    y, sr = sf.read(path, dtype="int16")
    y[100] += 1
    sf.write(path, y, sr, subtype="PCM_16")
    tag_with_mutagen(path, {"title": "edited"})
    report = scan(db_path, music)
    assert report.updated == 1 and report.retagged == 0
    assert _vectors_at(db_path)["x.wav"] != before["x.wav"]


@pytest.mark.slow
def test_moves_relink_and_a_moved_retagged_file_too(tmp_path, db_path):
    music = tmp_path / "music"
    (music / "a").mkdir(parents=True)
    src = source(tmp_path)
    encode(src, music / "a" / "one.flac", ".flac")
    encode(source(tmp_path, seed=2), music / "a" / "two.mp3", ".mp3")
    scan(db_path, music)
    before = dict(rows(db_path, "SELECT file_name, track_id FROM tracks"))
    at = _vectors_at(db_path)
    (music / "b").mkdir()
    os.rename(music / "a" / "one.flac", music / "b" / "one.flac")  # a plain move
    os.rename(music / "a" / "two.mp3", music / "b" / "two-renamed.mp3")  # moved and retagged
    tag_with_mutagen(music / "b" / "two-renamed.mp3", {"title": "Two", "artist": "Mover"})
    report = scan(db_path, music)
    assert report.moved == 2 and report.added == 0 and report.removed == 0, report.changes
    after = dict(rows(db_path, "SELECT file_name, track_id FROM tracks"))
    assert after == {"one.flac": before["one.flac"], "two-renamed.mp3": before["two.mp3"]}
    assert _vectors_at(db_path) == {"one.flac": at["one.flac"], "two-renamed.mp3": at["two.mp3"]}
    assert rows(db_path, "SELECT title, artist FROM tracks WHERE file_name = 'two-renamed.mp3'") == [("Two", "Mover")]


@pytest.mark.slow
def test_rows_indexed_before_tags_get_them_without_reanalysis(tmp_path, db_path):
    music = tmp_path / "music"
    music.mkdir()
    encode(source(tmp_path), music / "old.mp3", ".mp3")
    tag_with_mutagen(music / "old.mp3", TAGS)
    scan(db_path, music)
    at = _vectors_at(db_path)
    import duckdb

    con = duckdb.connect(str(db_path))  # as a library indexed before migration 005 left them
    con.execute("UPDATE track_files SET audio_hash = NULL, title = NULL, artist = NULL, year = NULL")
    con.close()
    report = scan(db_path, music)
    # counted unchanged (the file did not change; its tags are read for the first time), not re-analysed
    assert report.unchanged == 1 and not report.changes and _vectors_at(db_path) == at
    assert rows(db_path, "SELECT title, year FROM tracks") == [(TAGS["title"], 2019)]
    assert rows(db_path, "SELECT audio_hash FROM track_files") == [(audio_hash(music / "old.mp3"),)]
    assert scan(db_path, music).unchanged == 1


# ---- formats ----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_format_ffmpeg_writes_is_indexed(tmp_path, db_path, cli):
    from audiodb.index.discover import AUDIO_EXTENSIONS

    music = tmp_path / "music"
    music.mkdir()
    src = source(tmp_path, seconds=2.0)
    names = [f"t{ext}" for ext in FFMPEG_FORMATS] + [ALAC]
    for name in names:
        encode(src, music / name, ALAC if name == ALAC else os.path.splitext(name)[1])
    written = {os.path.splitext(n)[1] for n in names}
    # Monkey's Audio: FFmpeg decodes it but has no encoder, so no test file can be made here.
    assert AUDIO_EXTENSIONS - written == {".ape", ".aif", ".oga"}  # .aif/.oga: other names of tested formats
    (music / "cover.jpg").write_bytes(b"\xff\xd8 not audio")
    (music / "track.dsf").write_bytes(b"DSD ")  # an audio type still not read: skipped and named
    report = scan(db_path, music)
    assert report.added == len(names) and report.failed == 0, [c for c in report.changes if c.kind == "failed"]
    assert report.skipped == 1 and report.skipped_files[0][0].endswith("track.dsf")
    got = {r[0]: r[1:] for r in rows(db_path, "SELECT file_name, duration_sec, codec, decoder FROM track_files")}
    for name in names:
        duration, codec, decoder = got[name]
        assert duration == pytest.approx(2.0, abs=0.1), (name, duration)
    assert got[ALAC][1] == "alac" and got["t.wma"][1] == "wmav2" and got["t.wv"][2] == "ffmpeg"
    # The notebook's formats keep libsndfile's decoding.
    for name in ("t.wav", "t.flac", "t.ogg", "t.mp3", "t.aiff"):
        assert got[name][2] == "libsndfile", name
    vectors = rows(db_path, "SELECT vector FROM embeddings")
    assert all(np.isfinite(v).all() for (v,) in vectors)
    result = cli("scan", music, "--verbose")
    assert "1 skipped" in result.stdout and "track.dsf" in result.stderr
