"""The parameters of the two feature sets and of segmentations, and the id each is stored under.

A feature set is defined by a frozen dataclass: :class:`FeatureParams` (the
notebook's 180 numbers) and :class:`ExtendedParams` (the second set's 42), and a
segmentation by :class:`SegmentParams` (its windows' numbers:
:mod:`audiodb.analysis.segments`). Its id is its name plus a digest of every field,
so changing any parameter makes a new set and the stored vectors of the old one
stale. No numpy here: the CLI and a scan's planning import this first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import TYPE_CHECKING, Any, ClassVar

__all__ = [
    "AMIN",
    "EXTENDED",
    "FEATURE_NAMES",
    "NOTEBOOK",
    "PRESETS",
    "SEGMENT_DIMS",
    "ExtendedParams",
    "FeatureParams",
    "IdentifiedParams",
    "SegmentParams",
    "parse_segmentation",
]


class IdentifiedParams:
    """A feature set's id and JSON, from its dataclass fields (``name`` among them)."""

    if TYPE_CHECKING:  # what the dataclass subclasses have (for asdict and self.name); nothing at run time
        name: str
        __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    @property
    def id(self) -> str:
        """A stable id: the name plus a short digest of every parameter."""
        blob = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return f"{self.name}-{hashlib.sha1(blob.encode()).hexdigest()[:10]}"

    def as_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


@dataclasses.dataclass(frozen=True)
class FeatureParams(IdentifiedParams):
    """Parameters of the notebook's embedding; together they define a feature set."""

    sr: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 64
    n_mfcc: int = 20
    top_db: float = 30.0
    min_trimmed_sec: float = 0.5
    roll_percent: float = 0.85
    resampler: str = "soxr_hq"
    name: str = "notebook"

    @property
    def dims(self) -> int:
        return 2 * self.n_mels + 2 * self.n_mfcc + 12

    def feature_names(self) -> list[str]:
        names = [f"mel_mean_{i}" for i in range(self.n_mels)]
        names += [f"mel_std_{i}" for i in range(self.n_mels)]
        names += [f"mfcc_mean_{i}" for i in range(self.n_mfcc)]
        names += [f"mfcc_std_{i}" for i in range(self.n_mfcc)]
        for label in ("spec_cent", "spec_bw", "spec_roll", "spec_flat", "rms", "zcr"):
            names += [f"{label}_mean", f"{label}_std"]
        return names


#: The notebook's own parameters (SAMPLE_RATE_TARGET, N_MELS, N_MFCC, ...).
NOTEBOOK = FeatureParams()

#: The notebook's 180 feature names, in its order.
FEATURE_NAMES: tuple[str, ...] = tuple(NOTEBOOK.feature_names())

#: The smallest power before taking logarithms (librosa's ``amin``).
AMIN = 1e-10


@dataclasses.dataclass(frozen=True)
class ExtendedParams(IdentifiedParams):
    """Parameters of the second feature set; ``base`` is the notebook set it is computed with."""

    base: FeatureParams = NOTEBOOK
    n_bands: int = 6
    fmin: float = 200.0
    quantile: float = 0.02
    n_chroma: int = 12
    tuning: float = 0.0
    start_bpm: float = 120.0
    std_bpm: float = 1.0
    min_bpm: float = 30.0
    max_bpm: float = 300.0
    name: str = "extended"

    @property
    def dims(self) -> int:
        return 2 * (self.n_bands + 1) + 2 * self.n_chroma + 4

    def feature_names(self) -> list[str]:
        names = [f"contrast_mean_{i}" for i in range(self.n_bands + 1)]
        names += [f"contrast_std_{i}" for i in range(self.n_bands + 1)]
        names += [f"chroma_mean_{i}" for i in range(self.n_chroma)]
        names += [f"chroma_std_{i}" for i in range(self.n_chroma)]
        return names + ["onset_mean", "onset_std", "tempo_bpm", "pulse_clarity"]


#: The second feature set with the notebook's analysis parameters.
EXTENDED = ExtendedParams()


#: Presets of ``--segments`` (window, hop) in seconds.
PRESETS: dict[str, tuple[float, float]] = {"calls": (1.0, 0.5), "song": (3.0, 1.5), "soundscape": (60.0, 60.0)}


@dataclasses.dataclass(frozen=True)
class SegmentParams(IdentifiedParams):
    """A segmentation: window and hop, and how activity is judged. Its ``id`` names it in the library."""

    window_ms: int = 1000
    hop_ms: int = 500
    base: FeatureParams = NOTEBOOK
    floor_percentile: float = 10.0
    active_db: float = 3.0
    min_active_fraction: float = 0.1
    db_reference: str = "absolute"
    version: int = 1
    name: str = "segments"

    def __post_init__(self):
        if self.window_ms <= 0 or self.hop_ms <= 0:
            raise ValueError("window and hop must be positive")
        if self.db_reference not in ("absolute", "file"):
            raise ValueError("db_reference is 'absolute' or 'file'")

    @property
    def label(self) -> str:
        """``window/hop`` in seconds, as given to ``--segments`` (``1.0/0.5``)."""
        return f"{_seconds(self.window_ms)}/{_seconds(self.hop_ms)}"

    @property
    def extended(self) -> ExtendedParams:
        return ExtendedParams(base=self.base)

    @property
    def dims(self) -> int:
        ext = self.extended
        return self.base.dims + 2 * (ext.n_bands + 1) + 2 * ext.n_chroma + 2

    def feature_names(self) -> list[str]:
        return self.base.feature_names() + self.extended.feature_names()[:-2]


def _seconds(ms: int) -> str:
    text = f"{ms / 1000:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


SEGMENT_DIMS = SegmentParams().dims  # 220


def parse_segmentation(text: str, base: FeatureParams = NOTEBOOK) -> SegmentParams:
    """``'1.0/0.5'`` (window/hop in seconds) or a preset name (:data:`PRESETS`) to its params.

    Raises ValueError with what was wrong.
    """
    text = text.strip()
    if text in PRESETS:
        win, hop = PRESETS[text]
    else:
        parts = text.split("/")
        try:
            if len(parts) != 2:
                raise ValueError
            win, hop = float(parts[0]), float(parts[1])
        except ValueError:
            raise ValueError(
                f"{text!r} is not a segmentation: give WINDOW/HOP in seconds (e.g. 1.0/0.5) or one of "
                + ", ".join(PRESETS)
            ) from None
    win_ms, hop_ms = round(win * 1000), round(hop * 1000)
    if win_ms < 50 or hop_ms < 10 or hop_ms > win_ms:
        raise ValueError(f"{text!r}: the window must be at least 0.05 s and the hop between 0.01 s and the window")
    return SegmentParams(window_ms=win_ms, hop_ms=hop_ms, base=base)
