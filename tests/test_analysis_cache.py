"""The per-process caches of parameter-only objects: same values as a fresh build, shared, read-only."""

import subprocess
import sys

import numpy as np
import pytest
from audio import music_like, write_audio

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


@pytest.mark.parametrize(("n_in", "n_out"), [(64, 20), (40, 13), (128, 128)])
def test_the_cached_dct_matrix_is_scipys_orthonormal_dct_ii(n_in, n_out):
    import scipy.fft

    cached = filters.dct_matrix(n_in, n_out)
    np.testing.assert_array_equal(cached, filters.dct_matrix.__wrapped__(n_in, n_out))
    assert filters.dct_matrix(n_in, n_out) is cached and not cached.flags.writeable
    np.testing.assert_allclose(cached, scipy.fft.dct(np.eye(n_in), axis=0, type=2, norm="ortho")[:n_out], atol=1e-14)
    # On float32 mel dB, as the MFCCs take it: within float32 rounding of scipy's float32 transform.
    rng = np.random.default_rng(1)
    mel_db = (-80.0 * rng.random((n_in, 300))).astype(np.float32)
    ours = filters.mfcc_of(mel_db, n_out)
    theirs = scipy.fft.dct(mel_db, axis=0, type=2, norm="ortho")[:n_out]
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6 * float(np.abs(theirs).max()))


def test_analysing_a_file_does_not_import_scipy(tmp_path):
    """scipy.fft costs 0.15-0.2 s per process (each scan worker): the analysis path does without it."""
    path = write_audio(tmp_path / "a.wav", music_like(1.0, 44100, channels=2), 44100)
    code = (
        "import sys; from audiodb.index.worker import analyse, one_blas_thread\n"
        f"with one_blas_thread(): out = analyse({str(path)!r})\n"
        "assert out['status'] == 'ok', out; "
        "print(','.join(m for m in sys.modules if m.split('.')[0] == 'scipy'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings")
def test_a_worker_keeps_freed_memory_so_the_next_file_faults_no_pages_in():
    """The scanner's workers (init_worker) keep freed arrays mapped: a file's temporaries reuse the
    last file's pages instead of faulting fresh zeroed ones in (a third of a 1-s clip's CPU)."""
    code = (
        "import resource, numpy as np\n"
        "from audiodb.index.worker import init_worker\n"
        "init_worker()\n"
        "def churn():\n"
        "    for size in (1 << 20, 3 << 20, 720 << 10, 5 << 20, 12 << 20):\n"
        "        a = np.empty(size // 8); a.fill(1.0); del a\n"
        "churn()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for _ in range(20): churn()\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/")
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) < 100  # 0 measured; without the setting, about 1,400
