-- 007: clustering runs over segments (call types). A run of `audiodb cluster --segments` is a row of
-- cluster_runs with its segmentation set (NULL for runs over files), and one row per clustered
-- segment in segment_cluster_assignments. Ids are kept stable across runs, as for files.

ALTER TABLE cluster_runs ADD COLUMN segmentation VARCHAR;   -- segmentations.id; NULL: a run over files

CREATE TABLE segment_cluster_assignments (
    run_id          BIGINT NOT NULL,
    track_id        BIGINT NOT NULL,
    seg_index       INTEGER NOT NULL,       -- of the run's segmentation
    cluster         INTEGER NOT NULL,       -- -1 = noise (HDBSCAN)
    probability     DOUBLE,                 -- HDBSCAN membership strength 0..1; NULL for k-means
    outlier_score   DOUBLE,                 -- HDBSCAN GLOSH score; NULL for k-means
    centre_distance DOUBLE,                 -- to the cluster's centre, in the space clustered in
    PRIMARY KEY (run_id, track_id, seg_index)
);

-- The latest run over files of each method, one row per track (runs over segments left out).
CREATE OR REPLACE VIEW clusters AS
SELECT a.track_id, t.path, r.method, a.run_id, a.cluster
FROM cluster_assignments a
JOIN cluster_runs r ON r.id = a.run_id
JOIN track_files t ON t.track_id = a.track_id
WHERE a.run_id IN (SELECT max(id) FROM cluster_runs WHERE segmentation IS NULL GROUP BY method);

-- The latest run over segments of each method and segmentation, one row per clustered segment.
CREATE VIEW segment_clusters AS
SELECT a.track_id, t.path, a.seg_index,
       s.start_ms / 1000.0 AS start_sec, s.end_ms / 1000.0 AS end_sec,
       r.method, a.run_id, a.cluster, r.segmentation
FROM segment_cluster_assignments a
JOIN cluster_runs r ON r.id = a.run_id
JOIN segments s ON s.track_id = a.track_id AND s.segmentation = r.segmentation AND s.seg_index = a.seg_index
JOIN track_files t ON t.track_id = a.track_id
WHERE a.run_id IN (
    SELECT max(id) FROM cluster_runs WHERE segmentation IS NOT NULL GROUP BY method, segmentation
);
