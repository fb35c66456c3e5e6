-- 004: paths are stored as a reversible escape of their bytes (audiodb.paths): a byte that is
-- not valid UTF-8 is written \xNN and a literal backslash \\. Ordinary paths are unchanged; the
-- few stored before this with a backslash get it doubled, so they keep naming the same file.

UPDATE track_files
SET path = replace(path, '\', '\\'),
    file_name = replace(file_name, '\', '\\'),
    folder = replace(folder, '\', '\\')
WHERE contains(path, '\');

UPDATE failures SET path = replace(path, '\', '\\') WHERE contains(path, '\');
