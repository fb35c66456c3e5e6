"""umap with as little numba compiling as possible, and what it compiles kept between runs.

umap-learn compiles its numba functions in every new process, and importing it
imports pynndescent, whose import compiles some 1,200 functions eagerly. On
the demo library (56 tracks) a first ``audiodb cluster`` with an empty numba
cache took 23 s of CPU, 17 s of it pynndescent's import, which audiodb never
uses for a library it can search exactly. :func:`import_umap` therefore:

- imports umap with pynndescent's three names in ``umap.umap_`` standing for
  the real ones (:class:`NNDescentOnDemand`, :class:`OnDemandMapping`):
  pynndescent is imported the first time one of them is really used (umap's
  own approximate neighbours, above :data:`audiodb.query.cluster.EXACT_KNN`
  tracks or a map of 4,096 and more), never otherwise;
- turns numba's on-disk cache on for every numba function in umap's modules,
  so a later process loads the machine code instead of compiling it.

Where numba keeps the files is numba's choice, as for librosa's own
``cache=True`` functions: ``$NUMBA_CACHE_DIR`` when set, else ``__pycache__``
beside umap's source when that is writable, else numba's folder in the user's
cache (``~/.cache/numba``).
"""

from __future__ import annotations

import collections.abc
import importlib
import sys
import types
import warnings

__all__ = ["UMAP_MODULES", "NNDescentOnDemand", "OnDemandMapping", "import_umap"]

#: umap's modules holding the numba functions a fit calls.
UMAP_MODULES = ("umap.umap_", "umap.layouts", "umap.utils", "umap.spectral", "umap.distances", "umap.sparse")

#: pynndescent's names that ``umap.umap_`` imports at its top.
PYNNDESCENT_NAMES = {
    "pynndescent": "NNDescent",
    "pynndescent.distances": "named_distances",
    "pynndescent.sparse": "sparse_named_distances",
}

#: Metrics pynndescent is known to have, answered without importing it (what audiodb asks umap).
KNOWN_METRICS = frozenset({"euclidean", "l2"})

_enabled = False


class _OnDemandType(type):
    def __instancecheck__(cls, obj) -> bool:
        real = sys.modules.get("pynndescent")
        return real is not None and not isinstance(real, _Stub) and isinstance(obj, real.NNDescent)


class NNDescentOnDemand(metaclass=_OnDemandType):
    """Stands for ``pynndescent.NNDescent`` in ``umap.umap_``: made, it imports pynndescent and makes the real one."""

    def __new__(cls, *args, **kwargs):
        from pynndescent import NNDescent

        return NNDescent(*args, **kwargs)


class OnDemandMapping(collections.abc.Mapping):
    """Stands for one of pynndescent's dicts of metrics: read, it imports pynndescent and reads the real one.

    ``metric in mapping`` for a metric of :data:`KNOWN_METRICS` is answered
    without the import (umap asks that on every fit).
    """

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def real(self) -> dict:
        return getattr(importlib.import_module(self.module), self.name)

    def __contains__(self, key) -> bool:
        loaded = sys.modules.get(self.module)
        if (loaded is None or isinstance(loaded, _Stub)) and key in KNOWN_METRICS:
            return True
        return key in self.real()

    def __getitem__(self, key):
        return self.real()[key]

    def __iter__(self):
        return iter(self.real())

    def __len__(self) -> int:
        return len(self.real())


class _Stub(types.ModuleType):
    """pynndescent's modules as ``umap.umap_`` imports them, only while it is imported."""


def import_umap():
    """``import umap`` as described above; returns the module. Safe to call many times.

    Functions numba cannot cache (it says so in a warning, silenced here) are
    compiled as before.
    """
    global _enabled
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # umap's and numba's notices on import
        _import_without_pynndescent()
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


def _import_without_pynndescent() -> None:
    """Import ``umap.umap_`` with pynndescent's names standing in, unless one of the two is imported already."""
    if "umap.umap_" in sys.modules or "pynndescent" in sys.modules:
        return
    stubs = {}
    for name, attribute in PYNNDESCENT_NAMES.items():
        stub = stubs[name] = _Stub(name)
        setattr(stub, attribute, NNDescentOnDemand if name == "pynndescent" else OnDemandMapping(name, attribute))
    sys.modules.update(stubs)
    try:
        importlib.import_module("umap.umap_")
    except ImportError:
        # Another umap that imports more of pynndescent than these names: forget the half-imported
        # modules, and the plain ``import umap`` that follows compiles pynndescent as it always did.
        for name in [m for m in sys.modules if m == "umap" or m.startswith("umap.")]:
            del sys.modules[name]
    finally:
        for name, stub in stubs.items():
            if sys.modules.get(name) is stub:
                del sys.modules[name]
