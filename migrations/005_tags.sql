-- 005: a file's words. Tags (title, artist, album, ...) and, for field recordings, when and on what
-- it was recorded; read with mutagen in the scanner's workers. NULL when the file does not say.
-- audio_hash: a hash of the audio payload only (tag blocks left out), so a tag edit is not an audio
-- change; NULL until the file is next read.

ALTER TABLE track_files ADD COLUMN title VARCHAR;
ALTER TABLE track_files ADD COLUMN artist VARCHAR;
ALTER TABLE track_files ADD COLUMN album VARCHAR;
ALTER TABLE track_files ADD COLUMN album_artist VARCHAR;
ALTER TABLE track_files ADD COLUMN genre VARCHAR;
ALTER TABLE track_files ADD COLUMN year INTEGER;
ALTER TABLE track_files ADD COLUMN track_number INTEGER;
ALTER TABLE track_files ADD COLUMN disc_number INTEGER;
ALTER TABLE track_files ADD COLUMN tags JSON;              -- every other tag the file carries
ALTER TABLE track_files ADD COLUMN recorded_at TIMESTAMP;  -- BWF bext, GUANO, AudioMoth comment
ALTER TABLE track_files ADD COLUMN device VARCHAR;         -- the recorder, where the file says
ALTER TABLE track_files ADD COLUMN tag_error VARCHAR;      -- why the tags could not be read (audio still indexed)
ALTER TABLE track_files ADD COLUMN audio_hash VARCHAR;

CREATE OR REPLACE VIEW tracks AS
SELECT
    track_id, path, file_name, folder, size,
    make_timestamp(mtime_ns // 1000) AS mtime,
    content_hash, duration_sec, sample_rate, native_sample_rate, channels,
    codec, container, indexed_at,
    title, artist, album, album_artist, genre, year, track_number, disc_number, tags,
    recorded_at, device, tag_error
FROM track_files;
