"""Planning a scan: what changed under some folders, and what it will take.

A file's signature (size, mtime) decides whether to look closer; its content
hash decides whether it really changed or merely moved; its audio hash (the
audio payload only, :mod:`audiodb.analysis.audiohash`) whether a change was
only to its tags (re-read, not re-analysed) and re-links a file moved and
retagged; the feature-set id decides whether its stored vector is current.
Nothing here writes.
"""

from __future__ import annotations

import dataclasses
import os

from ..analysis.audiohash import audio_hash, content_hash  # no numpy: the CLI starts without it

__all__ = ["COUNT_KEYS", "Change", "Plan", "ScanReport", "Track", "make_plan"]

COUNT_KEYS = ("added", "updated", "moved", "removed", "unchanged", "failed")


@dataclasses.dataclass
class Change:
    """One change to the library: kind is added, updated, moved, removed or failed.

    Paths are as stored in the library (:func:`audiodb.paths.to_stored`: printable;
    :func:`audiodb.paths.from_stored` gives the real path).
    """

    kind: str
    path: str
    old_path: str | None = None
    reason: str | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclasses.dataclass
class ScanReport:
    """What a scan did (or, with ``dry_run``, would do)."""

    added: int = 0
    updated: int = 0
    moved: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: int = 0
    skipped_failures: int = 0  # known failures, unchanged since, not retried
    skipped: int = 0  # files seen but not read (unsupported type, not audio), see skipped_files
    skipped_files: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (path, reason)
    retagged: int = 0  # of the updated: audio as stored (a tag edit), tags re-read, not re-analysed
    dry_run: bool = False
    interrupted: bool = False
    changes: list[Change] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    segments_only: int = 0  # indexed files given the segments of a segmentation they lacked (no re-analysis)

    def counts(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in COUNT_KEYS}

    def record(self, change: Change) -> None:
        """Count ``change`` and keep it in ``changes``."""
        self.changes.append(change)
        setattr(self, change.kind, getattr(self, change.kind) + 1)


@dataclasses.dataclass
class Track:
    """An indexed file, keyed by its real path."""

    track_id: int
    path: str
    size: int
    mtime_ns: int
    content_hash: str
    current: bool
    audio_hash: str | None = None  # None: indexed before 005, filled on the next read


@dataclasses.dataclass
class Plan:
    """What a scan will do: extract (analyse), move, touch, remove and forget; read-only to make."""

    unchanged: int = 0
    skipped: int = 0
    # path, known hash: the stored audio hash (or content hash): the worker re-reads only the tags if it matches
    extract: list[tuple[str, str | None]] = dataclasses.field(default_factory=list)
    existing: set[str] = dataclasses.field(default_factory=set)  # extract paths already indexed
    # unchanged files indexed before tags were read (005): their tags are read once, they stay unchanged
    backfill: set[str] = dataclasses.field(default_factory=set)
    moves: list[tuple[Track, str, int, int]] = dataclasses.field(default_factory=list)
    touched: list[tuple[Track, int]] = dataclasses.field(default_factory=list)  # same content, new mtime
    kept: dict[str, int] = dataclasses.field(default_factory=dict)  # unreadable folder -> tracks kept
    removes: list[Track] = dataclasses.field(default_factory=list)
    forget_failures: list[str] = dataclasses.field(default_factory=list)
    # Registered segmentations (SegmentParams), and the indexed files that are not re-analysed
    # but lack some of them: (path, content hash) tasks, grouped by the segmentation ids lacked.
    segmentations: tuple = ()
    segment_tasks: dict[tuple[str, ...], list[tuple[str, str]]] = dataclasses.field(default_factory=dict)


def _under(path: str, roots: frozenset[str]) -> bool:
    """Is ``path`` one of ``roots`` or inside one? O(depth), for many roots."""
    while True:
        if path in roots:
            return True
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent


def make_plan(
    roots: frozenset[str],
    files: dict[str, tuple[int, int]],
    tracks: dict[str, Track],
    failures: dict[str, tuple[int, int]],
    retry_failed: bool,
    unreadable: dict[str, str] | None = None,
) -> Plan:
    """Compare what is on disk (``files``: real path -> (size, mtime_ns)) under ``roots`` with what
    is indexed (``tracks``, ``failures``). Reads only the files that may have moved or only been
    touched (their content hash); writes nothing."""
    plan = Plan()
    new: list[str] = []
    for path, (size, mtime) in sorted(files.items()):
        t = tracks.get(path)
        if t is not None:
            if t.size == size and t.mtime_ns == mtime and t.current:
                if t.audio_hash is None:
                    # Indexed before tags were read: read them and the audio hash once, not re-analysed.
                    plan.extract.append((path, t.content_hash))
                    plan.existing.add(path)
                    plan.backfill.add(path)
                else:
                    plan.unchanged += 1
                continue
            if t.size == size and t.current:
                # Only touched (a copy, a tag editor that wrote nothing): same content is
                # unchanged; its mtime is updated, nothing is decoded, no worker started.
                try:
                    same = content_hash(path) == t.content_hash
                except OSError:
                    same = False  # the worker will record why it cannot be read
                if same and t.audio_hash is not None:
                    plan.touched.append((t, mtime))
                    plan.unchanged += 1
                    continue
            # A tag edit: the worker finds the audio hash unchanged and re-reads only the tags.
            plan.extract.append((path, (t.audio_hash or t.content_hash) if t.current else None))
            plan.existing.add(path)
        elif not retry_failed and failures.get(path) == (size, mtime):
            plan.skipped += 1
        else:
            new.append(path)

    # An unreadable folder, or a symlink to an unmounted drive, is not a deletion.
    cannot_see = frozenset(unreadable or ())
    vanished = []
    for p, t in tracks.items():
        if p in files or not _under(p, roots):
            continue
        if cannot_see and _under(p, cannot_see):
            top = next(u for u in _ancestors(p) if u in cannot_see)
            plan.kept[top] = plan.kept.get(top, 0) + 1
        else:
            vanished.append(t)
    # A move keeps the size: only new files of a vanished track's size are hashed.
    # Tracks outside the scanned folders count as vanished only if their file is gone.
    by_size: dict[int, list[Track]] = {}
    for t in vanished:
        by_size.setdefault(t.size, []).append(t)
    outside_sizes: dict[int, list[Track]] = {}
    for p, t in tracks.items():
        if not _under(p, roots):
            outside_sizes.setdefault(t.size, []).append(t)
    claimed: set[int] = set()
    for path in new:
        size, mtime = files[path]
        candidates = by_size.get(size, []) + [t for t in outside_sizes.get(size, []) if not os.path.exists(t.path)]
        candidates = [t for t in candidates if t.track_id not in claimed]
        if candidates:
            try:
                digest = content_hash(path)
            except OSError:
                digest = None
            match = next((t for t in candidates if t.content_hash == digest), None)
            if match is not None:
                claimed.add(match.track_id)
                plan.moves.append((match, path, size, mtime))
                continue
        match = _moved_and_retagged(path, vanished, claimed)
        if match is not None:
            # Moved and its tags edited: re-linked (vectors kept), then its tags re-read.
            claimed.add(match.track_id)
            plan.moves.append((match, path, size, mtime))
            if match.current:
                plan.extract.append((path, match.audio_hash))
                plan.existing.add(path)
            continue
        plan.extract.append((path, None))
    plan.removes = [t for t in vanished if t.track_id not in claimed]
    plan.forget_failures = [
        p for p in failures if _under(p, roots) and p not in files and not (cannot_see and _under(p, cannot_see))
    ]
    return plan


def _moved_and_retagged(path: str, vanished: list[Track], claimed: set[int]) -> Track | None:
    """The vanished track whose audio hash is ``path``'s (a file moved and retagged: another
    size), or None. Hashes ``path`` only when some vanished track has an audio hash to match
    (tracks outside the scanned folders re-link by size and content only)."""
    if not any(t.audio_hash is not None and t.track_id not in claimed for t in vanished):
        return None
    try:
        digest = audio_hash(path)
    except OSError:
        return None
    return next((t for t in vanished if t.audio_hash == digest and t.track_id not in claimed), None)


def _ancestors(path: str):
    while True:
        yield path
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent
