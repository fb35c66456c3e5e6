"""umap with its numba code kept between runs.

umap-learn compiles its numba functions in every new process: on the demo
library that was 17-25 s of a 30-50 s ``audiodb cluster`` (measured:
``smooth_knn_dist`` 10 s, ``compute_membership_strengths`` 4 s, the layout
epoch 3 s), because almost none of them is declared ``cache=True``.
:func:`import_umap` turns numba's cache on for every numba function defined in
umap's modules before the first call, so the second run in a new process
loads the compiled code (0.3 s instead of 17 s) and gives the same numbers
(the machine code is the one compiled the first time).

Where numba keeps the files is numba's choice, as for pynndescent's and
librosa's own ``cache=True`` functions: ``$NUMBA_CACHE_DIR`` when set, else
``__pycache__`` beside umap's source when that is writable, else numba's
folder in the user's cache (``~/.cache/numba``). audiodb does not set
``NUMBA_CACHE_DIR`` itself: pointing it elsewhere would leave pynndescent's
cache beside its source unused and recompile all of it once (measured: the
first run three times slower).
"""

from __future__ import annotations

import importlib
import warnings

__all__ = ["UMAP_MODULES", "import_umap"]

#: umap's modules holding the numba functions a fit calls.
UMAP_MODULES = ("umap.umap_", "umap.layouts", "umap.utils", "umap.spectral", "umap.distances", "umap.sparse")

_enabled = False


def import_umap():
    """``import umap``, with numba's on-disk cache on for umap's numba functions; returns the module.

    Functions numba cannot cache (it says so in a warning, silenced here) are
    compiled as before. Safe to call many times.
    """
    global _enabled
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # umap's and numba's notices on import
        import umap

        if not _enabled:
            from numba.core.dispatcher import Dispatcher

            for name in UMAP_MODULES:
                module = importlib.import_module(name)
                for obj in vars(module).values():
                    if isinstance(obj, Dispatcher) and obj.py_func.__module__ == name and obj.stats.cache_path is None:
                        obj.enable_caching()
            _enabled = True
    return umap
