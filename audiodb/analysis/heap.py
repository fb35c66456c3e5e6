"""Keep freed memory in a process that analyses file after file (glibc's malloc settings).

Each analysis allocates and frees a few MB of arrays (the frames, their transform, the
magnitudes, the decoder's blocks). With glibc's default settings, arrays above its mmap
threshold are mapped and unmapped on every call, and freed memory at the top of the heap
above the trim threshold is handed back to the kernel: the next file faults the same
pages in again, zeroed. On 400 1-s clips that was 550 page faults and about 1.4 ms of
system time per file, a third of the file's CPU.

:func:`retain_freed_memory` sets the two thresholds to the largest values glibc's own
dynamic adjustment reaches (32 MB and 64 MB on 64-bit): arrays up to 32 MB come from the
heap, and up to 64 MB of freed memory stays mapped for the next file. Called once in
processes that only analyse (the scanner's workers), never by the analysis itself: it is a
process-wide setting.
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["retain_freed_memory"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def retain_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 64 << 20) -> bool:
    """Set glibc's mmap and trim thresholds (bytes) for this process; False where that is not
    possible (not Linux, no ``mallopt``, a C library that ignores it)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))
