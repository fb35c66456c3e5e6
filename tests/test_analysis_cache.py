"""The per-process caches of parameter-only objects: same values as a fresh build, shared, read-only."""

import numpy as np
import pytest

from audiodb.analysis import filters
from audiodb.analysis.extended import embeddings
from audiodb.analysis.frames import frame_features
from audiodb.analysis.params import EXTENDED

PARAMS = [dict(sr=22050, n_fft=2048), dict(sr=16000, n_fft=1024)]


@pytest.mark.parametrize("kw", PARAMS)
def test_cached_filterbanks_equal_fresh_ones_and_are_read_only(kw):
    for build, extra in [
        (filters.mel_filters, dict(n_mels=64)),
        (filters.mel_filters_t, dict(n_mels=40)),
        (filters.chroma_filters, dict(n_chroma=12, tuning=0.0)),
    ]:
        cached = build(**kw, **extra)
        fresh = build.__wrapped__(**kw, **extra)
        assert fresh.flags.writeable  # the uncached builder still hands out a private array
        np.testing.assert_array_equal(cached, fresh)
        assert cached.dtype == fresh.dtype
        assert build(**kw, **extra) is cached  # built once per process
        assert not cached.flags.writeable
        with pytest.raises(ValueError):
            cached[0, 0] = 1.0
    np.testing.assert_array_equal(filters.mel_filters_t(**kw, n_mels=64), filters.mel_filters(**kw, n_mels=64).T)
    # The key is every parameter: another band count is another filterbank.
    assert filters.mel_filters(**kw, n_mels=32).shape == (32, 1 + kw["n_fft"] // 2)
    window = filters.hann_window(kw["n_fft"])
    np.testing.assert_array_equal(window, filters.hann_window.__wrapped__(kw["n_fft"]))
    assert not window.flags.writeable


def test_cached_contrast_bands_equal_fresh_ones_and_cannot_be_changed():
    cached = filters.contrast_bands(sr=22050, n_fft=2048, n_bands=6, fmin=200.0, quantile=0.02)
    fresh = filters.contrast_bands.__wrapped__(sr=22050, n_fft=2048, n_bands=6, fmin=200.0, quantile=0.02)
    assert isinstance(cached, tuple) and len(cached) == len(fresh) == 7
    for (bins, count), (bins_f, count_f) in zip(cached, fresh):
        np.testing.assert_array_equal(bins, bins_f)
        assert count == count_f
        assert not bins.flags.writeable
    with pytest.raises(ValueError):
        cached[0][0][0] = 5


def test_features_with_cached_filters_equal_those_with_freshly_built_ones():
    rng = np.random.default_rng(3)
    y = (0.1 * rng.standard_normal(22050 * 2)).astype(np.float32)
    fresh = dict(
        mel_basis=filters.mel_filters.__wrapped__(sr=22050, n_fft=2048, n_mels=64),
        chroma_basis=filters.chroma_filters.__wrapped__(sr=22050, n_fft=2048),
        contrast_bands=filters.contrast_bands.__wrapped__(sr=22050, n_fft=2048),
    )
    cached = dict(
        chroma_basis=filters.chroma_filters(sr=22050, n_fft=2048),
        contrast_bands=filters.contrast_bands(sr=22050, n_fft=2048),
    )
    a, b = frame_features(y, **fresh), frame_features(y, **cached)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    # Two embeddings in a row (the second from the warm caches) are the same bits.
    first = embeddings(y, params=EXTENDED)
    second = embeddings(y, params=EXTENDED)
    for u, v in zip(first, second):
        np.testing.assert_array_equal(u, v)
