"""The parameters of the two feature sets, and the id each set is stored under.

A feature set is defined by a frozen dataclass: :class:`FeatureParams` (the
notebook's 180 numbers) and :class:`ExtendedParams` (the second set's 42).
Its id is its name plus a digest of every field, so changing any parameter
makes a new set and the stored vectors of the old one stale.
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
    "ExtendedParams",
    "FeatureParams",
    "IdentifiedParams",
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
