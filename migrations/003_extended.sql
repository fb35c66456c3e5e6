-- 003: the second feature set (audiodb.extended): spectral contrast, chroma, onsets, tempo.
-- Its own table, since embeddings.vector is the notebook's FLOAT[180]; one row per track and set.

CREATE TABLE extended_embeddings (
    track_id     BIGINT NOT NULL,
    feature_set  VARCHAR NOT NULL,
    vector       FLOAT[42] NOT NULL,
    computed_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (track_id, feature_set)
);

-- The 42 columns for the current extended feature set (chroma_*_0 is C, ..._11 is B).
CREATE VIEW extended_features AS
SELECT
    t.track_id,
    t.path,
    e.vector[1] AS contrast_mean_0,
    e.vector[2] AS contrast_mean_1,
    e.vector[3] AS contrast_mean_2,
    e.vector[4] AS contrast_mean_3,
    e.vector[5] AS contrast_mean_4,
    e.vector[6] AS contrast_mean_5,
    e.vector[7] AS contrast_mean_6,
    e.vector[8] AS contrast_std_0,
    e.vector[9] AS contrast_std_1,
    e.vector[10] AS contrast_std_2,
    e.vector[11] AS contrast_std_3,
    e.vector[12] AS contrast_std_4,
    e.vector[13] AS contrast_std_5,
    e.vector[14] AS contrast_std_6,
    e.vector[15] AS chroma_mean_0,
    e.vector[16] AS chroma_mean_1,
    e.vector[17] AS chroma_mean_2,
    e.vector[18] AS chroma_mean_3,
    e.vector[19] AS chroma_mean_4,
    e.vector[20] AS chroma_mean_5,
    e.vector[21] AS chroma_mean_6,
    e.vector[22] AS chroma_mean_7,
    e.vector[23] AS chroma_mean_8,
    e.vector[24] AS chroma_mean_9,
    e.vector[25] AS chroma_mean_10,
    e.vector[26] AS chroma_mean_11,
    e.vector[27] AS chroma_std_0,
    e.vector[28] AS chroma_std_1,
    e.vector[29] AS chroma_std_2,
    e.vector[30] AS chroma_std_3,
    e.vector[31] AS chroma_std_4,
    e.vector[32] AS chroma_std_5,
    e.vector[33] AS chroma_std_6,
    e.vector[34] AS chroma_std_7,
    e.vector[35] AS chroma_std_8,
    e.vector[36] AS chroma_std_9,
    e.vector[37] AS chroma_std_10,
    e.vector[38] AS chroma_std_11,
    e.vector[39] AS onset_mean,
    e.vector[40] AS onset_std,
    e.vector[41] AS tempo_bpm,
    e.vector[42] AS pulse_clarity
FROM track_files t
JOIN extended_embeddings e USING (track_id)
WHERE e.feature_set = (
    SELECT id FROM feature_sets WHERE name = 'extended' ORDER BY registered_at DESC LIMIT 1
);
