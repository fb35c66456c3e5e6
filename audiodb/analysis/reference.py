"""The original notebook's ``extract_acoustic_embedding``, verbatim, for checks.

This is the specification audiodb's numbers are tested against (tests) and
timed against (benchmarks). It imports librosa; nothing else in audiodb does.
"""

from pathlib import Path

import numpy as np

SAMPLE_RATE_TARGET = 22050
N_MELS = 64
N_MFCC = 20


def extract_acoustic_embedding(
    path: Path,
    sr_target: int = SAMPLE_RATE_TARGET,
    n_mels: int = N_MELS,
    n_mfcc: int = N_MFCC,
) -> dict:
    import librosa

    path = Path(path)
    # Load mono audio at target sample rate
    y, sr = librosa.load(path, sr=sr_target, mono=True)
    duration = len(y) / sr

    # Trim leading/trailing silence a bit (optional, helps avoid long tails of silence)
    y_trim, _ = librosa.effects.trim(y, top_db=30)
    if len(y_trim) < int(0.5 * sr):
        # too little audio after trimming → fall back to original
        y_trim = y

    # Mel-spectrogram
    S = librosa.feature.melspectrogram(
        y=y_trim,
        sr=sr,
        n_fft=2048,
        hop_length=512,
        n_mels=n_mels,
        power=2.0,
    )
    S_db = librosa.power_to_db(S, ref=np.max)

    mel_mean = np.mean(S_db, axis=1)
    mel_std = np.std(S_db, axis=1)

    # MFCC from the mel-spectrogram
    mfcc = librosa.feature.mfcc(S=S_db, sr=sr, n_mfcc=n_mfcc)
    mfcc_mean = np.mean(mfcc, axis=1)
    mfcc_std = np.std(mfcc, axis=1)

    # Spectral features (computed on trimmed waveform)
    spec_cent = librosa.feature.spectral_centroid(y=y_trim, sr=sr)[0]
    spec_bw = librosa.feature.spectral_bandwidth(y=y_trim, sr=sr)[0]
    spec_roll = librosa.feature.spectral_rolloff(y=y_trim, sr=sr, roll_percent=0.85)[0]
    spec_flat = librosa.feature.spectral_flatness(y=y_trim)[0]
    rms = librosa.feature.rms(y=y_trim)[0]
    zcr = librosa.feature.zero_crossing_rate(y_trim)[0]

    def stats(x):
        return np.array([np.mean(x), np.std(x)], dtype=float)

    spec_stats = np.concatenate(
        [
            stats(spec_cent),
            stats(spec_bw),
            stats(spec_roll),
            stats(spec_flat),
            stats(rms),
            stats(zcr),
        ]
    )

    # Build feature names
    feat_names = []
    for i in range(n_mels):
        feat_names.append(f"mel_mean_{i}")
    for i in range(n_mels):
        feat_names.append(f"mel_std_{i}")
    for i in range(n_mfcc):
        feat_names.append(f"mfcc_mean_{i}")
    for i in range(n_mfcc):
        feat_names.append(f"mfcc_std_{i}")
    spec_labels = ["spec_cent", "spec_bw", "spec_roll", "spec_flat", "rms", "zcr"]
    for name in spec_labels:
        feat_names.append(f"{name}_mean")
        feat_names.append(f"{name}_std")

    embedding = np.concatenate([mel_mean, mel_std, mfcc_mean, mfcc_std, spec_stats])

    assert len(embedding) == len(feat_names), "Feature length mismatch"

    return {
        "file_name": path.name,
        "file_path": str(path),
        "duration_sec": float(duration),
        "sample_rate": int(sr),
        "embedding": embedding,
        "feature_names": feat_names,
    }


def tolerance(names) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature (relative, absolute) tolerances of the parity contract.

    1e-4 relative everywhere, with an absolute floor of 1e-3 for features in
    dB, Hz and MFCC units and 1e-6 for flatness, RMS and ZCR.
    """
    rel = np.full(len(names), 1e-4)
    absolute = np.array([1e-6 if n.startswith(("spec_flat", "rms", "zcr")) else 1e-3 for n in names])
    return rel, absolute


def extended_reference(path: Path, sr_target: int = SAMPLE_RATE_TARGET, n_mels: int = N_MELS) -> np.ndarray:
    """The second feature set (:mod:`audiodb.analysis.extended`) computed with librosa's own functions.

    Same load and trim as the notebook; contrast, chroma and onset strength are
    librosa's; the tempo and pulse clarity use a direct (not FFT) autocorrelation.
    """
    import librosa

    y, sr = librosa.load(Path(path), sr=sr_target, mono=True)
    y_trim, _ = librosa.effects.trim(y, top_db=30)
    if len(y_trim) < int(0.5 * sr):
        y_trim = y
    mag = np.abs(librosa.stft(y_trim, n_fft=2048, hop_length=512))
    contrast = librosa.feature.spectral_contrast(S=mag, sr=sr, n_fft=2048, hop_length=512)
    chroma = librosa.feature.chroma_stft(S=mag**2, sr=sr, n_fft=2048, hop_length=512, tuning=0.0)
    mel = librosa.feature.melspectrogram(y=y_trim, sr=sr, n_fft=2048, hop_length=512, n_mels=n_mels)
    env = librosa.onset.onset_strength(S=librosa.power_to_db(mel, ref=np.max), sr=sr, hop_length=512)

    fps = sr / 512
    x = env.astype(np.float64) - env.mean()
    lo, hi = int(np.floor(fps * 60 / 300)), min(int(np.ceil(fps * 60 / 30)), len(x) - 1)
    ac = np.array([np.dot(x[: len(x) - lag], x[lag:]) for lag in range(hi + 2)])
    if hi <= lo or ac[0] <= 0:
        bpm, clarity = 0.0, 0.0
    else:
        lags = np.arange(lo, hi + 1)
        score = ac[lo : hi + 1] * np.exp(-0.5 * (np.log2(60 * fps / lags) - np.log2(120)) ** 2)
        b = int(np.argmax(score))
        lag = float(lags[b])
        if 0 < b < len(score) - 1 and score[b - 1] - 2 * score[b] + score[b + 1] < 0:
            lag += 0.5 * (score[b - 1] - score[b + 1]) / (score[b - 1] - 2 * score[b] + score[b + 1])
        bpm, clarity = 60 * fps / lag, float(np.clip(ac[lags[b]] / ac[0], 0, 1))
    return np.concatenate(
        [
            contrast.mean(axis=1),
            contrast.std(axis=1),
            chroma.mean(axis=1),
            chroma.std(axis=1),
            [env.mean(), env.std(), bpm, clarity],
        ]
    )
