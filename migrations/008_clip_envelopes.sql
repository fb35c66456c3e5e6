-- 008: the log-mel envelope over time of short clips (issue #15), kept by `duplicates` the first
-- time it decodes a clip to compare it, so that later runs compare clips without decoding them
-- again (audiodb.analysis.envelope). At most one row per 0.5-10 s clip; a scan that analyses the
-- file again deletes it. A row of another version than the running audiodb's is not used.

CREATE TABLE clip_envelopes (
    track_id  BIGINT PRIMARY KEY,
    version   VARCHAR NOT NULL,      -- audiodb.analysis.envelope.ENVELOPE_VERSION
    frames    INTEGER NOT NULL,
    bands     SMALLINT NOT NULL,
    envelope  BLOB NOT NULL          -- frames x bands bytes: steps of 0.25 dB below the loudest value
);
