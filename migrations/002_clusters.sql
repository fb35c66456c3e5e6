-- 002: clustering runs, kept. `audiodb cluster` adds one run per method; nothing is overwritten.

CREATE SEQUENCE cluster_run_id_seq START 1;

-- One row per clustering run.
CREATE TABLE cluster_runs (
    id           BIGINT PRIMARY KEY DEFAULT nextval('cluster_run_id_seq'),
    method       VARCHAR NOT NULL,          -- 'kmeans' or 'hdbscan'
    parameters   VARCHAR NOT NULL,          -- JSON: k / min_cluster_size ..., space, dims, seeds
    feature_set  VARCHAR NOT NULL,          -- feature_sets.id of the vectors clustered
    space        VARCHAR NOT NULL,          -- 'scaled' (z-scored 180 columns), 'pca' or 'umap'
    created_at   TIMESTAMP NOT NULL,        -- UTC
    n_tracks     INTEGER NOT NULL,
    n_clusters   INTEGER NOT NULL,          -- not counting noise
    n_noise      INTEGER NOT NULL,          -- HDBSCAN's -1; 0 for k-means
    quality      DOUBLE,                    -- silhouette of the clustered tracks, in the space clustered in
    seconds      DOUBLE                     -- compute time
);

-- One row per track and run.
CREATE TABLE cluster_assignments (
    run_id          BIGINT NOT NULL,
    track_id        BIGINT NOT NULL,
    cluster         INTEGER NOT NULL,       -- -1 = noise (HDBSCAN); ids are kept stable across runs
    probability     DOUBLE,                 -- HDBSCAN membership strength 0..1; NULL for k-means
    outlier_score   DOUBLE,                 -- HDBSCAN GLOSH score; NULL for k-means
    centre_distance DOUBLE,                 -- to the cluster's centre, in the space clustered in
    PRIMARY KEY (run_id, track_id)
);

-- The latest run of each method, one row per track.
CREATE VIEW clusters AS
SELECT a.track_id, t.path, r.method, a.run_id, a.cluster
FROM cluster_assignments a
JOIN cluster_runs r ON r.id = a.run_id
JOIN track_files t ON t.track_id = a.track_id
WHERE a.run_id IN (SELECT max(id) FROM cluster_runs GROUP BY method);
