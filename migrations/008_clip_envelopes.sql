-- 008: the log-mel envelope over time of each short clip (issue #15), stored by the scan from the
-- waveform it decodes anyway, so that `duplicates` compares clips without decoding them again
-- (audiodb.analysis.envelope). One row per clip of 0.5-10 s; none for other files. A row of
-- another version than the running audiodb's is stale: the next scan analyses the file again.

CREATE TABLE clip_envelopes (
    track_id  BIGINT PRIMARY KEY,
    version   VARCHAR NOT NULL,      -- audiodb.analysis.envelope.ENVELOPE_VERSION
    frames    INTEGER NOT NULL,
    bands     SMALLINT NOT NULL,
    envelope  BLOB NOT NULL          -- frames x bands bytes: steps of 0.25 dB below the loudest value
);
